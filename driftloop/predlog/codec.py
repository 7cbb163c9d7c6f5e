"""How rows and times are encoded in the log, and decoded into windows.

Times are integer microseconds since the Unix epoch (exact, cheap to index, the same on both
backends); numeric features are packed little-endian float64 (a window of 10k rows decodes
with one ``np.frombuffer``; a missing value is NaN); categoricals are a JSON list (a missing
value is null).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from driftloop.missing import MISSING_CATEGORY


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def masked_url(url: str) -> str:
    """A database URL without its password, for logs and error messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show the scheme only
        return url.split("://", 1)[0] + "://..."


def to_micros(value: datetime | str | float | int) -> int:
    """A timestamp as integer microseconds since the epoch; naive datetimes are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, float):
        return round(value * 1_000_000)
    return int(value)


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def iso(us: int) -> str:
    """ISO-8601 UTC with a ``Z``, as the serving API writes every time."""
    return from_micros(us).isoformat().replace("+00:00", "Z")


def now_micros() -> int:
    return time.time_ns() // 1000


@dataclass
class Window:
    """Decoded features of a window: numeric (rows, k) float64, categorical (rows, m) str.

    ``first_ts``/``last_ts``: the interval's bounds, or (latest rows) the oldest and newest
    row's time; None for an empty latest window.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    first_ts: int | None
    last_ts: int | None
    total_rows: int  # rows in the window before any sampling

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])

    @property
    def sampled(self) -> bool:
        return self.rows < self.total_rows



def decode_numeric(blobs: Sequence[bytes], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed rows as an (n, k) array, and a mask of the rows whose length matched ``k``."""
    width = 8 * k
    if set(map(len, blobs)) <= {width}:  # every row has this layout: one join, one view
        ok = np.ones(len(blobs), dtype=bool)
    else:
        ok = np.fromiter((len(b) == width for b in blobs), dtype=bool, count=len(blobs))
        blobs = [b for b, good in zip(blobs, ok, strict=True) if good]
    if not blobs:
        return np.empty((0, k)), ok
    flat = np.frombuffer(b"".join(blobs), dtype="<f8")
    return flat.reshape(-1, k), ok


def decode_categorical(texts: Sequence[str | None], m: int) -> np.ndarray:
    if m == 0:
        return np.empty((len(texts), 0), dtype=object)
    out = np.empty((len(texts), m), dtype=object)
    for i, text in enumerate(texts):
        values = json.loads(text) if text else []
        if len(values) != m:
            raise ValueError(f"logged row has {len(values)} categorical values, expected {m}")
        if None in values:  # logged null: the missing category in memory
            values = [MISSING_CATEGORY if v is None else v for v in values]
        out[i, :] = values
    return out



@lru_cache(maxsize=64)
def _proba_template(labels: tuple[str, ...]) -> str:
    """``{"setosa": %r, ...}``: JSON for finite floats (``repr`` is valid JSON), ~4x faster
    than ``json.dumps`` per row."""
    items = ", ".join(f"{json.dumps(label)}: %r" for label in
                      (lb.replace("%", "%%") for lb in labels))
    return "{" + items + "}"


def rows_for(ts: int, request_ids: Sequence[str], model_name: str, model_version: str,
             numeric: np.ndarray, categorical: np.ndarray | None, predictions_: Sequence[str],
             probabilities: np.ndarray, labels: Sequence[str]) -> list[tuple[Any, ...]]:
    """Row tuples (:data:`INSERT_COLUMNS`) for served rows; numeric features packed as
    little-endian float64, probabilities as a JSON object."""
    num = np.ascontiguousarray(numeric, dtype="<f8")
    template = _proba_template(tuple(labels))
    plist = np.asarray(probabilities, dtype=np.float64).tolist()
    with_cats = categorical is not None and categorical.shape[1] > 0
    out = []
    for i, rid in enumerate(request_ids):
        cat = json.dumps([None if v == MISSING_CATEGORY else str(v) for v in categorical[i]]
                         ) if with_cats else None
        out.append((ts, rid, model_name, model_version, num[i].tobytes(), cat,
                    predictions_[i], template % tuple(plist[i])))
    return out
