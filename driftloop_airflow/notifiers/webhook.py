"""WebhookNotifier: failures reach people as a JSON POST (Slack/Teams/Mattermost-compatible).

The URL comes from the notifier's argument or ``DRIFTLOOP_ALERT_WEBHOOK_URL``; unset, the
alert is logged (at WARNING) and nothing is sent. A webhook that fails is logged too and never
masks the task's own failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from airflow.sdk import BaseNotifier


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def alert_payload(context: Any, message: str | None = None) -> dict[str, Any]:
    """What an alert says: which DAG, run, task, window and why."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    exception = context.get("exception")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None)
    task_id = getattr(ti, "task_id", None)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    why = str(exception) if exception else (context.get("reason") or "failed")
    text = message or f"driftloop: {dag_id}.{task_id} failed in run {run_id}: {why}"
    return {
        "text": text,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "try_number": getattr(ti, "try_number", None),
        "state": _text(getattr(ti, "state", None)),
        "data_interval_start": _text(context.get("data_interval_start")),
        "data_interval_end": _text(context.get("data_interval_end")),
        "exception": _text(exception),
        "log_url": getattr(ti, "log_url", None),
    }


class WebhookNotifier(BaseNotifier):
    template_fields: Sequence[str] = ("message",)

    def __init__(self, url: str | None = None, message: str | None = None,
                 timeout: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self.message = message
        self.timeout = timeout

    def _url(self) -> str | None:
        if self.url:
            return self.url
        from driftloop_airflow.config import airflow_settings

        return airflow_settings().alert_webhook_url

    def _prepare(self, context: Any) -> tuple[str | None, dict[str, Any]]:
        payload = alert_payload(context, self.message)
        url = self._url()
        if not url:
            self.log.warning("ALERT (no webhook set; DRIFTLOOP_ALERT_WEBHOOK_URL): %s",
                             payload["text"])
        return url, payload

    def _sent(self, url: str, payload: dict[str, Any], error: Exception | None) -> None:
        if error is None:
            self.log.info("alert sent to %s: %s", url, payload["text"])
        else:
            self.log.error("ALERT could not be sent to %s (%r): %s", url, error,
                           payload["text"])

    def notify(self, context: Any) -> None:
        url, payload = self._prepare(context)
        if not url:
            return
        try:
            httpx.post(url, json=payload, timeout=self.timeout).raise_for_status()
        except httpx.HTTPError as exc:
            self._sent(url, payload, exc)
        else:
            self._sent(url, payload, None)

    async def async_notify(self, context: Any) -> None:
        """The same alert from the triggerer (deadline alerts)."""
        url, payload = self._prepare(context)
        if not url:
            return
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                (await client.post(url, json=payload)).raise_for_status()
        except httpx.HTTPError as exc:
            self._sent(url, payload, exc)
        else:
            self._sent(url, payload, None)
