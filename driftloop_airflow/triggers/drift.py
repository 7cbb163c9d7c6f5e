"""DriftWindowTrigger: wait in the triggerer until a window of the prediction log is usable.

Polls ``GET /drift/window?start=&end=&limit=1`` (its ``total``) and yields one event:

- ``{"status": "ok", "rows": n, "enough": true}`` once the window holds ``min_rows`` rows;
- ``{"status": "ok", "rows": n, "enough": false}`` once the window has closed (its end plus
  ``settle_seconds`` for the server's log flush is past): no row can arrive any more, so
  waiting longer would only delay the verdict "insufficient data";
- ``{"status": "timeout", ...}`` at the deadline, ``{"status": "error", ...}`` after
  repeated polling failures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from driftloop_airflow.window import to_utc

MAX_POLL_FAILURES = 5


def window_verdict(rows: int, min_rows: int, end: str, settle_seconds: float,
                   now: float) -> dict[str, Any] | None:
    """The event for a poll, or None to keep waiting (shared by the sensor's own poke)."""
    if rows >= min_rows:
        return {"status": "ok", "rows": rows, "enough": True, "min_rows": min_rows}
    if now >= to_utc(end).timestamp() + settle_seconds:
        return {"status": "ok", "rows": rows, "enough": False, "min_rows": min_rows}
    return None


class DriftWindowTrigger(BaseTrigger):
    def __init__(self, serving_conn_id: str, start: str, end: str, min_rows: int, *,
                 poll_interval: float = 30.0, settle_seconds: float = 5.0,
                 deadline: float | None = None) -> None:
        super().__init__()
        self.serving_conn_id = serving_conn_id
        self.start = start
        self.end = end
        self.min_rows = int(min_rows)
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "serving_conn_id": self.serving_conn_id, "start": self.start, "end": self.end,
            "min_rows": self.min_rows, "poll_interval": self.poll_interval,
            "settle_seconds": self.settle_seconds, "deadline": self.deadline,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk import BaseHook

        from driftloop_airflow.hooks.serving import ServingEndpoint, async_window_total

        try:
            endpoint = ServingEndpoint.from_connection(
                await BaseHook.aget_connection(self.serving_conn_id))
        except Exception as exc:
            yield TriggerEvent({"status": "error",
                                "message": f"connection {self.serving_conn_id!r}: {exc}"})
            return
        failures, rows = 0, 0
        while True:
            try:
                rows = await async_window_total(endpoint, self.start, self.end)
                failures = 0
                verdict = window_verdict(rows, self.min_rows, self.end, self.settle_seconds,
                                         time.time())
                if verdict is not None:
                    yield TriggerEvent(verdict)
                    return
            except Exception as exc:
                failures += 1
                self.log.warning("polling the window failed (%d/%d): %s", failures,
                                 MAX_POLL_FAILURES, exc)
                if failures >= MAX_POLL_FAILURES:
                    yield TriggerEvent({"status": "error", "message": str(exc)})
                    return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({
                    "status": "timeout", "rows": rows, "min_rows": self.min_rows,
                    "message": f"window [{self.start}, {self.end}) holds {rows} rows, "
                    f"{self.min_rows} needed, at the deadline"})
                return
            self.log.info("window [%s, %s): %d of %d rows", self.start, self.end, rows,
                          self.min_rows)
            await asyncio.sleep(self.poll_interval)
