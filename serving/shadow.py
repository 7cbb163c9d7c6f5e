"""Shadow scoring: a second model answers the same rows, off the request path.

The shadow stage's ``challenger``, or the old champion during probation, is loaded beside
the served model (driftloop.promotion.live.shadow_target). ``/predict`` answers with the
served model as always and hands the rows to :class:`ShadowScorer` (one ``deque.append``);
its thread predicts them with the shadow model and writes the answers to the prediction
log's ``shadow_predictions``, keyed by the served rows' request ids.

Callers never wait for the shadow. When the scorer falls behind (more than
``queue_max_rows`` rows waiting), new rows are skipped, counted
(``driftloop_shadow_skipped_rows_total``) and logged once per episode: the live gate then
has fewer rows to judge on, never wrong ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftloop.predlog import now_micros

log = logging.getLogger(__name__)

#: Rows predicted and written together, at most.
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class _Entry:
    model: Any  # serving.served.ServedModel
    ts: int
    ids: list[str]
    numeric: np.ndarray
    categorical: np.ndarray


class ShadowScorer:
    """Scores served rows with the shadow model on its own thread."""

    def __init__(self, log_store: Any, *, queue_max_rows: int = 50_000,
                 flush_interval: float = 1.0,
                 on_scored: Callable[[str, int], Any] | None = None,
                 on_skipped: Callable[[int], Any] | None = None) -> None:
        self.log_store = log_store
        self.queue_max_rows = queue_max_rows
        self.flush_interval = flush_interval
        self._on_scored = on_scored
        self._on_skipped = on_skipped
        #: The shadow model and why it scores (``challenger`` | ``probation``), or None.
        self.model: Any = None
        self.role: str | None = None
        self._entries: deque[_Entry] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._behind = False
        self.pending_rows = 0
        self.scored_rows = 0
        self.skipped_rows = 0
        self.failed_batches = 0

    def set_model(self, model: Any, role: str | None) -> None:
        """Score with ``model`` from now on (None: stop scoring; queued rows still finish
        with the model they were queued for)."""
        self.model, self.role = model, role if model is not None else None

    # --- the request path ---------------------------------------------------------------
    def submit(self, ids: list[str], numeric: np.ndarray, categorical: np.ndarray) -> None:
        model = self.model
        if model is None:
            return
        n = len(ids)
        with self._lock:
            if self.pending_rows + n > self.queue_max_rows:
                self.skipped_rows += n
                first = not self._behind
                self._behind = True
            else:
                self._entries.append(_Entry(model, now_micros(), ids, numeric, categorical))
                self.pending_rows += n
                first = None
        if first is not None:
            if self._on_skipped is not None:
                self._on_skipped(n)
            if first:
                log.warning("shadow scoring is behind (%d rows waiting): rows are skipped "
                            "until it catches up (driftloop_shadow_skipped_rows_total)",
                            self.pending_rows)
            return
        if self.pending_rows >= BATCH_ROWS:
            self._wake.set()

    # --- the scorer thread --------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftloop-shadow",
                                            daemon=True)
            self._thread.start()

    def _take(self) -> list[_Entry]:
        taken: list[_Entry] = []
        rows = 0
        with self._lock:
            while self._entries and rows < BATCH_ROWS:
                entry = self._entries.popleft()
                taken.append(entry)
                rows += len(entry.ids)
        return taken

    def _score(self, entries: list[_Entry]) -> None:
        """Predict each run of entries that share a model in one call, then write."""
        rows: list[tuple[int, str, str, str, str]] = []
        i = 0
        while i < len(entries):
            j = i
            while j < len(entries) and entries[j].model is entries[i].model:
                j += 1
            model, group = entries[i].model, entries[i:j]
            numeric = np.concatenate([e.numeric for e in group])
            categorical = np.concatenate([e.categorical for e in group])
            outputs = np.asarray(model.outputs(numeric, categorical), dtype=np.float64)
            labels, _ = model.task.decode(outputs, model.label_array)
            k = 0
            for entry in group:
                for rid in entry.ids:
                    rows.append((entry.ts, rid, model.name, model.version, labels[k]))
                    k += 1
            i = j
        self.log_store.write_shadow(rows)
        if self._on_scored is not None:
            per_version: dict[str, int] = {}
            for entry in entries:
                version = entry.model.version
                per_version[version] = per_version.get(version, 0) + len(entry.ids)
            for version, n in per_version.items():
                self._on_scored(version, n)

    def _drain_once(self) -> bool:
        entries = self._take()
        if not entries:
            return True
        n = sum(len(e.ids) for e in entries)
        try:
            self._score(entries)
        except Exception as exc:  # never stop the thread; the rows are counted as skipped
            self.failed_batches += 1
            log.error("shadow scoring of %d rows failed; they are skipped: %s", n, exc)
            with self._lock:
                self.skipped_rows += n
            if self._on_skipped is not None:
                self._on_skipped(n)
        else:
            self.scored_rows += n
        with self._lock:
            self.pending_rows -= n
            if self.pending_rows == 0:
                self._behind = False
        return False

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while not self._drain_once():
                pass
            if self._stopping:
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.pending_rows and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pending_rows == 0

    def stop(self, timeout: float = 30.0) -> int:
        """Score what is queued and stop; returns the rows left unscored."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            while not self._drain_once():
                pass
        return self.pending_rows
