"""The retrain pipeline's steps as plain functions; the KFP components only call these.

load_data → validate_data → train → evaluate (gate) → register (promote | record rejection)
→ deploy. Every step reads its settings from ``DRIFTLOOP_*`` (the local runner passes the
parent's environment; in the cluster the pod's env comes from a ConfigMap and a Secret).

Safety rules kept here rather than in the components:

- Nothing reaches the registry before the data validated and the challenger passed or
  failed the gate; a rejected challenger is registered *unaliased*, tagged with the reason.
- A run is identified by a *run key* (model, spec, trigger, window, Airflow run id;
  :mod:`driftloop.run_context`). Register and deploy are :mod:`driftloop.promotion`'s: at
  most one version per run key is ever promoted, and a failed deploy puts the aliases back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.data import load_training_data
from driftloop.errors import DataError, DriftloopError, RegistryError
from driftloop.gate import GateThresholds
from driftloop.gate.evaluation import (
    EXTRA_COLUMNS,
    ORIGIN_COLUMN,
    ORIGIN_PRODUCTION,
    ORIGIN_SOURCE,
    PREDICTION_COLUMN,
    REQUEST_ID_COLUMN,
    SERVED_VERSION_COLUMN,
    TS_COLUMN,
    Evaluation,
    training_frame,
)
from driftloop.predlog.codec import masked_url
from driftloop.progress import Progress
from driftloop.promotion import TAG_RUN_KEY
from driftloop.registry import ALIAS_CHAMPION, alias_version, connect
from driftloop.run_context import Context, Lineage
from driftloop.settings import Settings
from driftloop.spec import ModelSpec

#: Printed (one JSON object) by a failing step, so ``run-local`` and the logs name the
#: step and the cause in one line.
FAILURE_MARKER = "DRIFTLOOP_STEP_FAILED"
#: A retrain dataset needs at least this many complete rows.
MIN_ROWS = 10


@contextmanager
def step(name: str) -> Iterator[None]:
    """Run a step body; on failure print one marker line naming the step and the cause.

    driftloop's own errors (bad data, rejected input, failed rollout) exit with status 1
    and no traceback; anything else keeps its traceback for debugging.
    """
    try:
        yield
    except DriftloopError as exc:
        print(f"{FAILURE_MARKER} {json.dumps({'step': name, 'error': str(exc)})}", flush=True)
        print(f"driftloop: step {name} failed: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"{FAILURE_MARKER} {json.dumps({'step': name, 'error': error})}", flush=True)
        raise


# --- load_data ----------------------------------------------------------------------------


def production_rows(ctx: Context, start: datetime, end: datetime) -> pd.DataFrame:
    """Labeled rows of ``[start, end)`` from the prediction log (joined with feedback)."""
    from driftloop.predlog import PredictionLog

    url = ctx.settings.log_url
    try:
        log = PredictionLog(url)
        try:
            frame = log.labeled_frame(start, end, ctx.spec, model_name=ctx.name)
        finally:
            log.dispose()
    except DriftloopError:
        raise
    except Exception as exc:  # SQLAlchemy and drivers raise many types
        raise DataError(f"cannot read labeled rows from the prediction log {masked_url(url)}: "
                        f"{type(exc).__name__}: {exc}") from None
    spec = ctx.spec
    out = frame[[*spec.feature_names, spec.target]].copy()
    for col in spec.features.numeric:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in spec.features.categorical:
        out[col] = out[col].astype("string").astype(object)
    # The log keeps labels as text: the task gives them the type the source has.
    out[spec.target] = spec.task_impl.conform_target(out[spec.target], "logged labels")
    out[TS_COLUMN] = pd.to_datetime(frame["ts"], utc=True)
    out[REQUEST_ID_COLUMN] = frame["request_id"].astype(str)
    out[SERVED_VERSION_COLUMN] = frame["model_version"].astype(str)
    out[PREDICTION_COLUMN] = frame["prediction"].astype(str)
    return out


def load_data(ctx: Context, lin: Lineage, out_path: Path) -> dict[str, Any]:
    """The spec's source (re-read) plus the window's labeled production rows → Parquet.

    Returns the dataset's metadata: row counts and provenance.
    """
    spec = ctx.spec
    clash = sorted({*spec.feature_names, spec.target} &
                   {*EXTRA_COLUMNS, PREDICTION_COLUMN})
    if clash:
        raise DataError(f"spec columns {clash} clash with driftloop's dataset columns")
    source = load_training_data(spec)
    parts = [source.frame.assign(**{ORIGIN_COLUMN: ORIGIN_SOURCE})]
    start, end = lin.window
    production = pd.DataFrame()
    if start is not None and end is not None:
        production = production_rows(ctx, start, end)
        parts.append(production.assign(**{ORIGIN_COLUMN: ORIGIN_PRODUCTION}))
    frame = pd.concat(parts, ignore_index=True)
    if TS_COLUMN not in frame:
        frame[TS_COLUMN] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    for col in (REQUEST_ID_COLUMN, SERVED_VERSION_COLUMN, PREDICTION_COLUMN):
        if col not in frame:
            frame[col] = None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    served = (production[SERVED_VERSION_COLUMN].value_counts().to_dict()
              if len(production) else {})
    return {
        "model": ctx.name,
        "spec_hash": spec.content_hash(),
        "run_key": lin.run_key(ctx),
        "source": spec.data.source,
        "rows_source": int(source.rows),
        "rows_source_dropped_missing": int(source.rows_dropped_missing),
        "rows_production": len(production),
        "rows_total": len(frame),
        "window_start": lin.window_start,
        "window_end": lin.window_end,
        "prediction_log": masked_url(ctx.settings.log_url) if start else "",
        "production_rows_by_served_version": json.dumps({str(k): int(v)
                                                         for k, v in served.items()}),
        "trigger": lin.trigger,
        "format": "parquet",
    }


# --- validate_data ------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def champion_suite(ctx: Context) -> tuple[dict[str, Any], list[str], str]:
    """The champion's stored suite and labels; without a champion, ones built from the
    spec's source data. Returns ``(suite, labels, where it came from)``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from driftloop.expectations import spec_suite
    from driftloop.registry import ARTIFACT_DIR

    client = connect(ctx.settings)
    champion = alias_version(client, ctx.name, ALIAS_CHAMPION)
    if champion is None:
        source = load_training_data(ctx.spec).frame
        suite = spec_suite(source, ctx.spec)
        labels = sorted(map(str, source[ctx.spec.target].unique()))
        return suite, labels, "built from the spec's source data (no champion yet)"
    base = f"runs:/{champion.run_id}/{ARTIFACT_DIR}"
    try:
        suite = mlflow.artifacts.load_dict(f"{base}/expectations.json")
        labels = list(mlflow.artifacts.load_dict(f"{base}/metadata.json")["labels"])
    except (MlflowException, OSError, KeyError) as exc:
        raise RegistryError(f"champion {ctx.name} v{champion.version}: cannot read its "
                            f"expectation suite ({exc})") from None
    return suite, [str(x) for x in labels], f"stored with champion v{champion.version}"


def schema_checks(frame: pd.DataFrame, spec: ModelSpec, labels: list[str]) -> list[Check]:
    """What Great Expectations' suite does not say: columns, types, labels, enough rows."""
    checks: list[Check] = []
    wanted = [*spec.feature_names, spec.target, ORIGIN_COLUMN]
    missing = [c for c in wanted if c not in frame.columns]
    checks.append(Check("columns", not missing, f"missing: {missing}" if missing
                        else f"all {len(wanted)} expected columns present"))
    if missing:
        return checks
    not_numeric = [c for c in spec.features.numeric
                   if not pd.api.types.is_numeric_dtype(frame[c])]
    checks.append(Check("numeric types", not not_numeric,
                        f"not numeric: {not_numeric}" if not_numeric
                        else "numeric features are numeric"))
    production = frame[frame[ORIGIN_COLUMN] == ORIGIN_PRODUCTION]
    no_label = int(production[spec.target].isna().sum())
    checks.append(Check("labels present", no_label == 0,
                        f"{no_label} production rows have no label" if no_label
                        else "every production row has its feedback label"))
    ok, detail = spec.task_impl.check_labels(production[spec.target].dropna(), labels)
    checks.append(Check("known labels", ok, detail))
    complete = frame[[*spec.feature_names, spec.target]].dropna(
        subset=[*spec.required_features, spec.target])
    classes = complete[spec.target].nunique()
    enough = len(complete) >= MIN_ROWS and classes >= 2
    checks.append(Check("enough rows", enough,
                        f"{len(complete)} complete rows, {classes} distinct target values "
                        f"(need at least {MIN_ROWS} rows and 2 values)"))
    return checks


def validate_data(ctx: Context, data_path: Path, report_path: Path) -> dict[str, Any]:
    """Schema checks and the champion's Great Expectations suite, on the source rows and on
    the production rows separately (a few bad rows must not hide in a large source).

    Writes the HTML report first, then raises :class:`DataError` if anything failed.
    """
    from driftloop.expectations import validate
    from driftloop.retrain_report import page, table, verdict

    frame = pd.read_parquet(data_path)
    suite, labels, suite_from = champion_suite(ctx)
    checks = schema_checks(frame, ctx.spec, labels)
    results = {}
    if all(c.ok for c in checks[:2]):
        for part in (ORIGIN_SOURCE, ORIGIN_PRODUCTION):
            rows = frame[frame[ORIGIN_COLUMN] == part][[*ctx.spec.feature_names,
                                                         ctx.spec.target]]
            if len(rows):
                rows = rows.reset_index(drop=True)
                rows[ctx.spec.target] = ctx.spec.task_impl.conform_target(
                    rows[ctx.spec.target], f"{part} rows")
                results[part] = validate(rows, suite)
    problems = [f"{c.name}: {c.detail}" for c in checks if not c.ok] + [
        f"{part} rows: {r.summary()}" for part, r in results.items() if not r.success
    ]
    ok = not problems
    body = [
        verdict(ok, "valid" if ok else f"INVALID: {'; '.join(problems)}"),
        f"<p>Suite {suite.get('name', '?')!s} ({suite_from}); {len(frame)} rows.</p>",
        "<h2>Schema checks</h2>",
        table(["check", "ok", "detail"], ([c.name, c.ok, c.detail] for c in checks)),
    ]
    for part, result in results.items():
        body.append(f"<h2>Great Expectations on the {part} rows</h2>")
        body.append(verdict(result.success, result.summary()))
        if result.failures:
            body.append(table(["expectation", "column", "detail"],
                              ([f.expectation, f.column, f.describe()]
                               for f in result.failures)))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(page(f"Data validation: {ctx.name}", "".join(body)))
    summary = {
        "valid": ok, "suite": suite_from, "rows": len(frame),
        "checks": [asdict(c) for c in checks],
        "expectations": {part: r.as_dict() for part, r in results.items()},
    }
    if not ok:
        raise DataError(f"invalid data ({'; '.join(problems)}); report: {report_path}")
    return summary


# --- train --------------------------------------------------------------------------------


def train(ctx: Context, lin: Lineage, data_path: Path, model_dir: Path) -> dict[str, Any]:
    """The spec's estimator on the whole dataset → one MLflow run (model, ONNX form,
    reference sample, new expectation suite). Nothing is registered here."""
    from driftloop.candidate import build_candidate
    from driftloop.registry import log_candidate
    from driftloop.training import scalar_metrics

    frame = pd.read_parquet(data_path)
    loaded, origin = training_frame(frame, ctx.spec)
    candidate = build_candidate(ctx.spec, loaded, ctx.settings, Progress())
    rows_production = int((origin == ORIGIN_PRODUCTION).sum())
    candidate.params.update({
        "retrain.trigger": lin.trigger,
        "retrain.rows_source": int((origin == ORIGIN_SOURCE).sum()),
        "retrain.rows_production": rows_production,
        "retrain.window_start": lin.window_start or "-",
        "retrain.window_end": lin.window_end or "-",
    })
    client = connect(ctx.settings)
    run_id, model_uri = log_candidate(
        client, ctx.settings, candidate, run_name=f"retrain-{lin.trigger}",
        run_tags={**{k: v for k, v in lin.tags().items() if v}, TAG_RUN_KEY: lin.run_key(ctx)},
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    if candidate.onnx.ok and candidate.onnx.model_bytes is not None:
        (model_dir / "model.onnx").write_bytes(candidate.onnx.model_bytes)
    info = {
        "run_id": run_id, "model_uri": model_uri, "inference_form": candidate.inference_form,
        "data_fingerprint": candidate.data_fingerprint, "spec_hash": ctx.spec.content_hash(),
        "metrics": scalar_metrics(candidate.metrics), "labels": candidate.labels,
        "rows_production": rows_production,
    }
    (model_dir / "metadata.json").write_text(json.dumps(info, indent=2))
    return info


# --- evaluate -----------------------------------------------------------------------------


def load_logged_model(settings: Settings, model_uri: str) -> Any:
    """A logged (not necessarily registered) sklearn model, trusted as the registry's are.

    ``models:/m-...`` URIs resolve through the tracking store, so connect first: a fresh
    process (a KFP pod) has no tracking URI of its own.
    """
    from driftloop.registry import load_sklearn_model

    connect(settings)
    return load_sklearn_model(model_uri)


def _champion_reference(ctx: Context, run_id: str) -> pd.DataFrame | None:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from driftloop.registry import ARTIFACT_DIR

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{ARTIFACT_DIR}/reference.parquet")
    except (MlflowException, OSError):
        return None
    return pd.read_parquet(local)


def drift_report(ctx: Context, reference: pd.DataFrame | None,
                 fresh: pd.DataFrame) -> dict[str, Any] | None:
    """The drift tests of the fresh rows against the champion's reference (None if either
    side is empty)."""
    from driftloop.drift import Thresholds, evaluate_frames

    if reference is None or reference.empty or fresh.empty:
        return None
    numeric, categorical = list(ctx.spec.features.numeric), list(ctx.spec.features.categorical)
    rows = fresh[[*numeric, *categorical]].dropna(subset=ctx.spec.required_features)
    result = evaluate_frames(reference, rows, numeric, categorical,
                             Thresholds.from_settings(ctx.settings), ctx.spec.drift.tests)
    return {**result.as_dict(), "rows": result.rows, "reference_rows": result.reference_rows}


def evaluate(
    ctx: Context, data_path: Path, model_uri: str, *, min_value: float | None,
    max_regression: float | None, min_fresh_rows: int, report_path: Path,
    run_id: str | None = None, validation_report: Path | None = None,
) -> Evaluation:
    """Challenger vs champion on the same holdout → gate result; writes the HTML report, and
    logs it (with the data validation's, when given) on the challenger's MLflow run
    ``run_id`` as ``reports/*.html``, where the MLflow UI shows them."""
    from driftloop.gate.evaluation import evaluate as run_evaluation
    from driftloop.registry import load_sklearn

    thresholds = GateThresholds.from_spec(ctx.spec, min_value=min_value,
                                          max_regression=max_regression)
    frame = pd.read_parquet(data_path)
    challenger = load_logged_model(ctx.settings, model_uri)
    client = connect(ctx.settings)
    champ = alias_version(client, ctx.name, ALIAS_CHAMPION)
    champion = load_sklearn(ctx.name, str(champ.version)) if champ is not None else None
    result = run_evaluation(
        ctx.spec, frame, challenger, champion, thresholds,
        champion_version=str(champ.version) if champ is not None else None,
        min_fresh_rows=min_fresh_rows,
    )
    fresh = frame[frame[ORIGIN_COLUMN] == ORIGIN_PRODUCTION]
    reference = _champion_reference(ctx, champ.run_id) if champ is not None else None
    from driftloop.gate.report import evaluation_report

    html = evaluation_report(ctx, result, frame, reference,
                             drift_report(ctx, reference, fresh[ctx.spec.feature_names]))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(html)
    if run_id:
        from driftloop.retrain_report import log_to_run

        reports = {"evaluation": html}
        if validation_report is not None and validation_report.is_file():
            reports["validation"] = validation_report.read_text()
        log_to_run(client, run_id, reports)
    return result
