"""Every manifest, and both kustomize renderings, against the Kubernetes OpenAPI schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.k8s.conftest import (
    BASE,
    K8S,
    K8S_SCHEMA_VERSION,
    OVERLAY,
    find,
    load_docs,
)

#: Not Kubernetes objects: kustomize's own files, Helm values, and strategic-merge patches
#: (partial objects; they are checked through the rendered overlay instead).
NOT_OBJECTS = {"kustomization.yaml", "values.yaml"}


def _patch_files() -> set[Path]:
    kustomization = load_docs(OVERLAY / "kustomization.yaml")[0]
    return {OVERLAY / p["path"] for p in kustomization.get("patches", [])}


def _manifest_files() -> list[Path]:
    patches = _patch_files()
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in NOT_OBJECTS and p not in patches)


#: The Prometheus operator's kinds (k8s/monitoring): kubernetes-validate ships no schema for
#: CRDs. tests/monitoring checks them instead: the rule groups with promtool, the
#: ServiceMonitor's selector and port against the serving Service.
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"),
                  ("monitoring.coreos.com/v1", "ServiceMonitor")}


def validate(doc: dict[str, Any]) -> None:
    if (doc.get("apiVersion"), doc.get("kind")) in OPERATOR_KINDS:
        assert doc["metadata"]["name"] and isinstance(doc["spec"], dict), doc
        return
    kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)


def test_the_schema_version_is_one_kubernetes_validate_ships() -> None:
    assert K8S_SCHEMA_VERSION in kubernetes_validate.utils.all_versions(), \
        f"k8s/versions.env names Kubernetes {K8S_SCHEMA_VERSION}, which has no schemas here"


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_validates(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("which", ["base", "overlay", "kfp_overlay"])
def test_rendered_kustomizations_validate(which: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(which)
    assert len(docs) >= (2 if which == "kfp_overlay" else 10)
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("breakage", ["typo-field", "wrong-type", "missing-required"])
def test_the_validation_rejects_a_broken_object(breakage: str, overlay: list[dict]) -> None:
    """The schema check can fail: strict mode refuses unknown fields, bad types, gaps."""
    doc = copy.deepcopy(find(overlay, "Deployment", "driftloop-serving"))
    if breakage == "typo-field":
        doc["spec"]["replica"] = doc["spec"].pop("replicas")
    elif breakage == "wrong-type":
        doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    else:
        del doc["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(doc)


def test_overlay_patches_target_objects_of_the_base(base: list[dict], overlay: list[dict]) -> None:
    for path in sorted(_patch_files()):
        (patch,) = load_docs(path)
        kind, name = patch["kind"], patch["metadata"]["name"]
        before = find(base, kind, name)  # exists in the base
        after = find(overlay, kind, name)
        assert before != after, f"{path.name} changes nothing in {kind}/{name}"


def test_the_overlay_provides_every_secret_the_base_expects(
    base: list[dict], overlay: list[dict]
) -> None:
    def secret_refs(docs: list[dict]) -> set[str]:
        refs = set()
        for doc in docs:
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        refs.add(ref["name"])
        return refs

    in_base = {d["metadata"]["name"] for d in base if d["kind"] == "Secret"}
    in_overlay = {d["metadata"]["name"] for d in overlay if d["kind"] == "Secret"}
    assert in_base == set(), "credentials belong in an overlay, not in the base"
    assert secret_refs(base) == {"driftloop-postgres", "driftloop-serving"}
    assert secret_refs(base) <= in_overlay


def test_base_kustomization_lists_every_file_of_the_base() -> None:
    listed = set(load_docs(BASE / "kustomization.yaml")[0]["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present | {"../settings"}
