"""Manual promote or rollback, from the Airflow UI: what `driftloop promote` and
`driftloop rollback` do, with the trigger form as the command line.

The task bodies live in the plugin package (``driftloop_airflow``); this file declares the
flow and imports nothing heavy.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from driftloop_airflow.config import DAG_TAGS, airflow_settings
from driftloop_airflow.dag_defaults import DEPLOY_TARGETS, START_DATE, default_args
from driftloop_airflow.operators.promotion import ACTIONS, ManualActionOperator
from driftloop_airflow.tasks import action_outcome

settings = airflow_settings()

DOC = """
### driftloop manual promote / rollback

Trigger this DAG (▶, *Trigger DAG*) to move the `champion` alias by hand, exactly as the
CLI does (`driftloop promote VERSION --reason ...`, `driftloop rollback --reason ...`):

- **rollback**: `previous` becomes `champion` again (the current champion becomes
  `previous`) and is served;
- **promote**: the given registered version becomes `champion` and is served.

The new champion is served through the deploy target (`local`: the server reloads it;
`kubernetes`: the serving Deployment is patched and its rollout awaited). If serving fails,
the aliases go back where they were and nothing is tagged. Otherwise the version records
who (the user who triggered this run, and the run id), when and why; a rollback also records
it on the version it took out of service. `driftloop history` and the MLflow UI show it.

Refused, changing nothing: an empty reason, a promote without a version, an unknown version
(the error lists the known ones), the champion itself, a rollback with no `previous`, a
server that cannot be reached. A refusal fails the run without retries.

The command runs where retrains run (connection `driftloop_kfp`): locally a subprocess of
the project's interpreter; in the cluster a pod of the trainer image. The `outcome` task,
last, states what happened in one sentence in its XCom.
"""


@dag(
    dag_id="driftloop_manual_promotion",
    description="Manual promote or rollback of the champion, with a recorded reason",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=[*DAG_TAGS, "promotion"],
    is_paused_upon_creation=False,
    doc_md=DOC,
    params={
        "action": Param("rollback", enum=list(ACTIONS), description=(
            "rollback: previous becomes champion again. promote: the version below becomes "
            "champion.")),
        "version": Param(None, type=["null", "string"], description=(
            "The registered version to promote (promote only). Empty: none (rollback).")),
        "reason": Param("", type="string", minLength=1, pattern=r"\S", description=(
            "Why: recorded on the version with who and when. Required.")),
        "deploy_target": Param(settings.deploy_target, enum=list(DEPLOY_TARGETS),
                               description=(
            "How to serve the new champion: local (reload the server), kubernetes (patch "
            "the Deployment), none (move the aliases only).")),
    },
)
def driftloop_manual_promotion() -> None:
    act = ManualActionOperator(
        task_id="act",
        action="{{ params.action }}",
        version="{{ params.version or '' }}",
        reason="{{ params.reason }}",
        deploy_target="{{ params.deploy_target }}",
        timeout_s=300.0,  # the rollout's wait, as the CLI's --timeout default
    )
    act >> action_outcome()


driftloop_manual_promotion()
