"""The background writer: served rows reach the log off the request path."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from driftloop.predlog.store import PredictionLog

log = logging.getLogger(__name__)


class LogWriter:
    """Batches served rows into the log from a background thread.

    Durability promise: a row waits in memory at most ``flush_interval`` seconds (0.2 s by
    default, at most 1 s) plus one write, so a hard kill (SIGKILL, OOM) loses at most the
    rows served in the last ~1 s; a graceful stop (SIGTERM through the server's lifespan)
    drains everything first. Rows over ``queue_max_rows`` (the database is down or too slow)
    are dropped and counted rather than growing memory without bound.
    """

    def __init__(self, log: PredictionLog, *, flush_interval: float = 0.2,
                 batch_rows: int = 500, queue_max_rows: int = 100_000,
                 on_dropped: Any = None) -> None:
        self.log = log
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.queue_max_rows = queue_max_rows
        self._on_dropped = on_dropped
        self._entries: deque[tuple[int, int, Callable[[], list[tuple[Any, ...]]]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written_cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._submitted_seq = 0
        self._written_seq = 0
        self.pending_rows = 0
        self.dropped_rows = 0
        self.written_rows = 0
        self.failed_writes = 0

    def submit(self, n_rows: int, build: Callable[[], list[tuple[Any, ...]]]) -> bool:
        """Queue ``n_rows`` rows that ``build()`` turns into column dicts; False (and
        counted as dropped) when the queue is full.

        Building (packing, JSON) happens on the writer thread: the request path only
        appends a reference to a deque.
        """
        with self._lock:
            if self.pending_rows + n_rows > self.queue_max_rows:
                self.dropped_rows += n_rows
                dropped = True
            else:
                self._submitted_seq += 1
                self._entries.append((self._submitted_seq, n_rows, build))
                self.pending_rows += n_rows
                dropped = False
                full = self.pending_rows >= self.batch_rows
        if dropped:
            if self._on_dropped is not None:
                self._on_dropped(n_rows)
            return False
        if full:
            self._wake.set()
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftloop-log-writer",
                                            daemon=True)
            self._thread.start()

    def _take(self) -> tuple[int, list[tuple[Any, ...]]]:
        builders = []
        taken = 0
        last_seq = 0
        with self._lock:
            while self._entries and taken < self.batch_rows:
                seq, n_rows, build = self._entries.popleft()
                builders.append(build)
                taken += n_rows
                last_seq = seq
        batch: list[tuple[Any, ...]] = []
        for build in builders:
            try:
                batch.extend(build())
            except Exception:  # a bug in building must not stop the writer
                log.exception("prediction log: could not encode rows; they are dropped")
        if len(batch) != taken:
            with self._lock:
                self.pending_rows -= taken - len(batch)
                self.dropped_rows += taken - len(batch)
        return last_seq, batch

    def _put_back(self, seq: int, batch: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._entries.appendleft((seq, len(batch), lambda: batch))

    def _write_pending(self) -> bool:
        """Write everything queued; False if a write failed (rows stay queued)."""
        while True:
            seq, batch = self._take()
            if not batch:
                self._mark_written(seq)
                return True
            try:
                self.log.write_rows(batch)
            except Exception as exc:
                self.failed_writes += 1
                log.error("prediction log write of %d rows failed (will retry): %s",
                          len(batch), exc)
                self._put_back(seq, batch)
                return False
            with self._lock:
                self.pending_rows -= len(batch)
                self.written_rows += len(batch)
            self._mark_written(seq)

    def _mark_written(self, seq: int) -> None:
        if not seq:
            return
        with self._written_cond:
            self._written_seq = max(self._written_seq, seq)
            self._written_cond.notify_all()

    def _run(self) -> None:
        backoff = self.flush_interval
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            ok = self._write_pending()
            if self._stopping and (ok or not self._entries):
                return
            if not ok:
                time.sleep(min(backoff, 1.0))
                backoff = min(backoff * 2, 1.0)
            else:
                backoff = self.flush_interval

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row submitted before this call is written."""
        with self._lock:
            target = self._submitted_seq
        if target == 0:
            return True
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._written_cond:
            while self._written_seq < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._written_cond.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> int:
        """Drain the queue and stop; returns the rows that could not be written."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log: drain did not finish in %.0f s", timeout)
        else:
            self._write_pending()
        with self._lock:
            left = self.pending_rows
        if left:
            log.error("prediction log: %d row(s) could not be written at shutdown", left)
        return left

