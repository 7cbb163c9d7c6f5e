"""Request rows to model arrays, refusing bad input with a message that names the problem.

A batch is all or nothing: one bad row rejects the call, and nothing of it is logged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from driftloop.missing import MISSING_CATEGORY
from driftloop.predlog import RefusalReason
from serving.served import ServedModel

#: ONNX models compute in float32: larger magnitudes would become infinities.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputError(Exception):
    """Bad input; ``status`` is the HTTP status (422, or 413 for an oversized batch).

    A bad feature value also names the ``feature`` and the ``reason`` (one of
    :data:`driftloop.predlog.REFUSAL_REASONS`): such refusals are counted per feature in
    the log, and the drift answer reports their rate.
    """

    def __init__(self, message: str, status: int = 422, *, feature: str | None = None,
                 reason: RefusalReason | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.feature = feature
        self.reason = reason


def _describe(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    return f"{type(value).__name__} ({value!r})"


def rows_of(features: Any, instances: Any, records: Any, max_rows: int) -> tuple[str, list]:
    """Which form the request used and its rows (positional lists or name dicts)."""
    given = [name for name, value in (("features", features), ("instances", instances),
                                      ("records", records)) if value is not None]
    if len(given) != 1:
        which = ", ".join(given) if given else "none of them"
        raise InputError("give exactly one of 'features' (one row), 'instances' (rows) or "
                         f"'records' (rows by feature name); got {which}")
    form = given[0]
    rows = [features] if form == "features" else (instances if form == "instances" else records)
    if not rows:
        raise InputError(f"empty batch: '{form}' has no rows")
    if len(rows) > max_rows:
        raise InputError(f"batch of {len(rows)} rows is over the limit of {max_rows} rows "
                         "per call (DRIFTLOOP_MAX_BATCH_ROWS)", status=413)
    return form, rows


def _positional(model: ServedModel, rows: list[list[Any]], form: str) -> list[list[Any]]:
    expected = len(model.positions)
    for i, row in enumerate(rows):
        if len(row) != expected:
            where = "'features'" if form == "features" else f"row {i}"
            raise InputError(f"{where} has {len(row)} values; the model expects {expected}: "
                             f"{', '.join(model.feature_names)}")
    return rows


def _named(model: ServedModel, rows: list[dict[str, Any]]) -> list[list[Any]]:
    names = model.feature_names
    wanted = model.positions
    out = []
    for i, row in enumerate(rows):
        if len(row) != len(wanted) or any(k not in wanted for k in row):
            unknown = sorted(k for k in row if k not in wanted)
            missing = [k for k in names if k not in row]
            parts = []
            if unknown:
                parts.append(f"unknown feature(s) {', '.join(unknown)}")
            if missing:
                parts.append(f"missing feature(s) {', '.join(missing)}")
            raise InputError(f"record {i}: {'; '.join(parts)} (expected: {', '.join(names)})")
        out.append([row[name] for name in names])
    return out


def to_arrays(model: ServedModel, form: str, rows: list) -> tuple[np.ndarray, np.ndarray]:
    """Numeric (n, k) float64 and categorical (n, m) str arrays, or :class:`InputError`."""
    table = _named(model, rows) if form == "records" else _positional(model, rows, form)
    if not model.categorical:
        # Fast path: the body parser leaves only floats and strings, so an all-number table
        # becomes a float64 array in one call; anything else gets the row-by-row message.
        array = np.array(table)
        if (array.dtype == np.float64 and np.isfinite(array).all()
                and np.abs(array).max() <= FLOAT32_MAX):
            return array, _EMPTY[len(table)]
    _check_rows(model, form, table)
    k = len(model.numeric)
    # None becomes NaN in a float array: the model's imputer fills it (nullable features
    # only; _check_rows refused any other null).
    if not model.categorical:
        return np.array(table, dtype=np.float64), _EMPTY[len(table)]
    numeric = np.array([row[:k] for row in table], dtype=np.float64).reshape(len(table), k)
    categorical = np.array([row[k:] for row in table], dtype=object)
    for j in model.nullable_categorical:
        column = categorical[:, j]
        column[[v is None for v in column]] = MISSING_CATEGORY
    return numeric, categorical


def _check_rows(model: ServedModel, form: str, table: list[list[Any]]) -> None:
    """Raise :class:`InputError` naming the first bad value (row and feature)."""
    k = len(model.numeric)
    names = model.feature_names
    nullable = model.nullable
    label = "record" if form == "records" else "row"
    for i, row in enumerate(table):
        for j in range(len(names)):
            value = row[j]
            if value is None:
                if names[j] in nullable:
                    continue
                raise InputError(f"{label} {i}, feature '{names[j]}' is missing (null), and the "
                                 "model's spec does not list it in features.nullable",
                                 feature=names[j], reason="missing")
            if j >= k:
                if type(value) is not str:
                    raise InputError(f"{label} {i}, feature '{names[j]}' is categorical: "
                                     f"expected a string, got {_describe(value)}",
                                     feature=names[j], reason="type")
            elif type(value) is not float and type(value) is not int:
                raise InputError(f"{label} {i}, feature '{names[j]}': expected a number, got "
                                 f"{_describe(value)}", feature=names[j], reason="type")
            elif not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise InputError(f"{label} {i}, feature '{names[j]}': {value!r} is not a "
                                 f"finite number in the model's range (|x| <= {FLOAT32_MAX:.3g})",
                                 feature=names[j], reason="range")


class _EmptyCategorical(dict):
    """(n, 0) object arrays, made once per n: most models have no categorical features."""

    def __missing__(self, n: int) -> np.ndarray:
        array = np.empty((n, 0), dtype=object)
        if len(self) < 64:
            self[n] = array
        return array


_EMPTY = _EmptyCategorical()


def unknown_categories(model: ServedModel, categorical: np.ndarray) -> dict[str, int]:
    """Per categorical feature, how many values the reference never saw (accepted, counted)."""
    out: dict[str, int] = {}
    for j, name in enumerate(model.categorical):
        known = model.known_categories[j]
        unseen = sum(1 for v in categorical[:, j] if v not in known and v != MISSING_CATEGORY)
        if unseen:
            out[name] = unseen
    return out
