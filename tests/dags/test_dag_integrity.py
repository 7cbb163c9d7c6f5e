"""DAG integrity: every DAG file parses, and every DAG is shaped as documented.

What CI checks on every change to dags/ or driftloop_airflow/. Parse *time* is measured in
benchmarks/dag_parse.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from driftloop.settings import PROJECT_ROOT

DAGS_FOLDER = PROJECT_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))
RETRAIN_PARAMS = {"window_start", "window_end", "cooldown_minutes", "deploy_target"}
EXPECTED = {
    "driftloop_drift_monitor": {"cron": "0 * * * *", "file": "driftloop_drift_monitor.py",
                                "params": RETRAIN_PARAMS},
    "driftloop_weekly_retrain": {"cron": "0 0 * * 0", "file": "driftloop_weekly_retrain.py",
                                 "params": RETRAIN_PARAMS},
    "driftloop_manual_promotion": {"cron": None, "file": "driftloop_manual_promotion.py",
                                   "params": {"action", "version", "reason", "deploy_target"}},
    "driftloop_live_gate": {"cron": "0 * * * *", "file": "driftloop_live_gate.py",
                            "params": {"deploy_target"}},
}
SCHEDULED = sorted(d for d, e in EXPECTED.items() if e["cron"])
#: What neither a DAG file nor the plugin package may import at module level.
HEAVY = ["sklearn", "mlflow", "kfp", "great_expectations", "scipy", "pandas", "numpy",
         "onnxruntime", "torch", "fastapi"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == set(EXPECTED)
    found = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert found == {p.name for p in DAG_FILES}, "a DAG file defines no DAG"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_is_documented_tagged_owned_and_retried(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 200, "doc_md explains the DAG in the UI"
    assert {"driftloop", "mlops"} <= set(dag.tags)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert Path(dag.fileloc).name == EXPECTED[dag_id]["file"]
    for task in dag.tasks:
        assert task.owner == "driftloop", task.task_id
        if task.task_id == "outcome":  # see test_every_run_ends_with_its_outcome
            continue
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff > 0, task.task_id
        assert task.max_retry_delay is not None, task.task_id
        callbacks = task.on_failure_callback or []
        names = [type(c).__name__ for c in callbacks]
        assert "WebhookNotifier" in names, f"{task.task_id} sends no failure alert"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_run_ends_with_its_outcome(dagbag, dag_id: str) -> None:
    """Issue 15, finding 2: the decision is on the run. `outcome` runs after every other
    task whatever their states, is the only leaf (so it sees them all), and neither retries
    nor alerts: it fails only to carry another task's failure, which alerted already."""
    dag = dagbag.dags[dag_id]
    outcome = dag.task_dict["outcome"]
    assert outcome.trigger_rule == "all_done"
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["outcome"]
    assert set(dag.task_dict) - {"outcome"} == outcome.get_flat_relative_ids(upstream=True)
    assert outcome.retries == 0
    assert not outcome.on_failure_callback
    assert "outcome" in dag.doc_md


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_schedule_is_as_documented(dagbag, dag_id: str) -> None:
    """Data-interval timetables: each run's window is the period it covers. The manual
    promotion DAG has no schedule: it runs when a person triggers it."""
    from airflow.sdk import CronDataIntervalTimetable

    timetable = dagbag.dags[dag_id].timetable
    if EXPECTED[dag_id]["cron"] is None:
        assert type(timetable).__name__ == "NullTimetable"
        return
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.expression == EXPECTED[dag_id]["cron"]
    assert str(timetable.timezone) in {"UTC", "Timezone('UTC')"}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_params_describe_themselves(dagbag, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    assert EXPECTED[dag_id]["params"] <= set(params)
    for name in params:
        assert params.get_param(name).description, f"param {name} has no description"


def _form_accepts(param: object, value: object) -> bool:
    """What the trigger form does with a field: validate it against the param's schema."""
    try:
        param.resolve(value)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_the_trigger_form_accepts_its_own_defaults(dagbag, dag_id: str) -> None:
    """Issue: the Trigger button was disabled with the defaults: `Param("", type="string")`
    reads an empty field as null, which a plain `string` refuses. Every default validates,
    and every param whose help says "Empty: ..." takes null (an empty field)."""
    params = dagbag.dags[dag_id].params
    params.validate()  # every default, as the form first shows it
    for name in params:
        param = params.get_param(name)
        if "Empty" in param.description:
            assert param.value is None, f"{name}: an optional param defaults to null"
            assert _form_accepts(param, None), f"{name}: an empty field is refused"
    assert _form_accepts(params.get_param("deploy_target"), "kubernetes")
    assert not _form_accepts(params.get_param("deploy_target"), "k8s")
    if "gate_min_value" in params:
        assert not _form_accepts(params.get_param("gate_min_value"), -1)  # bounds matter


def test_the_manual_promotion_form_requires_a_reason_and_nothing_else(dagbag) -> None:
    """The form starts valid but for the reason, which a person must give (it is recorded
    on the version); everything else has a working default or is optional."""
    params = dagbag.dags["driftloop_manual_promotion"].params
    for name in ("action", "version", "deploy_target"):
        param = params.get_param(name)
        assert _form_accepts(param, param.value), f"{name}: its default is refused"
    reason = params.get_param("reason")
    assert not _form_accepts(reason, "") and not _form_accepts(reason, "   ")
    assert not _form_accepts(reason, None)
    assert _form_accepts(reason, "v3 answers 500s on /predict")
    assert params.get_param("action").value == "rollback"
    assert _form_accepts(params.get_param("action"), "promote")
    assert not _form_accepts(params.get_param("action"), "delete")
    assert _form_accepts(params.get_param("version"), None)
    assert _form_accepts(params.get_param("version"), "3")


def test_the_form_check_fails_on_the_old_params() -> None:
    """The check above can fail: the params as they were refuse an empty field."""
    from airflow.sdk import Param

    assert not _form_accepts(Param("", type="string"), None)
    assert _form_accepts(Param(None, type=["null", "string"]), None)


def test_drift_monitor_flow(dagbag) -> None:
    dag = dagbag.dags["driftloop_drift_monitor"]
    assert {"force", "min_rows", "p_value", "min_effect"} <= set(dag.params)
    t = dag.task_dict
    assert t["check_serving"].upstream_task_ids == {"resolve_window"}
    assert t["apply_retention"].upstream_task_ids == {"check_serving"}
    assert "check_serving" in t["wait_for_rows"].upstream_task_ids
    assert {"drift_status", "serving_metrics"} <= t["validate_window"].upstream_task_ids
    assert t["decide"].downstream_task_ids == {"retrain_parameters", "no_retrain"}
    assert t["submit_retrain"].upstream_task_ids == {"retrain_parameters"}
    # Invalid data fails validate_window: decide (and so any retrain) never runs after it.
    assert "validate_window" in t["decide"].upstream_task_ids
    assert t["wait_for_rows"].deferrable is True
    assert t["submit_retrain"].deferrable is True
    assert t["submit_retrain"].pool == "driftloop_retrain"


def test_weekly_retrain_flow(dagbag) -> None:
    dag = dagbag.dags["driftloop_weekly_retrain"]
    submit = dag.task_dict["submit_retrain"]
    assert submit.pool == "driftloop_retrain"
    assert submit.deferrable is True
    assert submit.timeout >= timedelta(minutes=30)
    assert submit.upstream_task_ids == {"retrain_parameters"}


def test_manual_promotion_flow(dagbag) -> None:
    dag = dagbag.dags["driftloop_manual_promotion"]
    act = dag.task_dict["act"]
    assert type(act).__name__ == "ManualActionOperator"
    assert act.downstream_task_ids == {"outcome"}
    assert dag.is_paused_upon_creation is False, "a manual DAG runs only when triggered"


def test_live_gate_flow(dagbag) -> None:
    dag = dagbag.dags["driftloop_live_gate"]
    judge = dag.task_dict["judge"]
    assert type(judge).__name__ == "LiveGateOperator"
    assert judge.downstream_task_ids == {"outcome"}
    assert dag.is_paused_upon_creation is False, "the loop runs it without a person"


def _imported_after(code: str) -> list[str]:
    script = textwrap.dedent(f"""
        import json, sys
        {code}
        print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
    """)
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ),
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_the_dags_imports_no_ml_library() -> None:
    """The DAG processor parses these files often: nothing heavy at module level."""
    loaded = _imported_after(
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"        bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "        assert not bag.import_errors, bag.import_errors")
    assert [m for m in HEAVY if m in loaded] == []


def test_plugin_modules_import_no_ml_library() -> None:
    """The Airflow image has no sklearn, MLflow or kfp SDK: the plugins must not need them."""
    modules = sorted(
        ".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for p in (PROJECT_ROOT / "driftloop_airflow").rglob("*.py"))
    imports = "\n".join(f"        import {m.removesuffix('.__init__')}" for m in modules)
    loaded = _imported_after(imports.strip())
    assert [m for m in HEAVY if m in loaded] == []


def test_every_pool_a_task_names_is_declared_once_for_every_shape(dagbag) -> None:
    """Airflow never schedules a task whose pool does not exist: every pool a task names
    must be in resources.yaml, the declaration make up, the in-process runs and the
    cluster's scheduler all apply."""
    from driftloop_airflow.resources import load

    declared = set(load().pools)
    used = {task.pool for dag in dagbag.dags.values() for task in dag.tasks}
    undeclared = used - declared - {"default_pool"}
    assert undeclared == set(), f"tasks name pools resources.yaml does not declare: {undeclared}"
    assert "driftloop_retrain" in used


def test_the_pool_check_can_fail(dagbag, tmp_path: Path) -> None:
    """The same comparison, against a declaration that lacks the retrain pool."""
    from driftloop_airflow.resources import load

    empty = tmp_path / "resources.yaml"
    empty.write_text("pools: {}\n")
    used = {task.pool for dag in dagbag.dags.values() for task in dag.tasks}
    assert used - set(load(empty).pools) - {"default_pool"} == {"driftloop_retrain"}


def _plugin_scan_output(plugins_folder: Path) -> str:
    """What a task's start prints when Airflow's Task SDK scans the plugins folder (every
    task process does it, and its log shows it: Airflow routes warnings to its log)."""
    script = textwrap.dedent("""
        from airflow.sdk import plugins_manager
        plugins, errors = plugins_manager._get_plugins()
        assert not errors, errors
    """)
    env = dict(os.environ, AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins_folder),
               PYTHONWARNINGS="always")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return out.stdout + out.stderr


def test_task_logs_do_not_start_with_a_pathspec_deprecation(tmp_path: Path) -> None:
    """Issue 15, finding 3: every task log began with "GitWildMatchPattern ('gitwildmatch')
    is deprecated", from the glob .airflowignore that hid driftloop_airflow inside the
    plugins folder. The package is installed now, and the configured plugins folder needs
    no ignore file."""
    from driftloop_airflow.localenv import airflow_environ

    configured = Path(airflow_environ(tmp_path / "home")["AIRFLOW__CORE__PLUGINS_FOLDER"])
    assert configured.is_relative_to(tmp_path / "home")
    assert not (PROJECT_ROOT / "plugins").exists()
    assert "GitWildMatchPattern" not in _plugin_scan_output(configured)
    # The old layout, to show the check sees the warning when it is there.
    old = tmp_path / "plugins"
    old.mkdir()
    (old / ".airflowignore").write_text("driftloop_airflow\n")
    assert "GitWildMatchPattern" in _plugin_scan_output(old)
