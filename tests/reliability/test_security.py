"""Security: the admin token, request limits, CORS, and the deploy step's least privilege.

Already tested elsewhere, run by ``make reliability`` too and not repeated here:
401 without / 403 with a wrong token and the token absent from answers
(tests/serving/test_admin_reload.py::test_reload_needs_the_bearer_token), 413 for body and
batch in process and CORS for configured origins (tests/serving/test_predict.py,
test_feedback.py, test_endpoints.py), non-root images and the restricted pod security
profile (tests/k8s/test_images.py, test_contracts.py).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from kubernetes import client as k8s
from pydantic import SecretStr

from driftloop import naming
from driftloop.deploy import DeployError, KubernetesDeployer, LocalDeployer
from driftloop.settings import Settings
from serving.app import create_app
from serving.served import load
from tests.conftest import IRIS_SPEC
from tests.k8s.conftest import find, overlay  # noqa: F401  (a fixture: registered by import)
from tests.reliability.conftest import copy_store
from tests.reliability.load import IRIS_ROWS
from tests.reliability.server import TOKEN, ServerProcess
from tests.unit.test_deploy import FakeApiServer, serving_deployment

#: Wrong tokens a guesser would try: near misses of the real one, and others.
WRONG = ["reliability-admin-token-7f3a9", "reliability-admin-token-7f3a9c0", "x" * 64,
         "Reliability-Admin-Token-7F3A9C", "hunter2-wrong-token"]


# --- the admin token -------------------------------------------------------------------------


class TrapStr(str):
    """A str that fails any ``==``/``!=`` on it: only a constant-time compare may touch it."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        raise AssertionError("the admin token was compared with == (not in constant time)")

    __ne__ = __eq__  # type: ignore[assignment]


@pytest.fixture(scope="module")
def app_client(champion_template: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    where = tmp_path_factory.mktemp("security-app")
    settings = Settings(state_dir=copy_store(champion_template, where), spec_path=IRIS_SPEC,
                        prediction_log_url=f"sqlite:///{where / 'p.db'}", admin_token=TOKEN)
    with TestClient(create_app(settings, model=load(settings))) as client:
        yield client


@pytest.mark.timeout(120)
def test_the_token_goes_through_compare_digest_and_nothing_else(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = app_client.app.state.driftloop.settings
    monkeypatch.setattr(settings, "admin_token", SecretStr(TrapStr(TOKEN)))
    assert type(settings.admin_token.get_secret_value()) is TrapStr  # the trap is armed
    calls: list[tuple[Any, Any]] = []
    real = secrets.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    statuses = [app_client.post("/admin/reload", json={}, headers={
        "Authorization": f"Bearer {token}"}).status_code for token in [*WRONG, TOKEN]]
    assert statuses == [403] * len(WRONG) + [200]
    assert app_client.post("/admin/reload", json={}).status_code == 401
    # One constant-time comparison per presented token, against the configured one.
    assert calls == [(t.encode(), TOKEN.encode()) for t in [*WRONG, TOKEN]]


@pytest.mark.timeout(300)
def test_the_token_is_never_logged_nor_exposed(live_server: ServerProcess) -> None:
    """The shared server runs at debug level with the access log on, and has seen the
    token on every fuzzing request; nothing it wrote or serves may contain it, nor the
    wrong tokens tried against it."""
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        for token in [*WRONG, TOKEN]:
            for body in ({}, {"version": "99"}, {"version": "two"}):
                http.post("/admin/reload", json=body,
                          headers={"Authorization": f"Bearer {token}"})
        http.post("/admin/reload", json={})
        exposed = {path: http.get(path).text for path in (
            "/metrics", "/model", "/openapi.json", "/health", "/ready", "/docs")}
    for deployer in (LocalDeployer(live_server.url, WRONG[0]),
                     LocalDeployer(live_server.url, TOKEN)):
        with pytest.raises(DeployError) as refused:
            deployer.deploy("99")
        exposed[f"DeployError {refused.value}"] = str(refused.value)
    output = live_server.output()
    # The attempts were logged (by the access log), without what they carried.
    for status in (401, 403, 404, 422, 200):
        assert f'"POST /admin/reload HTTP/1.1" {status}' in output, status
    for secret in (TOKEN, *WRONG):
        assert secret not in output
        assert not [where for where, text in exposed.items() if secret in text], secret


# --- request limits and CORS, on the real HTTP stack -----------------------------------------


@pytest.mark.timeout(120)
def test_limits_hold_and_cors_is_off_on_the_real_server(live_server: ServerProcess) -> None:
    """The shared server runs with DRIFTLOOP_MAX_BODY_BYTES=65536 and
    DRIFTLOOP_MAX_BATCH_ROWS=50 (uvicorn + httptools: what deployments run)."""
    big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2], " * 4000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert len(big) > 65536
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        for path in ("/predict", "/feedback", "/admin/reload"):
            sized = http.post(path, content=big, headers={"Content-Type": "application/json"})
            assert sized.status_code == 413, (path, sized.text)
            assert "over the limit of 65536 bytes" in sized.json()["detail"]
            chunked = http.post(path, content=iter([big[i:i + 8192]
                                                    for i in range(0, len(big), 8192)]),
                                headers={"Content-Type": "application/json"})
            assert chunked.status_code == 413, (path, "chunked", chunked.text)
        batch = http.post("/predict", json={"instances": [IRIS_ROWS[0]] * 51})
        assert batch.status_code == 413
        assert "51 rows is over the limit of 50 rows" in batch.json()["detail"]
        labels = http.post("/feedback", json={"labels": [
            {"request_id": f"r{i}", "label": "setosa"} for i in range(51)]})
        assert labels.status_code == 413 and "limit of 50" in labels.json()["detail"]
        # Still serving after all of it; and no CORS header for any origin.
        origin = {"Origin": "https://evil.example"}
        answer = http.post("/predict", json={"features": IRIS_ROWS[0]}, headers=origin)
        assert answer.status_code == 200
        preflight = http.options("/predict", headers={
            **origin, "Access-Control-Request-Method": "POST"})
        for response in (answer, preflight):
            assert not [h for h in response.headers if h.startswith("access-control-")]


# --- least privilege of the deploy step ------------------------------------------------------


def rbac_requests(requests: list[dict[str, Any]]) -> set[tuple[str, str, str, str, str]]:
    """(namespace, apiGroup, resource, resourceName, verb) of each API request, as the
    Kubernetes authorizer sees it."""
    out = set()
    for r in requests:
        match = re.fullmatch(r"/apis/(?P<group>[^/]+)/[^/]+/namespaces/(?P<ns>[^/]+)/"
                             r"(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?", r["path"])
        assert match, r["path"]
        verb = {"GET": "get" if match["name"] else "list", "PATCH": "patch", "PUT": "update",
                "POST": "create", "DELETE": "delete"}[r["method"]]
        out.add((match["ns"], match["group"], match["resource"], match["name"] or "*", verb))
    return out


@pytest.mark.timeout(120)
def test_the_deploy_role_grants_exactly_what_the_deployer_uses(
    overlay: list[dict],  # noqa: F811
) -> None:
    """Every path of KubernetesDeployer (deploy, rollout timeout and undo, already pinned),
    on the real kubernetes client: the API requests it makes, translated to RBAC
    attributes, are exactly what the Role grants — nothing it needs is missing, nothing it
    does not need is granted."""
    used: set[tuple[str, str, str, str, str]] = set()
    for pinned, rollouts, version in ((None, [], "3"), ("2", ["never", "ok"], "3"),
                                      ("3", [], "3"), ("2", ["deadline", "ok"], "4")):
        server = FakeApiServer(serving_deployment(pinned=pinned), rollouts=rollouts)
        api = k8s.ApiClient(k8s.Configuration(host="https://k8s.invalid"))
        api.rest_client.pool_manager = server
        deployer = KubernetesDeployer(k8s.AppsV1Api(api), timeout_s=0.2, poll_interval_s=0.01,
                                      log=lambda _m: None)
        try:
            deployer.deploy(version)
        except DeployError:
            assert rollouts  # only the broken rollouts fail
        used |= rbac_requests(server.requests)
    assert {verb for *_, verb in used} == {"get", "patch"}

    role = find(overlay, "Role", "driftloop-serving-deployer")
    assert role["metadata"]["namespace"] == naming.NAMESPACE
    granted = {(role["metadata"]["namespace"], group, resource, name, verb)
               for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for name in rule.get("resourceNames", ["*"])
               for verb in rule["verbs"]}
    assert granted == used, {"granted, unused": granted - used, "used, not granted":
                             used - granted}
    assert not [r for r in role["rules"] if "*" in r["verbs"] + r["resources"]
                + r["apiGroups"]]
