"""What one app instance owns: settings, metrics, the model holder, the prediction log."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from driftloop.predlog import Heartbeat, LogWriter, PredictionLog, new_instance_id
from driftloop.settings import Settings
from serving.batcher import Batcher
from serving.metrics import Metrics
from serving.served import ModelHolder, ServedModel
from serving.shadow import ShadowScorer

log = logging.getLogger(__name__)

#: Live accuracy is recomputed from the log at most this often (seconds) on scrapes.
ACCURACY_TTL_S = 5.0


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    holder: ModelHolder = field(default_factory=ModelHolder)
    batcher: Batcher = field(default_factory=Batcher)
    log: PredictionLog | None = None
    writer: LogWriter | None = None
    heartbeat: Heartbeat | None = None
    #: Scores served rows with the shadow model (challenger or probation), off the hot path.
    shadow: ShadowScorer | None = None
    #: Why no shadow model is loaded although the registry names one (its load failed).
    shadow_error: str | None = None
    #: This process among the replicas that share the log (heartbeats, reload checks).
    instance_id: str = field(default_factory=new_instance_id)
    _accuracy_at: float = 0.0

    def open_log(self) -> None:
        """Connect to the prediction log (creating its tables) and start the writer."""
        self.log = PredictionLog(self.settings.log_url)
        s = self.settings
        self.writer = LogWriter(self.log, flush_interval=s.log_flush_interval_s,
                                batch_rows=s.log_batch_rows,
                                queue_max_rows=s.log_queue_max_rows,
                                overflow=s.log_overflow,
                                on_dropped=self.metrics.log_dropped.inc,
                                on_refused=self.metrics.log_refused.inc)
        self.writer.start()
        self.shadow = ShadowScorer(
            self.log, queue_max_rows=s.shadow_queue_max_rows,
            on_scored=lambda version, n: self.metrics.shadow_scored.labels(version).inc(n),
            on_skipped=self.metrics.shadow_skipped.inc)
        self.shadow.start()
        self.heartbeat = Heartbeat(self.log, self.instance_id, self._served_version)
        self.heartbeat.start()

    def _served_version(self) -> str | None:
        current = self.holder.current
        return current.version if current is not None else None

    def other_replicas(self) -> list[str]:
        """Live servers other than this one that share the prediction log."""
        if self.log is None:
            return []
        return [r.instance_id for r in self.log.live_replicas()
                if r.instance_id != self.instance_id]

    def close_log(self) -> None:
        """Drain the writer (graceful shutdown: SIGTERM loses no served row)."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.shadow is not None:
            left = self.shadow.stop()
            if left:
                log.warning("shadow scoring: %d queued row(s) left unscored at shutdown", left)
        if self.writer is not None:
            left = self.writer.stop()
            log.info("prediction log drained (%d rows written by this process, %d left)",
                     self.writer.written_rows, left)
        if self.log is not None:
            self.log.dispose()

    def install(self, served: ServedModel) -> ServedModel | None:
        """Swap ``served`` in, with this app's metric children bound; returns the old one."""
        served = replace(served, counters=self.metrics.prediction_counters(served.labels))
        spec = served.bundle.spec
        previous = self.holder.swap(served)
        self.metrics.set_model({"name": served.name, "version": served.version,
                                "inference_form": served.form,
                                "run_id": served.bundle.run_id or ""},
                               spec.gate.metric or "", spec.gate_threshold,
                               spec.gate_metric.higher_is_better)
        return previous

    def refresh_shadow(self, client: Any = None) -> None:
        """Load (or drop) the model to score beside the served one, as the registry says now
        (driftloop.promotion.live.shadow_target). Never fails serving: a shadow that cannot
        be loaded is logged, shown in ``GET /model`` and skipped."""
        from driftloop.promotion.live import shadow_target
        from driftloop.registry import connect
        from serving.served import load_version

        current, scorer = self.holder.current, self.shadow
        if current is None or scorer is None:
            return
        try:
            client = client or connect(self.settings)
            target = shadow_target(client, current.name, current.version)
        except Exception as exc:
            log.warning("shadow: cannot read the registry (%s); keeping what is loaded", exc)
            return
        if target is None:
            self._set_shadow(None, None)
            return
        version, role = target
        loaded = scorer.model
        if loaded is not None and (loaded.name, loaded.version) == (current.name, version):
            self._set_shadow(loaded, role)
            return
        try:
            served = load_version(client, current.name, version)
        except Exception as exc:
            self.shadow_error = f"v{version} ({role}) cannot be loaded: {exc}"
            log.error("shadow: %s; nothing is scored beside v%s", self.shadow_error,
                      current.version)
            self._set_shadow(None, None)
            return
        self._set_shadow(served, role)
        log.info("shadow: v%s (%s) scores beside v%s", version, role, current.version)

    def _set_shadow(self, served: ServedModel | None, role: str | None) -> None:
        assert self.shadow is not None
        if served is not None:
            self.shadow_error = None
        self.shadow.set_model(served, role)
        self.metrics.shadow_model.clear()
        if served is not None and role is not None:
            self.metrics.shadow_model.labels(served.version, role).set(1)

    def shadow_info(self) -> dict[str, Any] | None:
        """The ``shadow`` part of ``GET /model``."""
        scorer = self.shadow
        if scorer is None or (scorer.model is None and self.shadow_error is None):
            return None
        model = scorer.model
        return {"version": model.version if model is not None else None,
                "role": scorer.role, "scored_rows": scorer.scored_rows,
                "skipped_rows": scorer.skipped_rows, "error": self.shadow_error}

    @staticmethod
    def freeze_heap() -> None:
        """Move every object alive now (the ML stack, the model) out of the garbage
        collector's view. A full collection over that heap takes ~0.2 s and, under load,
        fires every few seconds: that was the server's p99. Called once the model is in; a
        reload unfreezes and collects first, so the old model's cycles are freed."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def refresh_gauges(self) -> None:
        """Values read at scrape time: log queue depth, live accuracy, orphan labels and
        the replicas sharing the log."""
        m = self.metrics
        if self.writer is not None:
            m.log_queue.set(self.writer.pending_rows)
            m.log_written.set(self.writer.written_rows)
            m.log_failed_writes.set(self.writer.failed_writes)
        if self.heartbeat is not None:  # read even while the log is away: that is when it fails
            m.heartbeat_failures.set(self.heartbeat.failures)
        model = self.holder.current
        now = time.monotonic()
        if model is None or self.log is None or now - self._accuracy_at < ACCURACY_TTL_S:
            return
        self._accuracy_at = now
        try:
            pairs = self.log.live_pairs(model.name, self.settings.drift_window_rows)
            orphans = self.log.orphan_labels(self.settings.feedback_orphan_grace_s)
            replicas = len(self.log.live_replicas())
        except Exception as exc:  # a scrape must not fail because the log is away
            log.warning("live accuracy, orphan labels and replicas unavailable: %s", exc)
            return
        m.live_labeled.set(len(pairs))
        m.set_live(model.task.live(pairs))
        m.feedback_orphans.set(orphans)
        m.replicas.set(replicas)
