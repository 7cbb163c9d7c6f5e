"""DAG runs in processes of their own: two drift runs at once (one lock, one submission,
then the cooldown), Airflow's metadata on PostgreSQL, and a fresh process that needs only
``setup_local_airflow``.

Apart from ``test_dag_runs.py`` so that pytest-xdist runs the two files side by side: each
holds minutes of DAG runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop_airflow.local_runs import run_drift_monitor
from tests.airflow.conftest import Live
from tests.airflow.test_dag_runs import serve_traffic
from tests.pipelines.conftest import PETAL_SHIFT, iris_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

def _dag_test_in_child(home: Path, window: tuple[str, str], conf: dict[str, Any], out: Path,
                       *, template_db: Path | None = None, db_url: str | None = None,
                       ) -> subprocess.Popen:
    """run_drift_monitor in a process of its own, on its own metadata DB (a copy of the
    migrated SQLite one, or a PostgreSQL database migrated here): two DAG runs at the same
    time, as two workers would run them."""
    from driftloop_airflow.local_runs import migrate
    from driftloop_airflow.localenv import airflow_environ

    home.mkdir(parents=True)
    env = {**os.environ, **airflow_environ(home, sql_alchemy_conn=db_url)}
    if template_db is not None:
        shutil.copyfile(template_db, home / "airflow.db")
    else:
        migrate(env)
    root = Path(__file__).parents[2]
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(root)!r}]\n"
        "from driftloop_airflow.local_runs import run_drift_monitor\n"
        f"o = run_drift_monitor({window[0]!r}, {window[1]!r}, **{conf!r})\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'state': o.state, 'tasks': o.tasks, "
        "'xcoms': o.xcoms}, default=str))\n")
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=home,
                            stdout=subprocess.DEVNULL, stderr=(home / "log").open("w"))


@pytest.mark.full
def test_concurrent_runs_submit_one_retrain_then_the_cooldown_holds(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        airflow_db: Path) -> None:
    """Two drift runs at once (two processes, one lock): exactly one submission; after it,
    the cooldown period holds. The retrain itself fails fast here (a spec that does not
    exist): what is under test is the submission, and a failed run counts too.

    make test-full: make test checks the lock and the cooldown at the hook
    (tests/airflow/test_kfp_local.py: test_submission_lock_excludes_other_holders,
    test_recent_runs_are_newest_first_and_feed_the_cooldown)."""
    live = dataclasses.replace(shared_live, kfp_state=tmp_path / "kfp")  # own run records
    live.connections(monkeypatch)
    window = serve_traffic(live, iris_rows(240, seed=41, shift=PETAL_SHIFT))
    conf = {"spec": "/nonexistent/spec.yaml"}
    outs = [tmp_path / f"run{i}.json" for i in range(2)]
    children = [_dag_test_in_child(tmp_path / f"home{i}", window, conf, out,
                                   template_db=airflow_db) for i, out in enumerate(outs)]
    for i, child in enumerate(children):
        assert child.wait(timeout=900) == 0, (tmp_path / f"home{i}" / "log").read_text()[-3000:]
    results = [json.loads(out.read_text()) for out in outs]
    submitted = [r for r in results if r["tasks"]["submit_retrain"] != "skipped"]
    skipped = [r for r in results if r["tasks"]["submit_retrain"] == "skipped"]
    assert len(submitted) == 1 and len(skipped) == 1, [r["tasks"] for r in results]
    assert submitted[0]["tasks"]["submit_retrain"] == "failed"  # the bad spec, not the lock
    (run,) = live.kfp_runs()
    reason = skipped[0]["xcoms"]["submit_retrain"]["skipped_reason"]
    # Depending on when the second run looked: the first retrain still running, or ended.
    assert reason.startswith((f"a retrain is still running: {run['run_id']}",
                              f"cooldown: retrain {run['run_id']}")), reason

    # That run has ended; within the cooldown period a new drift run still does not submit.
    later = run_drift_monitor(*window, cooldown_minutes=60)
    assert later.state == "success", later.tasks
    assert later.tasks["submit_retrain"] == "skipped"
    said = later.value("outcome")
    assert "; data valid; retrain skipped: cooldown: retrain" in said
    assert "no new retrain before " in said
    reason = later.value("submit_retrain", "skipped_reason")
    assert reason.startswith(f"cooldown: retrain {run['run_id']} was submitted at")
    assert len(live.kfp_runs()) == 1


@pytest.mark.full
@pytest.mark.postgres
def test_airflow_metadata_on_postgresql(shared_live: Live, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path, pg_database: str) -> None:
    """`make up` with DRIFTLOOP_AIRFLOW_DB_URL: Airflow's metadata on PostgreSQL (psycopg 3
    for both of its engines), migrated, and a drift monitor run on it."""
    shared_live.connections(monkeypatch)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    out = tmp_path / "run.json"
    child = _dag_test_in_child(tmp_path / "home", (hour.isoformat(),
                                                   (hour + timedelta(hours=1)).isoformat()),
                               {}, out, db_url=pg_database)
    assert child.wait(timeout=600) == 0, (tmp_path / "home" / "log").read_text()[-3000:]
    result = json.loads(out.read_text())
    assert result["state"] == "success", result["tasks"]
    assert result["tasks"]["no_retrain"] == "success"
    assert result["xcoms"]["wait_for_rows"]["return_value"]["rows"] == 0
    assert not (tmp_path / "home" / "airflow.db").exists()


@pytest.mark.full
def test_setup_local_airflow_is_all_a_fresh_process_needs(shared_live: Live,
                                                          tmp_path: Path) -> None:
    """The demo's entry point: a fresh interpreter, setup_local_airflow(), run_drift_monitor()."""
    root = Path(__file__).parents[2]
    served = serve_traffic(shared_live, iris_rows(70, seed=81))
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(root)!r}]\n"
        "from driftloop_airflow.local_runs import run_drift_monitor, setup_local_airflow\n"
        f"setup_local_airflow({str(tmp_path / 'home')!r}, server_url={shared_live.server.url!r},"
        f" state_dir={str(shared_live.loop.state)!r}, admin_token={shared_live.server.token!r})\n"
        f"o = run_drift_monitor({served[0]!r}, {served[1]!r})\n"
        "print(json.dumps({'state': o.state, 'tasks': o.tasks, "
        "'verdict': o.value('drift_status')}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DRIFTLOOP_"))}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "success", result["tasks"]
    assert result["tasks"]["no_retrain"] == "success"
    assert result["verdict"]["rows"] == 70 and result["verdict"]["dataset_drift"] is False
    assert (tmp_path / "home" / "airflow.db").exists()
