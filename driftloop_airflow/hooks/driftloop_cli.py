"""DriftloopCliHook: run a ``driftloop`` command (``promote``, ``rollback``) where driftloop's
Python runs, and read its ``--json`` answer.

The Airflow image holds no MLflow client and no deploy code, so a manual action cannot run in
the task itself. It runs where the retrain pipeline's steps run, through the same registry
and deployer code (:mod:`driftloop.promotion`). The connection ``driftloop_kfp`` says where
(:func:`driftloop_airflow.hooks.kfp.backend_kind`), and :data:`CLI_RUNNERS` maps that to a
runner:

- ``local``: a subprocess of the local backend's interpreter, in its workdir, with its env
  (``make up``, the demo, the tests);
- ``rest`` (a cluster): a pod of the trainer image in the serving namespace, started by
  ``KubernetesPodOperator``, with the ``driftloop-settings`` ConfigMap as its environment
  and the ``driftloop-promoter`` ServiceAccount (allowed to patch the serving Deployment and
  nothing else: k8s/base/rbac.yaml). Connection extras: ``trainer_image`` (default:
  docker/images.env), ``actions_namespace``, ``actions_service_account``.

Either way a refused action (unknown version, no ``previous``, server unreachable) raises
:class:`CliCommandFailed` with driftloop's own one-line error; nothing was changed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow.sdk import BaseHook

from driftloop_airflow.config import KFP_CONN_ID
from driftloop_airflow.hooks.kfp import backend_kind, local_config
from driftloop_airflow.hooks.kfp_local import LocalConfig

#: Where the CLI's answer goes in the pod: KubernetesPodOperator reads it as the XCom.
POD_XCOM_FILE = "/airflow/xcom/return.json"
ERROR_PREFIX = "driftloop: error: "


class CliCommandFailed(Exception):
    """The command ran and refused (or failed): its message is driftloop's error line."""


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line.removeprefix(ERROR_PREFIX)
    return lines[-1] if lines else "no output"


class CliRunner(Protocol):
    name: str

    def run(self, args: list[str], context: Any, timeout_s: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LocalCliRunner:
    """``<python> -m driftloop ARGS --json`` in the local backend's workdir and env."""

    config: LocalConfig
    name: str = "local"

    def command(self, args: list[str]) -> list[str]:
        return [self.config.python, "-m", "driftloop", *args, "--json"]

    def run(self, args: list[str], context: Any, timeout_s: float) -> dict[str, Any]:
        command = self.command(args)
        try:
            proc = subprocess.run(command, cwd=self.config.workdir, capture_output=True,
                                  text=True, timeout=timeout_s,
                                  env={**os.environ, **self.config.env})
        except subprocess.TimeoutExpired:
            raise CliCommandFailed(f"`{shlex.join(command)}` did not finish within "
                                   f"{timeout_s:g}s") from None
        except OSError as exc:
            raise CliCommandFailed(f"cannot start `{shlex.join(command)}`: {exc}") from None
        if proc.returncode != 0:
            raise CliCommandFailed(_error_line(proc.stderr))
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise CliCommandFailed(f"`{shlex.join(command)}` printed no JSON answer: "
                                   f"{proc.stdout[-500:]!r}") from None


@dataclass(frozen=True)
class PodCliRunner:
    """The command in a pod of the trainer image (the cluster shape)."""

    image: str
    namespace: str
    service_account: str
    config_map: str
    name: str = "kubernetes"

    def operator(self, task_id: str, args: list[str], timeout_s: float) -> Any:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import models as k8s

        # The answer is written where the operator collects its XCom, and echoed to the log.
        script = f'driftloop "$@" --json > {POD_XCOM_FILE} && cat {POD_XCOM_FILE}'
        return KubernetesPodOperator(
            task_id=task_id, name=f"driftloop-{args[0]}", namespace=self.namespace,
            image=self.image, cmds=["/bin/sh", "-c", script, "driftloop"], arguments=args,
            service_account_name=self.service_account, do_xcom_push=True, get_logs=True,
            on_finish_action="delete_pod", startup_timeout_seconds=int(timeout_s),
            in_cluster=True,
            env_from=[k8s.V1EnvFromSource(
                config_map_ref=k8s.V1ConfigMapEnvSource(name=self.config_map))],
            env_vars=[k8s.V1EnvVar(name="HOME", value="/tmp")],
            labels={"app.kubernetes.io/part-of": "driftloop",
                    "app.kubernetes.io/component": "manual-action"},
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=10001, run_as_group=10001,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
            container_security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False, read_only_root_filesystem=True,
                capabilities=k8s.V1Capabilities(drop=["ALL"])),
            volumes=[k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
            volume_mounts=[k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
            container_resources=k8s.V1ResourceRequirements(
                requests={"cpu": "100m", "memory": "256Mi"},
                limits={"cpu": "1", "memory": "1Gi"}),
        )

    def run(self, args: list[str], context: Any, timeout_s: float) -> dict[str, Any]:
        task_id = f"{context['ti'].task_id}-pod"
        try:
            answer = self.operator(task_id, args, timeout_s).execute(context)
        except Exception as exc:
            raise CliCommandFailed(f"the {args[0]} pod failed (its log holds driftloop's "
                                   f"error): {exc}") from None
        return answer if isinstance(answer, dict) else json.loads(answer)


def _trainer_image(extra: dict[str, Any]) -> str:
    if extra.get("trainer_image"):
        return str(extra["trainer_image"])
    from driftloop.naming import IMAGES_FILE, images

    if not IMAGES_FILE.is_file():
        raise ValueError(f"connection {KFP_CONN_ID!r}: set extra `trainer_image` (the image "
                         "the manual actions run in); there is no docker/images.env here")
    return images()["DRIFTLOOP_TRAINER_IMAGE"]


def _pod_runner(conn: Any) -> PodCliRunner:
    from driftloop.naming import NAMESPACE, PROMOTER_SERVICE_ACCOUNT, SETTINGS_CONFIG_MAP

    extra = conn.extra_dejson or {}
    return PodCliRunner(
        image=_trainer_image(extra),
        namespace=str(extra.get("actions_namespace") or NAMESPACE),
        service_account=str(extra.get("actions_service_account") or PROMOTER_SERVICE_ACCOUNT),
        config_map=SETTINGS_CONFIG_MAP,
    )


#: KFP backend of the connection -> how a driftloop command runs there.
CLI_RUNNERS: dict[str, Callable[[Any], CliRunner]] = {
    "local": lambda conn: LocalCliRunner(local_config(conn)),
    "rest": _pod_runner,
}


class DriftloopCliHook(BaseHook):
    """Runs driftloop commands where the connection ``driftloop_kfp`` runs retrains."""

    conn_name_attr = "kfp_conn_id"
    default_conn_name = KFP_CONN_ID
    conn_type = "generic"
    hook_name = "driftloop commands"

    def __init__(self, kfp_conn_id: str = KFP_CONN_ID, runner: CliRunner | None = None) -> None:
        super().__init__()
        self.kfp_conn_id = kfp_conn_id
        self._runner = runner

    @property
    def runner(self) -> CliRunner:
        if self._runner is None:
            conn = self.get_connection(self.kfp_conn_id)
            self._runner = CLI_RUNNERS[backend_kind(conn)](conn)
        return self._runner

    def get_conn(self) -> CliRunner:
        return self.runner

    def run(self, args: list[str], context: Any, *, timeout_s: float) -> dict[str, Any]:
        return self.runner.run(args, context, timeout_s)
