"""Deployers: make the serving side serve a registered version, or leave it as it was.

One interface, three targets, picked by the retrain pipeline's ``deploy_target``:

- ``local``: the uvicorn server hot-swaps (``POST /admin/reload``); the server never swaps
  on a failed load, so a failure leaves the old model serving by construction.
- ``kubernetes``: the serving Deployment's pod template pins the version (env + annotation);
  the rollout is awaited and, if it never becomes ready, patched back to what it was.
- ``none``: nothing is deployed (dry runs, tests of the registry side).

Every failure raises :class:`DeployError` *after* undoing what the deployer changed; moving
the registry's ``champion`` alias back is the caller's job (the deployer knows no registry).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from driftloop import naming
from driftloop.errors import DriftloopError
from driftloop.settings import Settings

DEPLOY_TARGETS = ("none", "local", "kubernetes")
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class DeployError(DriftloopError):
    """A deployment failed; what the deployer changed has been undone (see the message)."""


@dataclass(frozen=True)
class DeployResult:
    target: str
    version: str
    #: What served before (None: unknown, or nothing pinned).
    previous: str | None
    #: ``deployed`` | ``unchanged`` | ``skipped``.
    status: str
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Deployer(ABC):
    """Serve ``version`` or raise :class:`DeployError` with the old version still serving."""

    target: ClassVar[str]

    @abstractmethod
    def deploy(self, version: str, *, shadow: str | None = None) -> DeployResult:
        """``shadow``: what the replicas should score beside ``version`` ("3 (challenger)"),
        for deployers whose replicas only learn it by restarting."""


class NoDeployer(Deployer):
    target = "none"

    def deploy(self, version: str, *, shadow: str | None = None) -> DeployResult:
        return DeployResult(self.target, str(version), None, "skipped",
                            "deploy target 'none': nothing was deployed", 0.0)


# --- local: the uvicorn server's hot reload -------------------------------------------------


class LocalDeployer(Deployer):
    """``POST /admin/reload`` with the bearer token, then poll ``GET /model`` for the version.

    If the server accepted the reload but never reports the version (e.g. one of several
    workers did not swap), the previously served version is reloaded before failing.
    """

    target = "local"

    def __init__(
        self, server_url: str, token: str | None, *, timeout_s: float = 60.0,
        poll_interval_s: float = 0.25, request_timeout_s: float = 120.0,
        transport: Any = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self._request_timeout = request_timeout_s
        self._transport = transport

    def _client(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.server_url, timeout=self._request_timeout,
                            transport=self._transport)

    def _unreachable(self, exc: Exception) -> DeployError:
        return DeployError(f"serving at {self.server_url} is unreachable "
                           f"({type(exc).__name__}: {exc}); nothing was changed")

    def served_version(self) -> str | None:
        """The version ``GET /model`` reports (None when the server has no model)."""
        import httpx

        with self._client() as client:
            try:
                response = client.get("/model")
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        if response.status_code == 503:
            return None
        if response.status_code != 200:
            raise DeployError(f"GET {self.server_url}/model answered "
                              f"{response.status_code}: {_detail(response)}")
        version = response.json().get("version")
        return None if version is None else str(version)

    def _reload(self, client: Any, version: str) -> Any:
        return client.post("/admin/reload", json={"version": str(version)},
                           headers={"Authorization": f"Bearer {self._token}"})

    def deploy(self, version: str, *, shadow: str | None = None) -> DeployResult:
        """(``shadow`` is not needed: a reload re-reads the aliases, the shadow included.)"""
        import httpx

        version = str(version)
        if not self._token:
            raise DeployError("no admin token: set DRIFTLOOP_ADMIN_TOKEN to the server's "
                              "token so the deployer may call POST /admin/reload")
        started = time.monotonic()
        before = self.served_version()
        with self._client() as client:
            try:
                response = self._reload(client, version)
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            if response.status_code != 200:
                raise DeployError(_reload_refused(self.server_url, version, response, before))
            status = response.json().get("status", "reloaded")
            deadline = time.monotonic() + self.timeout_s
            seen: str | None = None
            while True:
                try:
                    seen = self.served_version()
                except DeployError:
                    seen = None
                if seen == version:
                    break
                if time.monotonic() >= deadline:
                    undone = self._undo(client, before, version)
                    raise DeployError(
                        f"serving at {self.server_url} accepted version {version} but "
                        f"GET /model still reports {seen!r} after {self.timeout_s:g}s; {undone}"
                    )
                time.sleep(self.poll_interval_s)
        return DeployResult(
            self.target, version, before, "unchanged" if status == "unchanged" else "deployed",
            f"serving at {self.server_url} reports version {version}",
            round(time.monotonic() - started, 3),
        )

    def _undo(self, client: Any, before: str | None, version: str) -> str:
        import httpx

        if before is None or before == version:
            return "no earlier version to restore"
        try:
            response = self._reload(client, before)
        except httpx.HTTPError as exc:
            return f"restoring version {before} failed ({exc})"
        if response.status_code != 200:
            return f"restoring version {before} failed ({response.status_code})"
        return f"version {before} was reloaded"


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


def _reload_refused(url: str, version: str, response: Any, before: str | None) -> str:
    code = response.status_code
    why = {
        401: "the server wants a bearer token",
        403: "the admin token was refused (check DRIFTLOOP_ADMIN_TOKEN on both sides)",
        404: "the server's registry has no such version (same MLflow store on both sides?)",
        409: "other replicas share the server's prediction log, and a hot reload would "
             "change only one of them: use deploy_target=kubernetes for a Deployment",
        422: "the server could not load or warm that version",
        503: "the server cannot reach its registry",
    }.get(code, "unexpected answer")
    still = f"; version {before} keeps serving" if before else ""
    return (f"POST {url}/admin/reload for version {version} answered {code}: {why} "
            f"({_detail(response)}){still}")


# --- kubernetes: patch the serving Deployment, await the rollout, undo on failure ----------


class RolloutFailed(Exception):
    """The rollout cannot complete (deadline exceeded or our own timeout)."""


def rollout_state(deployment: Any) -> tuple[bool, str]:
    """``(done, message)`` for a V1Deployment, as ``kubectl rollout status`` decides it.

    Raises :class:`RolloutFailed` once Kubernetes reports ``ProgressDeadlineExceeded``.
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    observed = (status.observed_generation if status else None) or 0
    if (meta.generation or 0) > observed:
        return False, "waiting for the deployment spec update to be observed"
    for cond in (status.conditions or []):
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise RolloutFailed(f"deployment exceeded its progress deadline ({cond.message})")
    wanted = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    total = status.replicas or 0
    available = status.available_replicas or 0
    if updated < wanted:
        return False, f"{updated} of {wanted} new replicas have been updated"
    if total > updated:
        return False, f"{total - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f"{available} of {wanted} replicas updated and available"


def version_patch(container: str, version: str | None, annotation: str | None,
                  shadow: str | None = None) -> dict[str, Any]:
    """Strategic-merge patch pinning ``version`` (and naming the ``shadow``) in the pod
    template.

    ``None`` removes the env var (``$patch: delete``) or an annotation (null): the undo of
    a first pin restores "serve the champion alias" exactly.
    """
    env_entry: dict[str, Any] = {"name": naming.MODEL_VERSION_ENV}
    if version is None:
        env_entry["$patch"] = "delete"
    else:
        env_entry["value"] = str(version)
    return {"spec": {"template": {
        "metadata": {"annotations": {naming.MODEL_VERSION_ANNOTATION: annotation,
                                     naming.SHADOW_ANNOTATION: shadow}},
        "spec": {"containers": [{"name": container, "env": [env_entry]}]},
    }}}


def load_apps_api() -> Any:
    """AppsV1Api from the in-cluster service account, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise DeployError(f"no Kubernetes credentials: neither in a cluster nor a "
                              f"kubeconfig ({exc})") from None
    return client.AppsV1Api()


class KubernetesDeployer(Deployer):
    """Pin the version in the serving Deployment's pod template and await the rollout."""

    target = "kubernetes"

    def __init__(
        self, apps_api: Any = None, *, namespace: str = naming.NAMESPACE,
        deployment: str = naming.SERVING_DEPLOYMENT, container: str = naming.SERVING_CONTAINER,
        timeout_s: float = 300.0, poll_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print,
    ) -> None:
        self._api = apps_api
        self.namespace = namespace
        self.deployment = deployment
        self.container = container
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._sleep = sleep
        self._log = log

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = load_apps_api()
        return self._api

    @property
    def _where(self) -> str:
        return f"deployment {self.namespace}/{self.deployment}"

    def _read(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.read_namespaced_deployment(self.deployment, self.namespace)
        except ApiException as exc:
            raise DeployError(f"cannot read {self._where}: {exc.status} {exc.reason}") \
                from None

    def pinned(self, deployment: Any) -> tuple[str | None, str | None]:
        """(env value, annotation) the pod template pins now."""
        containers = deployment.spec.template.spec.containers or []
        found = next((c for c in containers if c.name == self.container), None)
        if found is None:
            names = ", ".join(c.name for c in containers) or "none"
            raise DeployError(f"{self._where} has no container {self.container!r} "
                              f"(it has: {names})")
        env = next((e.value for e in (found.env or []) if e.name == naming.MODEL_VERSION_ENV),
                   None)
        annotations = deployment.spec.template.metadata.annotations or {}
        return env, annotations.get(naming.MODEL_VERSION_ANNOTATION)

    @staticmethod
    def shadow_of(deployment: Any) -> str | None:
        return (deployment.spec.template.metadata.annotations or {}).get(
            naming.SHADOW_ANNOTATION)

    def _patch(self, version: str | None, annotation: str | None,
               shadow: str | None = None) -> None:
        from kubernetes.client.exceptions import ApiException

        body = version_patch(self.container, version, annotation, shadow)
        try:
            self.api.patch_namespaced_deployment(self.deployment, self.namespace, body,
                                                 _content_type=STRATEGIC_MERGE_PATCH)
        except ApiException as exc:
            raise DeployError(f"cannot patch {self._where}: {exc.status} {exc.reason}") \
                from None

    def wait_for_rollout(self, timeout_s: float) -> str:
        """Poll until the rollout completes; :class:`RolloutFailed` on deadline or timeout."""
        deadline = self._clock() + timeout_s
        last = ""
        while True:
            done, message = rollout_state(self._read())
            if done:
                return message
            if message != last:
                self._log(f"{self._where}: {message}")
                last = message
            if self._clock() >= deadline:
                raise RolloutFailed(f"not ready after {timeout_s:g}s: {message}")
            self._sleep(self.poll_interval_s)

    def deploy(self, version: str, *, shadow: str | None = None) -> DeployResult:
        version = str(version)
        started = self._clock()
        current = self._read()
        before_env, before_annotation = self.pinned(current)
        before_shadow = self.shadow_of(current)
        if before_env == version and before_annotation == version and before_shadow == shadow:
            try:
                message = self.wait_for_rollout(self.timeout_s)
            except RolloutFailed as exc:
                raise DeployError(f"{self._where} already pins version {version} but is not "
                                  f"ready: {exc}") from None
            return DeployResult(self.target, version, before_env, "unchanged", message,
                                round(self._clock() - started, 3))
        # A new shadow alone rolls the replicas too: they load it through the aliases.
        self._patch(version, version, shadow)
        try:
            message = self.wait_for_rollout(self.timeout_s)
        except RolloutFailed as exc:
            undone = self._undo(before_env, before_annotation, before_shadow)
            raise DeployError(f"rollout of version {version} on {self._where} failed: {exc}; "
                              f"{undone}") from None
        return DeployResult(self.target, version, before_env, "deployed", message,
                            round(self._clock() - started, 3))

    def _undo(self, env: str | None, annotation: str | None,
              shadow: str | None = None) -> str:
        what = f"version {env}" if env else "the unpinned template (serve the champion alias)"
        try:
            self._patch(env, annotation, shadow)
        except DeployError as exc:
            return f"undo failed too: {exc}"
        try:
            self.wait_for_rollout(self.timeout_s)
        except (RolloutFailed, DeployError) as exc:
            return f"patched back to {what}, but that rollout is not ready either: {exc}"
        return f"rolled back to {what}"


def make_deployer(target: str, settings: Settings, *, timeout_s: float = 300.0) -> Deployer:
    """The deployer for a pipeline's ``deploy_target``."""
    if target == "none":
        return NoDeployer()
    if target == "local":
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        return LocalDeployer(settings.server_url, token, timeout_s=timeout_s)
    if target == "kubernetes":
        return KubernetesDeployer(timeout_s=timeout_s)
    raise DeployError(f"unknown deploy target {target!r} (choose one of: "
                      f"{', '.join(DEPLOY_TARGETS)})")
