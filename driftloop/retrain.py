"""The retrain pipeline's steps as plain functions; the KFP components only call these.

load_data → validate_data → train → evaluate (gate) → register (promote | record rejection)
→ deploy. Every step reads its settings from ``DRIFTLOOP_*`` (the local runner passes the
parent's environment; in the cluster the pod's env comes from a ConfigMap and a Secret).

Safety rules kept here rather than in the components:

- Nothing reaches the registry before the data validated and the challenger passed or
  failed the gate; a rejected challenger is registered *unaliased*, tagged with the reason.
- A run is identified by a *run key* (model, spec, trigger, window, Airflow run id). At most
  one version per run key is ever promoted: a rerun with the same parameters finds it and
  promotes nothing (it only makes sure the champion is what serves).
- A failed deploy moves the ``champion``/``previous`` aliases back to where they were and
  tags the version ``rolled_back``; the deployer has already left the old model serving.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop import lineage
from driftloop.data import load_training_data
from driftloop.deploy import DeployError, DeployResult, make_deployer
from driftloop.errors import DataError, DriftloopError, RegistryError
from driftloop.evaluation import (
    EXTRA_COLUMNS,
    ORIGIN_COLUMN,
    ORIGIN_PRODUCTION,
    ORIGIN_SOURCE,
    REQUEST_ID_COLUMN,
    SERVED_VERSION_COLUMN,
    TS_COLUMN,
    Evaluation,
    training_frame,
)
from driftloop.gate import GateResult, GateThresholds
from driftloop.predlog.codec import masked_url
from driftloop.progress import Progress
from driftloop.registry import ALIAS_CHAMPION, ALIAS_PREVIOUS, alias_version, connect
from driftloop.settings import PROJECT_ROOT, Settings
from driftloop.spec import ModelSpec, load_spec

RETRAIN_TRIGGERS = ("drift", "schedule", "manual")
#: Printed (one JSON object) by a failing step, so ``run-local`` and the logs name the
#: step and the cause in one line.
FAILURE_MARKER = "DRIFTLOOP_STEP_FAILED"
#: A retrain dataset needs at least this many complete rows.
MIN_ROWS = 10
PREDICTION_COLUMN = "driftloop_prediction"

TAG_RUN_KEY = "run_key"
TAG_OUTCOME = "retrain_outcome"
TAG_KFP_RUN_NAME = "kfp_run_name"
TAG_DEPLOY_TARGET = "deploy_target"
TAG_DEPLOY_ERROR = "deploy_error"
OUTCOME_PROMOTED = "promoted"
OUTCOME_REJECTED = "rejected"
OUTCOME_ROLLED_BACK = "rolled_back"


# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Settings, spec and registered model name a step works on."""

    settings: Settings
    spec: ModelSpec
    name: str


def resolve_spec_path(spec: str) -> Path:
    """A spec path as given, else relative to the project root (images run elsewhere)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        return PROJECT_ROOT / path
    return path


def context(model_name: str = "", spec: str = "") -> Context:
    """``spec`` (a YAML path) or DRIFTLOOP_SPEC_PATH; ``model_name`` or the usual default."""
    overrides: dict[str, Any] = {"spec_path": resolve_spec_path(spec)} if spec else {}
    settings = Settings(**overrides)
    loaded = load_spec(settings.spec_path)
    return Context(settings, loaded, model_name or settings.model_name or loaded.name)


def _parse_instant(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{what} {value!r} is not an ISO-8601 date-time "
                        "(e.g. 2026-01-31T13:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_window(start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` in UTC; both empty means "no production rows" (source data only)."""
    if not start and not end:
        return None, None
    if not start or not end:
        raise DataError("give both window_start and window_end, or neither "
                        f"(got start={start!r}, end={end!r})")
    begin, finish = _parse_instant(start, "window_start"), _parse_instant(end, "window_end")
    if begin >= finish:
        raise DataError(f"window_start {begin.isoformat()} is not before window_end "
                        f"{finish.isoformat()}")
    return begin, finish


@dataclass(frozen=True)
class Lineage:
    """Why and from where a retrain runs; tagged on its MLflow run and version."""

    trigger: str
    window_start: str = ""
    window_end: str = ""
    airflow_run_id: str = ""
    kfp_run_id: str = ""
    kfp_run_name: str = ""

    def __post_init__(self) -> None:
        if self.trigger not in RETRAIN_TRIGGERS:
            raise DriftloopError(f"trigger must be one of {', '.join(RETRAIN_TRIGGERS)}, "
                                 f"got {self.trigger!r}")
        start, end = parse_window(self.window_start, self.window_end)
        # Normalised, so '...Z' and '...+00:00' name the same window (and run key).
        object.__setattr__(self, "window_start", start.isoformat() if start else "")
        object.__setattr__(self, "window_end", end.isoformat() if end else "")

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        return parse_window(self.window_start, self.window_end)

    def tags(self) -> dict[str, str]:
        return {
            lineage.TAG_TRIGGER: self.trigger,
            lineage.TAG_WINDOW_START: self.window_start,
            lineage.TAG_WINDOW_END: self.window_end,
            lineage.TAG_AIRFLOW_RUN_ID: self.airflow_run_id,
            lineage.TAG_KFP_RUN_ID: self.kfp_run_id,
            TAG_KFP_RUN_NAME: self.kfp_run_name,
        }

    def run_key(self, ctx: Context) -> str:
        """Identity of a retrain request: same parameters, same key (KFP ids excluded)."""
        payload = json.dumps({
            "model": ctx.name, "spec": ctx.spec.content_hash(), "trigger": self.trigger,
            "window": [self.window_start, self.window_end], "airflow": self.airflow_run_id,
        }, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_deploy_target(target: str) -> None:
    from driftloop.deploy import DEPLOY_TARGETS

    if target not in DEPLOY_TARGETS:
        raise DeployError(f"unknown deploy target {target!r} (choose one of: "
                          f"{', '.join(DEPLOY_TARGETS)})")


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
    for col in [*spec.features.categorical, spec.target]:
        out[col] = out[col].astype("string").astype(object)
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
    seen = production[spec.target].dropna().astype(str)
    unknown = seen[~seen.isin(labels)]
    checks.append(Check(
        "known labels", unknown.empty,
        f"{len(unknown)} production rows carry labels the model does not know: "
        f"{sorted(unknown.unique())[:5]} (known: {labels})" if len(unknown)
        else f"labels within {labels}"))
    complete = frame[[*spec.feature_names, spec.target]].dropna(
        subset=[*spec.required_features, spec.target])
    classes = complete[spec.target].nunique()
    enough = len(complete) >= MIN_ROWS and classes >= 2
    checks.append(Check("enough rows", enough,
                        f"{len(complete)} complete rows, {classes} classes (need at least "
                        f"{MIN_ROWS} rows and 2 classes)"))
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
            rows = frame[frame[ORIGIN_COLUMN] == part][ctx.spec.feature_names]
            if len(rows):
                results[part] = validate(rows.reset_index(drop=True), suite)
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
    from driftloop.evaluation import evaluate as run_evaluation
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


def evaluation_report(
    ctx: Context, ev: Evaluation, frame: pd.DataFrame, reference: pd.DataFrame | None,
    drift: dict[str, Any] | None,
) -> str:
    from driftloop.retrain_report import (
        confusion_table,
        distribution_plots,
        drift_table,
        page,
        table,
        verdict,
    )

    g = ev.gate
    keys = ("accuracy", "f1_weighted", "precision_weighted", "recall_weighted")
    columns = [(who, which) for who in ev.scores for which in ("gate", "holdout")]
    header = ["metric", *[f"{who} ({'gate rows' if which == 'gate' else 'whole holdout'})"
                          for who, which in columns]]
    rows = [[k, *[ev.scores[who][which][k] for who, which in columns]] for k in keys]
    production = frame[frame[ORIGIN_COLUMN] == ORIGIN_PRODUCTION]
    live = []
    if len(production):
        hits = production[PREDICTION_COLUMN].astype(str) == production[ctx.spec.target].astype(str)
        for version, group in hits.groupby(production[SERVED_VERSION_COLUMN]):
            live.append([f"v{version}", len(group), float(group.mean())])
    samples = {"source data": frame[frame[ORIGIN_COLUMN] == ORIGIN_SOURCE],
               "fresh labeled rows": production}
    if reference is not None:
        samples = {f"champion v{g.champion_version} reference": reference, **samples}
    logged = ""
    if len(production):
        first, last = production[TS_COLUMN].min(), production[TS_COLUMN].max()
        logged = f" (served between {first:%Y-%m-%d %H:%M:%S} and {last:%Y-%m-%d %H:%M:%S} UTC)"
    body = [
        verdict(g.passed, g.reason),
        f"<p>Data: {int((frame[ORIGIN_COLUMN] == ORIGIN_SOURCE).sum())} rows from the spec's "
        f"source {escape(ctx.spec.data.source)} + {len(production)} fresh labeled rows from "
        f"the prediction log{logged}.</p>",
        table(["figure", "value"], [
            ["gate metric", g.metric], ["floor (min_value)", g.min_value],
            ["max regression", g.max_regression], ["challenger", g.challenger],
            ["champion", "none" if g.champion is None else g.champion],
            ["champion version", g.champion_version or "none"],
            ["judged on", f"{g.holdout_rows} {g.holdout} rows"],
            ["holdout rows (fresh)", f"{ev.holdout_rows} ({ev.fresh_holdout_rows})"],
        ]),
        "<h2>Challenger and champion on the same rows</h2>", table(header, rows),
    ]
    for who in ev.scores:
        body.append(f"<h2>Confusion matrix: {who}, gate rows</h2>")
        body.append(confusion_table(ev.scores[who]["gate"]["confusion_matrix"], ev.labels))
    if live:
        body.append("<h2>Served predictions in the window, against feedback</h2>")
        body.append(table(["served version", "labeled rows", "live accuracy"], live))
    body.append("<h2>Drift: fresh rows against the champion's reference</h2>")
    body.append(drift_table(drift))
    body.append("<h2>Feature distributions</h2>")
    body.append(distribution_plots(ctx.spec, samples))
    return page(f"Retrain evaluation: {ctx.name}", "".join(body))


# --- register -----------------------------------------------------------------------------


@dataclass
class RegisterOutcome:
    version: str
    #: This run moved the champion alias.
    promoted: bool
    #: The version to deploy ("" when there is nothing to deploy).
    deploy_version: str
    old_champion: str
    old_previous: str
    note: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions_with_run_key(client: Any, name: str, key: str) -> list[Any]:
    """Versions of ``name`` tagged with ``key``, newest first.

    Not guarded: if the registry cannot answer, promoting could not be made idempotent, so
    the step fails instead.
    """
    found = client.search_model_versions(f"name = '{name}' and tags.{TAG_RUN_KEY} = '{key}'")
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)


def _run_metadata(run_id: str) -> dict[str, Any]:
    import mlflow.artifacts

    from driftloop.registry import ARTIFACT_DIR

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT_DIR}/metadata.json")


def _version_tags(ctx: Context, lin: Lineage, run_id: str, gate: GateResult,
                  outcome: str) -> dict[str, str]:
    from driftloop.retrain_report import version_tags as report_tags

    meta = _run_metadata(run_id)
    return {
        **report_tags(connect(ctx.settings), run_id),
        **lin.tags(),
        lineage.TAG_SPEC_HASH: str(meta.get("spec_hash", ctx.spec.content_hash())),
        lineage.TAG_DATA_FINGERPRINT: str(meta.get("data_fingerprint", "")),
        lineage.TAG_GIT_COMMIT: lineage.git_commit(),
        lineage.TAG_INFERENCE_FORM: str(meta.get("inference_form", "unknown")),
        **gate.tags(),
        TAG_RUN_KEY: lin.run_key(ctx),
        TAG_OUTCOME: outcome,
    }


def _alias(client: Any, name: str, alias: str) -> str:
    mv = alias_version(client, name, alias)
    return "" if mv is None else str(mv.version)


def register(
    ctx: Context, lin: Lineage, run_id: str, model_uri: str, gate: GateResult, *,
    promote: bool,
) -> RegisterOutcome:
    """Register the challenger; promote it (``promote``) or record its rejection.

    Idempotent per run key: if an earlier run with the same key promoted a version, nothing
    is registered or moved again; if it recorded one (either way) and this run rejects,
    nothing new is registered.
    """
    from driftloop.registry import promote as move_aliases
    from driftloop.registry import register_version, set_version_tags

    client = connect(ctx.settings)
    key = lin.run_key(ctx)
    old_champion = _alias(client, ctx.name, ALIAS_CHAMPION)
    old_previous = _alias(client, ctx.name, ALIAS_PREVIOUS)
    earlier = versions_with_run_key(client, ctx.name, key)
    promoted_before = [mv for mv in earlier if mv.tags.get(TAG_OUTCOME) == OUTCOME_PROMOTED]
    if promoted_before:
        version = str(promoted_before[0].version)
        still = version == old_champion
        return RegisterOutcome(
            version, False, version if still and promote else "", old_champion, old_previous,
            f"run key {key} was already promoted as v{version}" +
            (" (still champion: making sure it serves)" if still else
             f"; the champion has since moved to v{old_champion or 'none'}: left alone"),
        )
    if not promote and earlier:
        version = str(earlier[0].version)
        return RegisterOutcome(version, False, "", old_champion, old_previous,
                               f"run key {key} already recorded as v{version} "
                               f"({earlier[0].tags.get(TAG_OUTCOME, '?')}); nothing new")
    # Tagged "promoted" before the alias moves: should this process die in between, a
    # rerun will not promote a second version (the champion then simply stays the old one).
    outcome = OUTCOME_PROMOTED if promote else OUTCOME_REJECTED
    version = register_version(client, ctx.name, run_id, model_uri,
                               _version_tags(ctx, lin, run_id, gate, outcome))
    if not promote:
        return RegisterOutcome(version, False, "", old_champion, old_previous,
                               f"v{version} registered without alias: {gate.reason}")
    try:
        move_aliases(client, ctx.name, version)
    except Exception as exc:
        restore_aliases(client, ctx.name, version, old_champion, old_previous)
        set_version_tags(client, ctx.name, version, {TAG_OUTCOME: OUTCOME_ROLLED_BACK})
        raise RegistryError(f"moving the champion alias to v{version} failed ({exc}); "
                            "aliases restored") from None
    return RegisterOutcome(version, True, version, old_champion, old_previous,
                           f"v{version} is champion (previous: v{old_champion or 'none'})")


def restore_aliases(client: Any, name: str, failed: str, old_champion: str,
                    old_previous: str) -> str:
    """Point ``champion`` and ``previous`` back to where they were before ``failed`` was
    promoted — unless someone else has moved ``champion`` since (then leave it alone)."""
    current = _alias(client, name, ALIAS_CHAMPION)
    if current != failed:
        return (f"champion alias points at v{current or 'none'} (not v{failed}): left alone")
    for alias, target in ((ALIAS_CHAMPION, old_champion), (ALIAS_PREVIOUS, old_previous)):
        if target:
            client.set_registered_model_alias(name, alias, target)
        else:
            client.delete_registered_model_alias(name, alias)
    return f"champion alias restored to v{old_champion}" if old_champion else \
        "champion alias removed (there was no champion before)"


# --- deploy -------------------------------------------------------------------------------


def deploy(
    ctx: Context, target: str, version: str, *, old_champion: str, old_previous: str,
    timeout_s: float,
) -> DeployResult:
    """Serve ``version`` through the target's deployer; on failure put the aliases back."""
    from driftloop.deploy import NoDeployer
    from driftloop.registry import set_version_tags

    if not version:
        return NoDeployer().deploy("")
    deployer = make_deployer(target, ctx.settings, timeout_s=timeout_s)
    try:
        result = deployer.deploy(version)
    except Exception as exc:
        if version == old_champion:  # it was champion before this run: nothing to undo
            raise DeployError(f"{exc}; v{version} was already champion: aliases unchanged") \
                from None
        client = connect(ctx.settings)
        restored = restore_aliases(client, ctx.name, version, old_champion, old_previous)
        set_version_tags(client, ctx.name, version, {
            TAG_OUTCOME: OUTCOME_ROLLED_BACK, TAG_DEPLOY_TARGET: target,
            TAG_DEPLOY_ERROR: str(exc)[:4000],
        })
        if isinstance(exc, DriftloopError):
            raise DeployError(f"{exc}; {restored}") from None
        raise DeployError(f"{type(exc).__name__}: {exc}; {restored}") from exc
    return result


# --- summary (run-local's final line) -----------------------------------------------------


def registry_state(ctx: Context, run_key: str | None) -> dict[str, Any]:
    """Champion and the versions of a run key: taken before and after a run."""
    client = connect(ctx.settings)
    found = versions_with_run_key(client, ctx.name, run_key) if run_key else []
    return {
        "champion": _alias(client, ctx.name, ALIAS_CHAMPION) or None,
        "previous": _alias(client, ctx.name, ALIAS_PREVIOUS) or None,
        "run_key_versions": {str(mv.version): dict(mv.tags) for mv in found},
    }


def summarize(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What a run changed: champion before/after, the version it registered, the gate."""
    new = sorted(set(after["run_key_versions"]) - set(before["run_key_versions"]), key=int)
    mine = new[-1] if new else (max(after["run_key_versions"], key=int)
                                if after["run_key_versions"] else None)
    tags = after["run_key_versions"].get(mine, {}) if mine else {}
    gate = None
    if tags.get("gate_passed"):
        gate = {k.removeprefix("gate_"): v for k, v in tags.items() if k.startswith("gate_")}
        gate["passed"] = tags["gate_passed"] == "true"
    return {
        "champion_before": before["champion"],
        "champion_after": after["champion"],
        "promoted": after["champion"] != before["champion"],
        "new_version": new[-1] if new else None,
        "version": mine,
        "outcome": tags.get(TAG_OUTCOME),
        "gate": gate,
        "deploy_error": tags.get(TAG_DEPLOY_ERROR),
    }


# --- the run record passed between components ---------------------------------------------


def run_record(model_name: str, spec: str, lin: Lineage) -> str:
    """JSON carrying a run's identity from load_data to the later steps (one parameter
    instead of eight on every component)."""
    return json.dumps({"model_name": model_name, "spec": spec, **asdict(lin)}, sort_keys=True)


def from_run_record(record: str) -> tuple[Context, Lineage]:
    raw = json.loads(record)
    ctx = context(raw.pop("model_name"), raw.pop("spec"))
    return ctx, Lineage(**raw)
