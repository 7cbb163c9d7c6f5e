"""Run a driftloop DAG in-process with ``dag.test()`` and get its outcome: demo and tests.

``dag.test()`` needs a migrated metadata database and the DAG folder configured before
Airflow is imported: build the environment with :mod:`driftloop_airflow.localenv`, run
:func:`migrate` once, then call :func:`run_drift_monitor` / :func:`run_dag`.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop_airflow.window import Window

DRIFT_MONITOR = "driftloop_drift_monitor"
WEEKLY_RETRAIN = "driftloop_weekly_retrain"
MANUAL_PROMOTION = "driftloop_manual_promotion"
LIVE_GATE = "driftloop_live_gate"


@dataclass
class DagRunOutcome:
    dag_id: str
    run_id: str
    state: str
    #: task_id -> final state ("success", "failed", "skipped", "upstream_failed", ...)
    tasks: dict[str, str | None]
    #: task_id -> {xcom key -> value} (return values under "return_value")
    xcoms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def value(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_id, {}).get(key)


def migrate(env: dict[str, str] | None = None) -> None:
    """``airflow db migrate`` in a child process (the only way it reads a fresh env)."""
    airflow = Path(sys.executable).with_name("airflow")
    command = [str(airflow)] if airflow.exists() else [sys.executable, "-m", "airflow"]
    subprocess.run([*command, "db", "migrate"], env=env, check=True,
                   capture_output=True, text=True)


def setup_local_airflow(home: Path, *, server_url: str, state_dir: Path,
                        admin_token: str | None = None, python: str | None = None) -> None:
    """Everything ``dag.test()`` needs, in this process: Airflow's environment (before
    Airflow is imported), the two connections (the server; the KFP local runner on
    ``state_dir``), a migrated metadata DB in ``home`` and the resources of ``resources.yaml``."""
    import os

    from driftloop_airflow.localenv import airflow_environ, local_connections_environ

    if "airflow.settings" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(
            Path(home).resolve()):
        raise RuntimeError("Airflow was imported before setup_local_airflow(): call it first")
    os.environ.update(airflow_environ(Path(home)))
    os.environ.update(local_connections_environ(server_url=server_url, state_dir=state_dir,
                                                token=admin_token, python=python))
    migrate(dict(os.environ))
    from driftloop_airflow.resources import apply

    apply()


def load_dag(dag_id: str) -> Any:
    """The DAG as the scheduler parses it, from the configured DAGs folder."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import conf

    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    if dag_id not in bag.dags:
        raise KeyError(f"DAG {dag_id!r} not found; import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def _outcome(dag_run: Any) -> DagRunOutcome:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        tasks = {ti.task_id: _state(ti.state) for ti in tis}
        xcoms: dict[str, dict[str, Any]] = {}
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == dag_run.dag_id,
                                                       XComModel.run_id == dag_run.run_id))
        for row in rows:
            xcoms.setdefault(row.task_id, {})[row.key] = XComModel.deserialize_value(row)
    return DagRunOutcome(dag_run.dag_id, dag_run.run_id, str(_state(dag_run.state)), tasks,
                         xcoms)


def _state(state: Any) -> str | None:
    """States are enums or their string values depending on where they were read."""
    return None if state is None else str(getattr(state, "value", state))


def run_dag(dag_id: str, *, logical_date: datetime | None = None,
            conf: dict[str, Any] | None = None) -> DagRunOutcome:
    """One run of ``dag_id`` through ``dag.test()``; the run's and every task's state."""
    dag = load_dag(dag_id)
    dag_run = dag.test(logical_date=logical_date, run_conf=conf or {})
    return _outcome(dag_run)


def run_drift_monitor(start: datetime | str, end: datetime | str,
                      **params: Any) -> DagRunOutcome:
    """The drift monitor over ``[start, end)``.

    An aligned hour runs as a scheduled or backfilled run would: its data interval is the
    window. Any other window is passed as the ``window_start``/``window_end`` params.
    ``params`` are the DAG's params (``force``, ``cooldown_minutes``, ``p_value``, ...).
    """
    window = Window.of(start, end)
    conf = dict(params)
    hour = timedelta(hours=1)
    aligned = (window.end - window.start == hour and window.end.timestamp() % 3600 == 0)
    if not aligned:
        conf.update(window_start=window.as_dict()["start"], window_end=window.as_dict()["end"])
    # dag.test() gives a manual run the last complete interval before its logical date.
    return run_dag(DRIFT_MONITOR, logical_date=window.end, conf=conf)


def run_weekly_retrain(start: datetime | str | None = None, end: datetime | str | None = None,
                       **params: Any) -> DagRunOutcome:
    """The weekly retrain, over ``[start, end)`` when given (else the last complete week)."""
    conf = dict(params)
    if start is not None and end is not None:
        window = Window.of(start, end)
        conf.update(window_start=window.as_dict()["start"], window_end=window.as_dict()["end"])
    return run_dag(WEEKLY_RETRAIN, conf=conf)


def run_manual_action(action: str, *, reason: str, version: str | None = None,
                      deploy_target: str | None = None) -> DagRunOutcome:
    """The manual promotion DAG, as a person triggers it from the UI."""
    conf: dict[str, Any] = {"action": action, "reason": reason, "version": version}
    if deploy_target is not None:
        conf["deploy_target"] = deploy_target
    return run_dag(MANUAL_PROMOTION, conf=conf)


def run_live_gate(deploy_target: str | None = None) -> DagRunOutcome:
    """One run of the hourly live gate, now."""
    return run_dag(LIVE_GATE, conf={} if deploy_target is None else
                   {"deploy_target": deploy_target})
