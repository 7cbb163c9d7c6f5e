"""DriftSensor: wait until the run's window of the prediction log holds enough rows.

A scheduled hourly run starts after its hour has closed, so the first poke usually decides;
a manual run over a window still open (its end in the future) waits, deferred to
:class:`DriftWindowTrigger`, until ``min_rows`` rows arrived or the window closed. Either
way it returns ``{"rows", "enough", "min_rows"}``: too few rows in a closed window is an
answer (insufficient data → no retrain), not an error. Past ``timeout`` it fails with
AirflowSensorTimeout (skipped with ``soft_fail``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from driftloop_airflow.config import SERVING_CONN_ID
from driftloop_airflow.hooks.serving import ServingHook
from driftloop_airflow.triggers.drift import DriftWindowTrigger, window_verdict
from driftloop_airflow.window import Window


class DriftSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("window_start", "window_end", "min_rows")
    ui_color = "#e6f1f2"

    def __init__(self, *, window_start: Any, window_end: Any, min_rows: int | str = 50,
                 serving_conn_id: str = SERVING_CONN_ID, settle_seconds: float = 5.0,
                 deferrable: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 30.0)
        kwargs.setdefault("timeout", 2 * 3600)
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.min_rows = min_rows
        self.serving_conn_id = serving_conn_id
        self.settle_seconds = settle_seconds
        self.deferrable = deferrable

    def _window(self) -> Window:
        return Window.of(self.window_start, self.window_end)

    def _min_rows(self) -> int:
        try:
            value = int(self.min_rows)
        except (TypeError, ValueError) as exc:
            raise AirflowException(f"min_rows must be an integer, got {self.min_rows!r}") from exc
        if value < 1:
            raise AirflowException(f"min_rows must be at least 1, got {value}")
        return value

    def poke(self, context: Any) -> PokeReturnValue:
        window = self._window()
        rows = ServingHook(self.serving_conn_id).window_total(window.start, window.end)
        verdict = window_verdict(rows, self._min_rows(), window.as_dict()["end"],
                                 self.settle_seconds, time.time())
        self.log.info("window %s: %d rows (%d needed)", window, rows, self._min_rows())
        if verdict is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._result(verdict))

    def _result(self, verdict: dict[str, Any]) -> dict[str, Any]:
        result = {k: verdict[k] for k in ("rows", "enough", "min_rows")}
        if not result["enough"]:
            self.log.warning("window closed with %d rows, fewer than the %d needed: "
                             "insufficient data", result["rows"], result["min_rows"])
        return result

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        window = self._window().as_dict()
        self.defer(
            trigger=DriftWindowTrigger(
                self.serving_conn_id, window["start"], window["end"], self._min_rows(),
                poll_interval=float(self.poke_interval), settle_seconds=self.settle_seconds,
                deadline=time.time() + float(self.timeout)),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status == "ok":
            return self._result(event)
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(event.get("message"))
            raise AirflowSensorTimeout(event.get("message"))
        raise AirflowException(f"waiting for the window failed: {event.get('message')}")
