"""The retrain's evaluation report: the gate's verdict and every figure behind it, both
models on the same rows (a classifier's confusion matrices; a regressor's predicted-vs-actual
and residual plots), live accuracy or error per served version, drift of the fresh rows, and
the feature distributions. Logged on the challenger's MLflow run and kept as a KFP artifact.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from driftloop.gate.decision import OUTCOME_INSUFFICIENT, GateResult
from driftloop.gate.evaluation import (
    CHALLENGER_COLUMN,
    ORIGIN_COLUMN,
    ORIGIN_PRODUCTION,
    ORIGIN_SOURCE,
    PREDICTION_COLUMN,
    SERVED_VERSION_COLUMN,
    TS_COLUMN,
    Evaluation,
)
from driftloop.gate.paired import ROUNDS
from driftloop.run_context import Context


def evaluation_report(
    ctx: Context, ev: Evaluation, frame: pd.DataFrame, reference: pd.DataFrame | None,
    drift: dict[str, Any] | None,
) -> str:
    from driftloop.retrain_report import (
        confusion_table,
        distribution_plots,
        drift_table,
        page,
        regression_plots,
        table,
        verdict,
    )

    g = ev.gate
    task = ctx.spec.task_impl
    keys = list(task.metrics)
    columns = [(who, which) for who in ev.scores for which in ("gate", "holdout")]
    header = ["metric", *[f"{who} ({'gate rows' if which == 'gate' else 'whole holdout'})"
                          for who, which in columns]]
    rows = [[k, *[ev.scores[who][which][k] for who, which in columns]] for k in keys]
    production = frame[frame[ORIGIN_COLUMN] == ORIGIN_PRODUCTION]
    live = []
    figures = list(task.live_figures)
    if len(production):
        for version, group in production.groupby(SERVED_VERSION_COLUMN):
            pairs = list(zip(group[ctx.spec.target].map(_text), group[PREDICTION_COLUMN]
                             .astype(str), strict=True))
            found = task.live(pairs)
            live.append([f"v{version}", len(group), *(found[f] for f in figures)])
    samples = {"source data": frame[frame[ORIGIN_COLUMN] == ORIGIN_SOURCE],
               "fresh labeled rows": production}
    if reference is not None:
        samples = {f"champion v{g.champion_version} reference": reference, **samples}
    logged = ""
    if len(production):
        first, last = production[TS_COLUMN].min(), production[TS_COLUMN].max()
        logged = f" (served between {first:%Y-%m-%d %H:%M:%S} and {last:%Y-%m-%d %H:%M:%S} UTC)"
    body = [
        verdict(None if g.outcome == OUTCOME_INSUFFICIENT else g.passed, g.reason),
        f"<p>Data: {int((frame[ORIGIN_COLUMN] == ORIGIN_SOURCE).sum())} rows from the spec's "
        f"source {escape(ctx.spec.data.source)} + {len(production)} fresh labeled rows from "
        f"the prediction log{logged}.</p>",
        table(["figure", "value"], [
            ["outcome", g.outcome], ["gate metric", g.metric],
            ["floor (min_value)" if g.higher_is_better else "ceiling (max_value)",
             g.min_value if g.higher_is_better else g.max_value],
            ["direction", "higher is better" if g.higher_is_better else "lower is better"],
            ["requirement", f"{g.require.replace('_', '-')} at {g.confidence:.0%} confidence"
             + ("" if g.require == "superiority" else f", margin {g.max_regression:g}")],
            ["challenger", g.challenger],
            ["champion", "none" if g.champion is None else g.champion],
            ["champion version", g.champion_version or "none"],
            ["judged on", f"{g.holdout_rows} {g.holdout} rows"],
            *_paired_rows(g),
            ["holdout rows (fresh)", f"{ev.holdout_rows} ({ev.fresh_holdout_rows})"],
        ]),
        "<h2>Challenger and champion on the same rows</h2>", table(header, rows),
    ]
    for who in ev.scores:
        matrix = ev.scores[who]["gate"].get("confusion_matrix")
        if matrix is not None:
            body.append(f"<h2>Confusion matrix: {who}, gate rows</h2>")
            body.append(confusion_table(matrix, ev.labels))
    if CHALLENGER_COLUMN in ev.gate_frame and not task.exact_match:
        body.append("<h2>Challenger on the gate rows: predicted against actual</h2>")
        body.append(regression_plots(ev.gate_frame[ctx.spec.target].to_numpy(),
                                     ev.gate_frame[CHALLENGER_COLUMN].to_numpy(),
                                     "challenger"))
    if live:
        body.append("<h2>Served predictions in the window, against feedback</h2>")
        body.append(table(["served version", "labeled rows",
                           *(f"live {f}" for f in figures)], live))
    body.append("<h2>Drift: fresh rows against the champion's reference</h2>")
    body.append(drift_table(drift))
    body.append("<h2>Feature distributions</h2>")
    body.append(distribution_plots(ctx.spec, samples))
    return page(f"Retrain evaluation: {ctx.name}", "".join(body))


def _text(value: Any) -> str:
    """A label as the log stores it (a regressor's value as ``repr`` of its float)."""
    return repr(float(value)) if isinstance(value, int | float) else str(value)


def _paired_rows(g: GateResult) -> list[list[Any]]:
    """The paired test's figures for the report (none without a champion)."""
    if g.test is None or g.low is None or g.high is None:
        return []
    rows: list[list[Any]] = [
        ["paired test", "exact McNemar, Newcombe interval" if g.test == "mcnemar"
         else "paired bootstrap"],
        ["difference (challenger - champion)", f"{g.difference:+.6g}"],
        [f"{g.confidence:.0%} interval", f"[{g.low:+.6g}, {g.high:+.6g}]"],
        ["p-value (no difference)",
         f"< {1 / ROUNDS:g} (no resample of {ROUNDS} crossed 0)"
         if g.test == "bootstrap" and g.p_value is not None and g.p_value <= 1 / ROUNDS
         else g.p_value],
    ]
    if g.champion_only is not None:
        rows.append(["rows only the challenger / only the champion got right",
                     f"{g.challenger_only} / {g.champion_only}"])
    if g.rows_needed is not None:
        rows.append(["rows needed to decide (about)", g.rows_needed])
    return rows
