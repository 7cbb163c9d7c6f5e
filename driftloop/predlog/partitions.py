"""PostgreSQL: ``predictions`` partitioned by day, so retention drops whole days.

Why: deleting old rows from one big table is slow, bloats it, and competes with the writers;
dropping a day's partition is a catalogue change. Windows stay cheap as the log grows
because each query reads only the partitions its ``[start, end)`` touches.

Partitions are named ``predictions_pYYYYMMDD`` and hold ``[day 00:00, next day 00:00)`` UTC
in the log's microsecond timestamps. They are created ahead of time (today and the next
``DAYS_AHEAD`` days, when a server opens the log and whenever a write reaches the horizon),
and a write whose day has no partition creates it and is retried: nothing is lost.
SQLite stays one table: it is the embedded, single-machine shape.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from driftloop.predlog.codec import now_micros, to_micros

#: Days created ahead of the current one.
DAYS_AHEAD = 7
PREFIX = "predictions_p"
_NAME = re.compile(r"^predictions_p(\d{8})$")
#: One key for every driftloop schema change on a PostgreSQL log (pg_advisory_xact_lock).
LOCK_KEY = 0x6472_6966_746C  # "driftl"

#: The partitioned parent (PostgreSQL). The primary key and the unique index must include
#: the partition key; request ids are random 80-bit values, and the index still refuses a
#: retried write of the same row (same id, same ts).
PARENT_DDL = """
CREATE TABLE predictions (
    id BIGSERIAL NOT NULL,
    ts BIGINT NOT NULL,
    request_id VARCHAR(64) NOT NULL,
    model_name VARCHAR(200) NOT NULL,
    model_version VARCHAR(32) NOT NULL,
    num BYTEA NOT NULL,
    cat TEXT,
    prediction VARCHAR(200) NOT NULL,
    proba TEXT NOT NULL,
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts)
"""
PARENT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_predictions_model_ts ON predictions (model_name, ts)",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_predictions_request_id "
    "ON predictions (request_id, ts)",
)


def day_of(us: int) -> date:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).date()


def day_bounds(day: date) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return to_micros(start), to_micros(start + timedelta(days=1))


def name_of(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def is_partitioned(conn: Any) -> bool:
    return bool(conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'predictions' AND pg_table_is_visible(c.oid)")).first())


def existing(conn: Any) -> dict[date, str]:
    """The day partitions attached to ``predictions``, by day."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'predictions' "
        "AND pg_table_is_visible(p.oid)")).scalars()
    return _by_day(rows)


def detached(conn: Any) -> dict[date, str]:
    """Day tables no longer attached to ``predictions``: what a retention run stopped between
    ``DETACH`` and ``DROP`` left behind (the next run drops them)."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition "
        "AND c.relname LIKE 'predictions\\_p%' AND pg_table_is_visible(c.oid)")).scalars()
    return _by_day(rows)


def _by_day(names: Any) -> dict[date, str]:
    """Day tables by their day; other names are not driftloop's and are left alone."""
    found = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


def ensure(conn: Any, first_us: int, last_us: int) -> list[str]:
    """Create the day partitions covering ``[first_us, last_us]`` that are missing; returns
    the names created. Serialised by an advisory lock: replicas may race on it."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    have = existing(conn)
    created = []
    day, last = day_of(first_us), day_of(last_us)
    while day <= last:
        if day not in have:
            lo, hi = day_bounds(day)
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {name_of(day)} PARTITION OF "
                              f"predictions FOR VALUES FROM ({lo}) TO ({hi})"))
            created.append(name_of(day))
        day += timedelta(days=1)
    return created


def ensure_ahead(conn: Any, now_us: int | None = None) -> int:
    """Partitions for today and the next :data:`DAYS_AHEAD` days; returns the first
    microsecond past the last one (the horizon a writer checks against)."""
    now = now_micros() if now_us is None else now_us
    last_day = day_of(now) + timedelta(days=DAYS_AHEAD)
    ensure(conn, now, day_bounds(last_day)[0])
    return day_bounds(last_day)[1]
