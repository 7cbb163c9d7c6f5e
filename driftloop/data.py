"""Loading a spec's data into one DataFrame, checked against the spec."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pandas as pd

from driftloop.errors import DataError
from driftloop.missing import MISSING_CATEGORY
from driftloop.spec import ModelSpec

#: Built-in datasets shipped with scikit-learn (offline). Names map to sklearn loaders.
BUILTIN_DATASETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
}


def _snake(name: str) -> str:
    """'sepal length (cm)' -> 'sepal_length': the names specs use for built-ins."""
    name = re.sub(r"\(.*?\)", "", name).strip().lower()
    return re.sub(r"[^0-9a-z]+", "_", name).strip("_")


def load_builtin(name: str) -> pd.DataFrame:
    """A scikit-learn toy dataset with snake_case columns and, as ``target`` (``species``
    for Iris), the class names of a classification set or the values of a regression one."""
    loader_name = BUILTIN_DATASETS.get(name)
    if loader_name is None:
        known = ", ".join(f"sklearn:{n}" for n in sorted(BUILTIN_DATASETS))
        raise DataError(f"unknown built-in dataset 'sklearn:{name}' (known: {known})")
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    frame = pd.DataFrame(bunch.data, columns=[_snake(c) for c in bunch.feature_names])
    target = "species" if name == "iris" else "target"
    names = bunch.get("target_names")
    frame[target] = (bunch.target if names is None else
                     pd.Categorical.from_codes(bunch.target, list(names)).astype(str))
    return frame


def read_source(spec: ModelSpec) -> pd.DataFrame:
    """Read the spec's data source as is (re-read every time: upstream may refresh it)."""
    source = spec.data.source
    if source.startswith("sklearn:"):
        return load_builtin(source.removeprefix("sklearn:"))
    path = spec.data_path()
    assert path is not None
    if not path.is_file():
        raise DataError(f"data file not found: {path} (from the spec's data.source {source!r})")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types; the user needs the file and cause
        raise DataError(f"cannot read data file {path}: {exc}") from None


@dataclass(frozen=True)
class LoadedData:
    """Features and target, cleaned to the spec, with what was dropped and why."""

    frame: pd.DataFrame
    rows_read: int
    rows_dropped_missing: int

    @property
    def rows(self) -> int:
        return len(self.frame)


def conform(frame: pd.DataFrame, spec: ModelSpec, *, origin: str) -> LoadedData:
    """Check columns against the spec, coerce types, drop rows with missing values.

    Rows missing the target or a feature the spec does not list as nullable are dropped: the
    server refuses such rows too, so a model never learns from what it will never be asked.
    Nullable features keep their gaps: NaN for numeric ones (the model imputes them), the
    missing category for categoricals (:mod:`driftloop.missing`).
    """
    missing = [c for c in [*spec.feature_names, spec.target] if c not in frame.columns]
    if missing:
        what = "target" if missing == [spec.target] else "columns"
        raise DataError(
            f"{origin}: {what} {', '.join(repr(m) for m in missing)} not in the data "
            f"(it has: {', '.join(map(str, frame.columns))})"
        )
    out = frame[[*spec.feature_names, spec.target]].copy()
    for col in spec.features.numeric:
        coerced = pd.to_numeric(out[col], errors="coerce")
        bad = coerced.isna() & out[col].notna()
        if bad.any():
            example = out.loc[bad, col].iloc[0]
            raise DataError(
                f"{origin}: numeric feature {col!r} has non-numeric values (e.g. {example!r})"
            )
        out[col] = coerced.astype("float64")
    task = spec.task_impl
    out[spec.target] = task.conform_target(out[spec.target], origin)
    for col in spec.features.categorical:
        out[col] = out[col].astype("string").astype(object)
        # The missing category (a frame conformed before, or read back from the log) is
        # missing: conforming twice changes nothing.
        out[col] = out[col].mask(out[col].isin([MISSING_CATEGORY]), None)
    before = len(out)
    out = out.dropna(subset=[*spec.required_features, spec.target]).reset_index(drop=True)
    for col in spec.features.categorical:
        if col in spec.features.nullable:  # missing is a category the model learns
            out[col] = out[col].where(out[col].notna(), MISSING_CATEGORY)
    if out.empty:
        raise DataError(f"{origin}: no complete rows (every row misses the target or a feature "
                        "that features.nullable does not list)")
    task.check_target(out[spec.target], spec.target, origin)
    return LoadedData(frame=out, rows_read=before, rows_dropped_missing=before - len(out))


def load_training_data(spec: ModelSpec) -> LoadedData:
    """The spec's data source, conformed."""
    return conform(read_source(spec), spec, origin=spec.data.source)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a DataFrame (values and column names, order-sensitive)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
