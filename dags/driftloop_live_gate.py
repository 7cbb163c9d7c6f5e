"""Hourly live gate: the shadow stage's challenger and a new champion's probation, judged on
the live labeled rows.

The task bodies live in the plugin package (``driftloop_airflow``); this file declares the
flow and imports nothing heavy.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from driftloop_airflow.config import airflow_settings
from driftloop_airflow.dag_defaults import DEPLOY_TARGETS, dag_args
from driftloop_airflow.operators.promotion import LiveGateOperator
from driftloop_airflow.tasks import live_gate_outcome

settings = airflow_settings()

DOC = """
### driftloop live gate

Every hour, one decision on what scores beside the champion on live traffic
(`driftloop live-gate`, run where retrains run):

- **Shadow stage.** A challenger (alias `challenger`: a retrain that passed the offline gate
  with the spec's `gate.shadow` or `DRIFTLOOP_SHADOW` on) is judged by the same paired gate on
  the labeled live rows both models answered. Passed: it is promoted and served, and its
  probation begins. Rejected: the alias is removed and the reason tagged. Not enough
  evidence: it waits, until `DRIFTLOOP_SHADOW_MAX_HOURS`, then it is rejected.
- **Probation.** After an automatic promotion the previous champion keeps scoring for
  `DRIFTLOOP_PROBATION_HOURS`. When the new champion is significantly worse on the live
  labeled rows, it is **rolled back** and an alert is sent (`DRIFTLOOP_ALERT_WEBHOOK_URL`);
  both versions record why. At the end of the period, probation ends.

With nothing in shadow the run does nothing and says so. The `outcome` task, last, states
the decision in one sentence in its XCom.
"""


@dag(
    dag_id="driftloop_live_gate",
    description="Hourly: promote or reject the challenger in shadow; roll back a champion "
                "that fails its probation",
    **dag_args(cron="@hourly", tag="promotion"),
    is_paused_upon_creation=False,
    doc_md=DOC,
    params={
        "deploy_target": Param(settings.deploy_target, enum=list(DEPLOY_TARGETS),
                               description=(
            "How a new champion is served: local (reload the server), kubernetes (patch the "
            "Deployment), none (move the aliases only).")),
    },
)
def driftloop_live_gate() -> None:
    judge = LiveGateOperator(task_id="judge", deploy_target="{{ params.deploy_target }}")
    judge >> live_gate_outcome()


driftloop_live_gate()
