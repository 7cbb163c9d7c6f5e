"""Refused rows, counted: ``/predict`` refuses a batch with a bad feature value (a null
where the spec allows none, a string for a number, a value out of range) and never logs it,
so without these counts a feature that upstream stopped sending would vanish from the drift
answer instead of showing in it.

Counts are kept per minute, model, feature and reason, added by the log writer's thread
(:meth:`driftloop.predlog.LogWriter.refuse`), off the request path. A refused batch counts
all its rows against the first bad feature found (the one its 422 names).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import func, select

from driftloop.predlog.codec import to_micros
from driftloop.predlog.schema import refusals

RefusalReason = Literal["missing", "type", "range"]
REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)
#: Counts are bucketed by this many microseconds (one minute).
BUCKET_US = 60_000_000


def bucket(ts_us: int) -> int:
    return ts_us - ts_us % BUCKET_US


class RefusalsMixin:
    engine: Any

    def write_refusals(self, counts: Iterable[tuple[int, str, str, str, int]]) -> None:
        """Add ``(minute_ts, model_name, feature, reason, rows)`` counts."""
        rows = [{"ts": ts, "model_name": model, "feature": feature, "reason": reason,
                 "rows": int(n)} for ts, model, feature, reason, n in counts]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(refusals.insert(), rows)

    def refusal_counts(self, model_name: str, start: datetime | str | int,
                       end: datetime | str | int) -> dict[str, dict[str, int]]:
        """Refused rows of ``[start, end)`` per feature and reason. The minute buckets make
        the ends approximate by up to a minute: a bucket counts when it starts inside."""
        lo, hi = bucket(to_micros(start)), to_micros(end)
        stmt = (select(refusals.c.feature, refusals.c.reason, func.sum(refusals.c.rows))
                .where(refusals.c.model_name == model_name, refusals.c.ts >= lo,
                       refusals.c.ts < hi)
                .group_by(refusals.c.feature, refusals.c.reason))
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for feature, reason, n in conn.execute(stmt):
                out.setdefault(str(feature), {})[str(reason)] = int(n)
        return out
