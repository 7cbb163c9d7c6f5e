"""The background writer: served rows reach the log off the request path.

When the log cannot keep up (the database is slow or away), nothing is dropped silently. The
default policy, ``reject``, pushes back: :meth:`LogWriter.admit` says no before a request is
answered, and the server answers 503 with ``Retry-After``, so a client that retries loses
nothing. ``shed`` is the explicit alternative: the answer is given, the rows are not logged,
and the answer says so (``"logged": false``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, get_args

from driftloop.predlog.codec import now_micros
from driftloop.predlog.refusals import bucket
from driftloop.predlog.store import PredictionLog
from driftloop.settings import LogOverflow as Overflow

log = logging.getLogger(__name__)

OVERFLOW_POLICIES: tuple[str, ...] = get_args(Overflow)

#: Most rows one transaction writes. Under load the writer takes everything queued up to
#: this, so a slow commit is paid per 10k rows instead of per 500 (benchmarks/RESULTS.md).
MAX_WRITE_ROWS = 10_000


class LogWriter:
    """Batches served rows into the log from a background thread.

    Durability promise: a row waits in memory at most ``flush_interval`` seconds (0.2 s by
    default, at most 1 s) plus one write, so a hard kill (SIGKILL, OOM) loses at most the
    rows served in the last ~1 s; a graceful stop (SIGTERM through the server's lifespan)
    drains everything first. Memory is bounded by ``queue_max_rows`` plus the rows of the
    requests admitted but not yet answered (at most the in-flight requests' batches).
    """

    def __init__(self, log: PredictionLog, *, flush_interval: float = 0.2,
                 batch_rows: int = 500, queue_max_rows: int = 100_000,
                 overflow: Overflow = "reject", max_write_rows: int = MAX_WRITE_ROWS,
                 on_dropped: Callable[[int], Any] | None = None,
                 on_refused: Callable[[int], Any] | None = None) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow policy {overflow!r} is not one of "
                             f"{', '.join(OVERFLOW_POLICIES)}")
        self.log = log
        self.flush_interval = flush_interval
        #: Rows that wake the writer before its interval: a batch, or half a small queue.
        self.batch_rows = max(1, min(batch_rows, queue_max_rows // 2))
        self.queue_max_rows = queue_max_rows
        self.overflow = overflow
        self.max_write_rows = max(max_write_rows, self.batch_rows)
        self._on_dropped = on_dropped
        self._on_refused = on_refused
        self._entries: deque[tuple[int, int, Callable[[], list[tuple[Any, ...]]]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written_cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._submitted_seq = 0
        self._written_seq = 0
        #: Rows per second of the recent writes (an exponential average): Retry-After.
        self._rate = 0.0
        self._last_write_failed = False
        #: Rows /predict refused for a bad value, by (minute, model, feature, reason),
        #: waiting to be added to the log's ``refusals`` counts.
        self._refusals: Counter[tuple[int, str, str, str]] = Counter()
        self.pending_rows = 0
        self.dropped_rows = 0
        self.refused_rows = 0
        self.written_rows = 0
        self.failed_writes = 0

    # --- the request path ---------------------------------------------------------------
    def admit(self, n_rows: int) -> bool:
        """Whether a request of ``n_rows`` may be answered now (``reject`` policy).

        False when the queue is full: the caller answers 503 before computing anything, and
        the refusal is counted. ``shed`` always admits (the rows may be dropped later).
        """
        if self.overflow == "shed" or self.pending_rows + n_rows <= self.queue_max_rows:
            return True
        with self._lock:
            self.refused_rows += n_rows
        if self._on_refused is not None:
            self._on_refused(n_rows)
        self._wake.set()
        return False

    def refuse(self, model_name: str, feature: str, reason: str, n_rows: int) -> None:
        """Count ``n_rows`` refused for a bad value of ``feature`` (written with the next
        batch: a refusal costs the request path one dictionary update)."""
        key = (bucket(now_micros()), model_name, feature, reason)
        with self._lock:
            self._refusals[key] += n_rows

    def _write_refusals(self) -> bool:
        with self._lock:
            counts, self._refusals = self._refusals, Counter()
        if not counts:
            return True
        try:
            self.log.write_refusals((*key, n) for key, n in counts.items())
        except Exception as exc:
            log.error("prediction log: could not write refusal counts (will retry): %s", exc)
            with self._lock:
                self._refusals.update(counts)
            return False
        with self._written_cond:
            self._written_cond.notify_all()
        return True

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the time the queue takes to drain at the
        recent write rate (1..30 s); 5 s while writes are failing."""
        if self._last_write_failed or self._rate <= 0:
            return 5
        return max(1, min(30, math.ceil(self.pending_rows / self._rate)))

    def submit(self, n_rows: int, build: Callable[[], list[tuple[Any, ...]]]) -> bool:
        """Queue ``n_rows`` rows that ``build()`` turns into row tuples; True when queued.

        ``reject``: always queued (the request was admitted before it was answered).
        ``shed``: over ``queue_max_rows`` the rows are dropped, counted, and False returned,
        so the answer can say it was not logged. Building (packing, JSON) happens on the
        writer thread: the request path only appends a reference to a deque.
        """
        with self._lock:
            if (self.overflow == "shed"
                    and self.pending_rows + n_rows > self.queue_max_rows):
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

    # --- the writer thread --------------------------------------------------------------
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
            while self._entries and taken < self.max_write_rows:
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
            lost = taken - len(batch)
            with self._lock:
                self.pending_rows -= lost
                self.dropped_rows += lost
            if self._on_dropped is not None:
                self._on_dropped(lost)
        return last_seq, batch

    def _put_back(self, seq: int, batch: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._entries.appendleft((seq, len(batch), lambda: batch))

    def _write_pending(self) -> bool:
        """Write everything queued; False if a write failed (rows stay queued)."""
        if not self._write_refusals():
            return False
        while True:
            seq, batch = self._take()
            if not batch:
                self._mark_written(seq)
                return True
            started = time.perf_counter()
            try:
                self.log.write_rows(batch)
            except Exception as exc:
                self.failed_writes += 1
                self._last_write_failed = True
                log.error("prediction log write of %d rows failed (will retry): %s",
                          len(batch), exc)
                self._put_back(seq, batch)
                return False
            rate = len(batch) / max(time.perf_counter() - started, 1e-6)
            self._rate = rate if self._rate <= 0 else 0.8 * self._rate + 0.2 * rate
            self._last_write_failed = False
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
        """Wait until every row submitted (and every refusal counted) before this call is
        written."""
        with self._lock:
            target = self._submitted_seq
            refusals = bool(self._refusals)
        if target == 0 and not refusals:
            return True
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._written_cond:
            while self._written_seq < target or (refusals and self._refusals):
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
            refusals_left = sum(self._refusals.values())
        if refusals_left:
            log.error("prediction log: the counts of %d refused row(s) could not be written "
                      "at shutdown", refusals_left)
        if left:
            log.error("prediction log: %d row(s) could not be written at shutdown", left)
        return left
