"""``make up`` for real: scripts/local-up.sh starts MLflow, the server and ``airflow standalone``;
the drift monitor is triggered and backfilled through Airflow's REST API and runs under the
real scheduler, executor and triggerer; scripts/local-down.sh stops every process group.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from driftloop.settings import PROJECT_ROOT
from tests.local_stack import (
    DAG,
    Stack,
    log_past_hours,
    make_up,
    shown_end,
    stack_runs,
    xcoms,
)
from tests.pipelines.conftest import LocalLoop, base_env, free_port, iris_rows
from tests.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(champion_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_up(champion_template, tmp_path_factory.mktemp("make-up")) as up:
        yield up


def test_make_up_prints_where_everything_answers(stack: Stack) -> None:
    assert f"Airflow          {stack.airflow}   login: admin / s3cret" in stack.up_output
    assert f"driftloop API    {stack.server}/docs" in stack.up_output
    assert httpx.get(f"{stack.mlflow}/health", timeout=10).status_code == 200
    assert httpx.get(f"{stack.server}/ready", timeout=10).status_code == 200
    dags = {d["dag_id"]: d for d in stack.api("GET", "/dags")["dags"]}
    assert set(dags) == {DAG, "driftloop_weekly_retrain", "driftloop_manual_promotion",
                         "driftloop_live_gate"}
    assert dags[DAG]["is_paused"] is False and dags["driftloop_weekly_retrain"]["is_paused"]
    assert dags["driftloop_manual_promotion"]["is_paused"] is False
    assert dags["driftloop_live_gate"]["is_paused"] is False
    assert stack.api("GET", "/importErrors")["total_entries"] == 0
    pool = stack.api("GET", "/pools/driftloop_retrain")
    assert pool["slots"] == 1
    # Issue 15, finding 4: Admin -> Connections lists both, from the metadata DB.
    listed = {c["connection_id"]: c for c in stack.api("GET", "/connections")["connections"]}
    assert set(listed) == {"driftloop_serving", "driftloop_kfp"}
    assert listed["driftloop_serving"]["host"] == "127.0.0.1"
    assert listed["driftloop_serving"]["port"] == int(stack.server.rsplit(":", 1)[1])
    assert "admin token" in listed["driftloop_serving"]["description"]
    assert '"backend": "local"' in listed["driftloop_kfp"]["extra"]
    # Again while up: every part is left alone.
    again = subprocess.run([str(PROJECT_ROOT / "scripts" / "local-up.sh")], env=stack.env,
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    for part in ("mlflow", "serve", "airflow"):
        assert f"{part}: already running" in again.stdout


def test_a_taken_port_is_refused_before_anything_starts(stack: Stack, tmp_path: Path) -> None:
    airflow_port = stack.airflow.rsplit(":", 1)[1]
    env = {**stack.env, "DRIFTLOOP_STATE_DIR": str(tmp_path / "other"),
           "MLFLOW_PORT": str(free_port()), "SERVE_PORT": airflow_port}
    refused = subprocess.run([str(PROJECT_ROOT / "scripts" / "local-up.sh")], env=env,
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert (f"port {airflow_port} (driftloop server) is taken by another program: stop it, "
            "or pick another port with SERVE_PORT=<port>") in refused.stderr
    assert not list((tmp_path / "other" / "run").glob("*.pid"))
    assert not (tmp_path / "other" / "mlflow.db").exists(), "nothing bootstrapped"


@pytest.mark.full
def test_a_rest_triggered_run_succeeds(stack: Stack) -> None:
    """What a user does from the UI or a script: trigger with ``logical_date: null``.
    make reliability only: in make test, the deferred-trigger test below triggers the same
    way and follows its run to the end, and the backfill test's runs succeed under the
    real scheduler."""
    loop = LocalLoop(stack.state, base_env(stack.state))
    start = datetime.now(UTC) - timedelta(seconds=1)
    rows = iris_rows(80, seed=71)
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    answer = httpx.post(f"{stack.server}/predict", timeout=30,
                        json={"records": rows[features].to_dict("records")})
    assert answer.status_code == 200, answer.text
    time.sleep(1)
    end = datetime.now(UTC)
    run = stack.api("POST", f"/dags/{DAG}/dagRuns", json={
        "logical_date": None,
        "conf": {"window_start": start.isoformat(), "window_end": end.isoformat()}})
    done = stack.wait_run(run["dag_run_id"])
    tasks = stack.tasks(run["dag_run_id"])
    assert done["state"] == "success", tasks
    assert tasks["validate_window"] == "success" and tasks["no_retrain"] == "success"
    assert tasks["submit_retrain"] == "skipped"
    verdict = stack.xcom(run["dag_run_id"], "drift_status")
    assert verdict["rows"] == 80 and verdict["dataset_drift"] is False
    assert loop.alias("champion") == "1"


@pytest.mark.full
def test_backfill_through_the_api_reads_each_past_hour(stack: Stack) -> None:
    """make test-full: make test backfills through dag.test() (tests/airflow/test_dag_runs.py)
    and make test-ui through this stack's backfill dialog in Chromium."""
    hours = log_past_hours(stack, (60, 7), hours_ago=30, seed=72)
    body = {"dag_id": DAG, "from_date": hours[0][0].isoformat(),
            "to_date": hours[1][0].isoformat(), "max_active_runs": 1}
    # On SQLite metadata (make up's default) Airflow refuses a backfill with 503 "Database is
    # locked" while the scheduler writes; a user retries, and so does the test.
    created: list[httpx.Response] = []

    def backfill_created() -> bool:
        answer = httpx.post(f"{stack.airflow}/api/v2/backfills", json=body, timeout=60,
                            headers={"Authorization": f"Bearer {stack.token()}"})
        assert answer.status_code < 300 or (answer.status_code == 503 and
                                            "Database is locked" in answer.text), answer.text
        created.append(answer)
        return answer.status_code < 300

    wait_until(backfill_created, "the backfill accepted", timeout=120, interval=2)
    backfill = created[-1].json()
    deadline = time.monotonic() + 600
    while True:
        runs = [r for r in stack.api("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]
                if r.get("run_type") == "backfill"]
        if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, f"backfill {backfill['id']}: {runs}"
        time.sleep(5)
    by_start = {datetime.fromisoformat(r["data_interval_start"].replace("Z", "+00:00")): r
                for r in runs}
    assert sorted(by_start) == [h[0] for h in hours]
    full, short = (by_start[h[0]]["dag_run_id"] for h in hours)
    assert all(r["state"] == "success" for r in runs), [stack.tasks(r["dag_run_id"])
                                                        for r in runs]
    assert stack.xcom(full, "drift_status")["rows"] == 60
    assert stack.xcom(short, "drift_status")["status"] == "insufficient_data"
    assert stack.xcom(short, "wait_for_rows") == {"rows": 7, "enough": False, "min_rows": 50}
    # The run id names the hour it ran after; its outcome names the hour it judged.
    assert stack.xcom(full, "outcome").startswith(
        f"window {hours[0][0].isoformat()} → {shown_end(*hours[0])} (60 rows); no ")


def test_deferred_tasks_resume_from_the_real_triggerer(stack: Stack) -> None:
    """An open window defers wait_for_rows to DriftWindowTrigger in the triggerer; a forced
    retrain defers submit_retrain to KfpRunTrigger, whose run fails (a spec that does not
    exist) and fails the task with the run's error."""
    start = datetime.now(UTC)
    # Open long enough that even a scheduler starved by the other xdist workers starts
    # wait_for_rows before it closes (CI once took > 90 s): the trigger fires as soon as the
    # rows arrive, so a late end costs nothing.
    end = start + timedelta(minutes=10)
    run = stack.api("POST", f"/dags/{DAG}/dagRuns", json={
        "logical_date": None,
        "conf": {"window_start": start.isoformat(), "window_end": end.isoformat(),
                 "force": True, "spec": "/nonexistent/spec.yaml", "deploy_target": "none"}})
    task_logs = stack.state / "airflow" / "logs" / f"dag_id={DAG}" / \
        f"run_id={run['dag_run_id']}"

    def trigger_log(task_id: str) -> str:
        return "".join(p.read_text() for p in
                       (task_logs / f"task_id={task_id}").glob("*.trigger.*.log"))

    def polled() -> bool:
        if "0 of 50 rows" in trigger_log("wait_for_rows"):
            return True
        tasks = stack.tasks(run["dag_run_id"])
        assert tasks.get("wait_for_rows") not in ("success", "failed", "skipped"), \
            f"wait_for_rows ended before its trigger polled the window: {tasks}"
        return False

    # The rows arrive once wait_for_rows is deferred and its trigger has polled the window.
    wait_until(polled, "the window trigger's first poll (0 of 50 rows)", timeout=300,
               interval=1)
    rows = iris_rows(60, seed=73)
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    answer = httpx.post(f"{stack.server}/predict", timeout=30,
                        json={"records": rows[features].to_dict("records")})
    assert answer.status_code == 200, answer.text
    done = stack.wait_run(run["dag_run_id"])
    tasks = stack.tasks(run["dag_run_id"])
    assert done["state"] == "failed", f"{tasks}; submit_retrain: {xcoms(stack, run)}"
    assert tasks["wait_for_rows"] == "success" and tasks["submit_retrain"] == "failed"
    assert stack.xcom(run["dag_run_id"], "wait_for_rows") == {"rows": 60, "enough": True,
                                                              "min_rows": 50}
    # The triggerer ran both triggers: their own log files, next to the task's.
    assert "Trigger fired event" in trigger_log("wait_for_rows")
    kfp_trigger = trigger_log("submit_retrain")
    assert ": RUNNING" in kfp_trigger and "Trigger fired event" in kfp_trigger
    # Every attempt's log: under load Airflow 3.3.2 may retry a task that resumed from its
    # trigger quickly, and the retry then follows the same run and fails with its error
    # (SubmitKfpRunOperator, tests/airflow/test_kfp_local.py).
    log = "".join(p.read_text() for p in
                  sorted((task_logs / "task_id=submit_retrain").glob("attempt=*.log"))
                  if ".trigger." not in p.name)
    assert "failed: step load_data" in log and "/nonexistent/spec.yaml" in log
    assert "GitWildMatchPattern" not in log  # issue 15, finding 3, in a real task log
    assert tasks["outcome"] == "failed"
    assert "; forced by the run's `force` param; retrain failed: KFP run local-" in \
        stack.xcom(run["dag_run_id"], "outcome")
    assert len(stack_runs(stack)) == 1, "one DAG run submits at most one retrain"
