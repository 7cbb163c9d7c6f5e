"""Names and settings the DAGs and plugins share.

The Airflow side reads the same ``DRIFTLOOP_*`` environment as the rest of driftloop, through
the one :class:`driftloop.settings.Settings` class (pydantic only, no ML stack). DAG files
read it at parse time, so it must stay cheap: environment only.
"""

from __future__ import annotations

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


def airflow_settings() -> Settings:
    """Fresh settings from the environment (no cache: tests and DAG runs change it)."""
    return Settings()
