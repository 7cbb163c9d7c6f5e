"""From a spec and its data to a :class:`~driftloop.registry.Candidate`: train, score,
convert to ONNX, build the drift reference and the expectation suite."""

from __future__ import annotations

from driftloop.data import LoadedData, fingerprint
from driftloop.expectations import spec_suite
from driftloop.onnx_form import convert
from driftloop.progress import Progress
from driftloop.registry import Candidate
from driftloop.settings import Settings
from driftloop.spec import ModelSpec
from driftloop.training import train


def build_candidate(
    spec: ModelSpec, data: LoadedData, settings: Settings, progress: Progress | None = None
) -> Candidate:
    """Everything a version carries, computed without touching the registry."""
    progress = progress or Progress(quiet=True)
    with progress.step(f"training {spec.estimator.class_path.rsplit('.', 1)[-1]} on "
                       f"{len(data.frame)} rows"):
        result = train(data.frame, spec)
    shown = list(spec.task_impl.metrics)[:2]
    progress.line("holdout: " + ", ".join(f"{m} {result.metrics[m]:.4g}" for m in shown)
                  + f" on {result.metrics['support']} rows")
    features = data.frame[spec.feature_names]
    reference = features.sample(
        n=min(len(features), settings.reference_max_rows), random_state=spec.split.seed
    ).reset_index(drop=True) if len(features) > settings.reference_max_rows else features
    with progress.step("converting to ONNX and checking parity"):
        onnx = convert(spec, result.model, result.split.x_test, reference)
    if onnx.ok:
        progress.line(f"ONNX parity ok: max difference {onnx.parity.max_abs_proba_diff:.1e} over "
                      f"{onnx.parity.rows_checked} rows")
    else:
        progress.line(f"ONNX form not kept, serving will use sklearn: {onnx.parity.reason}")
    suite = spec_suite(data.frame, spec)
    return Candidate(
        spec=spec, model=result.model, labels=result.labels, metrics=result.metrics,
        reference=reference.reset_index(drop=True), suite=suite, onnx=onnx,
        data_fingerprint=fingerprint(data.frame),
        label_counts=spec.task_impl.reference_counts(data.frame[spec.target]),
        data_rows={"read": data.rows_read, "dropped_missing": data.rows_dropped_missing,
                   "train": len(result.split.x_train), "holdout": len(result.split.x_test)},
    )
