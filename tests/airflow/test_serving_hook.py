"""ServingHook, the window trigger and DriftSensor against a live ``driftloop serve``."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop_airflow.hooks.serving import ServingEndpoint, ServingError, ServingHook
from driftloop_airflow.sensors.drift import DriftSensor
from driftloop_airflow.triggers.drift import DriftWindowTrigger
from driftloop_airflow.window import iso
from tests.airflow.conftest import Live, set_connection
from tests.pipelines.conftest import iris_rows
from tests.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def hook(shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> ServingHook:
    shared_live.connections(monkeypatch)
    return ServingHook()


@pytest.fixture(scope="module")
def logged(shared_live: Live) -> tuple[datetime, datetime]:
    """25 labeled rows served through the API; the window that holds them."""
    start = datetime.now(UTC)
    shared_live.server.predict_and_label(iris_rows(25, seed=61))
    end = datetime.now(UTC)  # every row was answered, so logged with an earlier time
    query = (f"/drift/window?start={start.isoformat().replace('+', '%2B')}"
             f"&end={end.isoformat().replace('+', '%2B')}&limit=1")
    wait_until(lambda: shared_live.server.get(query).json()["total"] >= 25,
               "25 rows in the log", timeout=30)
    return start, end


def test_health_model_and_expectations(hook: ServingHook) -> None:
    health = hook.health()
    assert health["health"]["status"] == "ok"
    assert health["ready"]["status"] == "ready"
    model = hook.model()
    assert (model["name"], model["version"]) == ("iris-classifier", "1")
    suite = hook.expectations()
    assert {e["type"] for e in suite["expectations"]} >= {
        "expect_column_values_to_be_between", "expect_table_columns_to_match_set"}


def test_drift_status_and_window_export(hook: ServingHook,
                                        logged: tuple[datetime, datetime]) -> None:
    start, end = logged
    status = hook.drift_status(start, end)
    assert status["window"]["rows"] == 25 and status["status"] == "insufficient_data"
    assert status["window"]["start"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert hook.window_total(start, end) == 25
    rows = hook.export_window(start, end, page_rows=7)  # four pages
    assert len(rows) == 25 and len({r["request_id"] for r in rows}) == 25
    assert {"sepal_length", "petal_width", "prediction", "label", "ts"} <= set(rows[0])
    assert all(r["label"] is not None for r in rows)
    assert hook.export_window(start, end, page_rows=7, max_rows=10) == rows[:10]


def test_metrics_are_parsed(hook: ServingHook, logged: tuple[datetime, datetime]) -> None:
    families = hook.metrics()
    assert families and all(name.startswith("driftloop_") for name in families)
    samples = [s for f in families.values() for s in f["samples"]]
    assert any(s["labels"].get("endpoint") == "/predict" for s in samples)


def test_refusals_carry_the_servers_detail(hook: ServingHook) -> None:
    with pytest.raises(ServingError) as err:
        hook.drift_status("2026-01-01T11:00:00Z", "2026-01-01T10:00:00Z")
    assert "GET http://127.0.0.1:" in str(err.value) and "/drift/status" in str(err.value)
    assert "422" in str(err.value) or "400" in str(err.value)


def test_unreachable_server_says_where_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "driftloop_serving", {"conn_type": "http", "host": "127.0.0.1",
                                                      "port": 9, "extra": {"timeout": 2}})
    with pytest.raises(ServingError, match=r"cannot reach the driftloop server at "
                       r"http://127\.0\.0\.1:9 \(connection 'driftloop_serving'\).*"
                       r"driftloop serve"):
        ServingHook().health()


def test_the_token_is_sent_as_bearer(shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_live.connections(monkeypatch)
    endpoint = ServingHook().endpoint
    assert endpoint.token == shared_live.server.token
    assert endpoint.headers["Authorization"] == f"Bearer {shared_live.server.token}"
    assert endpoint.base_url == shared_live.server.url


def _post_rows_later(live: Live, n: int, delay: float) -> threading.Thread:
    def post() -> None:
        time.sleep(delay)
        live.server.predict_and_label(iris_rows(n, seed=62))

    thread = threading.Thread(target=post)
    thread.start()
    return thread


async def _events(trigger: DriftWindowTrigger) -> list[dict[str, Any]]:
    return [e.payload async for e in trigger.run()]


def test_window_trigger_waits_for_rows_in_an_open_window(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_live.connections(monkeypatch)
    start = datetime.now(UTC)
    end = start + timedelta(minutes=5)
    thread = _post_rows_later(shared_live, 30, delay=1.5)
    began = time.monotonic()
    events = asyncio.run(_events(DriftWindowTrigger("driftloop_serving", iso(start), iso(end),
                                                    30, poll_interval=0.3)))
    thread.join()
    assert events == [{"status": "ok", "rows": 30, "enough": True, "min_rows": 30}]
    assert time.monotonic() - began >= 1.5, "it waited for the rows"


def test_window_trigger_reports_a_closed_short_window_and_a_deadline(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_live.connections(monkeypatch)
    past = datetime.now(UTC) - timedelta(days=30)
    closed = asyncio.run(_events(DriftWindowTrigger(
        "driftloop_serving", iso(past), iso(past + timedelta(hours=1)), 50, poll_interval=0.1)))
    assert closed == [{"status": "ok", "rows": 0, "enough": False, "min_rows": 50}]
    now = datetime.now(UTC)
    timed_out = asyncio.run(_events(DriftWindowTrigger(
        "driftloop_serving", iso(now), iso(now + timedelta(hours=1)), 50, poll_interval=0.1,
        deadline=time.time() + 0.5)))
    assert [e["status"] for e in timed_out] == ["timeout"]
    assert "holds 0 rows, 50 needed" in timed_out[0]["message"]


def test_sensor_pokes_and_defers_only_while_the_window_is_open(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch,
        logged: tuple[datetime, datetime]) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

    shared_live.connections(monkeypatch)
    start, end = logged
    done = DriftSensor(task_id="s", window_start=iso(start), window_end=iso(end), min_rows=20)
    assert done.execute({}) == {"rows": 25, "enough": True, "min_rows": 20}
    short = DriftSensor(task_id="s", window_start=iso(start), window_end=iso(end), min_rows=50,
                        settle_seconds=0)  # closed: no row can arrive any more
    assert short.execute({}) == {"rows": 25, "enough": False, "min_rows": 50}
    now = datetime.now(UTC)
    open_window = DriftSensor(task_id="s", window_start=iso(now),
                              window_end=iso(now + timedelta(hours=1)), min_rows=10,
                              timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        open_window.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DriftWindowTrigger) and trigger.min_rows == 10
    assert deferred.value.method_name == "execute_complete"
    with pytest.raises(AirflowSensorTimeout, match="at the deadline"):
        open_window.execute_complete({}, {"status": "timeout", "message": "x at the deadline"})
    soft = DriftSensor(task_id="s", window_start=iso(now), window_end=iso(now), min_rows=1,
                       soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.execute_complete({}, {"status": "timeout", "message": "late"})


def test_endpoint_from_a_connection_with_scheme_in_host() -> None:
    from types import SimpleNamespace

    conn = SimpleNamespace(conn_id="c", host="https://serving.example.com", port=8443,
                           schema=None, password="t", extra_dejson={"timeout": 5})
    endpoint = ServingEndpoint.from_connection(conn)
    assert (endpoint.base_url, endpoint.timeout) == ("https://serving.example.com:8443", 5.0)
