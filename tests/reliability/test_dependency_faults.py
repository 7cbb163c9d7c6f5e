"""Dependency faults: the registry or the prediction log's database goes away.

Nothing shared is stopped: the server reaches PostgreSQL and the MLflow server through a
:class:`~tests.reliability.proxy.FaultProxy`, and the test cuts and restores the proxy.

- MLflow unavailable during a reload: the old model keeps serving, ``/ready`` stays 200,
  the reload answers 503 naming the registry; a registry that vanishes in the middle of a
  reload (while the artifacts download) fails that reload too, and the server still serves.
- The prediction log's database unavailable: predictions continue while rows wait in memory,
  up to ``DRIFTLOOP_LOG_QUEUE_MAX_ROWS``; past it the server pushes back (503 with
  ``Retry-After``, counted in ``/metrics``) and drops nothing. When the database returns,
  everything queued is written, the refused calls are retried, and every answered row is in
  the log.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from driftloop.predlog import PredictionLog
from driftloop.registry import register_version
from tests.reliability.conftest import MlflowStack, copy_store
from tests.reliability.figures import Figures
from tests.reliability.load import IRIS_ROWS
from tests.reliability.proxy import fault_proxy
from tests.reliability.scale import SCALE
from tests.reliability.server import TOKEN, ServerProcess, running_server, server_env

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "iris-classifier"


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def predict(client: httpx.Client, rows: int = 1) -> list[str]:
    body = ({"features": IRIS_ROWS[0]} if rows == 1
            else {"instances": [IRIS_ROWS[i % len(IRIS_ROWS)] for i in range(rows)]})
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"]["version"] == "1"
    return [p["request_id"] for p in response.json()["predictions"]]


# --- MLflow unavailable during a reload ------------------------------------------------------


@pytest.mark.timeout(600)
def test_registry_unavailable_during_reload_keeps_the_old_model_serving(
    mlflow_stack: MlflowStack, mlflow_served: ServerProcess, figures: Figures,
) -> None:
    client = mlflow_stack.client()
    v1 = client.get_model_version(MODEL, "1")
    good = register_version(client, MODEL, v1.run_id, v1.source, {"kind": "good"})
    proxy = mlflow_stack.proxy
    with httpx.Client(base_url=mlflow_served.url, timeout=300) as http:
        assert http.get("/model").json()["version"] == "1"

        # 1. The registry is down before the reload starts.
        proxy.cut()
        try:
            started = time.monotonic()
            reload = http.post("/admin/reload", json={"version": good}, headers=AUTH)
            down_s = time.monotonic() - started
            assert reload.status_code == 503, reload.text
            detail = reload.json()["detail"]
            assert mlflow_stack.proxied_uri in detail and "unreachable" in detail
            assert "still serving version 1" in detail
            assert http.get("/ready").status_code == 200
            assert http.get("/ready").json()["model"]["version"] == "1"
            predict(http, rows=5)
        finally:
            proxy.restore()

        # 2. The registry vanishes in the middle of a reload, while the artifacts download.
        fired = proxy.cut_when(rb"GET /api/2\.0/mlflow-artifacts/artifacts/")
        started = time.monotonic()
        with httpx.Client(base_url=mlflow_served.url, timeout=300) as admin:
            answer: list[httpx.Response] = []
            reloading = threading.Thread(target=lambda: answer.append(admin.post(
                "/admin/reload", json={"version": good}, headers=AUTH)))
            reloading.start()
            assert fired.wait(60), "the reload never reached the artifact download"
            served_during = 0
            while reloading.is_alive():  # the server keeps answering while it retries
                predict(http)
                assert http.get("/ready").status_code == 200
                served_during += 1
            reloading.join()
        midway_s = time.monotonic() - started
        proxy.restore()
        (midway,) = answer
        assert midway.status_code == 503, midway.text
        assert mlflow_stack.proxied_uri in midway.json()["detail"]
        assert "unreachable (" in midway.json()["detail"]
        assert f"(while downloading model {MODEL} version {good})" in midway.json()["detail"]
        assert "still serving version 1" in midway.json()["detail"]
        assert http.get("/model").json()["version"] == "1"

        # 3. Back: the same reload succeeds, and the server goes back to v1 for the others.
        assert http.post("/admin/reload", json={"version": good}, headers=AUTH
                         ).json()["model"]["version"] == good
        assert http.post("/admin/reload", json={"version": "1"}, headers=AUTH
                         ).json()["model"]["version"] == "1"
        text = http.get("/metrics").text
    assert metric(text, 'driftloop_model_reloads_total{result="failure"}') >= 2
    figures.record("registry_outage_during_reload",
                   down_before_reload={"status": reload.status_code,
                                       "seconds": round(down_s, 2)},
                   down_midway={"status": midway.status_code, "seconds": round(midway_s, 1),
                                "predictions_answered_meanwhile": served_during,
                                "detail": midway.json()["detail"][:200]},
                   ready_throughout=True)


# --- the prediction log's database unavailable ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_log_database_outage_pushes_back_and_loses_no_row(
    pg_database: str, champion_template: Path, tmp_path: Path, figures: Figures,
) -> None:
    url = make_url(pg_database)
    queue_max = SCALE.outage_rows // 2
    calls = SCALE.outage_rows // 10
    with fault_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        env = server_env(copy_store(champion_template, tmp_path), proxied,
                         DRIFTLOOP_LOG_QUEUE_MAX_ROWS=str(queue_max),
                         DRIFTLOOP_MAX_BATCH_ROWS="10")
        body = {"instances": [IRIS_ROWS[i % len(IRIS_ROWS)] for i in range(10)]}
        with running_server(env, tmp_path / "server.log") as server, \
                httpx.Client(base_url=server.url, timeout=60) as http:
            before = predict(http, rows=10) + predict(http, rows=10)
            wait_for(lambda: written(http) == 20, "the first rows to be written")

            proxy.cut()
            cut_at = time.monotonic()
            during = [http.post("/predict", json=body) for _ in range(calls)]
            assert http.get("/ready").status_code == 200
            assert http.get("/health").status_code == 200
            outage_answers = {path: http.get(path, params=params) for path, params in (
                ("/drift/status", {}), ("/drift/window", {
                    "start": "2026-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}))}
            feedback = http.post("/feedback", json={"request_id": before[0],
                                                    "label": "setosa"})
            metrics = http.get("/metrics")
            assert metrics.status_code == 200
            time.sleep(1.5)  # the writer retries (and fails) meanwhile
            metrics = http.get("/metrics").text
            outage_s = time.monotonic() - cut_at

            proxy.restore()
            restored_at = time.monotonic()
            wait_for(lambda: queue(http) == 0, "the queue to drain after the outage")
            recovery_s = time.monotonic() - restored_at
            # A client honouring the push-back retries what was refused: now answered.
            retried = [post_until_answered(http, body)
                       for r in during if r.status_code == 503]
            after = [p["request_id"]
                     for p in post_until_answered(http, body).json()["predictions"]]
            answered_rows = 20 + 10 * (sum(r.status_code == 200 for r in during)
                                       + len(retried) + 1)
            wait_for(lambda: written(http) == answered_rows, "every answered row written")
            recovered = http.get("/metrics").text

    for path, answer in outage_answers.items():
        assert answer.status_code == 503, (path, answer.status_code, answer.text)
        assert "prediction log" in answer.json()["detail"]
    assert feedback.status_code == 503, feedback.text
    # While away: the queue fills to its maximum, then every call is refused, not dropped.
    statuses = [r.status_code for r in during]
    accepted = queue_max // 10
    assert statuses == [200] * accepted + [503] * (calls - accepted), statuses
    refusal = during[-1]
    assert refusal.headers["retry-after"] == "5"  # writes are failing
    assert "prediction log is behind" in refusal.json()["detail"]
    assert metric(metrics, "driftloop_predlog_queue_rows") == queue_max
    assert metric(metrics, "driftloop_predlog_refused_rows_total") == 10 * (calls - accepted)
    assert metric(metrics, "driftloop_predlog_failed_writes") >= 1
    assert metric(recovered, "driftloop_predlog_dropped_rows_total") == 0
    assert [r.status_code for r in retried] == [200] * (calls - accepted)

    # Every row any call was answered with is in the log.
    answered = [p["request_id"] for r in [*during, *retried] if r.status_code == 200
                for p in r.json()["predictions"]]
    log = PredictionLog(pg_database, create=False)
    try:
        stored = set(log.served([*before, *answered, *after]))
    finally:
        log.dispose()
    assert stored == {*before, *answered, *after}
    figures.record("log_database_outage", rows_sent_during_outage=SCALE.outage_rows,
                   queue_max_rows=queue_max, rows_answered_during_outage=10 * accepted,
                   rows_refused_with_503=10 * (calls - accepted), rows_dropped=0,
                   failed_writes=int(metric(metrics, "driftloop_predlog_failed_writes")),
                   outage_s=round(outage_s, 1), recovery_s=round(recovery_s, 2),
                   rows_in_log_after_retries=len(stored))


def post_until_answered(http: httpx.Client, body: dict, tries: int = 20) -> httpx.Response:
    """What a well-behaved client does: on 503, wait ``Retry-After`` seconds and retry."""
    for _ in range(tries):
        response = http.post("/predict", json=body)
        if response.status_code != 503:
            return response
        time.sleep(float(response.headers["retry-after"]))
    raise AssertionError(f"still refused after {tries} tries: {response.text}")


def written(http: httpx.Client) -> float:
    return metric(http.get("/metrics").text, "driftloop_predlog_written_rows")


def queue(http: httpx.Client) -> float:
    return metric(http.get("/metrics").text, "driftloop_predlog_queue_rows")


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)

