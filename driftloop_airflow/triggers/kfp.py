"""KfpRunTrigger: wait in the triggerer until a KFP run ends, on either backend.

It yields exactly one event: ``{"status": "done", "run": ...}`` when the run reached a
terminal state (success or not: the operator decides), ``{"status": "timeout", ...}`` when
the deadline passed, or ``{"status": "error", "message": ...}`` after too many consecutive
polling failures. A user killing the deferred task terminates the run (``on_kill``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from driftloop_airflow.hooks.kfp_run import KfpRun

#: Consecutive failed polls (API down, file unreadable) before the trigger gives up.
MAX_POLL_FAILURES = 5


class KfpRunTrigger(BaseTrigger):
    def __init__(self, run_id: str, backend: str, kfp_conn_id: str, *,
                 runs_dir: str | None = None, poll_interval: float = 10.0,
                 deadline: float | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.backend = backend
        self.kfp_conn_id = kfp_conn_id
        self.runs_dir = runs_dir
        self.poll_interval = poll_interval
        #: Unix time after which the trigger stops waiting (survives re-serialization).
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "run_id": self.run_id, "backend": self.backend, "kfp_conn_id": self.kfp_conn_id,
            "runs_dir": self.runs_dir, "poll_interval": self.poll_interval,
            "deadline": self.deadline,
        })

    async def _poller(self) -> Any:
        if self.backend == "local":
            from driftloop_airflow.hooks.kfp_local import AsyncKfpLocalPoller

            if not self.runs_dir:
                raise ValueError("a local KFP run needs runs_dir")
            return AsyncKfpLocalPoller(self.runs_dir)
        if self.backend == "rest":
            from airflow.sdk import BaseHook

            from driftloop_airflow.hooks.kfp_rest import AsyncKfpRestPoller, RestConfig

            conn = await BaseHook.aget_connection(self.kfp_conn_id)
            return AsyncKfpRestPoller(RestConfig.from_connection(conn))
        raise ValueError(f"unknown KFP backend {self.backend!r} (expected 'rest' or 'local')")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            poller = await self._poller()
        except Exception as exc:
            yield TriggerEvent({"status": "error", "run_id": self.run_id,
                                "message": f"cannot poll KFP run {self.run_id}: {exc}"})
            return
        failures = 0
        last: KfpRun | None = None
        while True:
            try:
                last = await poller.get(self.run_id)
                failures = 0
            except Exception as exc:
                failures += 1
                self.log.warning("polling KFP run %s failed (%d/%d): %s", self.run_id,
                                 failures, MAX_POLL_FAILURES, exc)
                if failures >= MAX_POLL_FAILURES:
                    yield TriggerEvent({
                        "status": "error", "run_id": self.run_id,
                        "message": f"polling KFP run {self.run_id} failed {failures} times "
                        f"in a row; last error: {exc}"})
                    return
            if last is not None and last.is_terminal:
                yield TriggerEvent({"status": "done", "run": last.as_event()})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                state = last.state if last else "unknown"
                yield TriggerEvent({
                    "status": "timeout", "run_id": self.run_id,
                    "run": last.as_event() if last else None,
                    "message": f"KFP run {self.run_id} still {state} at the deadline"})
                return
            self.log.info("KFP run %s: %s", self.run_id, last.state if last else "unknown")
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The user killed the waiting task: stop the run it was waiting for."""
        poller = await self._poller()
        await poller.terminate(self.run_id)
