"""Prometheus metrics (``driftloop_*``), one registry per app so tests can build several."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

#: Paths that get their own ``endpoint`` label; anything else is ``other`` (bounded labels).
ENDPOINTS = ("/predict", "/feedback", "/health", "/ready", "/metrics", "/model",
             "/model/expectations", "/drift/status", "/drift/window", "/admin/reload",
             "/admin/retention",
             "/docs", "/openapi.json")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("driftloop_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("driftloop_request_duration_seconds",
                                 "Request latency by endpoint.", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("driftloop_predictions", "Served rows by predicted class.",
                                   ["label"], registry=r)
        self.model = Info("driftloop_model", "The model being served.", registry=r)
        self.reloads = Counter("driftloop_model_reloads", "Model reloads by result.",
                               ["result"], registry=r)
        self.unknown_categories = Counter(
            "driftloop_unknown_categories", "Served values of categorical features that the "
            "reference never saw.", ["feature"], registry=r)
        self.refused_values = Counter(
            "driftloop_refused_values", "Rows /predict refused (422) for a bad value, by the "
            "feature at fault and the reason: missing (null where features.nullable does not "
            "allow it), type, range. Never logged; the drift answer reports their rate.",
            ["feature", "reason"], registry=r)
        self.drift_missing_rate = Gauge(
            "driftloop_drift_missing_rate", "Nullable feature: the share of the last "
            "evaluated window's rows where it was missing.", ["feature"], registry=r)
        self.drift_refused_rate = Gauge(
            "driftloop_drift_refused_rate", "The share of the last evaluated window's rows "
            "(served plus refused) refused for a bad value of the feature.", ["feature"],
            registry=r)
        self.drift_statistic = Gauge("driftloop_drift_statistic",
                                     "Per-feature test statistic of the last evaluation.",
                                     ["feature", "test"], registry=r)
        self.drift_p_value = Gauge("driftloop_drift_p_value",
                                   "Per-feature p-value (uncorrected) of the last evaluation.",
                                   ["feature"], registry=r)
        self.drift_p_value_adjusted = Gauge(
            "driftloop_drift_p_value_adjusted",
            "Per-feature p-value after the multiple-testing correction.", ["feature"],
            registry=r)
        self.drift_feature = Gauge("driftloop_drift_feature_drifted",
                                   "1 if the feature drifted in the last evaluation.",
                                   ["feature"], registry=r)
        self.feature_changed = Gauge("driftloop_drift_feature_changed",
                                     "1 if the feature changed (the attribution: a real "
                                     "change, maybe below the alarm) in the last evaluation.",
                                     ["feature"], registry=r)
        self.drift_shift_sd = Gauge("driftloop_drift_shift_sd",
                                    "Numeric feature: how far rows moved on average in the "
                                    "last evaluation, in reference sds (Wasserstein).",
                                    ["feature"], registry=r)
        self.output_drift = Gauge("driftloop_output_drift",
                                  "Prediction or label drift in the last evaluation: 1, 0, or "
                                  "-1 without a verdict (too few rows, no reference).",
                                  ["output"], registry=r)
        self.dataset_drift = Gauge("driftloop_dataset_drift",
                                   "1 if the last evaluation found dataset drift, 0 if not, "
                                   "-1 before any evaluation or with insufficient data.",
                                   registry=r)
        self.drift_window_rows = Gauge("driftloop_drift_window_rows",
                                       "Rows in the last evaluated window.", registry=r)
        self.drift_evaluated_at = Gauge("driftloop_drift_last_evaluation_timestamp_seconds",
                                        "When drift was last evaluated.", registry=r)
        self.live_accuracy = Gauge("driftloop_live_accuracy",
                                   "Accuracy over the latest labeled predictions (feedback); "
                                   "NaN without feedback.", registry=r)
        #: Regressors: live errors over the same labeled predictions (NaN for classifiers).
        self.live_mae = Gauge("driftloop_live_mae", "Mean absolute error over the latest "
                              "labeled predictions of a regressor; NaN without feedback or "
                              "for a classifier.", registry=r)
        self.live_rmse = Gauge("driftloop_live_rmse", "Root mean squared error over the "
                               "latest labeled predictions of a regressor; NaN without "
                               "feedback or for a classifier.", registry=r)
        self.gate_ceiling = Gauge(
            "driftloop_gate_ceiling", "The served model's gate ceiling (its spec's "
            "gate.max_value) for a lower-is-better gate metric (rmse, mae, mape): the live "
            "error of that name should stay below it.", ["metric"], registry=r)
        self.gate_floor = Gauge(
            "driftloop_gate_floor", "The served model's gate floor (its spec's gate.min_value) "
            "for its gate metric: the live metric of that name should stay above it (alert "
            "DriftloopLiveAccuracyBelowFloor).", ["metric"], registry=r)
        self.live_labeled = Gauge("driftloop_live_labeled_rows",
                                  "Labeled predictions behind driftloop_live_accuracy.",
                                  registry=r)
        self.feedback = Counter("driftloop_feedback", "Labels recorded by this replica, by "
                                "outcome: correct or incorrect (a classifier's served "
                                "prediction was right or wrong), matched (a regressor's "
                                "label joined its prediction), not_yet_matched (stored before its "
                                "prediction's row was in the log).", ["outcome"], registry=r)
        self.feedback_orphans = Gauge(
            "driftloop_feedback_orphans", "Labels of the last 24 h, older than "
            "DRIFTLOOP_FEEDBACK_ORPHAN_GRACE_S, whose request id matches no logged prediction.",
            registry=r)
        self.replicas = Gauge("driftloop_replicas", "Servers heartbeating into this "
                              "prediction log (this one included).", registry=r)
        self.heartbeat_failures = Gauge("driftloop_replica_heartbeat_failures",
                                        "Heartbeats of this replica that failed.", registry=r)
        self.log_queue = Gauge("driftloop_predlog_queue_rows",
                               "Served rows waiting to be written to the prediction log.",
                               registry=r)
        self.log_dropped = Counter(
            "driftloop_predlog_dropped_rows", "Rows answered but not logged: the queue was "
            "full under DRIFTLOOP_LOG_OVERFLOW=shed (each such answer said \"logged\": "
            "false), or they could not be encoded.", registry=r)
        self.log_refused = Counter(
            "driftloop_predlog_refused_rows", "Rows refused with 503 and Retry-After because "
            "the log queue was full (DRIFTLOOP_LOG_OVERFLOW=reject); nothing of them was "
            "answered or logged.", registry=r)
        self.retention_deleted = Counter(
            "driftloop_predlog_retention_deleted_rows", "Rows removed from the prediction "
            "log by retention, by table.", ["table"], registry=r)
        self.log_written = Gauge("driftloop_predlog_written_rows",
                                 "Rows this replica wrote to the prediction log.", registry=r)
        self.log_failed_writes = Gauge("driftloop_predlog_failed_writes",
                                       "Log writes that failed and were retried.", registry=r)
        self.shadow_model = Gauge(
            "driftloop_shadow_model", "1 for the version scored beside the served one, with "
            "why (role: challenger = the shadow stage, probation = the previous champion after "
            "a promotion); none while nothing is.", ["version", "role"], registry=r)
        self.shadow_scored = Counter(
            "driftloop_shadow_scored_rows", "Served rows the shadow model also answered "
            "(written to the log's shadow_predictions), by its version.", ["version"],
            registry=r)
        self.shadow_skipped = Counter(
            "driftloop_shadow_skipped_rows", "Served rows the shadow model did not answer: "
            "its queue was full or scoring failed (callers were answered; the live gate "
            "judges on fewer rows).", registry=r)
        self.dataset_drift.set(-1)
        for gauge in (self.live_accuracy, self.live_mae, self.live_rmse):
            gauge.set(math.nan)
        # Children bound once: .labels() costs a lock and a dict lookup per call.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(endpoint, method, str(status)),
                        self.latency.labels(endpoint))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def prediction_counters(self, labels: Sequence[str]) -> list[Any]:
        return [self.predictions.labels(label) for label in labels]

    def set_model(self, info: dict[str, str], gate_metric: str, threshold: float,
                  higher_is_better: bool) -> None:
        """The served model's identity and gate threshold (a floor, or a ceiling)."""
        self.model.info(info)
        self.gate_floor.clear()
        self.gate_ceiling.clear()
        (self.gate_floor if higher_is_better else self.gate_ceiling).labels(
            gate_metric).set(threshold)
        self.clear_drift()

    def set_live(self, figures: dict[str, float | None]) -> None:
        """The served task's live figures (accuracy, or mae and rmse); the others NaN."""
        for name, gauge in (("accuracy", self.live_accuracy), ("mae", self.live_mae),
                            ("rmse", self.live_rmse)):
            value = figures.get(name)
            gauge.set(math.nan if value is None else value)

    def clear_drift(self) -> None:
        for gauge in (self.drift_statistic, self.drift_p_value, self.drift_p_value_adjusted,
                      self.drift_feature, self.feature_changed, self.drift_shift_sd,
                      self.output_drift, self.drift_missing_rate, self.drift_refused_rate):
            gauge.clear()
        self.dataset_drift.set(-1)

    def set_drift(self, report: dict[str, Any], evaluated_at: float) -> None:
        self.clear_drift()
        self.drift_window_rows.set(report["window"]["rows"])
        self.drift_evaluated_at.set(evaluated_at)
        if report["status"] != "ok":
            return
        for f in report["features"]:
            self.drift_statistic.labels(f["feature"], f["test"]).set(f["statistic"])
            self.drift_p_value.labels(f["feature"]).set(f["p_value"])
            self.drift_p_value_adjusted.labels(f["feature"]).set(f["p_value_adjusted"])
            self.drift_feature.labels(f["feature"]).set(int(f["drifted"]))
            self.feature_changed.labels(f["feature"]).set(int(f["changed"]))
            if f.get("shift_sd") is not None:
                self.drift_shift_sd.labels(f["feature"]).set(f["shift_sd"])
            if f.get("missing_rate") is not None:
                self.drift_missing_rate.labels(f["feature"]).set(f["missing_rate"])
            if f.get("refused_rate"):
                self.drift_refused_rate.labels(f["feature"]).set(f["refused_rate"])
        self.dataset_drift.set(int(report["dataset_drift"]))
        for output in ("prediction", "label"):
            part = report.get(output) or {}
            self.output_drift.labels(output).set(
                int(part["drifted"]) if part.get("status") == "ok" else -1)
