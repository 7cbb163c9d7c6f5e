"""The served model: a registered version prepared once, then swapped in as one object.

Everything a request needs that does not depend on the request is computed here, when the
model loads: the feature layout, the label array, the sorted drift reference, the prediction
counters. A request reads ``holder.current`` once and uses that object to the end, so a reload
in the middle of a request cannot mix two models.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from driftloop.drift import Reference
from driftloop.errors import DriftloopError, ModelLoadError, RegistryError
from driftloop.missing import fill_categorical
from driftloop.registry import ALIAS_CHAMPION, ModelBundle
from driftloop.settings import Settings
from driftloop.tasks import Task

log = logging.getLogger(__name__)

#: Rows of the reference the warm-up prediction runs on.
WARMUP_ROWS = 8
#: Reference rows the prediction-drift reference is predicted on (the reference is already
#: a random sample of the training data, so its head is one too).
PREDICTION_REFERENCE_ROWS = 20_000


class VersionNotFound(DriftloopError):
    """The asked version (or the champion alias) does not exist: HTTP 404."""


class LoadFailed(DriftloopError):
    """The version exists but cannot be loaded or warmed: HTTP 422."""


class RegistryUnavailable(DriftloopError):
    """The registry cannot be reached: HTTP 503."""


@dataclass(frozen=True)
class ServedModel:
    bundle: ModelBundle
    pinned: bool
    reference: Reference
    labels: tuple[str, ...]
    label_array: np.ndarray
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    #: feature name -> position in the positional row (numeric first, then categorical).
    positions: dict[str, int]
    known_categories: tuple[frozenset[str], ...]
    loaded_at: datetime
    #: Features that may be missing (the spec's ``features.nullable``), and the positions of
    #: the categorical ones among the categoricals.
    nullable: frozenset[str] = frozenset()
    nullable_categorical: tuple[int, ...] = ()
    #: Category counts the window's predictions and feedback labels are tested against: the
    #: model's predictions on its reference, and its training labels (empty for versions
    #: registered before driftloop kept them).
    prediction_reference: dict[str, int] = field(default_factory=dict)
    label_reference: dict[str, int] = field(default_factory=dict)
    #: JSON pieces of the /predict answer, encoded once: ``"model": {...}``, each label as a
    #: JSON string, and one row's format (request id, label JSON, then the probabilities).
    head_json: str = ""
    label_json: tuple[str, ...] = ()
    row_template: str = ""
    #: Bound Prometheus children, one per label (filled by the app).
    counters: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def form(self) -> str:
        return self.bundle.form

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @functools.cached_property
    def task(self) -> Task:
        """Resolved once per loaded model: /predict reads it on every request."""
        return self.bundle.spec.task_impl

    def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Outputs ``(n, len(labels))``: probabilities, or a regressor's values."""
        return self.bundle.predictor.outputs(numeric, categorical)

    def info(self) -> dict[str, Any]:
        """The body of ``GET /model``."""
        return {
            "name": self.name, "version": self.version, "run_id": self.bundle.run_id,
            "aliases": list(self.bundle.aliases), "pinned": self.pinned,
            "inference_form": self.form, "tags": dict(self.bundle.tags),
            "task": self.task.name,
            "labels": list(self.labels),
            "features": {"numeric": list(self.numeric), "categorical": list(self.categorical),
                         "nullable": sorted(self.nullable)},
            "reference_rows": self.reference.rows,
            "loaded_at": self.loaded_at.isoformat(),
        }


def prepare(bundle: ModelBundle, *, pinned: bool = False) -> ServedModel:
    """Build the served form of a bundle and prove it answers (the warm-up)."""
    spec = bundle.spec
    numeric = tuple(spec.features.numeric)
    categorical = tuple(spec.features.categorical)
    frame = bundle.reference
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise LoadFailed(f"model {bundle.name} version {bundle.version}: the drift reference "
                         f"lacks feature column(s) {', '.join(missing)}")
    try:
        reference = Reference.from_frame(frame.dropna(subset=spec.required_features),
                                         numeric, categorical, spec.drift.tests,
                                         nullable=spec.features.nullable)
    except (ValueError, TypeError) as exc:
        raise LoadFailed(f"model {bundle.name} version {bundle.version}: the drift reference "
                         f"cannot be prepared ({exc})") from None
    labels = tuple(str(label) for label in bundle.labels)
    served = ServedModel(
        bundle=bundle, pinned=pinned, reference=reference, labels=labels,
        label_array=np.array(labels, dtype=object), numeric=numeric, categorical=categorical,
        positions={name: i for i, name in enumerate((*numeric, *categorical))},
        known_categories=tuple(frozenset(cats) for cats, _ in reference.categories),
        loaded_at=datetime.now(UTC),
        nullable=frozenset(spec.features.nullable),
        nullable_categorical=tuple(j for j, name in enumerate(categorical)
                                   if name in spec.features.nullable),
        head_json='"model": ' + json.dumps({"name": bundle.name, "version": bundle.version}),
        label_json=tuple(json.dumps(label) for label in labels),
        row_template=spec.task_impl.row_template(labels),
    )
    warm_up(served)
    return dataclasses.replace(served, prediction_reference=_predicted_counts(served),
                               label_reference=dict(bundle.metadata.get("label_counts") or {}))


def _predicted_counts(served: ServedModel) -> dict[str, int]:
    """The model's predictions on (up to PREDICTION_REFERENCE_ROWS of) its reference, as
    counts of their logged text: what its answers looked like on the data it was built
    from."""
    import pandas as pd

    num, cat = _reference_rows(served, PREDICTION_REFERENCE_ROWS)
    outputs = np.asarray(served.outputs(num, cat), dtype=np.float64)
    predicted, _ = served.task.decode(outputs, served.label_array)
    return served.task.reference_counts(pd.Series(predicted, dtype=object))


def _reference_rows(served: ServedModel, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` reference rows as the server feeds the model: missing values (nullable
    features only) as NaN and the missing category, like a request's nulls."""
    rows = served.bundle.reference.dropna(subset=served.bundle.spec.required_features).head(n)
    num = rows[list(served.numeric)].to_numpy(dtype=np.float64)
    cat = fill_categorical(rows[list(served.categorical)].to_numpy(dtype=object))
    return num, cat


def warm_up(served: ServedModel) -> None:
    """One prediction on reference rows: a model that cannot answer is never swapped in."""
    num, cat = _reference_rows(served, WARMUP_ROWS)
    try:
        outputs = np.asarray(served.outputs(num, cat), dtype=np.float64)
    except Exception as exc:  # ONNX Runtime and sklearn raise many types
        raise LoadFailed(f"model {served.name} version {served.version}: warm-up prediction "
                         f"failed ({type(exc).__name__}: {exc})") from None
    if outputs.shape != (len(num), len(served.labels)) or not np.isfinite(outputs).all():
        raise LoadFailed(f"model {served.name} version {served.version}: warm-up prediction "
                         f"returned shape {outputs.shape} for {len(num)} rows and "
                         f"{len(served.labels)} labels, or non-finite outputs")


def model_name(settings: Settings) -> str:
    from driftloop.spec import load_spec

    return settings.model_name or load_spec(settings.spec_path).name


def resolve(settings: Settings, version: str | None = None, *,
            use_pin: bool = True) -> tuple[Any, str, str, bool]:
    """``(client, name, version, pinned)``: ``version``, else the pinned version (when
    ``use_pin``), else the champion. Raises :class:`VersionNotFound` or
    :class:`RegistryUnavailable` with a message that says what to do."""
    from driftloop.registry import alias_version, connect

    name = model_name(settings)
    pinned = False
    if version is None and use_pin and settings.model_version:
        version, pinned = settings.model_version, True
    try:
        client = connect(settings)
    except RegistryError as exc:
        raise RegistryUnavailable(str(exc)) from None
    except Exception as exc:  # MLflow raises many types for an unusable store
        raise RegistryUnavailable(f"MLflow registry at {settings.tracking_uri} cannot be "
                                  f"opened ({type(exc).__name__}: {exc})") from None
    if version is None:
        try:
            champion = alias_version(client, name, ALIAS_CHAMPION)
        except Exception as exc:
            raise RegistryUnavailable(f"MLflow registry at {settings.tracking_uri} did not "
                                      f"answer ({type(exc).__name__}: {exc})") from None
        if champion is None:
            raise VersionNotFound(f"no champion for model {name!r} in {settings.tracking_uri}; "
                                  "run `driftloop bootstrap` first")
        return client, name, str(champion.version), False
    version = str(version).strip()
    if not version.isdigit() or int(version) >= 2**63:  # registry versions are int64
        raise VersionNotFound(f"model {name!r} has no version {version} in "
                              f"{settings.tracking_uri}")
    _check_exists(client, name, version, settings)
    return client, name, version, pinned


def load_version(client: Any, name: str, version: str, *, pinned: bool = False) -> ServedModel:
    """Download, build and warm a version (:class:`LoadFailed` when it cannot serve)."""
    from driftloop.registry import load_bundle

    try:
        bundle = load_bundle(client, name, str(version))
    except ModelLoadError as exc:
        raise LoadFailed(str(exc)) from None
    except RegistryError as exc:  # the registry went away mid-load: not the version's fault
        raise RegistryUnavailable(str(exc)) from None
    return prepare(bundle, pinned=pinned)


def load(settings: Settings, version: str | None = None) -> ServedModel:
    """The model to start with: ``version``, the pinned version, or the champion."""
    client, name, resolved, pinned = resolve(settings, version)
    return load_version(client, name, resolved, pinned=pinned)


def _check_exists(client: Any, name: str, version: str, settings: Settings) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise VersionNotFound(f"model {name!r} has no version {version} in "
                                  f"{settings.tracking_uri}") from None
        raise RegistryUnavailable(f"MLflow registry at {settings.tracking_uri} did not "
                                  f"answer ({exc.error_code}: {exc.message})") from None
    except Exception as exc:
        raise RegistryUnavailable(f"MLflow registry at {settings.tracking_uri} did not answer "
                                  f"({type(exc).__name__}: {exc})") from None


class ModelHolder:
    """One reference to the served model; reloads are serialized and swap it atomically."""

    def __init__(self) -> None:
        self.current: ServedModel | None = None
        self.reload_lock = threading.Lock()

    def swap(self, served: ServedModel) -> ServedModel | None:
        previous, self.current = self.current, served
        return previous
