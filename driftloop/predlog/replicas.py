"""Which servers share this log: a heartbeat row per running server.

A hot reload (``POST /admin/reload``) swaps the model of the one process that answers it.
Behind a Service with several replicas, or with two local servers on one log, it would leave
the others on the old version while the caller saw the new one and reported success. Every
server therefore heartbeats into the log it writes, and a reload refuses while other live
replicas share it (see ``serving/routers/admin.py``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from driftloop.predlog.codec import now_micros
from driftloop.predlog.schema import replicas

log = logging.getLogger(__name__)

#: Seconds between heartbeats; a replica not seen for 3 of them is taken as gone.
HEARTBEAT_S = 5.0
LIVE_AFTER_MISSED = 3


@dataclass(frozen=True)
class Replica:
    instance_id: str
    host: str
    pid: int
    seen_ts: int
    model_version: str | None


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"


class ReplicasMixin:
    """The heartbeat half of :class:`~driftloop.predlog.store.PredictionLog`."""

    engine: Any

    def beat(self, instance_id: str, model_version: str | None) -> None:
        """Insert or refresh this server's row."""
        now = now_micros()
        with self.engine.begin() as conn:
            changed = conn.execute(update(replicas).where(
                replicas.c.instance_id == instance_id).values(
                seen_ts=now, model_version=model_version)).rowcount
            if not changed:
                conn.execute(replicas.insert().values(
                    instance_id=instance_id, host=socket.gethostname(), pid=os.getpid(),
                    started_ts=now, seen_ts=now, model_version=model_version))

    def forget(self, instance_id: str) -> None:
        """Remove this server's row (graceful stop)."""
        with self.engine.begin() as conn:
            conn.execute(delete(replicas).where(replicas.c.instance_id == instance_id))

    def live_replicas(self, *, within_s: float = HEARTBEAT_S * LIVE_AFTER_MISSED
                      ) -> list[Replica]:
        """Servers that heartbeated within ``within_s`` seconds."""
        since = now_micros() - int(within_s * 1_000_000)
        stmt = (select(replicas.c.instance_id, replicas.c.host, replicas.c.pid,
                       replicas.c.seen_ts, replicas.c.model_version)
                .where(replicas.c.seen_ts >= since).order_by(replicas.c.instance_id))
        with self.engine.connect() as conn:
            return [Replica(*row) for row in conn.execute(stmt)]


class Heartbeat:
    """A daemon thread that calls ``log.beat`` every ``interval`` seconds.

    A failed beat (the log is down) is logged and counted in ``failures``, and the next one
    tries again: the server keeps serving either way.
    """

    def __init__(self, log_: ReplicasMixin, instance_id: str,
                 version: Callable[[], str | None], *, interval: float = HEARTBEAT_S) -> None:
        self._log = log_
        self.instance_id = instance_id
        self._version = version
        self.interval = interval
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._beat()
        self._thread = threading.Thread(target=self._run, name="driftloop-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self._log.beat(self.instance_id, self._version())
        except Exception as exc:  # the log may be away; serving goes on
            self.failures += 1
            log.warning("replica heartbeat failed (%d so far): %s", self.failures, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        try:
            self._log.forget(self.instance_id)
        except Exception as exc:
            log.warning("could not remove this replica's heartbeat: %s", exc)
