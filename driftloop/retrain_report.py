"""HTML reports of the retrain pipeline: KFP ``Output[HTML]`` artifacts, and MLflow artifacts.

Self-contained pages (inline CSS, plots as base64 PNG) so they render in the KFP UI's
artifact viewer, in MLflow's (an ``.html`` artifact is shown as a page), in a browser from
the local pipeline root, or attached to an alert. :func:`log_to_run` puts them on the
challenger's MLflow run under ``reports/``; the registered version links them from its
``<report>_report`` tags (:func:`version_tags`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.spec import ModelSpec

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:72rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .6rem}
th{background:#f3f3f3;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.6rem 1rem;border-radius:.3rem;font-weight:600}
.pass{background:#e3f5e1;color:#1d5c1a} .fail{background:#fbe3e1;color:#7a1d16}
.undecided{background:#fdf3d7;color:#6b4e00}
.plots{display:flex;flex-wrap:wrap;gap:.5rem} .plots img{width:22rem}
.plots img.wide{width:44rem;max-width:100%}
.muted{color:#666}
"""


#: The challenger run's artifact folder for the reports.
REPORTS_DIR = "reports"


def log_to_run(client: Any, run_id: str, reports: dict[str, str]) -> dict[str, str]:
    """Log each ``name → html`` as ``reports/<name>.html`` on the MLflow run; their URIs."""
    uris = {}
    for name, html in reports.items():
        client.log_text(run_id, html, f"{REPORTS_DIR}/{name}.html")
        uris[name] = f"runs:/{run_id}/{REPORTS_DIR}/{name}.html"
    return uris


def version_tags(client: Any, run_id: str) -> dict[str, str]:
    """``<report>_report → runs:/...`` for each report the run holds (none before a
    retrain: the bootstrap version has no gate to report)."""
    from driftloop.lineage import REPORTS, report_tag

    held = {Path(f.path).name for f in client.list_artifacts(run_id, REPORTS_DIR)}
    return {report_tag(name): f"runs:/{run_id}/{REPORTS_DIR}/{name}.html"
            for name in REPORTS if f"{name}.html" in held}


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def verdict(ok: bool | None, text: str) -> str:
    """A verdict line: green for a pass, red for a fail, amber when it could not be decided
    (``None``: e.g. the gate had too few rows)."""
    style = "undecided" if ok is None else "pass" if ok else "fail"
    return f"<p class='verdict {style}'>{escape(text)}</p>"


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{escape(str(value))}</td>"
    if isinstance(value, int | np.integer):
        return f"<td class='n'>{value}</td>"
    if isinstance(value, float | np.floating):
        return f"<td class='n'>{value:.4g}</td>"
    return f"<td>{escape(str(value))}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def confusion_table(matrix: list[list[int]], labels: list[str]) -> str:
    """Rows: truth; columns: predicted."""
    header = ["truth \\ predicted", *labels]
    return table(header, ([label, *row] for label, row in zip(labels, matrix, strict=True)))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def distribution_plots(
    spec: ModelSpec, samples: dict[str, pd.DataFrame], max_plots: int = 24
) -> str:
    """One small figure per feature overlaying the named samples (e.g. the champion's
    training reference and the fresh production rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = {k: v for k, v in samples.items() if len(v)}
    if not samples:
        return "<p class='muted'>no rows to plot</p>"
    images = []
    for feature in spec.feature_names[:max_plots]:
        fig, ax = plt.subplots(figsize=(4.2, 2.6))
        if feature in spec.features.numeric:
            values = {k: pd.to_numeric(v[feature], errors="coerce").dropna()
                      for k, v in samples.items()}
            joined = pd.concat(list(values.values()))
            if joined.empty:
                plt.close(fig)
                continue
            bins = np.histogram_bin_edges(joined, bins=20)
            for i, (name, series) in enumerate(values.items()):
                # The first sample (the champion's reference) as an outline: it often
                # coincides with the source data and would hide under it.
                style = ({"histtype": "step", "linewidth": 2} if i == 0 and len(values) > 2
                         else {"alpha": 0.5})
                ax.hist(series, bins=bins, density=True, label=f"{name} ({len(series)})",
                        **style)
        else:
            shares = pd.DataFrame({k: v[feature].astype(str).value_counts(normalize=True)
                                   for k, v in samples.items()}).fillna(0.0)
            shares.plot.bar(ax=ax, alpha=0.8, rot=30)
        ax.set_title(feature, fontsize=10)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
        images.append(f"<img alt='{escape(feature)}' src='data:image/png;base64,{_png(fig)}'>")
        plt.close(fig)
    return f"<div class='plots'>{''.join(images)}</div>"


def regression_plots(truth: np.ndarray, predicted: np.ndarray, who: str) -> str:
    """Predicted against actual (the diagonal is a perfect model) and the residuals against
    the prediction (a pattern there is what a retrain should remove)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if not len(truth):
        return "<p class='muted'>no rows to plot</p>"
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    left.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(),
                                                                    predicted.max()))
    left.plot([low, high], [low, high], color="#888", linewidth=1)
    left.set_xlabel("actual", fontsize=8)
    left.set_ylabel("predicted", fontsize=8)
    left.set_title(f"{who}: predicted vs actual", fontsize=10)
    right.scatter(predicted, predicted - truth, s=8, alpha=0.6)
    right.axhline(0, color="#888", linewidth=1)
    right.set_xlabel("predicted", fontsize=8)
    right.set_ylabel("residual (predicted - actual)", fontsize=8)
    right.set_title(f"{who}: residuals", fontsize=10)
    for ax in (left, right):
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    image = (f"<img class='wide' alt='{escape(who)}: predicted vs actual, and residuals' "
             f"src='data:image/png;base64,{_png(fig)}'>")
    plt.close(fig)
    return f"<div class='plots'>{image}</div>"


def drift_table(report: dict[str, Any] | None) -> str:
    """The per-feature drift tests (``driftloop.drift`` report dict), or why there are none."""
    if not report:
        return "<p class='muted'>no drift report (no fresh rows, or no champion reference)</p>"
    if report.get("status") == "insufficient_data":
        return (f"<p class='muted'>insufficient data: {report.get('rows')} fresh rows, the "
                f"drift tests need {report.get('thresholds', {}).get('min_rows')}</p>")
    rows = []
    for f in report.get("features", []):
        rows.append([f.get("feature"), f.get("kind"), f.get("test"), f.get("statistic"),
                     f.get("p_value"), f.get("p_value_adjusted"), f.get("effect_size"),
                     f.get("shift_sd") if f.get("shift_sd") is not None
                     else f.get("unseen_rate"),
                     "DRIFT" if f.get("drifted") else ("changed" if f.get("changed") else "ok"),
                     f.get("description") or ""])
    summary = (f"{report.get('rows')} fresh rows against {report.get('reference_rows')} "
               f"reference rows; dataset drift: {report.get('dataset_drift')} "
               f"({len(report.get('drifted_features') or [])} drifted feature(s), "
               f"{len(report.get('changes') or [])} changed; "
               f"correction {report.get('correction')})")
    return f"<p>{escape(summary)}</p>" + table(
        ["feature", "kind", "test", "statistic", "p-value", "adjusted p",
         "effect (share of rows)", "sd moved / unseen share", "verdict", "how it moved"], rows)
