"""Deployers.

KubernetesDeployer runs on the real ``kubernetes`` client (AppsV1Api → ApiClient → REST
client); only the HTTP connection pool is replaced by an in-memory API server for the one
Deployment, which records every request and plays a rollout step by step (no cluster here).
What goes over the wire — method, path, content type, JSON body — is asserted exactly.

LocalDeployer's protocol edge cases run against ``httpx.MockTransport``; its run against a
real server process is in tests/pipelines/test_live_server.py.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import httpx
import pytest
import urllib3
from kubernetes import client as k8s

from driftloop import naming
from driftloop.deploy import (
    STRATEGIC_MERGE_PATCH,
    DeployError,
    KubernetesDeployer,
    LocalDeployer,
    NoDeployer,
    RolloutFailed,
    make_deployer,
    rollout_state,
)
from driftloop.settings import Settings

PATH = f"/apis/apps/v1/namespaces/{naming.NAMESPACE}/deployments/{naming.SERVING_DEPLOYMENT}"
ENV = naming.MODEL_VERSION_ENV
ANNOTATION = naming.MODEL_VERSION_ANNOTATION


def serving_deployment(pinned: str | None = None, replicas: int = 2) -> k8s.V1Deployment:
    """The serving Deployment as k8s/base/serving.yaml shapes it, rolled out and ready."""
    env = [k8s.V1EnvVar(name="DRIFTLOOP_ADMIN_TOKEN", value="t")]
    annotations = {"prometheus.io/scrape": "true"}
    if pinned is not None:
        env.append(k8s.V1EnvVar(name=ENV, value=pinned))
        annotations[ANNOTATION] = pinned
    return k8s.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=k8s.V1ObjectMeta(name=naming.SERVING_DEPLOYMENT, namespace=naming.NAMESPACE,
                                  generation=4),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels={"app": "serving"}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": "serving"}, annotations=annotations),
                spec=k8s.V1PodSpec(containers=[
                    k8s.V1Container(name="log-shipper", image="busybox"),
                    k8s.V1Container(name=naming.SERVING_CONTAINER,
                                    image="driftloop/serving:0.1.0", env=env),
                ]),
            ),
        ),
        status=k8s.V1DeploymentStatus(
            observed_generation=4, replicas=replicas, updated_replicas=replicas,
            available_replicas=replicas, ready_replicas=replicas,
            conditions=[k8s.V1DeploymentCondition(type="Progressing", status="True",
                                                  reason="NewReplicaSetAvailable")],
        ),
    )


def _merge_env(env: list[dict[str, Any]], patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(e) for e in env]
    for item in patch:
        out = [e for e in out if e["name"] != item["name"]]
        if item.get("$patch") != "delete":
            out.append(item)
    return out


class FakeApiServer:
    """One Deployment behind ``PATCH``/``GET``, applying driftloop's strategic-merge patch
    shape and playing a rollout per patch: ``ok`` (progresses to ready), ``never`` (stays
    short of available), ``deadline`` (Kubernetes gives up: ProgressDeadlineExceeded)."""

    STEPS = ("unobserved", "updating", "terminating", "unavailable", "ready")

    def __init__(self, deployment: k8s.V1Deployment, rollouts: list[str] | None = None,
                 fail: dict[str, int] | None = None) -> None:
        self.obj = k8s.ApiClient().sanitize_for_serialization(deployment)
        self.rollouts = list(rollouts or [])
        self.fail = dict(fail or {})
        self.requests: list[dict[str, Any]] = []
        self._mode = "ok"
        self._step = len(self.STEPS) - 1

    # urllib3.PoolManager.request, as RESTClientObject calls it
    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                **_: Any) -> urllib3.HTTPResponse:
        parsed = urllib3.util.parse_url(url)
        self.requests.append({"method": method, "path": parsed.path,
                              "content_type": (headers or {}).get("Content-Type"),
                              "body": json.loads(body) if body else None})
        if method in self.fail:
            status = self.fail[method]
            return urllib3.HTTPResponse(body=b'{"kind":"Status"}', status=status,
                                        reason={403: "Forbidden", 404: "Not Found"}[status],
                                        headers={"Content-Type": "application/json"})
        if method == "PATCH":
            self._apply(json.loads(body))
        elif method == "GET":
            self._advance()
        return urllib3.HTTPResponse(body=json.dumps(self.obj).encode(), status=200,
                                    headers={"Content-Type": "application/json"})

    def _apply(self, patch: dict[str, Any]) -> None:
        template = self.obj["spec"]["template"]
        tpatch = patch["spec"]["template"]
        annotations = template["metadata"].setdefault("annotations", {})
        for key, value in tpatch["metadata"]["annotations"].items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        for cpatch in tpatch["spec"]["containers"]:
            target = next(c for c in template["spec"]["containers"]
                          if c["name"] == cpatch["name"])
            target["env"] = _merge_env(target.get("env", []), cpatch["env"])
        self.obj["metadata"]["generation"] += 1
        self._mode = self.rollouts.pop(0) if self.rollouts else "ok"
        self._step = -1

    def _advance(self) -> None:
        if self._step >= len(self.STEPS) - 1:
            return
        if self._mode == "never" and self.STEPS[self._step] == "unavailable":
            return
        self._step += 1
        wanted = self.obj["spec"]["replicas"]
        status = self.obj["status"]
        step = self.STEPS[self._step]
        if step == "unobserved":
            return
        status["observedGeneration"] = self.obj["metadata"]["generation"]
        if step == "updating":
            status.update(replicas=wanted + 1, updatedReplicas=wanted - 1,
                          availableReplicas=wanted)
            if self._mode == "deadline":
                status["conditions"] = [{"type": "Progressing", "status": "False",
                                         "reason": "ProgressDeadlineExceeded",
                                         "message": "ReplicaSet has timed out progressing."}]
        elif step == "terminating":
            status.update(replicas=wanted + 1, updatedReplicas=wanted,
                          availableReplicas=wanted)
        elif step == "unavailable":
            status.update(replicas=wanted, updatedReplicas=wanted,
                          availableReplicas=wanted - 1)
        else:
            status.update(replicas=wanted, updatedReplicas=wanted, availableReplicas=wanted)

    # views for assertions
    def patches(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "PATCH"]

    def pinned(self) -> tuple[str | None, str | None]:
        template = self.obj["spec"]["template"]
        serving = next(c for c in template["spec"]["containers"] if c["name"] == "serving")
        env = next((e["value"] for e in serving.get("env", []) if e["name"] == ENV), None)
        return env, template["metadata"].get("annotations", {}).get(ANNOTATION)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def deployer(server: FakeApiServer, clock: FakeClock, log: list[str] | None = None,
             timeout_s: float = 30.0) -> KubernetesDeployer:
    api_client = k8s.ApiClient(k8s.Configuration(host="https://k8s.invalid"))
    api_client.rest_client.pool_manager = server
    return KubernetesDeployer(k8s.AppsV1Api(api_client), timeout_s=timeout_s,
                              poll_interval_s=2.0, clock=clock, sleep=clock.sleep,
                              log=(log.append if log is not None else lambda _: None))


def expected_patch(env: dict[str, Any], annotation: str | None,
                   shadow: str | None = None) -> dict[str, Any]:
    return {"spec": {"template": {
        "metadata": {"annotations": {ANNOTATION: annotation,
                                     naming.SHADOW_ANNOTATION: shadow}},
        "spec": {"containers": [{"name": "serving", "env": [{"name": ENV, **env}]}]},
    }}}


# --- KubernetesDeployer -------------------------------------------------------------------


def test_deploy_sends_exactly_one_strategic_merge_patch_pinning_the_version() -> None:
    server, clock = FakeApiServer(serving_deployment(pinned="2")), FakeClock()
    result = deployer(server, clock).deploy("3")

    assert (result.status, result.version, result.previous) == ("deployed", "3", "2")
    first, patch = server.requests[0], server.patches()
    assert (first["method"], first["path"]) == ("GET", PATH)
    assert len(patch) == 1
    assert patch[0]["path"] == PATH
    assert patch[0]["content_type"] == STRATEGIC_MERGE_PATCH
    assert patch[0]["body"] == expected_patch({"value": "3"}, "3")
    assert server.pinned() == ("3", "3")
    # The other container and env var are untouched by the merge.
    containers = server.obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["log-shipper", "serving"]
    assert {"name": "DRIFTLOOP_ADMIN_TOKEN", "value": "t"} in containers[1]["env"]


def test_rollout_wait_follows_kubectl_rollout_status_until_ready() -> None:
    server, clock, log = FakeApiServer(serving_deployment()), FakeClock(), []
    result = deployer(server, clock, log).deploy("7")

    assert result.status == "deployed" and result.previous is None
    prefix = f"deployment {naming.NAMESPACE}/{naming.SERVING_DEPLOYMENT}: "
    assert log == [prefix + m for m in (
        "waiting for the deployment spec update to be observed",
        "1 of 2 new replicas have been updated",
        "1 old replicas are pending termination",
        "1 of 2 updated replicas are available",
    )]
    assert result.detail == "2 of 2 replicas updated and available"
    # One read before the patch, one per rollout step; a poll interval between them.
    assert [r["method"] for r in server.requests] == ["GET", "PATCH", *["GET"] * 5]
    assert clock.sleeps == [2.0] * 4


def test_rollout_that_never_becomes_ready_is_patched_back_to_the_old_version() -> None:
    server = FakeApiServer(serving_deployment(pinned="2"), rollouts=["never", "ok"])
    clock = FakeClock()
    with pytest.raises(DeployError) as err:
        deployer(server, clock, timeout_s=30).deploy("3")

    message = str(err.value)
    assert "rollout of version 3 on deployment driftloop/driftloop-serving failed" in message
    assert "not ready after 30s: 1 of 2 updated replicas are available" in message
    assert message.endswith("rolled back to version 2")
    patches = server.patches()
    assert [p["body"] for p in patches] == [expected_patch({"value": "3"}, "3"),
                                            expected_patch({"value": "2"}, "2")]
    assert all(p["content_type"] == STRATEGIC_MERGE_PATCH for p in patches)
    assert server.pinned() == ("2", "2")
    assert clock.now - 1000.0 >= 30  # waited the whole timeout before undoing


def test_undo_of_a_first_pin_removes_env_and_annotation() -> None:
    server = FakeApiServer(serving_deployment(pinned=None), rollouts=["never", "ok"])
    with pytest.raises(DeployError, match="rolled back to the unpinned template"):
        deployer(server, FakeClock()).deploy("3")
    undo = server.patches()[1]["body"]
    assert undo == expected_patch({"$patch": "delete"}, None)
    assert server.pinned() == (None, None)
    assert server.obj["spec"]["template"]["metadata"]["annotations"] == \
        {"prometheus.io/scrape": "true"}


def test_progress_deadline_exceeded_fails_at_once_and_undoes() -> None:
    server = FakeApiServer(serving_deployment(pinned="2"), rollouts=["deadline", "ok"])
    clock = FakeClock()
    with pytest.raises(DeployError, match=re.escape(
            "exceeded its progress deadline (ReplicaSet has timed out progressing.)")):
        deployer(server, clock, timeout_s=600).deploy("3")
    assert clock.now - 1000.0 < 600  # did not sit out the timeout
    assert server.pinned() == ("2", "2")


def test_undo_whose_rollout_also_hangs_is_reported() -> None:
    server = FakeApiServer(serving_deployment(pinned="2"), rollouts=["never", "never"])
    with pytest.raises(DeployError, match="patched back to version 2, but that rollout is "
                                          "not ready either"):
        deployer(server, FakeClock()).deploy("3")


def test_version_already_pinned_and_ready_sends_no_patch() -> None:
    server = FakeApiServer(serving_deployment(pinned="3"))
    result = deployer(server, FakeClock()).deploy("3")
    assert result.status == "unchanged"
    assert server.patches() == []


def test_a_new_shadow_rolls_the_replicas_even_when_the_version_is_unchanged() -> None:
    """The shadow stage's challenger is loaded by replicas through the aliases, at start:
    naming it in the pod template rolls them; the same shadow again sends nothing."""
    server = FakeApiServer(serving_deployment(pinned="3"))
    result = deployer(server, FakeClock()).deploy("3", shadow="4 (challenger)")
    assert result.status == "deployed"
    (patch,) = server.patches()
    assert patch["body"] == expected_patch({"value": "3"}, "3", "4 (challenger)")
    template = server.obj["spec"]["template"]["metadata"]["annotations"]
    assert template[naming.SHADOW_ANNOTATION] == "4 (challenger)"
    again = deployer(server, FakeClock()).deploy("3", shadow="4 (challenger)")
    assert again.status == "unchanged" and len(server.patches()) == 1
    dropped = deployer(server, FakeClock()).deploy("3")  # the stage ended: roll again
    assert dropped.status == "deployed"
    assert naming.SHADOW_ANNOTATION not in server.obj["spec"]["template"]["metadata"][
        "annotations"]


def test_missing_container_is_named_and_nothing_is_patched() -> None:
    deployment = serving_deployment()
    deployment.spec.template.spec.containers[1].name = "app"
    server = FakeApiServer(deployment)
    with pytest.raises(DeployError, match="has no container 'serving' \\(it has: "
                                          "log-shipper, app\\)"):
        deployer(server, FakeClock()).deploy("3")
    assert server.patches() == []


def test_forbidden_patch_and_missing_deployment_are_clear_errors() -> None:
    server = FakeApiServer(serving_deployment(), fail={"PATCH": 403})
    with pytest.raises(DeployError, match="cannot patch deployment driftloop/driftloop-serving"
                                          ": 403 Forbidden"):
        deployer(server, FakeClock()).deploy("3")
    server = FakeApiServer(serving_deployment(), fail={"GET": 404})
    with pytest.raises(DeployError, match=r"cannot read deployment .*: 404 Not Found"):
        deployer(server, FakeClock()).deploy("3")
    assert server.patches() == []


@pytest.mark.parametrize(("change", "done", "message"), [
    (lambda d: setattr(d.metadata, "generation", 5), False,
     "waiting for the deployment spec update to be observed"),
    (lambda d: setattr(d.status, "updated_replicas", 0), False,
     "0 of 2 new replicas have been updated"),
    (lambda d: setattr(d.status, "replicas", 4), False, "2 old replicas are pending termination"),
    (lambda d: setattr(d.status, "available_replicas", None), False,
     "0 of 2 updated replicas are available"),
    (lambda d: None, True, "2 of 2 replicas updated and available"),
])
def test_rollout_state_on_deployment_objects(change: Any, done: bool, message: str) -> None:
    deployment = copy.deepcopy(serving_deployment())
    change(deployment)
    assert rollout_state(deployment) == (done, message)


def test_rollout_state_raises_on_progress_deadline() -> None:
    deployment = serving_deployment()
    deployment.status.conditions = [k8s.V1DeploymentCondition(
        type="Progressing", status="False", reason="ProgressDeadlineExceeded", message="late")]
    with pytest.raises(RolloutFailed, match="progress deadline \\(late\\)"):
        rollout_state(deployment)


# --- LocalDeployer (protocol edge cases) ----------------------------------------------------


class FakeServing:
    """``GET /model`` and ``POST /admin/reload`` with scripted answers; records requests."""

    def __init__(self, served: str | None = "1", reload_status: int = 200,
                 swaps: bool = True) -> None:
        self.served = served
        self.reload_status = reload_status
        self.swaps = swaps
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path == "/model":
            if self.served is None:
                return httpx.Response(503, json={"detail": "no model loaded"})
            return httpx.Response(200, json={"name": "iris", "version": self.served})
        assert request.headers["Authorization"] == "Bearer s3cret"
        if self.reload_status != 200:
            return httpx.Response(self.reload_status, json={"detail": "scripted refusal"})
        previous = self.served
        if self.swaps:
            self.served = body["version"]
        return httpx.Response(200, json={"status": "reloaded", "previous_version": previous,
                                         "model": {"version": body["version"]}})


def local(fake: FakeServing, timeout_s: float = 2.0) -> LocalDeployer:
    return LocalDeployer("http://serving.test", "s3cret", timeout_s=timeout_s,
                         poll_interval_s=0.01, transport=httpx.MockTransport(fake))


def test_local_reload_then_model_reports_the_version() -> None:
    fake = FakeServing(served="1")
    result = local(fake).deploy("2")
    assert (result.status, result.version, result.previous) == ("deployed", "2", "1")
    assert fake.requests[:3] == [("GET", "/model", None),
                                 ("POST", "/admin/reload", {"version": "2"}),
                                 ("GET", "/model", None)]


@pytest.mark.parametrize(("status", "why"), [
    (403, "the admin token was refused (check DRIFTLOOP_ADMIN_TOKEN on both sides)"),
    (404, "the server's registry has no such version (same MLflow store on both sides?)"),
    (409, "other replicas share the server's prediction log, and a hot reload would change "
          "only one of them: use deploy_target=kubernetes for a Deployment"),
    (422, "the server could not load or warm that version"),
    (503, "the server cannot reach its registry"),
])
def test_local_refused_reload_names_the_cause_and_the_version_still_serving(
    status: int, why: str,
) -> None:
    fake = FakeServing(served="1", reload_status=status)
    with pytest.raises(DeployError) as err:
        local(fake).deploy("2")
    assert str(err.value) == (f"POST http://serving.test/admin/reload for version 2 answered "
                              f"{status}: {why} (scripted refusal); version 1 keeps serving")
    assert fake.served == "1"


def test_local_accepted_but_never_reported_reloads_the_previous_version() -> None:
    fake = FakeServing(served="1", swaps=False)
    with pytest.raises(DeployError, match=re.escape(
            "accepted version 2 but GET /model still reports '1' after 0.2s; version 1 was "
            "reloaded")):
        local(fake, timeout_s=0.2).deploy("2")
    posts = [body for method, _, body in fake.requests if method == "POST"]
    assert posts == [{"version": "2"}, {"version": "1"}]


def test_local_unreachable_server_changes_nothing() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    deployer_ = LocalDeployer("http://serving.test", "s3cret",
                              transport=httpx.MockTransport(refuse))
    with pytest.raises(DeployError, match=re.escape("serving at http://serving.test is unreachable "
                                                    "(ConnectError: connection refused); "
                                                    "nothing")):
        deployer_.deploy("2")


def test_local_without_token_sends_nothing() -> None:
    fake = FakeServing()
    deployer_ = LocalDeployer("http://serving.test", None, transport=httpx.MockTransport(fake))
    with pytest.raises(DeployError, match="set DRIFTLOOP_ADMIN_TOKEN"):
        deployer_.deploy("2")
    assert fake.requests == []


# --- choosing a deployer ------------------------------------------------------------------


def test_make_deployer_by_target(tmp_path: Any) -> None:
    settings = Settings(state_dir=tmp_path, admin_token="s3cret", server_url="http://h:1")
    assert isinstance(make_deployer("none", settings), NoDeployer)
    made = make_deployer("local", settings, timeout_s=5)
    assert isinstance(made, LocalDeployer)
    assert (made.server_url, made.timeout_s) == ("http://h:1", 5)
    assert isinstance(make_deployer("kubernetes", settings), KubernetesDeployer)
    with pytest.raises(DeployError, match="unknown deploy target 'helm' \\(choose one of: "
                                          "none, local, kubernetes\\)"):
        make_deployer("helm", settings)
    assert NoDeployer().deploy("4").status == "skipped"
