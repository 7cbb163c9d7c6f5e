"""SubmitKfpRunOperator: submit the retrain pipeline and wait for it without a worker slot.

Under one lock (the one-slot ``driftloop_retrain`` pool on a cluster, an ``flock`` for the
local runner as well), it checks the cooldown — a run still active, or one submitted less
than ``cooldown_minutes`` ago — and either skips with the reason or submits. Then it defers
to :class:`KfpRunTrigger` (default) or polls in place, and fails with the run's own error
when the run fails. A failed run is not retried automatically (a retry would rerun the whole
retrain).

One DAG run submits at most one retrain. Runs are named after their DAG run
(``display_name``), so a later attempt of the task (an automatic retry, or a clear) that finds
a run of that name follows it instead of submitting another, and never skips "for the
cooldown" of its own run: that turned a failed retrain into a skipped, green task when
Airflow retried a deferred task it had wrongly marked as changed externally. To retrain
again, trigger a new DAG run (``cooldown_minutes=0`` lifts the cooldown).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from driftloop_airflow.config import KFP_CONN_ID
from driftloop_airflow.hooks.kfp import KfpHook
from driftloop_airflow.hooks.kfp_run import KfpRun
from driftloop_airflow.triggers.kfp import KfpRunTrigger


class SubmitKfpRunOperator(BaseOperator):
    """Submit one KFP run with ``parameters`` and wait for it to end.

    :param parameters: pipeline parameters (templated; an XComArg dict works too).
    :param display_name: the run's name in KFP (templated).
    :param cooldown_minutes: skip while the newest run is younger than this (templated;
        0 or empty: no cooldown period).
    :param block_if_active: skip while any run of the experiment is still active.
    :param poll_interval: seconds between two looks at the run. Default: 2 for the local
        runner (a file read), 15 for the KFP API.
    :param timeout: how long to wait for the run; past it, the run is terminated.
    """

    template_fields: Sequence[str] = ("parameters", "display_name", "cooldown_minutes")
    template_fields_renderers = {"parameters": "json"}
    ui_color = "#4285f4"

    def __init__(self, *, parameters: dict[str, Any] | Any, display_name: str,
                 kfp_conn_id: str = KFP_CONN_ID, cooldown_minutes: float | str | None = 0,
                 block_if_active: bool = True, deferrable: bool = True,
                 poll_interval: float | None = None, timeout: timedelta = timedelta(hours=2),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parameters = parameters
        self.display_name = display_name
        self.kfp_conn_id = kfp_conn_id
        self.cooldown_minutes = cooldown_minutes
        self.block_if_active = block_if_active
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._run_id: str | None = None

    def _cooldown(self) -> timedelta:
        if self.cooldown_minutes is None or self.cooldown_minutes == "":
            return timedelta(0)
        try:
            minutes = float(self.cooldown_minutes)
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(
                f"cooldown_minutes must be a number of minutes, got {self.cooldown_minutes!r}"
            ) from exc
        if minutes < 0:
            raise AirflowFailException(f"cooldown_minutes must be >= 0, got {minutes:g}")
        return timedelta(minutes=minutes)

    def execute(self, context: Any) -> dict[str, Any]:
        if not isinstance(self.parameters, dict):
            raise AirflowFailException(
                f"parameters must be a dict of pipeline parameters, got {self.parameters!r}")
        hook = KfpHook(self.kfp_conn_id)
        cooldown = self._cooldown()
        with hook.submission_lock():
            runs = hook.recent_runs()
            earlier = self._earlier_attempts_run(runs)
            if earlier is not None:
                return self._follow(context, hook, earlier)
            if self.block_if_active or cooldown:
                reason = hook.cooldown_reason(cooldown, datetime.now(UTC),
                                              block_if_active=self.block_if_active, runs=runs)
                if reason:
                    context["ti"].xcom_push(key="skipped_reason", value=reason)
                    raise AirflowSkipException(f"no retrain submitted: {reason}")
            run = hook.submit_run(self.display_name, self.parameters)
        return self._follow(context, hook, run)

    def _earlier_attempts_run(self, runs: list[KfpRun]) -> KfpRun | None:
        """The newest run named like this task's (the same DAG run), if any."""
        for run in runs:
            if run.display_name == self.display_name:
                self.log.warning(
                    "an earlier attempt of this task submitted KFP run %s (%s): following "
                    "it, not submitting another (a new DAG run submits a new retrain)",
                    run.run_id, run.state)
                return run
        return None

    def _follow(self, context: Any, hook: KfpHook, run: KfpRun) -> dict[str, Any]:
        """Wait for ``run`` (deferred or in place) and end as it ends."""
        self._run_id = run.run_id
        context["ti"].xcom_push(key="kfp_run_id", value=run.run_id)
        if run.url:
            context["ti"].xcom_push(key="kfp_run_url", value=run.url)
        if run.is_terminal:
            return self._finish(run)
        if self.poll_interval is None:
            self.poll_interval = 2.0 if hook.backend.name == "local" else 15.0
        if self.deferrable:
            self.defer(
                trigger=KfpRunTrigger(run_id=run.run_id, poll_interval=self.poll_interval,
                                      deadline=time.time() + self.timeout.total_seconds(),
                                      **hook.trigger_kwargs()),
                method_name="execute_complete",
            )
        return self._wait_in_place(hook, run)

    def _wait_in_place(self, hook: KfpHook, run: KfpRun) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout.total_seconds()
        while not run.is_terminal:
            if time.monotonic() >= deadline:
                hook.terminate_run(run.run_id)
                raise AirflowFailException(
                    f"KFP run {run.run_id} still {run.state} after {self.timeout}; terminated")
            time.sleep(self.poll_interval or 15.0)
            run = hook.get_run(run.run_id)
        return self._finish(run)

    def _finish(self, run: KfpRun) -> dict[str, Any]:
        if not run.succeeded:
            raise AirflowFailException(run.failure_message())
        self.log.info("KFP run %s succeeded; result: %s", run.run_id, run.result)
        return run.as_event()

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status == "done":
            return self._finish(KfpRun.from_event(event["run"]))
        if status == "timeout":
            run_id = event.get("run_id") or self._run_id
            try:
                KfpHook(self.kfp_conn_id).terminate_run(run_id)
            except Exception as exc:
                self.log.warning("could not terminate KFP run %s: %s", run_id, exc)
            raise AirflowFailException(f"{event.get('message')}; terminated it after "
                                       f"{self.timeout}")
        raise AirflowFailException(event.get("message") or f"unexpected trigger event {event}")

    def on_kill(self) -> None:
        if self._run_id:
            self.log.info("task killed: terminating KFP run %s", self._run_id)
            KfpHook(self.kfp_conn_id).terminate_run(self._run_id)
