"""The window a DAG run looks at: its data interval, or an explicit override from its params.

Every call to the server, the validation and the retrain use the same ``[start, end)`` in
UTC ISO-8601, so a backfilled hour reads exactly that hour of the prediction log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


class WindowError(ValueError):
    """A window override that cannot be used (bad timestamp, empty or reversed interval)."""


def to_utc(value: datetime | str, *, name: str = "timestamp") -> datetime:
    """A timezone-aware UTC datetime; naive values are taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise WindowError(
                f"{name} {text!r} is not an ISO-8601 timestamp "
                "(e.g. 2026-01-31T14:00:00+00:00)"
            ) from exc
    if not isinstance(value, datetime):
        raise WindowError(f"{name} must be a datetime or an ISO-8601 string, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def iso(value: datetime | str) -> str:
    """UTC ISO-8601 with an explicit offset: what the server's query parameters expect."""
    return to_utc(value).isoformat()


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise WindowError(
                f"window end {iso(self.end)} is not after its start {iso(self.start)}"
            )

    @classmethod
    def of(cls, start: datetime | str, end: datetime | str) -> Window:
        return cls(to_utc(start, name="window_start"), to_utc(end, name="window_end"))

    def as_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}

    def __str__(self) -> str:
        return f"[{iso(self.start)}, {iso(self.end)})"


def last_complete_period(now: datetime, period: timedelta, cron: str | None = None) -> Window:
    """The last whole period that ended at or before ``now``: aligned on the DAG's cron
    schedule when given (UTC), else on the epoch."""
    now = to_utc(now)
    if cron:
        from croniter import croniter

        end = croniter(cron, now + timedelta(microseconds=1)).get_prev(datetime)
        start = croniter(cron, end).get_prev(datetime)
        return Window(to_utc(start), to_utc(end))
    step = int(period.total_seconds())
    end = datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=UTC)
    return Window(end - period, end)


def resolve_window(context: Any, params: Any, *, period: timedelta) -> Window:
    """The run's window: ``window_start``/``window_end`` params, else its data interval.

    A run triggered without a logical date (REST ``"logical_date": null``) has no data
    interval; it then looks at the last complete period before it was created.
    """
    start, end = params.get("window_start"), params.get("window_end")
    if bool(start) != bool(end):
        raise WindowError(
            "set both window_start and window_end (ISO-8601, UTC) or neither; got "
            f"window_start={start!r}, window_end={end!r}"
        )
    if start and end:
        return Window.of(start, end)
    interval_start = context.get("data_interval_start")
    interval_end = context.get("data_interval_end")
    if interval_start is not None and interval_end is not None and interval_end > interval_start:
        return Window.of(interval_start, interval_end)
    dag_run = context.get("dag_run")
    after = getattr(dag_run, "run_after", None) or datetime.now(UTC)
    cron = getattr(getattr(context.get("dag"), "timetable", None), "expression", None)
    return last_complete_period(after, period, cron if isinstance(cron, str) else None)
