"""One settings class for every part of driftloop, read from ``DRIFTLOOP_*`` environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: What a server does when its prediction log cannot keep up (see ``log_overflow``).
LogOverflow = Literal["reject", "shed"]

#: The shortest retention the loop can live with: the weekly retrain reads the last 7 days of
#: labeled rows, and every drift window is an hour within them.
MIN_RETENTION_DAYS = 7.0

#: The repository root when running from a checkout; specs resolve against it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: The multiple-testing corrections across features (``driftloop.drift.decision``).
DriftCorrection = Literal["bonferroni", "bh"]


class Settings(BaseSettings):
    """Runtime configuration. Every field is ``DRIFTLOOP_<FIELD>`` in the environment.

    Defaults are the embedded local shape: everything under one state directory, SQLite for
    both MLflow and the prediction log, so a fresh machine needs no server.
    """

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", extra="ignore")

    # --- where things live -------------------------------------------------------------
    state_dir: Path = Field(
        default=Path(".driftloop"),
        description="Local state: MLflow SQLite store, artifacts, prediction log, reports.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI. Default: sqlite:///<state_dir>/mlflow.db.",
    )
    mlflow_artifact_root: str | None = Field(
        default=None,
        description="Artifact location for new experiments with a local store. "
        "Default: <state_dir>/mlartifacts. Ignored by a remote tracking server.",
    )
    mlflow_experiment: str = Field(
        default="driftloop", description="MLflow experiment that training runs go to."
    )
    spec_path: Path = Field(
        default=PROJECT_ROOT / "specs" / "iris.yaml",
        description="Model spec (YAML): data source, features, target, estimator, gate.",
    )
    model_name: str | None = Field(
        default=None,
        description="Registered model name. Default: the spec's `name`.",
    )
    model_version: str | None = Field(
        default=None,
        description="Pin the served version (set by the Kubernetes deployer). "
        "Default: whatever the `champion` alias points at.",
    )
    prediction_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the prediction log. "
        "Default: sqlite:///<state_dir>/predictions.db.",
    )

    # --- serving ------------------------------------------------------------------------
    server_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the serving API answers (used by deployers, demo and CLI).",
    )
    host: str = Field(default="127.0.0.1", description="Serving bind address.")
    port: int = Field(default=8000, ge=1, le=65535, description="Serving port.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for POST /admin/reload. Unset: reload is refused (403).",
    )
    max_batch_rows: int = Field(default=1000, ge=1, description="Rows per /predict call.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Request body limit.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed CORS origins. Empty: CORS is off."
    )

    # --- prediction log -----------------------------------------------------------------
    log_flush_interval_s: float = Field(
        default=0.2, gt=0, le=1.0,
        description="Max time a served row waits in memory before it is written. A hard "
        "kill loses at most this plus one write (the ~1 s promise).",
    )
    log_batch_rows: int = Field(default=500, ge=1, description="Rows per log write.")
    log_queue_max_rows: int = Field(
        default=100_000, ge=1,
        description="Rows waiting in memory for the log before the server pushes back (see "
        "`log_overflow`). At least `max_batch_rows`.",
    )
    log_overflow: LogOverflow = Field(
        default="reject",
        description="When the queue is full: `reject` answers /predict with 503 and "
        "`Retry-After` before computing anything, so a client that retries loses no row; "
        "`shed` answers, does not log the rows, says `\"logged\": false` in the answer and "
        "counts them in driftloop_predlog_dropped_rows_total.",
    )
    log_retention_days: float = Field(
        default=30.0, ge=0,
        description="Rows (and labels, reports) older than this leave the log when retention "
        "runs (the hourly DAG's `apply_retention`, `driftloop log retention`). At least "
        f"{MIN_RETENTION_DAYS:g} days: the weekly retrain reads the last week. 0 keeps "
        "everything. The champion's and previous version's training windows are kept "
        "whatever their age.",
    )
    log_archive_url: str | None = Field(
        default=None,
        description="Before rows past retention are deleted, they are written to Parquet "
        "here (a folder, or any fsspec URL). Unset: they are deleted only.",
    )
    log_retention_batch_rows: int = Field(
        default=10_000, ge=100, le=1_000_000,
        description="Rows deleted per transaction (SQLite): a writer waits at most one batch.",
    )
    feedback_orphan_grace_s: float = Field(
        default=300.0, gt=0, le=86_400,
        description="A label whose request id matches no logged prediction after this many "
        "seconds counts as an orphan (driftloop_feedback_orphans). Before that it is only "
        "'not yet matched': its prediction's row may still be on its way to the log.",
    )

    # --- drift --------------------------------------------------------------------------
    drift_p_value: float = Field(
        default=0.05, gt=0, lt=1, description="Family-wise significance level."
    )
    drift_correction: DriftCorrection = Field(
        default="bonferroni",
        description="Multiple-testing correction across features: Bonferroni or "
        "Benjamini-Hochberg.",
    )
    drift_min_effect: float = Field(
        default=0.1, ge=0, le=1,
        description="Effect-size floor: a feature drifts only if its KS statistic (or, for "
        "categoricals, the total variation distance of category frequencies) is at least "
        "this, so huge windows do not flag negligible shifts.",
    )
    drift_min_change: float = Field(
        default=0.05, ge=0, le=1,
        description="Attribution floor: a feature is named as changed (in /drift/status "
        "'changes', the alert and the report) when its corrected p-value is under "
        "DRIFTLOOP_DRIFT_P_VALUE and its effect size is at least this. Lower than the alarm's "
        "floor: a person should see every real change, the alarm only those that matter.",
    )
    drift_min_rate: float = Field(
        default=0.01, ge=0, le=1,
        description="A categorical feature has changed when at least this share of the "
        "window's rows hold categories the reference never saw (and the change is "
        "significant).",
    )
    drift_unseen_alarm: float = Field(
        default=0.05, ge=0, le=1,
        description="A categorical feature drifts (the alarm) when at least this share of the "
        "window's rows hold categories the reference never saw (and the change is "
        "significant): the model's answers on them are guesses.",
    )
    drift_min_shift_sd: float = Field(
        default=0.25, ge=0,
        description="A numeric feature also drifts (the alarm) when its rows moved by at least "
        "this many reference standard deviations on average (Wasserstein distance / sd), "
        "significantly: a longer tail or a wider spread that no single value shows.",
    )
    drift_min_shift_change_sd: float = Field(
        default=0.1, ge=0,
        description="Attribution floor for that distance (in reference sds).",
    )
    drift_min_rows: int = Field(
        default=50, ge=1, description="Windows smaller than this report insufficient_data."
    )
    drift_window_rows: int = Field(
        default=1000, ge=1, description="Default window: the most recent N logged rows."
    )
    drift_max_window_rows: int = Field(
        default=200_000, ge=100,
        description="Most rows one drift evaluation reads: an interval with more is tested on "
        "an even sample of this many (bounds the server's memory and time per request).",
    )
    reference_max_rows: int = Field(
        default=100_000, ge=10, description="Cap on the training reference sample."
    )

    # --- retraining (read by the Airflow side) ------------------------------------------
    retrain_cooldown_minutes: int = Field(
        default=120, ge=0,
        description="No drift retrain is submitted within this many minutes after the last "
        "one (a retrain that is still running always blocks a new one). 0: only the running "
        "one blocks.",
    )
    retrain_timeout_minutes: int = Field(
        default=120, ge=1,
        description="How long the DAG waits for a retrain run before failing the task.",
    )
    deploy_target: Literal["local", "kubernetes", "none"] = Field(
        default="local",
        description="Where the retrain pipeline rolls a promoted model out: `local` "
        "(hot-reload the server), `kubernetes` (patch the serving Deployment) or `none`.",
    )
    # --- live promotion: the shadow stage and probation (driftloop.promotion.live) -------
    shadow: bool | None = Field(
        default=None,
        description="A challenger that passes the offline gate goes to a shadow stage first "
        "(alias `challenger`, scored beside the champion on live traffic) instead of being "
        "promoted at once. Unset: the spec's `gate.shadow`.",
    )
    shadow_max_hours: float = Field(
        default=48.0, gt=0,
        description="A challenger still without enough labeled live rows to decide after this "
        "many hours in shadow is rejected (not enough evidence by the deadline).",
    )
    probation_hours: float = Field(
        default=24.0, ge=0,
        description="After an automatic promotion the previous champion keeps scoring in "
        "shadow this long; when the new champion is significantly worse on the live labeled "
        "rows it is rolled back. 0: no probation.",
    )
    shadow_queue_max_rows: int = Field(
        default=50_000, ge=1,
        description="Rows waiting to be scored by the shadow model, at most; beyond it, shadow "
        "scoring skips rows (counted in driftloop_shadow_skipped_rows_total: callers never "
        "wait for the shadow).",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Failures and refused windows are POSTed here as JSON (Slack-compatible "
        "`text` field). Unset: alerts are only logged.",
    )

    @model_validator(mode="after")
    def _check_log_queue(self) -> Settings:
        if self.log_queue_max_rows < self.max_batch_rows:
            raise ValueError(
                f"DRIFTLOOP_LOG_QUEUE_MAX_ROWS ({self.log_queue_max_rows}) is below "
                f"DRIFTLOOP_MAX_BATCH_ROWS ({self.max_batch_rows}): a full batch could never "
                f"be admitted. Raise the queue or lower the batch limit.")
        return self

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        days = self.log_retention_days
        if 0 < days < MIN_RETENTION_DAYS:
            raise ValueError(
                f"DRIFTLOOP_LOG_RETENTION_DAYS={days:g} is shorter than the loop's windows: "
                f"the weekly retrain reads the last {MIN_RETENTION_DAYS:g} days of the log. "
                f"Use at least {MIN_RETENTION_DAYS:g}, or 0 to keep everything.")
        return self

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().resolve()
        self.spec_path = self.spec_path.expanduser().resolve()
        return self

    # --- derived values -----------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to the local SQLite store."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Artifact location for experiments this store creates."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        return (self.state_dir / "mlartifacts").as_uri()

    @property
    def log_url(self) -> str:
        """The prediction log's SQLAlchemy URL, defaulting to SQLite in the state dir."""
        return self.prediction_log_url or f"sqlite:///{self.state_dir / 'predictions.db'}"

    def ensure_state_dir(self) -> Path:
        """Create the state directory (only the local shape needs it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
