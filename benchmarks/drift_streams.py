"""The detection-quality benchmark's streams: generated here, fixed seeds, documented changes.

Seven independent features, so that "unchanged" is exact: a feature the stream does not
change has exactly its reference distribution.

| feature | distribution |
|---|---|
| `amount` | normal, mean 50, sd 10 |
| `duration` | log-normal (log mean 3, log sd 0.5): skewed |
| `score` | uniform on [0, 100] |
| `age` | integers: round(normal(40, 12)), clipped to [18, 90]: many ties |
| `visits` | Poisson(4): few values, heavy ties |
| `channel` | web 45 %, store 30 %, phone 15 %, partner 10 % |
| `region` | six regions, 30/20/15/15/10/10 % |

`score` and `channel` are nullable (``NULLABLE``): `score` is missing in 2 % of the rows
everywhere (the reference too), `channel` nowhere, except where a stream changes that.

Each drifted stream changes only the features it lists (``STREAMS``); each ``Change``
documents its change in words, and the benchmark scores attribution against exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

NUMERIC = ["amount", "duration", "score", "age", "visits"]
CATEGORICAL = ["channel", "region"]
FEATURES = NUMERIC + CATEGORICAL
NULLABLE = ["score", "channel"]
#: The share of rows whose `score` is missing, in the reference and every stream.
SCORE_MISSING = 0.02
CHANNELS = ["web", "store", "phone", "partner"]
REGIONS = ["north", "south", "east", "west", "centre", "islands"]


@dataclass(frozen=True)
class Change:
    feature: str
    what: str
    apply: Callable[[pd.DataFrame, np.random.Generator], None]


def _set(column: str, fn: Callable[[pd.DataFrame, np.random.Generator], np.ndarray]
         ) -> Callable[[pd.DataFrame, np.random.Generator], None]:
    def apply(frame: pd.DataFrame, rng: np.random.Generator) -> None:
        frame[column] = fn(frame, rng)
    return apply


def sample(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Drift-free rows: the reference's distribution."""
    frame = pd.DataFrame({
        "amount": rng.normal(50, 10, rows),
        "duration": rng.lognormal(3, 0.5, rows),
        "score": rng.uniform(0, 100, rows),
        "age": np.clip(np.round(rng.normal(40, 12, rows)), 18, 90),
        "visits": rng.poisson(4, rows).astype(np.float64),
        "channel": rng.choice(CHANNELS, rows, p=[0.45, 0.30, 0.15, 0.10]),
        "region": rng.choice(REGIONS, rows, p=[0.30, 0.20, 0.15, 0.15, 0.10, 0.10]),
    })
    frame["channel"] = frame["channel"].astype(object)
    frame.loc[rng.random(rows) < SCORE_MISSING, "score"] = np.nan
    return frame


def _mean_shift(sd_units: float) -> Callable:
    return lambda f, rng: f["amount"] + sd_units * 10


def _spread(column: str, centre: float, ratio: float) -> Callable:
    return lambda f, rng: centre + (f[column] - centre) * ratio


def _heavy_tail(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    # 10 % of rows from a tail three times as long: the median barely moves.
    out = f["duration"].to_numpy().copy()
    pick = rng.random(len(out)) < 0.10
    out[pick] = out[pick] * 3
    return out


def _channel_mix(p: list[float]) -> Callable:
    return lambda f, rng: rng.choice(CHANNELS, len(f), p=p)


def _new_region(share: float) -> Callable:
    def apply(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        out = f["region"].to_numpy().copy()
        out[rng.random(len(out)) < share] = "overseas"
        return out
    return apply


def _missing(column: str, share: float) -> Callable:
    """``share`` of the rows lose ``column`` (NaN, or None for a categorical); with the
    rows already missing it, about ``share`` more than before."""
    def apply(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        out = f[column].to_numpy().copy()
        out[rng.random(len(out)) < share] = np.nan if column in NUMERIC else None
        return out
    return apply


def _age_older(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.round(rng.normal(46, 12, len(f))), 18, 90)


def _visits_more(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(5, len(f)).astype(np.float64)


STREAMS: dict[str, list[Change]] = {
    "none-a": [],
    "none-b": [],
    "mean shift": [Change("amount", "mean +0.5 sd", _set("amount", _mean_shift(0.5)))],
    "spread": [
        Change("amount", "sd 1.6x at equal mean", _set("amount", _spread("amount", 50, 1.6))),
        Change("score", "range narrowed to [20, 80] (sd 0.6x)",
               _set("score", _spread("score", 50, 0.6))),
    ],
    "tail": [Change("duration", "10 % of rows 3x longer (a heavier right tail)",
                    _set("duration", _heavy_tail))],
    "category mix": [Change("channel", "web 45 % -> 30 %, phone 15 % -> 25 %, partner "
                            "10 % -> 15 % (TVD 0.15)",
                            _set("channel", _channel_mix([0.30, 0.30, 0.25, 0.15])))],
    "new category": [Change("region", "new region 'overseas' on 8 % of rows",
                            _set("region", _new_region(0.08)))],
    "rising missing rate": [
        Change("score", "missing 2 % -> 10 % (the values present unchanged)",
               _set("score", _missing("score", 0.08))),
        Change("channel", "missing 0 % -> 6 %", _set("channel", _missing("channel", 0.06))),
    ],
    "several": [
        Change("amount", "mean +0.3 sd", _set("amount", _mean_shift(0.3))),
        Change("score", "range narrowed to [10, 90] (sd 0.8x)",
               _set("score", _spread("score", 50, 0.8))),
        Change("age", "mean +6 years (0.5 sd), integer ages", _set("age", _age_older)),
        Change("visits", "Poisson mean 4 -> 5", _set("visits", _visits_more)),
        Change("channel", "web 45 % -> 36 %, phone 15 % -> 24 % (TVD 0.09)",
               _set("channel", _channel_mix([0.36, 0.30, 0.24, 0.10]))),
    ],
}


def window(stream: str, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = sample(rows, rng)
    for change in STREAMS[stream]:
        change.apply(frame, rng)
    return frame


def changed(stream: str) -> set[str]:
    return {c.feature for c in STREAMS[stream]}


# --- the benchmark's windows: the same in every environment ------------------------------
#: Windows per stream at each size (50,000: bootstrap windows from a 100,000-row pool).
WINDOWS = {500: 60, 2_000: 30, 5_000: 20, 50_000: 5}
REFERENCE_ROWS = 20_000
SEED = 2026


def reference() -> pd.DataFrame:
    return sample(REFERENCE_ROWS, np.random.default_rng([SEED, 0]))


def windows(sizes: dict[int, int] | None = None,
            ) -> Iterator[tuple[str, int, int, pd.DataFrame]]:
    """Every (stream, size, index, frame) of the benchmark. Each window has its own seed, so
    any environment regenerates exactly the same rows (``fingerprint`` proves it)."""
    for s, stream in enumerate(STREAMS, start=1):
        for size, count in (sizes or WINDOWS).items():
            pool = None
            if size >= 50_000:
                pool = window(stream, 100_000, np.random.default_rng([SEED, s, 0]))
            for i in range(count):
                rng = np.random.default_rng([SEED, s, size, i])
                if pool is None:
                    yield stream, size, i, window(stream, size, rng)
                else:
                    picks = rng.integers(0, len(pool), size)
                    yield stream, size, i, pool.iloc[picks].reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(frame[NUMERIC].to_numpy(np.float64)).tobytes())
    for column in CATEGORICAL:  # a missing value is None or NaN by pandas version: one mark
        digest.update("|".join("<missing>" if pd.isna(v) else str(v)
                               for v in frame[column].tolist()).encode())
    return digest.hexdigest()[:16]
