"""Promotion from Airflow, through the same registry and deployer code the pipeline and the
CLI use:

- ``ManualActionOperator``: ``driftloop promote VERSION`` or ``driftloop rollback``, from
  the Airflow UI;
- ``LiveGateOperator``: ``driftloop live-gate``, the hourly decision on the shadow stage's
  challenger and on a champion's probation; an automatic rollback alerts.

The operator checks the request before anything runs (an unknown action, a promote without a
version, an empty reason: a clear error, nothing changed), then runs the command where
driftloop's Python runs (:class:`~driftloop_airflow.hooks.driftloop_cli.DriftloopCliHook`).
Who did it: the user who triggered the run, as Airflow knows them, with the run id, so the
version's ``manual_by`` tag leads back to the run.

A refused action fails the task without retries (retrying would not change the answer, and a
person asked for this once); the error is pushed as XCom ``error`` for the run's outcome.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from driftloop_airflow.config import KFP_CONN_ID
from driftloop_airflow.hooks.driftloop_cli import CliCommandFailed, DriftloopCliHook

#: The actions, in the order the trigger form lists them (rollback: the common emergency).
ACTIONS = ("rollback", "promote")


def command(action: str, version: str | None, reason: str | None, by: str,
            deploy_target: str | None, timeout_s: float) -> list[str]:
    """The ``driftloop`` arguments for the request, or a ValueError naming what is wrong."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("give a reason: it is recorded on the version (who, when, why)")
    version = (version or "").strip().removeprefix("v")
    args = [action]
    if action == "promote":
        if not version:
            raise ValueError("promote needs the version to promote (e.g. 3)")
        args.append(version)
    elif version:
        raise ValueError(f"rollback takes no version (it serves `previous`); got {version!r}")
    args += ["--reason", reason, "--by", by, "--timeout", f"{timeout_s:g}"]
    if deploy_target:
        args += ["--deploy-target", deploy_target]
    return args


class ManualActionOperator(BaseOperator):
    """Promote a version, or roll back to ``previous``, and serve the new champion."""

    template_fields = ("action", "version", "reason", "deploy_target")
    ui_color = "#fdf3d7"

    def __init__(self, *, action: str, version: str | None, reason: str | None,
                 deploy_target: str | None = None, timeout_s: float = 300.0,
                 kfp_conn_id: str = KFP_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.version = version
        self.reason = reason
        self.deploy_target = deploy_target
        self.timeout_s = timeout_s
        self.kfp_conn_id = kfp_conn_id

    @staticmethod
    def actor(context: Any) -> str:
        """Who asked: the triggering user (Airflow 3), and the run, for the audit trail."""
        run = context.get("dag_run")
        user = getattr(run, "triggering_user_name", None) or "airflow"
        return f"{user} (Airflow run {context['run_id']})"

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        try:
            args = command(self.action, self.version, self.reason, self.actor(context),
                           self.deploy_target, self.timeout_s)
        except ValueError as exc:
            ti.xcom_push(key="error", value=str(exc))
            raise AirflowFailException(f"refused (nothing changed): {exc}") from None
        self.log.info("running: driftloop %s", " ".join(args))
        hook = DriftloopCliHook(self.kfp_conn_id)
        try:
            result = hook.run(args, context, timeout_s=self.timeout_s + 120)
        except CliCommandFailed as exc:
            ti.xcom_push(key="error", value=str(exc))
            raise AirflowFailException(f"driftloop {self.action} failed: {exc}") from None
        self.log.info("%s: v%s is champion (was v%s); served via %s: %s", self.action,
                      result.get("version"), result.get("champion_before") or "none",
                      (result.get("deploy") or {}).get("target"),
                      (result.get("deploy") or {}).get("status"))
        return result


class LiveGateOperator(BaseOperator):
    """One decision of the live gate (driftloop.promotion.live); alerts on a rollback."""

    template_fields = ("deploy_target",)
    ui_color = "#e3f5e1"

    def __init__(self, *, deploy_target: str | None = None, timeout_s: float = 300.0,
                 kfp_conn_id: str = KFP_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deploy_target = deploy_target
        self.timeout_s = timeout_s
        self.kfp_conn_id = kfp_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from driftloop_airflow.notifiers.webhook import WebhookNotifier

        args = ["live-gate", "--timeout", f"{self.timeout_s:g}"]
        if self.deploy_target:
            args += ["--deploy-target", self.deploy_target]
        try:
            decision = DriftloopCliHook(self.kfp_conn_id).run(
                args, context, timeout_s=self.timeout_s + 120)
        except CliCommandFailed as exc:
            context["ti"].xcom_push(key="error", value=str(exc))
            raise AirflowFailException(f"driftloop live-gate failed: {exc}") from None
        self.log.info("live gate: %s: %s", decision.get("action"), decision.get("reason"))
        if decision.get("alert"):
            WebhookNotifier(message=f"driftloop: {decision.get('reason')}").notify(context)
        return decision
