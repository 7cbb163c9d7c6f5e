"""Names and settings the DAGs and plugins share.

The Airflow side reads the same ``DRIFTLOOP_*`` environment as the rest of driftloop: this
class extends :class:`driftloop.settings.Settings` (pydantic only, no ML stack) with what only
Airflow needs. DAG files read it at parse time, so it must stay cheap: environment only.
"""

from __future__ import annotations

from pydantic import Field

from driftloop.settings import Settings

#: Airflow Connection ids (override per operator; ``make up`` defines both through AIRFLOW_CONN_*).
SERVING_CONN_ID = "driftloop_serving"
KFP_CONN_ID = "driftloop_kfp"
#: One-slot pool around "check cooldown + submit": two DAG runs can never both submit.
RETRAIN_POOL = "driftloop_retrain"
#: Tags every driftloop DAG carries (the integrity test checks them).
DAG_TAGS = ["driftloop", "mlops"]
OWNER = "driftloop"

REASON_DRIFT = "drift"
REASON_SCHEDULE = "schedule"
REASON_MANUAL = "manual"


class AirflowSettings(Settings):
    """``DRIFTLOOP_*`` settings of the Airflow side, on top of the shared ones."""

    retrain_cooldown_minutes: int = Field(
        default=120, ge=0,
        description="No drift retrain is submitted within this many minutes after the last "
        "one (a retrain that is still running always blocks a new one). 0: only the running "
        "one blocks.",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Failures and refused windows are POSTed here as JSON (Slack-compatible "
        "`text` field). Unset: alerts are only logged.",
    )
    deploy_target: str = Field(
        default="local",
        description="Where the retrain pipeline rolls a promoted model out: `local` "
        "(hot-reload the server) or `kubernetes` (patch the serving Deployment).",
    )
    retrain_timeout_minutes: int = Field(
        default=120, ge=1,
        description="How long the DAG waits for a retrain run before failing the task.",
    )


def airflow_settings() -> AirflowSettings:
    """Fresh settings from the environment (no cache: tests and DAG runs change it)."""
    return AirflowSettings()
