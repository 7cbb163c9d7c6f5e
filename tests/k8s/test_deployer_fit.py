"""The retrain pipeline's deploy step against these manifests: its patches apply to the
serving Deployment (kubectl's own strategic merge, offline), and the API calls it makes are
exactly what the RBAC Role grants."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from driftloop import naming
from tests.k8s.conftest import KUBECTL, container, find
from tests.k8s.test_schemas import validate

deploy = pytest.importorskip(
    "driftloop.deploy", reason="driftloop.deploy (the retrain pipeline's deployer) is absent")


def kubectl_patch(doc: dict[str, Any], patch: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """``kubectl patch --local``: the strategic merge the API server would do, no cluster."""
    src = tmp_path / "deployment.json"
    src.write_text(json.dumps(doc))
    out = subprocess.run(
        [str(KUBECTL), "patch", "--local", "-f", str(src), "--type", "strategic",
         "-p", json.dumps(patch), "-o", "json"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def pinned(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    serving = container(doc, naming.SERVING_CONTAINER)
    env = {e["name"]: e.get("value") for e in serving.get("env", [])}
    annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
    return env.get(naming.MODEL_VERSION_ENV), annotations.get(naming.MODEL_VERSION_ANNOTATION)


def test_pin_repin_and_undo_apply_to_the_serving_deployment(
    overlay: list[dict], tmp_path: Path
) -> None:
    original = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)
    assert pinned(original) == (None, None)

    first = kubectl_patch(original, deploy.version_patch(naming.SERVING_CONTAINER, "3", "3"),
                          tmp_path)
    assert pinned(first) == ("3", "3")
    validate(first)
    before = {e["name"] for e in container(original, naming.SERVING_CONTAINER)["env"]}
    after = {e["name"] for e in container(first, naming.SERVING_CONTAINER)["env"]}
    assert after == before | {naming.MODEL_VERSION_ENV}, "the patch must only add the pin"

    second = kubectl_patch(first, deploy.version_patch(naming.SERVING_CONTAINER, "4", "4"),
                           tmp_path)
    assert pinned(second) == ("4", "4")
    assert [e["name"] for e in container(second, naming.SERVING_CONTAINER)["env"]].count(
        naming.MODEL_VERSION_ENV) == 1

    undone = kubectl_patch(second, deploy.version_patch(naming.SERVING_CONTAINER, None, None),
                           tmp_path)
    assert pinned(undone) == (None, None)
    assert container(undone, naming.SERVING_CONTAINER)["env"] == \
        container(original, naming.SERVING_CONTAINER)["env"]
    validate(undone)


def test_a_patch_naming_another_container_would_add_an_imageless_one(
    overlay: list[dict], tmp_path: Path
) -> None:
    """Why the container name is a contract: a wrong name does not fail the patch, it adds
    a second container without an image, which the API server then refuses."""
    original = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)
    patched = kubectl_patch(original, deploy.version_patch("server", "3", "3"), tmp_path)
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert sorted(c["name"] for c in containers) == ["server", naming.SERVING_CONTAINER]
    assert "image" not in next(c for c in containers if c["name"] == "server")


class RecordingAppsApi:
    """An AppsV1Api stand-in that records which API verbs the deployer uses."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.verbs: list[str] = []
        self._version: str | None = None
        self._template = deployment

    def _model(self) -> Any:
        ns = SimpleNamespace
        env = [ns(name=naming.MODEL_VERSION_ENV, value=self._version)] if self._version else []
        annotations = {naming.MODEL_VERSION_ANNOTATION: self._version} if self._version else {}
        containers = [ns(name=c["name"], env=env if c["name"] == naming.SERVING_CONTAINER else [])
                      for c in self._template["spec"]["template"]["spec"]["containers"]]
        replicas = self._template["spec"]["replicas"]
        return ns(
            metadata=ns(generation=1),
            spec=ns(replicas=replicas, template=ns(metadata=ns(annotations=annotations),
                                                   spec=ns(containers=containers))),
            status=ns(observed_generation=1, conditions=[], replicas=replicas,
                      updated_replicas=replicas, available_replicas=replicas),
        )

    def read_namespaced_deployment(self, name: str, namespace: str) -> Any:
        assert (name, namespace) == (naming.SERVING_DEPLOYMENT, naming.NAMESPACE)
        self.verbs.append("get")
        return self._model()

    def patch_namespaced_deployment(self, name: str, namespace: str, body: Any,
                                    **_: Any) -> Any:
        assert (name, namespace) == (naming.SERVING_DEPLOYMENT, naming.NAMESPACE)
        self.verbs.append("patch")
        self._version = body["spec"]["template"]["spec"]["containers"][0]["env"][0].get("value")
        return self._model()


def test_the_deployer_needs_no_verb_the_role_does_not_grant(overlay: list[dict]) -> None:
    api = RecordingAppsApi(find(overlay, "Deployment", naming.SERVING_DEPLOYMENT))
    deployer = deploy.KubernetesDeployer(api, timeout_s=1, poll_interval_s=0,
                                         sleep=lambda _s: None, log=lambda _m: None)
    result = deployer.deploy("7")
    assert result.status == "deployed"
    role = find(overlay, "Role", "driftloop-serving-deployer")
    granted = set(role["rules"][0]["verbs"])
    assert set(api.verbs) <= granted, f"deployer used {set(api.verbs) - granted}"
    assert {"get", "patch"} <= set(api.verbs)
