"""Build the spec's sklearn Pipeline, split, fit and score it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from driftloop.errors import SpecError
from driftloop.spec import ModelSpec


def import_estimator(spec: ModelSpec) -> type:
    """Import the spec's estimator class, or say exactly why it cannot be."""
    path = spec.estimator.class_path
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"estimator {path!r} cannot be imported: {exc}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise SpecError(f"estimator {path!r} cannot be imported: {module_name} has no {attr!r}")
    task = spec.task_impl
    if not hasattr(cls, "fit") or not hasattr(cls, task.estimator_method):
        raise SpecError(f"estimator {path!r} is not a {task.name} estimator with fit and "
                        f"{task.estimator_method}")
    return cls


def build_pipeline(spec: ModelSpec) -> Any:
    """Numeric features passed through (or scaled), categoricals one-hot encoded with unknown
    categories ignored, then the spec's estimator.

    Nullable numeric features first get the training median where they are missing (ONNX
    has the same imputer, so both forms agree); a nullable categorical's missing value is a
    category of its own (:mod:`driftloop.missing`) and needs no step.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cls = import_estimator(spec)
    try:
        estimator = cls(**spec.estimator.params)
    except TypeError as exc:
        raise SpecError(f"estimator {spec.estimator.class_path!r} rejects its params: {exc}") \
            from None
    transformers: list[tuple[str, Any, list[str]]] = []
    nullable = set(spec.features.nullable)
    dense = [c for c in spec.features.numeric if c not in nullable]
    gappy = [c for c in spec.features.numeric if c in nullable]
    if dense:
        numeric = StandardScaler() if spec.preprocessing.scale_numeric else "passthrough"
        transformers.append(("numeric", numeric, dense))
    if gappy:
        imputed = SimpleImputer(strategy="median", keep_empty_features=True)
        steps = [imputed, StandardScaler()] if spec.preprocessing.scale_numeric else [imputed]
        transformers.append(("numeric_nullable", make_pipeline(*steps), gappy))
    if spec.features.categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, list(spec.features.categorical)))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("features", columns), ("estimator", estimator)])


@dataclass
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def split(frame: pd.DataFrame, spec: ModelSpec) -> Split:
    """The holdout split: stratified by class for a classifier (plain when a class is too
    rare to stratify), plain for a regressor."""
    from sklearn.model_selection import train_test_split

    x = frame[spec.feature_names]
    y = frame[spec.target]
    stratify = spec.task_impl.stratify(y)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=spec.split.holdout_fraction, random_state=spec.split.seed,
        stratify=stratify,
    )
    return Split(x_tr.reset_index(drop=True), x_te.reset_index(drop=True),
                 y_tr.reset_index(drop=True), y_te.reset_index(drop=True))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics only, for MLflow and gates."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass
class TrainResult:
    model: Any
    split: Split
    labels: list[str]
    metrics: dict[str, Any]


def train(frame: pd.DataFrame, spec: ModelSpec) -> TrainResult:
    """Fit the spec's pipeline on the holdout split and score it on the holdout."""
    parts = split(frame, spec)
    model = build_pipeline(spec)
    try:
        model.fit(parts.x_train, parts.y_train)
    except ValueError as exc:
        raise SpecError(f"estimator {spec.estimator.class_path!r} failed to fit: {exc}") \
            from None
    task = spec.task_impl
    labels = task.labels_of(model, spec.target)
    predicted = task.predict(model, parts.x_test)
    return TrainResult(model, parts, labels, task.score(parts.y_test, predicted, labels))
