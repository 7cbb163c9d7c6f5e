"""ValidateWindowOperator: Great Expectations on the run's window, against the champion's suite.

The window comes from ``GET /drift/window`` and the suite from ``GET /model/expectations``,
both over HTTP, so the Airflow image needs no MLflow client. Validation runs through
``driftloop.expectations.validate`` (Great Expectations directly, imported only when a
window is validated: the import costs ~9 s). ``airflow-provider-great-expectations`` 1.0.0
cannot be installed beside Airflow 3.3 (structlog pins), and its 1.x does not fail the task
on a failed validation anyway: here a failed validation fails the task, explicitly, with
every failed expectation in the message, and no retry (the data will not change).

The HTML report is stored with the prediction log through the server (``PUT /reports/...``,
opened at ``report_url``), so it outlives the task's pod, and also written under
``report_dir`` when one is set. A report that cannot be stored is said in the task log and
in ``report_error``; it never hides the validation's own result.

Returns ``{"validated", "success", "rows", "summary", "failures", "report", "report_url",
"report_error"}``; a window
with fewer than ``min_rows`` rows is not validated (``validated: false``): too little data
is the drift check's verdict to give, not a data-quality failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from driftloop_airflow.config import SERVING_CONN_ID
from driftloop_airflow.hooks.serving import ServingHook
from driftloop_airflow.window import Window


class DataValidationFailed(AirflowFailException):
    """The window broke the champion's expectations: no retrain on this data."""


class ValidateWindowOperator(BaseOperator):
    template_fields: Sequence[str] = ("window_start", "window_end", "min_rows", "report_dir")
    ui_color = "#ff6f3c"

    def __init__(self, *, window_start: Any, window_end: Any, min_rows: int | str = 1,
                 serving_conn_id: str = SERVING_CONN_ID, report_dir: str | None = None,
                 max_rows: int | None = 200_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.min_rows = min_rows
        self.serving_conn_id = serving_conn_id
        self.report_dir = report_dir
        self.max_rows = max_rows

    def execute(self, context: Any) -> dict[str, Any]:
        import pandas as pd

        from driftloop.expectations import validate, with_target

        window = Window.of(self.window_start, self.window_end)
        hook = ServingHook(self.serving_conn_id)
        suite = hook.expectations()
        rows = hook.export_window(window.start, window.end, max_rows=self.max_rows)
        min_rows = int(self.min_rows)
        if len(rows) < min_rows:
            summary = f"{len(rows)} rows in {window}, fewer than {min_rows}: not validated"
            self.log.info(summary)
            return {"validated": False, "success": None, "rows": len(rows), "summary": summary,
                    "failures": [], "report": None, "report_url": None, "report_error": None}
        frame = with_target(pd.DataFrame.from_records(rows), suite)
        self.log.info("validating %d rows of %s against suite %r (%d expectations)",
                      len(frame), window, suite.get("name"), len(suite.get("expectations", [])))
        report = validate(frame, suite)
        html = report.to_html(f"{self.dag_id} window {window}")
        path = self._write_report(context, html)
        url, error = self._store_report(hook, context, html)
        result = {"validated": True, "success": report.success, "rows": report.rows,
                  "summary": report.summary(), "failures": report.as_dict()["failures"],
                  "report": path, "report_url": url, "report_error": error}
        context["ti"].xcom_push(key="validation", value=result)
        if not report.success:
            raise DataValidationFailed(
                f"data validation failed for window {window}, no retrain: {report.summary()}"
                + (f" (report: {url or path})" if url or path else ""))
        self.log.info("window %s is valid: %s", window, report.summary())
        return result

    def _report_name(self, context: Any) -> str:
        run_id = str(context.get("run_id", "run")).replace(":", "_").replace("+", "_")
        return f"{self.dag_id}__{run_id}"

    def _write_report(self, context: Any, html: str) -> str | None:
        if not self.report_dir:
            return None
        out = Path(self.report_dir) / f"{self._report_name(context)}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html)
        return str(out)

    def _store_report(self, hook: ServingHook, context: Any,
                      html: str) -> tuple[str | None, str | None]:
        """(url, None) once stored with the log; (None, why) when it could not be."""
        name = f"validation/{self._report_name(context)}.html"
        try:
            url = hook.put_report(name, html)
        except Exception as exc:  # the verdict stands; the missing report is said plainly
            self.log.warning("validation report NOT stored with the prediction log: %s", exc)
            return None, str(exc)
        self.log.info("validation report: %s", url)
        return url, None
