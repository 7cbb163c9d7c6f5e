"""``make up`` as a fixture: scripts/local-up.sh on free ports, then scripts/local-down.sh.

Used by tests/airflow/test_local_stack.py (the REST API) and tests/ui (a real browser).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from driftloop.settings import PROJECT_ROOT
from tests.pipelines.conftest import LocalLoop, base_env, free_port, iris_rows

DAG = "driftloop_drift_monitor"


@dataclass
class Stack:
    state: Path
    env: dict[str, str]
    airflow: str
    server: str
    mlflow: str
    password: str
    up_output: str

    def token(self) -> str:
        answer = httpx.post(f"{self.airflow}/auth/token", timeout=30,
                            json={"username": "admin", "password": self.password})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{self.airflow}/api/v2{path}", timeout=60,
                               headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def wait_run(self, run_id: str, timeout: float = 420, dag: str = DAG) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AssertionError(f"run {run_id} still {run['state']}: {self.tasks(run_id, dag)}")

    def tasks(self, run_id: str, dag: str = DAG) -> dict[str, str | None]:
        found = self.api("GET", f"/dags/{dag}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in found["task_instances"]}

    def xcom(self, run_id: str, task_id: str, dag: str = DAG) -> Any:
        return self.api("GET", f"/dags/{dag}/dagRuns/{run_id}/taskInstances/{task_id}"
                        "/xcomEntries/return_value")["value"]


def xcoms(stack: Stack, run: dict[str, Any], task_id: str = "submit_retrain") -> Any:
    """Every XCom of one task of the run, key → value, for a failure message."""
    base = f"/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/{task_id}/xcomEntries"
    return {e["key"]: stack.api("GET", f"{base}/{e['key']}")["value"]
            for e in stack.api("GET", base)["xcom_entries"]}


def stack_runs(stack: Stack) -> list[Path]:
    """The KFP local runs of the stack (one directory each)."""
    runs = stack.state / "kfp-local" / "runs"
    return sorted(runs.glob("local-*")) if runs.exists() else []


def _groups(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state / "run").glob("*.pid")}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def shown_end(start: datetime, end: datetime) -> str:
    """How a decision writes a window's end: the time alone when it is the start's day."""
    return end.isoformat()[11:] if start.date() == end.date() else end.isoformat()


def log_past_hours(stack: Stack, rows: tuple[int, ...], *, hours_ago: int,
                   seed: int) -> list[tuple[datetime, datetime]]:
    """Labeled rows logged into consecutive whole hours starting ``hours_ago`` hours back,
    ``rows[i]`` in the i-th: the past a backfill reads. Returns the hours ``[start, end)``."""
    loop = LocalLoop(stack.state, base_env(stack.state))
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - \
        timedelta(hours=hours_ago)
    hours = [(first + timedelta(hours=i), first + timedelta(hours=i + 1))
             for i in range(len(rows))]
    for (start, end), n in zip(hours, rows, strict=True):
        loop.log_labeled_rows(iris_rows(n, seed=seed), window=(start.isoformat(),
                                                              end.isoformat()))
    return hours


@contextmanager
def make_up(champion_template: Path, where: Path, *, password: str = "s3cret") -> Iterator[Stack]:
    """The local stack on a state copied from ``champion_template`` (champion v1); stopped
    after, checking that every process group it started has ended."""
    state = where / "state"
    state.mkdir(parents=True)
    shutil.copyfile(champion_template / "mlflow.db", state / "mlflow.db")  # champion v1
    ports = [free_port() for _ in range(5)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DRIFTLOOP_", "AIRFLOW"))}
    env.update(DRIFTLOOP_STATE_DIR=str(state), MLFLOW_PORT=str(ports[0]),
               SERVE_PORT=str(ports[1]), AIRFLOW_PORT=str(ports[2]),
               AIRFLOW_LOG_PORTS=f"{ports[3]} {ports[4]}", DRIFTLOOP_AIRFLOW_PASSWORD=password,
               UP_TIMEOUT="400")
    up = subprocess.run([str(PROJECT_ROOT / "scripts" / "local-up.sh")], env=env,
                        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield Stack(state, env, f"http://127.0.0.1:{ports[2]}", f"http://127.0.0.1:{ports[1]}",
                    f"http://127.0.0.1:{ports[0]}", password, up.stdout)
    finally:
        groups = _groups(state)
        down = subprocess.run([str(PROJECT_ROOT / "scripts" / "local-down.sh")], env=env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        assert groups and not [name for name, g in groups.items() if _group_alive(g)]
        assert not list((state / "run").glob("*.pid"))
