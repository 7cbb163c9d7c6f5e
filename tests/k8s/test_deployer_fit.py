"""The retrain pipeline's deploy step against these manifests: its patches apply to the
serving Deployment (kubectl's own strategic merge, offline). That the API calls it makes are
exactly what the RBAC Role grants is checked in tests/reliability/test_security.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
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
