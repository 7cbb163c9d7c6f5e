"""KFP or the server unreachable from Airflow: the DAG's own retries, then a clear failure and
one alert; an API that comes back within the retries is ridden out, with one submission.

The DAGs run through ``dag.test()`` with their real tasks, hooks and operators, their own
``retries`` (2) and exponential backoff; only the delays are shortened (1 s, at most 2 s
instead of 1 min, at most 20 min). Alerts go to a real webhook receiver over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.settings import PROJECT_ROOT
from tests.airflow.kfp_api import FakeKfpApi, Recorded, recording_server, running_fake_kfp
from tests.reliability.figures import Figures
from tests.reliability.proxy import free_port
from tests.reliability.server import TOKEN, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

PACKAGE = PROJECT_ROOT / "kfp_pipelines" / "retrain_pipeline.yaml"
HOUR = datetime(2026, 3, 1, 10, tzinfo=UTC)


@dataclass
class Outcome:
    state: str
    #: task_id -> (state, tries)
    tasks: dict[str, tuple[str | None, int]]


def run_with_short_retry_delays(dag_id: str, conf: dict[str, Any]) -> Outcome:
    """``dag.test()`` of the DAG as parsed, its retry delays shortened to seconds."""
    from airflow.utils.session import create_session

    from driftloop_airflow.local_runs import load_dag

    dag = load_dag(dag_id)
    for task in dag.tasks:
        if task.task_id == "outcome":  # no retries by design (test_dag_integrity)
            continue
        assert task.retries == 2 and task.retry_exponential_backoff, task.task_id
        task.retry_delay = timedelta(seconds=1)
        task.max_retry_delay = timedelta(seconds=2)
    run = dag.test(run_conf=conf)
    with create_session() as session:
        tis = run.get_task_instances(session=session)
        tasks = {ti.task_id: (None if ti.state is None else str(getattr(ti.state, "value",
                                                                         ti.state)),
                              int(ti.try_number)) for ti in tis}
    return Outcome(str(getattr(run.state, "value", run.state)), tasks)


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recorded]]:
    with recording_server(lambda *_: (200, {})) as (url, received):
        monkeypatch.setenv("DRIFTLOOP_ALERT_WEBHOOK_URL", url)
        yield received


def connect(monkeypatch: pytest.MonkeyPatch, server_url: str, kfp_url: str) -> None:
    from driftloop_airflow.localenv import connections_environ

    host, port = kfp_url.removeprefix("http://").split(":")
    kfp = {"conn_type": "http", "host": host, "port": int(port),
           "extra": {"backend": "rest", "pipeline_package": str(PACKAGE), "timeout": 5}}
    for key, value in connections_environ(server_url=server_url, serving_token=TOKEN,
                                          kfp=kfp).items():
        monkeypatch.setenv(key, value)


WINDOW = {"window_start": HOUR.isoformat(), "window_end": (HOUR + timedelta(hours=1)).isoformat()}


@pytest.mark.timeout(600)
def test_server_unreachable_is_retried_then_fails_with_one_alert(
    monkeypatch: pytest.MonkeyPatch, alerts: list[Recorded], figures: Figures,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with running_fake_kfp() as kfp:
        connect(monkeypatch, down, kfp.url)
        outcome = run_with_short_retry_delays("driftloop_drift_monitor", WINDOW)
    assert outcome.state == "failed"
    assert outcome.tasks["check_serving"] == ("failed", 3), outcome.tasks
    assert outcome.tasks["submit_retrain"][0] == "upstream_failed"
    assert [r for r in kfp.requests if r.method == "POST"] == []  # nothing submitted
    (alert,) = [a.body for a in alerts]
    assert alert["task_id"] == "check_serving" and alert["try_number"] == 3
    assert f"cannot reach the driftloop server at {down}" in alert["text"]
    assert "is `driftloop serve` running there?" in alert["text"]
    figures.record("airflow_faults", server_unreachable={
        "task": "check_serving", "tries": 3, "state": "failed", "alerts": len(alerts),
        "alert": alert["text"][:240]})


@pytest.mark.timeout(600)
def test_kfp_unreachable_is_retried_then_fails_with_one_alert(
    live_server: ServerProcess, monkeypatch: pytest.MonkeyPatch, alerts: list[Recorded],
    figures: Figures,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    connect(monkeypatch, live_server.url, down)
    outcome = run_with_short_retry_delays("driftloop_weekly_retrain", WINDOW)
    assert outcome.state == "failed"
    assert outcome.tasks["check_serving"] == ("success", 1), outcome.tasks
    assert outcome.tasks["submit_retrain"] == ("failed", 3), outcome.tasks
    (alert,) = [a.body for a in alerts]
    assert alert["task_id"] == "submit_retrain" and alert["try_number"] == 3
    assert f"cannot reach the KFP API at {down}" in alert["text"]
    figures.record("airflow_faults", kfp_unreachable={
        "task": "submit_retrain", "tries": 3, "state": "failed", "alerts": len(alerts),
        "alert": alert["text"][:240]})


class FlakyKfpApi(FakeKfpApi):
    """A KFP API server that answers 503 to its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def answer(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if self.failures > 0:
            self.failures -= 1
            return 503, {"error": "upstream connect error", "code": 14,
                         "message": "no healthy upstream"}
        return super().answer(method, path, body)


@pytest.mark.timeout(600)
def test_a_kfp_api_back_within_the_retries_gets_exactly_one_submission(
    live_server: ServerProcess, monkeypatch: pytest.MonkeyPatch, alerts: list[Recorded],
    figures: Figures,
) -> None:
    api = FlakyKfpApi(failures=2)
    api.state_sequence["run-1"] = ["SUCCEEDED"]
    with running_fake_kfp(api):
        connect(monkeypatch, live_server.url, api.url)
        outcome = run_with_short_retry_delays("driftloop_weekly_retrain", WINDOW)
    assert outcome.state == "success", outcome.tasks
    assert outcome.tasks["submit_retrain"] == ("success", 3), outcome.tasks
    submissions = [r for r in api.requests if (r.method, r.path) == ("POST",
                                                                    "/apis/v2beta1/runs")]
    assert len(submissions) == 1
    assert submissions[0].body["runtime_config"]["parameters"]["trigger"] == "schedule"
    assert alerts == []
    figures.record("airflow_faults", kfp_back_within_retries={
        "task": "submit_retrain", "tries": 3, "state": "success",
        "runs_submitted": len(submissions), "alerts": len(alerts)})
