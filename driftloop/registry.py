"""MLflow: log a trained candidate, register it, move aliases, load a version for serving.

A registered version carries everything needed to serve and judge it, so no other part of
driftloop needs the spec file or the training data: under the run's ``driftloop/`` folder
are ``metadata.json`` (spec, labels, metrics, ONNX parity), ``model.onnx`` (when parity
held), ``reference.parquet`` (training features, the drift reference) and
``expectations.json`` (the Great Expectations suite for live data).

Aliases, not stages: ``champion`` is what serves, ``previous`` is the rollback target.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from driftloop import lineage
from driftloop.errors import ModelLoadError, RegistryError, SpecError
from driftloop.inference import OnnxPredictor, Predictor, SklearnPredictor
from driftloop.onnx_form import OnnxConversion
from driftloop.settings import Settings
from driftloop.spec import ModelSpec, parse_spec

ALIAS_CHAMPION = "champion"
ALIAS_PREVIOUS = "previous"
#: A version in the shadow stage: scored beside the champion, answering no caller.
ALIAS_CHALLENGER = "challenger"
ARTIFACT_DIR = "driftloop"
MODEL_ARTIFACT = "model"

#: Module prefixes whose types skops may load. sklearn's own tree types (e.g.
#: ``sklearn.tree._tree.Tree``) are not on skops' default list, so MLflow refuses to log a
#: RandomForest unless they are trusted explicitly; driftloop trusts exactly the types of
#: the fitted pipeline that come from these libraries and the spec's estimator package.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with the URI in the message, when a remote tracking server is down."""
    import httpx

    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}: {exc}); "
            "start it or point DRIFTLOOP_MLFLOW_TRACKING_URI elsewhere"
        ) from None
    if response.status_code >= 500:
        raise RegistryError(
            f"MLflow tracking server {uri} answered {response.status_code} on /health"
        )


def connect(settings: Settings) -> Any:
    """Point MLflow at the configured store and return a client; nothing is written."""
    import mlflow
    from mlflow import MlflowClient

    _quiet_mlflow()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: Any, settings: Settings) -> str:
    """The experiment's id, creating it with an explicit artifact location if needed.

    Without an explicit location a SQLite store writes artifacts to ./mlruns of whatever
    directory the process happens to run in.
    """
    exp = client.get_experiment_by_name(settings.mlflow_experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if urlparse(settings.tracking_uri).scheme not in ("http", "https"):
        location = f"{settings.artifact_root.rstrip('/')}/{settings.mlflow_experiment}"
    try:
        return client.create_experiment(settings.mlflow_experiment, artifact_location=location)
    except Exception:
        # Another process created it between our read and our write.
        exp = client.get_experiment_by_name(settings.mlflow_experiment)
        if exp is None:
            raise
        return exp.experiment_id


@dataclass
class Candidate:
    """A trained model and everything logged with it, computed before the registry is
    touched (so bad input never writes anything)."""

    spec: ModelSpec
    model: Any
    labels: list[str]
    metrics: dict[str, Any]
    reference: pd.DataFrame
    suite: dict[str, Any]
    onnx: OnnxConversion
    data_fingerprint: str
    data_rows: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)
    #: The training labels' counts: the reference of label drift.
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def inference_form(self) -> str:
        return "onnx" if self.onnx.ok else "sklearn"

    def metadata(self) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "spec_hash": self.spec.content_hash(),
            "labels": self.labels,
            "numeric_features": list(self.spec.features.numeric),
            "categorical_features": list(self.spec.features.categorical),
            "metrics": self.metrics,
            "inference_form": self.inference_form,
            "onnx_parity": self.onnx.parity.as_dict(),
            "data_fingerprint": self.data_fingerprint,
            "data_rows": self.data_rows,
            "reference_rows": len(self.reference),
            "label_counts": self.label_counts,
        }


def _trusted_types(model: Any, spec: ModelSpec) -> list[str]:
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    estimator_pkg = spec.estimator.class_path.split(".")[0] + "."
    allowed = (*TRUSTED_MODULE_PREFIXES, estimator_pkg)
    refused = [t for t in untrusted if not t.startswith(allowed)]
    if refused:
        raise RegistryError(
            f"the fitted model holds types skops will not trust: {', '.join(refused)}"
        )
    return untrusted


def _pip_requirements() -> list[str]:
    """Pinned explicitly: letting MLflow infer them costs ~10 s per logged model."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in
            ("scikit-learn", "numpy", "pandas", "scipy", "skops")]


def log_candidate(
    client: Any, settings: Settings, candidate: Candidate, *, run_name: str,
    run_tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Log params, metrics, the sklearn model and driftloop's artifacts in one run.

    Returns ``(run_id, model_uri)``.
    """
    import mlflow
    from mlflow.models import infer_signature

    from driftloop.training import scalar_metrics

    experiment_id = ensure_experiment(client, settings)
    sample = candidate.reference.head(20)
    signature = infer_signature(sample, candidate.model.predict(sample))
    trusted = _trusted_types(candidate.model, candidate.spec)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                          tags=run_tags or {}) as run:
        mlflow.log_params({
            "estimator": candidate.spec.estimator.class_path,
            **{f"estimator.{k}": v for k, v in candidate.spec.estimator.params.items()},
            "holdout_fraction": candidate.spec.split.holdout_fraction,
            "seed": candidate.spec.split.seed,
            "spec_hash": candidate.spec.content_hash(),
            **candidate.params,
        })
        mlflow.log_metrics(scalar_metrics(candidate.metrics))
        info = mlflow.sklearn.log_model(
            candidate.model, name=MODEL_ARTIFACT, signature=signature,
            pip_requirements=_pip_requirements(), serialization_format="skops",
            skops_trusted_types=trusted,
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "metadata.json").write_text(json.dumps(candidate.metadata(), indent=2))
            (out / "expectations.json").write_text(json.dumps(candidate.suite, indent=2))
            (out / "spec.yaml").write_text(candidate.spec.to_yaml())
            candidate.reference.to_parquet(out / "reference.parquet", index=False)
            if candidate.onnx.ok:
                assert candidate.onnx.model_bytes is not None
                (out / "model.onnx").write_bytes(candidate.onnx.model_bytes)
            mlflow.log_artifacts(str(out), artifact_path=ARTIFACT_DIR)
    return run.info.run_id, info.model_uri


def register_version(
    client: Any, name: str, run_id: str, model_uri: str, tags: dict[str, str]
) -> str:
    """Register the logged model as a new version of ``name``; returns the version."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import _parse_model_id_if_present

    try:
        client.get_registered_model(name)
    except MlflowException:
        with suppress(MlflowException):  # another process may create it concurrently
            client.create_registered_model(name, description="Managed by driftloop.")
    # A tracking *server* refuses a ``models:/m-...`` source without its model id (a local
    # store does not check): pass it, as ``mlflow.register_model`` does.
    mv = client.create_model_version(name, source=model_uri, run_id=run_id,
                                     tags={k: str(v) for k, v in tags.items()},
                                     model_id=_parse_model_id_if_present(model_uri))
    _wait_ready(client, name, mv.version)
    return str(mv.version)


def _wait_ready(client: Any, name: str, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return
        if mv.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryError(f"model {name} version {version} did not become ready "
                                f"(status {mv.status})")
        time.sleep(0.2)


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The ModelVersion an alias points at, or None (no model, or alias unset)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote(client: Any, name: str, version: str) -> str | None:
    """Point ``champion`` at ``version`` and ``previous`` at the old champion.

    Returns the old champion's version. Promoting the current champion is a no-op, so a
    rerun never moves ``previous`` onto the champion itself.
    """
    old = alias_version(client, name, ALIAS_CHAMPION)
    old_version = str(old.version) if old is not None else None
    if old_version == str(version):
        return None
    if old_version is not None:
        client.set_registered_model_alias(name, ALIAS_PREVIOUS, old_version)
    client.set_registered_model_alias(name, ALIAS_CHAMPION, str(version))
    return old_version


def set_version_tags(client: Any, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def describe(client: Any, name: str, version: str) -> dict[str, Any]:
    """Name, version, aliases, metrics, inference form and lineage tags of a version."""
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id) if mv.run_id else None
    return {
        "name": name,
        "version": str(mv.version),
        "aliases": list(getattr(mv, "aliases", []) or []),
        "run_id": mv.run_id,
        "created": mv.creation_timestamp,
        "metrics": dict(run.data.metrics) if run else {},
        "inference_form": mv.tags.get(lineage.TAG_INFERENCE_FORM, "unknown"),
        "tags": dict(mv.tags),
    }


@contextmanager
def _allow_deserialization() -> Iterator[None]:
    """MLflow refuses to deserialize any model unless told the store is trusted; ours is
    (driftloop wrote it, with an explicit skops trust list). Scoped to one load."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def load_sklearn_model(model_uri: str) -> Any:
    """An sklearn model logged by driftloop (``models:/...`` or ``runs:/...``)."""
    import mlflow.sklearn

    with _allow_deserialization():
        return mlflow.sklearn.load_model(model_uri)


def load_sklearn(name: str, version: str) -> Any:
    """The registered sklearn pipeline of a version."""
    return load_sklearn_model(f"models:/{name}/{version}")


@dataclass
class ModelBundle:
    """A registered version, ready to serve: predictor, drift reference and suite."""

    name: str
    version: str
    run_id: str
    spec: ModelSpec
    labels: list[str]
    predictor: Predictor
    reference: pd.DataFrame
    suite: dict[str, Any]
    metadata: dict[str, Any]
    tags: dict[str, str]
    aliases: list[str]

    @property
    def form(self) -> str:
        return self.predictor.form


def _raise_if_unreachable(doing: str) -> None:
    """A registry that went away mid-load is :class:`RegistryError`, not a broken version."""
    import mlflow

    try:
        check_reachable(mlflow.get_tracking_uri())
    except RegistryError as exc:
        raise RegistryError(f"{exc} (while {doing})") from None


def load_bundle(client: Any, name: str, version: str, *, prefer_onnx: bool = True) -> ModelBundle:
    """Download a version's artifacts and build its predictor (ONNX when logged).

    :class:`ModelLoadError` when the version cannot be served; :class:`RegistryError` when
    the tracking server stopped answering meanwhile (the version may be fine)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        _raise_if_unreachable(f"reading model {name} version {version}")
        raise ModelLoadError(f"model {name} version {version} not found: {exc.message}") \
            from None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path=ARTIFACT_DIR, dst_path=tmp
            ))
            metadata = json.loads((local / "metadata.json").read_text())
            suite = json.loads((local / "expectations.json").read_text())
            reference = pd.read_parquet(local / "reference.parquet")
            onnx_path = local / "model.onnx"
            onnx_bytes = onnx_path.read_bytes() if onnx_path.exists() else None
            spec = parse_spec(json.dumps(metadata["spec"]), origin=local / "spec.yaml")
    except (MlflowException, OSError, KeyError, ValueError, SpecError) as exc:
        _raise_if_unreachable(f"downloading model {name} version {version}")
        raise ModelLoadError(
            f"model {name} version {version}: artifacts under {ARTIFACT_DIR}/ are missing or "
            f"unreadable ({type(exc).__name__}: {exc})"
        ) from None
    labels = list(metadata["labels"])
    predictor: Predictor
    if prefer_onnx and onnx_bytes is not None:
        try:
            predictor = OnnxPredictor(spec, onnx_bytes, labels)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"model {name} version {version}: ONNX form does not load "
                                 f"({exc})") from None
    else:
        try:
            predictor = SklearnPredictor(spec, load_sklearn(name, str(version)))
        except Exception as exc:  # MLflow and skops raise many types
            raise ModelLoadError(f"model {name} version {version}: sklearn model does not "
                                 f"load ({exc})") from None
    return ModelBundle(
        name=name, version=str(mv.version), run_id=mv.run_id, spec=spec, labels=labels,
        predictor=predictor, reference=reference, suite=suite, metadata=metadata,
        tags=dict(mv.tags), aliases=list(getattr(mv, "aliases", []) or []),
    )
