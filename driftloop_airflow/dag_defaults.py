"""What every driftloop DAG shares: owner, retries with backoff, the alert, common params.

Read at DAG-parse time: environment only, nothing imported that is not already loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from airflow.sdk import Param

from driftloop.settings import Settings
from driftloop_airflow.config import OWNER
from driftloop_airflow.notifiers.webhook import WebhookNotifier

#: Before any data driftloop could have logged; catchup is off, so nothing runs from here.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def default_args() -> dict[str, Any]:
    """Retries with exponential backoff (1 min, 2 min, 4 min ... up to 20 min) and an alert on
    every task failure. Failures that retrying cannot fix (invalid data, a failed pipeline
    run) are raised as AirflowFailException and skip the retries."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=20),
        "on_failure_callback": [WebhookNotifier()],
    }


def dag_args(*, cron: str, tag: str) -> dict[str, Any]:
    """What both DAGs declare alike: a UTC data-interval schedule (each run's window is the
    period it covers), no catchup, one run at a time, the shared tags and default args."""
    from airflow.sdk import CronDataIntervalTimetable

    from driftloop_airflow.config import DAG_TAGS

    return {
        "schedule": CronDataIntervalTimetable(cron, timezone="UTC"),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(),
        "tags": [*DAG_TAGS, tag],
    }


def _optional_timestamp(description: str) -> Param:
    return Param(None, type=["null", "string"], format="date-time", description=description)


def window_params() -> dict[str, Param]:
    return {
        "window_start": _optional_timestamp(
            "Override the window's start (ISO-8601, UTC). Default: the run's data interval."),
        "window_end": _optional_timestamp(
            "Override the window's end (exclusive; set both or neither)."),
    }


#: The deploy targets, from the one declaration (the setting's allowed values).
DEPLOY_TARGETS: tuple[str, ...] = get_args(Settings.model_fields["deploy_target"].annotation)


def retrain_params(settings: Settings) -> dict[str, Param]:
    """What a manual run may change about the retrain it submits.

    Optional values are nullable with a null default, so the trigger form accepts its own
    defaults (an empty field is null; a `string` param would turn the form red)."""
    return {
        "model_name": Param(None, type=["null", "string"], description=(
            "Registered model to retrain. Empty: the model the server is serving.")),
        "spec": Param(None, type=["null", "string"], description=(
            "Model spec (YAML path as the pipeline sees it). Empty: the pipeline's default.")),
        "deploy_target": Param(settings.deploy_target, enum=list(DEPLOY_TARGETS),
                               description=(
            "Where a promoted model goes: `local` hot-reloads the server, `kubernetes` "
            "patches the serving Deployment, `none` only registers it.")),
        "gate_min_value": Param(None, type=["null", "number"], minimum=0, description=(
            "Gate: absolute floor for the spec's metric (e.g. 0.85). Empty: the spec's.")),
        "gate_max_regression": Param(None, type=["null", "number"], minimum=0, description=(
            "Gate: how far below the champion a challenger may fall (e.g. 0.02). Empty: "
            "the spec's.")),
        "min_fresh_rows": Param(30, type="integer", minimum=0, description=(
            "Labeled production rows of the window the pipeline needs to evaluate on them.")),
        "cooldown_minutes": Param(settings.retrain_cooldown_minutes, type="integer",
                                  minimum=0, description=(
            "No retrain within this many minutes after the last one (a running retrain always "
            "blocks a new one). 0: only a running retrain blocks.")),
    }
