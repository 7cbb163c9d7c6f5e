"""WebhookNotifier: failures reach a webhook as JSON, or the log when none is set."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from driftloop_airflow.notifiers.webhook import WebhookNotifier
from tests.airflow.kfp_api import recording_server


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="driftloop_drift_monitor", task_id="validate_window",
                         run_id="scheduled__2026-01-01T10:00:00+00:00", try_number=1,
                         state="failed", log_url="http://airflow/log")
    return {"ti": ti, "run_id": ti.run_id,
            "exception": ValueError("data validation failed for window [10:00, 11:00)"),
            "data_interval_start": "2026-01-01T10:00:00+00:00",
            "data_interval_end": "2026-01-01T11:00:00+00:00"}


def test_alert_is_posted_with_what_failed_and_why() -> None:
    with recording_server(lambda *_: (200, {"ok": True})) as (url, requests):
        WebhookNotifier(url=url + "/hook")(_context())
    (request,) = requests
    assert (request.method, request.path) == ("POST", "/hook")
    body = request.body
    assert body["text"] == ("driftloop: driftloop_drift_monitor.validate_window failed in run "
                            "scheduled__2026-01-01T10:00:00+00:00: data validation failed for "
                            "window [10:00, 11:00)")
    assert body["task_id"] == "validate_window"
    assert body["data_interval_start"] == "2026-01-01T10:00:00+00:00"
    assert body["log_url"] == "http://airflow/log"


def test_url_comes_from_the_setting_and_message_is_templated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with recording_server(lambda *_: (200, {})) as (url, requests):
        monkeypatch.setenv("DRIFTLOOP_ALERT_WEBHOOK_URL", url)
        WebhookNotifier(message="refused {{ run_id }}")(_context())
        asyncio.run(WebhookNotifier(message="async").async_notify(_context()))
    assert [r.body["text"] for r in requests] == [
        "refused scheduled__2026-01-01T10:00:00+00:00", "async"]


def _logged(capsys: pytest.CaptureFixture[str]) -> str:
    """Airflow's logging is structlog, written to stdout (not the logging module)."""
    out, err = capsys.readouterr()
    return out + err


def test_without_a_webhook_the_alert_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    WebhookNotifier().notify(_context())
    logged = _logged(capsys)
    assert "ALERT (no webhook set" in logged
    assert "validate_window failed" in logged


def test_a_failing_webhook_is_logged_and_never_raises(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    with recording_server(lambda *_: (500, {"error": "down"})) as (url, requests):
        WebhookNotifier(url=url).notify(_context())
        WebhookNotifier(url="http://127.0.0.1:9/none", timeout=1).notify(_context())
    assert len(requests) == 1
    assert _logged(capsys).count("ALERT could not be sent") == 2
