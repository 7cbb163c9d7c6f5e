"""KfpHook: submit the retrain pipeline and follow its runs, on a cluster or locally.

Connection ``driftloop_kfp``; its extra ``backend`` picks how:

- ``rest`` (default when the connection has a host): Kubeflow Pipelines' REST API v2beta1
  (see :mod:`driftloop_airflow.hooks.kfp_rest` for the extras: ``experiment``,
  ``namespace``, ``pipeline_package`` or ``pipeline_id``/``pipeline_version_id``,
  ``token_path``, ``service_account``, ...);
- ``local``: the KFP local runner in a detached subprocess (extras ``python``,
  ``state_dir``, ``workdir``, ``env``; see :mod:`driftloop_airflow.hooks.kfp_local`).

Both report runs in KFP's state vocabulary (:class:`KfpRun`), list the recent ones (the
cooldown reads them) and give the trigger what it needs to poll without a worker slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from airflow.sdk import BaseHook

from driftloop_airflow.config import KFP_CONN_ID
from driftloop_airflow.hooks.kfp_local import KfpLocalBackend, LocalConfig
from driftloop_airflow.hooks.kfp_rest import KfpRestBackend, RestConfig
from driftloop_airflow.hooks.kfp_run import KfpRun

#: The compiled pipeline in a checkout (the Airflow image copies it to the same place).
PIPELINE_PACKAGE = "kfp_pipelines/retrain_pipeline.yaml"


class KfpBackend(Protocol):
    name: str

    def submit(self, display_name: str, parameters: dict[str, Any]) -> KfpRun: ...
    def get(self, run_id: str) -> KfpRun: ...
    def recent(self, limit: int = 20) -> list[KfpRun]: ...
    def terminate(self, run_id: str) -> None: ...
    def submission_lock(self) -> Any: ...
    def trigger_kwargs(self) -> dict[str, Any]: ...


def backend_kind(conn: Any) -> str:
    """``local`` or ``rest``: the connection's extra ``backend``, else ``rest`` when it has a
    host. The manual-action hook reads it too: actions run where retrains run."""
    kind = (conn.extra_dejson or {}).get("backend") or ("rest" if conn.host else "local")
    if kind not in ("local", "rest"):
        raise ValueError(f"connection {conn.conn_id!r}: extra backend={kind!r} is not one of "
                         "'rest' (Kubeflow Pipelines API) or 'local' (KFP local runner)")
    return kind


def local_config(conn: Any) -> LocalConfig:
    """The local backend's settings (interpreter, workdir, env) from the connection."""
    from driftloop.settings import PROJECT_ROOT
    from driftloop_airflow.config import airflow_settings

    return LocalConfig.from_connection(
        conn, default_state_dir=airflow_settings().state_dir, default_workdir=PROJECT_ROOT)


def backend_from_connection(conn: Any) -> KfpBackend:
    """The backend a ``driftloop_kfp`` connection describes."""
    from driftloop.settings import PROJECT_ROOT

    kind = backend_kind(conn)
    if kind == "local":
        return KfpLocalBackend(local_config(conn))
    return KfpRestBackend(RestConfig.from_connection(
        conn, default_package=str(PROJECT_ROOT / PIPELINE_PACKAGE)))


class KfpHook(BaseHook):
    """Submit, read, list and terminate retrain runs."""

    conn_name_attr = "kfp_conn_id"
    default_conn_name = KFP_CONN_ID
    conn_type = "generic"
    hook_name = "Kubeflow Pipelines (driftloop)"

    def __init__(self, kfp_conn_id: str = KFP_CONN_ID, backend: KfpBackend | None = None,
                 ) -> None:
        super().__init__()
        self.kfp_conn_id = kfp_conn_id
        self._backend = backend

    @property
    def backend(self) -> KfpBackend:
        if self._backend is None:
            self._backend = backend_from_connection(self.get_connection(self.kfp_conn_id))
        return self._backend

    def get_conn(self) -> KfpBackend:
        return self.backend

    def submit_run(self, display_name: str, parameters: dict[str, Any]) -> KfpRun:
        run = self.backend.submit(display_name, parameters)
        self.log.info("submitted KFP run %s (%s backend): %s", run.run_id, self.backend.name,
                      run.url or "")
        return run

    def get_run(self, run_id: str) -> KfpRun:
        return self.backend.get(run_id)

    def recent_runs(self, limit: int = 20) -> list[KfpRun]:
        """The most recent runs, newest first."""
        return self.backend.recent(limit)

    def list_active_runs(self, limit: int = 20) -> list[KfpRun]:
        return [run for run in self.recent_runs(limit) if run.is_active]

    def terminate_run(self, run_id: str) -> None:
        self.backend.terminate(run_id)

    def submission_lock(self) -> Any:
        return self.backend.submission_lock()

    def cooldown_reason(self, cooldown: timedelta, now: datetime, *,
                        block_if_active: bool = True,
                        runs: list[KfpRun] | None = None) -> str | None:
        """Why a new retrain must not be submitted now, or None if it may.

        A run that is still active blocks (unless ``block_if_active`` is off); otherwise the
        newest run blocks while it was created less than ``cooldown`` ago. ``runs``: the
        recent runs when the caller has listed them already.
        """
        runs = self.recent_runs() if runs is None else runs
        active = [run for run in runs if run.is_active]
        if active and block_if_active:
            names = ", ".join(f"{r.run_id} ({r.state})" for r in active)
            return f"a retrain is still running: {names}"
        if cooldown > timedelta(0):
            for run in runs:
                if run.created_at is not None and now - run.created_at < cooldown:
                    until = run.created_at + cooldown
                    return (f"cooldown: retrain {run.run_id} was submitted at "
                            f"{run.created_at.isoformat()}; no new retrain before "
                            f"{until.isoformat()} (cooldown {cooldown})")
        return None

    def trigger_kwargs(self) -> dict[str, Any]:
        """What KfpRunTrigger needs to poll this backend from the triggerer."""
        return {"backend": self.backend.name, "kfp_conn_id": self.kfp_conn_id,
                **self.backend.trigger_kwargs()}
