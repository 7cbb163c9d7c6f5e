"""Bootstrap: train the spec's model and make it the first champion (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftloop import lineage
from driftloop.candidate import build_candidate
from driftloop.data import load_training_data
from driftloop.errors import DriftloopError
from driftloop.progress import Progress
from driftloop.registry import (
    ALIAS_CHAMPION,
    alias_version,
    connect,
    describe,
    log_candidate,
    promote,
    register_version,
)
from driftloop.settings import Settings
from driftloop.spec import ModelSpec, load_spec


@dataclass
class BootstrapResult:
    created: bool
    info: dict[str, Any]
    previous_version: str | None = None


def model_name(settings: Settings, spec: ModelSpec) -> str:
    return settings.model_name or spec.name


def bootstrap(
    settings: Settings, *, force: bool = False, progress: Progress | None = None
) -> BootstrapResult:
    """Train and promote a champion unless one exists (``force`` trains a new one anyway).

    Every check that can fail on bad input runs before anything is written.
    """
    progress = progress or Progress(quiet=True)
    spec = load_spec(settings.spec_path)
    name = model_name(settings, spec)
    if settings.tracking_uri.startswith("sqlite:"):
        settings.ensure_state_dir()
    with progress.step(f"connecting to MLflow at {settings.tracking_uri}"):
        client = connect(settings)
        existing = alias_version(client, name, ALIAS_CHAMPION)
    if existing is not None and not force:
        progress.line(f"champion exists: {name} v{existing.version} (use --force to retrain)")
        return BootstrapResult(False, describe(client, name, existing.version))

    with progress.step(f"loading data {spec.data.source}"):
        data = load_training_data(spec)
    progress.line(f"{data.rows} rows ({data.rows_dropped_missing} dropped for missing values)")
    candidate = build_candidate(spec, data, settings, progress)
    metric = float(candidate.metrics[spec.gate.metric])
    word, sign = (("floor", ">=") if spec.gate_metric.higher_is_better else ("ceiling", "<="))
    if not spec.clears(metric):
        raise DriftloopError(
            f"the trained model's {spec.gate.metric} {metric:.4g} does not clear the spec's "
            f"{word} {spec.gate_threshold:g} ({spec.gate_metric.direction}); nothing was "
            "registered")
    with progress.step(f"logging run and registering {name}"):
        run_id, model_uri = log_candidate(client, settings, candidate, run_name="bootstrap",
                                          run_tags={"trigger": "bootstrap"})
        version = register_version(client, name, run_id, model_uri, {
            lineage.TAG_TRIGGER: "bootstrap",
            lineage.TAG_SPEC_HASH: spec.content_hash(),
            lineage.TAG_DATA_FINGERPRINT: candidate.data_fingerprint,
            lineage.TAG_GIT_COMMIT: lineage.git_commit(),
            lineage.TAG_INFERENCE_FORM: candidate.inference_form,
            lineage.TAG_GATE_PASSED: "true",
            lineage.TAG_GATE_REASON: f"bootstrap: {spec.gate.metric} {metric:.4f} {sign} "
                                     f"{word} {spec.gate_threshold:g}",
        })
        previous = promote(client, name, version)
    progress.line(f"{name} v{version} is champion" +
                  (f" (previous: v{previous})" if previous else ""))
    return BootstrapResult(True, describe(client, name, version), previous)
