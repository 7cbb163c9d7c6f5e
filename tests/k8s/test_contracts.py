"""What is named in one place matches the others: manifests, driftloop.naming, Settings,
docker/images.env, the Secrets, the README."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from driftloop import naming
from driftloop.settings import Settings
from tests.k8s.conftest import (
    K8S,
    ROOT,
    VERSIONS,
    container,
    find,
    load_docs,
    pod_spec,
    workloads,
)

IMAGES = naming.images()
JOBS = load_docs(K8S / "jobs" / "bootstrap.yaml")
SETTINGS_ENV = {f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields}


def unknown_settings(names: set[str]) -> set[str]:
    """``DRIFTLOOP_*`` names that no Settings field reads (a typo is silently ignored)."""
    return {n for n in names if n.startswith("DRIFTLOOP_") and n not in SETTINGS_ENV}


def all_docs(overlay: list[dict]) -> list[dict]:
    return overlay + JOBS


def configmap_env(docs: list[dict], c: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            out.update(find(docs, "ConfigMap", ref["name"])["data"])
    return out


# --- names -----------------------------------------------------------------------------------


def test_everything_lives_in_the_driftloop_namespace(overlay: list[dict]) -> None:
    for doc in all_docs(overlay):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == naming.NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == naming.NAMESPACE, doc["metadata"]["name"]


def test_serving_names_and_ports_match_driftloop_naming(overlay: list[dict]) -> None:
    deployment = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)
    serving = container(deployment, naming.SERVING_CONTAINER)
    (port,) = serving["ports"]
    assert port["containerPort"] == naming.SERVING_PORT
    service = find(overlay, "Service", naming.SERVING_DEPLOYMENT)
    (sport,) = service["spec"]["ports"]
    assert sport["port"] == naming.SERVING_PORT
    assert sport["targetPort"] == port["name"]
    assert service["spec"]["type"] == "NodePort"
    assert sport["nodePort"] == naming.SERVING_NODEPORT
    assert deployment["spec"]["replicas"] == 2


def test_mlflow_ports_match_driftloop_naming(overlay: list[dict]) -> None:
    service = find(overlay, "Service", "mlflow")
    (sport,) = service["spec"]["ports"]
    assert (sport["port"], sport["nodePort"]) == (naming.MLFLOW_PORT, naming.MLFLOW_NODEPORT)
    mlflow = container(find(overlay, "Deployment", "mlflow"), "mlflow")
    assert mlflow["ports"][0]["containerPort"] == naming.MLFLOW_PORT
    assert f"--port={naming.MLFLOW_PORT}" in mlflow["args"]


def test_every_service_selects_a_pod_and_a_named_port(overlay: list[dict]) -> None:
    pods = [(d["spec"]["template"]["metadata"]["labels"], pod_spec(d)) for d in workloads(overlay)]
    for service in (d for d in overlay if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matches = [spec for labels, spec in pods if selector.items() <= labels.items()]
        assert len(matches) == 1, f"Service {service['metadata']['name']} selects {len(matches)}"
        port_names = {p["name"] for c in matches[0]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_the_hpa_scales_the_serving_deployment_never_below_its_replicas(overlay: list) -> None:
    hpa = find(overlay, "HorizontalPodAutoscaler", naming.SERVING_DEPLOYMENT)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", naming.SERVING_DEPLOYMENT)
    replicas = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)["spec"]["replicas"]
    assert hpa["spec"]["minReplicas"] >= replicas
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_serving_probes_use_the_contract_endpoints(overlay: list[dict]) -> None:
    serving = container(find(overlay, "Deployment", naming.SERVING_DEPLOYMENT),
                        naming.SERVING_CONTAINER)
    assert serving["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert serving["livenessProbe"]["httpGet"]["path"] == "/health"
    assert serving["command"] == ["driftloop", "serve"]


def test_no_manifest_pins_the_model_version(overlay: list[dict]) -> None:
    """The deployer owns the pin; a pinned manifest would roll a model back on every apply."""
    for doc in workloads(all_docs(overlay)):
        annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
        assert naming.MODEL_VERSION_ANNOTATION not in annotations
        for c in pod_spec(doc)["containers"]:
            names = {e["name"] for e in c.get("env", [])} | set(configmap_env(overlay, c))
            assert naming.MODEL_VERSION_ENV not in names


# --- settings --------------------------------------------------------------------------------


def test_the_unknown_settings_check_can_fail() -> None:
    assert unknown_settings({"DRIFTLOOP_PORT", "DRIFTLOOP_MODEL_VERSON", "POSTGRES_USER"}) == \
        {"DRIFTLOOP_MODEL_VERSON"}


def test_every_driftloop_env_in_the_manifests_is_a_settings_field(
    overlay: list[dict], kfp_overlay: list[dict]
) -> None:
    seen: set[str] = {k for d in kfp_overlay for k in {**d.get("data", {}),
                                                        **d.get("stringData", {})}}
    for doc in workloads(all_docs(overlay)):
        for c in pod_spec(doc)["containers"]:
            seen |= {e["name"] for e in c.get("env", [])} | set(configmap_env(overlay, c))
    for cm in (d for d in overlay + kfp_overlay if d["kind"] == "ConfigMap"):
        seen |= {k for k in cm.get("data", {}) if k.startswith("DRIFTLOOP_")}
    assert unknown_settings(seen) == set()
    assert {"DRIFTLOOP_MLFLOW_TRACKING_URI", "DRIFTLOOP_PREDICTION_LOG_URL",
            "DRIFTLOOP_ADMIN_TOKEN", "DRIFTLOOP_HOST", "DRIFTLOOP_PORT",
            "DRIFTLOOP_STATE_DIR", "DRIFTLOOP_MODEL_NAME"} <= seen


def _serving_settings(overlay: list[dict], monkeypatch: pytest.MonkeyPatch) -> Settings:
    serving = container(find(overlay, "Deployment", naming.SERVING_DEPLOYMENT),
                        naming.SERVING_CONTAINER)
    env = configmap_env(overlay, serving)
    env.update({e["name"]: e["value"] for e in serving["env"] if "value" in e})
    env["DRIFTLOOP_ADMIN_TOKEN"] = "placeholder-token"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_the_serving_environment_parses_as_settings(
    overlay: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _serving_settings(overlay, monkeypatch)
    assert (s.host, s.port) == ("0.0.0.0", naming.SERVING_PORT)
    tracking = urlsplit(s.tracking_uri)
    assert (tracking.hostname, tracking.port) == (f"mlflow.{naming.NAMESPACE}.svc",
                                                   naming.MLFLOW_PORT)
    server = urlsplit(s.server_url)
    assert (server.hostname, server.port) == (
        f"{naming.SERVING_DEPLOYMENT}.{naming.NAMESPACE}.svc", naming.SERVING_PORT)
    assert s.log_url.startswith("postgresql+psycopg://")
    assert str(s.state_dir) == "/var/lib/driftloop"


def test_a_bad_value_in_the_settings_configmap_would_be_refused(
    overlay: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    _serving_settings(overlay, monkeypatch)
    monkeypatch.setenv("DRIFTLOOP_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_env_references_resolve_to_earlier_entries(overlay: list[dict]) -> None:
    """``$(VAR)`` expands only to variables defined before it in the same container."""
    checked = 0
    for doc in workloads(all_docs(overlay)):
        for c in pod_spec(doc)["containers"]:
            defined = set(configmap_env(overlay, c))
            for env in c.get("env", []):
                for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", env.get("value", "")):
                    assert ref in defined, f"{c['name']}: {env['name']} uses $({ref}) too early"
                    checked += 1
                defined.add(env["name"])
            for arg in c.get("args", []):
                for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", arg):
                    assert ref in defined, f"{c['name']}: arg {arg} uses undefined $({ref})"
                    checked += 1
    assert checked >= 6


def test_database_urls_name_the_postgres_service_and_its_databases(overlay: list) -> None:
    init = find(overlay, "ConfigMap", "postgres-init")["data"]
    created = set(re.findall(r"CREATE DATABASE (\w+)", "".join(init.values())))
    pg = container(find(overlay, "StatefulSet", "postgres"), "postgres")
    created |= {e["value"] for e in pg["env"] if e["name"] == "POSTGRES_DB"}
    urls = [e["value"] for d in workloads(overlay) for c in pod_spec(d)["containers"]
            for e in c.get("env", []) if e.get("value", "").startswith("postgresql")]
    assert len(urls) == 2
    for url in urls:
        parts = urlsplit(url.replace("$(", "").replace(")", ""))
        assert parts.hostname == f"postgres.{naming.NAMESPACE}.svc"
        assert parts.port == 5432
        assert parts.path.lstrip("/") in created
    assert created == {"mlflow", "predictions"}


# --- secrets, config maps, volumes ----------------------------------------------------------


def test_every_secret_and_configmap_reference_exists(overlay: list[dict]) -> None:
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for d in overlay if d["kind"] == "Secret"}
    configmaps = {d["metadata"]["name"] for d in overlay if d["kind"] == "ConfigMap"}
    claims = {d["metadata"]["name"] for d in overlay if d["kind"] == "PersistentVolumeClaim"}
    refs = 0
    for doc in workloads(all_docs(overlay)):
        spec = pod_spec(doc)
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), ref
                    refs += 1
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
                refs += 1
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            templates = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])} | templates
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert refs >= 8


def test_secret_values_are_url_safe(overlay: list[dict]) -> None:
    """The PostgreSQL password is spliced into SQLAlchemy URLs unescaped."""
    for doc in (d for d in overlay if d["kind"] == "Secret"):
        for key, value in doc["stringData"].items():
            assert re.fullmatch(r"[A-Za-z0-9_-]+", value), f"{doc['metadata']['name']}/{key}"


# --- images ----------------------------------------------------------------------------------


def test_manifest_images_are_the_ones_docker_images_env_defines(overlay: list[dict]) -> None:
    used = {c["image"] for d in workloads(all_docs(overlay)) for c in pod_spec(d)["containers"]}
    ours = {i for i in used if i.startswith("driftloop/")}
    assert ours <= set(IMAGES.values())
    serving = find(overlay, "Deployment", naming.SERVING_DEPLOYMENT)
    assert container(serving, naming.SERVING_CONTAINER)["image"] == \
        IMAGES["DRIFTLOOP_SERVING_IMAGE"]
    assert container(find(JOBS, "Job", "driftloop-bootstrap"), "bootstrap")["image"] == \
        IMAGES["DRIFTLOOP_TRAINER_IMAGE"]
    for image in used:
        assert ":" in image and not image.endswith(":latest"), f"{image} is not pinned"


def test_every_image_has_its_dockerfile() -> None:
    for key in IMAGES:
        name = key.removeprefix("DRIFTLOOP_").removesuffix("_IMAGE").lower()
        assert (ROOT / "docker" / f"{name}.Dockerfile").is_file(), key


# --- pod security ----------------------------------------------------------------------------


def test_every_pod_meets_the_restricted_profile_with_limits(overlay: list[dict]) -> None:
    for doc in workloads(all_docs(overlay)):
        spec = pod_spec(doc)
        pod_sc = spec["securityContext"]
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), where
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}: read-only root filesystem needs a writable /tmp"


def test_the_state_dir_is_writable_in_the_serving_pods(overlay: list[dict]) -> None:
    serving = container(find(overlay, "Deployment", naming.SERVING_DEPLOYMENT),
                        naming.SERVING_CONTAINER)
    state_dir = configmap_env(overlay, serving)["DRIFTLOOP_STATE_DIR"]
    assert state_dir in {m["mountPath"] for m in serving["volumeMounts"]}


# --- RBAC (the Role's rules against the deployer's requests: tests/reliability/test_security.py)


def test_the_kfp_runner_account_is_bound_to_the_deploy_role(overlay: list[dict]) -> None:
    binding = find(overlay, "RoleBinding", "driftloop-serving-deployer")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "driftloop-serving-deployer"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner",
                                    "namespace": VERSIONS["KFP_NAMESPACE"]}]
    readme = (K8S / "kfp" / "README.md").read_text()
    assert "pipeline-runner" in readme and "resourceNames" in readme


# --- MLflow server ---------------------------------------------------------------------------


def test_mlflow_accepts_the_hosts_clients_use_and_nothing_else(overlay: list[dict]) -> None:
    """MLflow's own Host-header check, fed the manifest's allowed-hosts list."""
    from mlflow.server.security_utils import is_allowed_host_header

    mlflow = container(find(overlay, "Deployment", "mlflow"), "mlflow")
    env = {e["name"]: e.get("value") for e in mlflow["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    allowed = [h.strip() for h in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")]
    tracking = configmap_env(overlay, container(
        find(overlay, "Deployment", naming.SERVING_DEPLOYMENT), naming.SERVING_CONTAINER))
    in_cluster = urlsplit(tracking["DRIFTLOOP_MLFLOW_TRACKING_URI"]).netloc
    for host in (in_cluster, f"mlflow:{naming.MLFLOW_PORT}", f"localhost:{naming.MLFLOW_PORT}",
                 f"192.168.49.2:{naming.MLFLOW_NODEPORT}"):
        assert is_allowed_host_header(allowed, host), host
    for host in ("evil.example:5000", "attacker.com", ""):
        assert not is_allowed_host_header(allowed, host), host
    assert "--serve-artifacts" in mlflow["args"]


# --- README ----------------------------------------------------------------------------------


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Run on Minikube\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Run on Minikube' section followed by another section"
    return match.group(1)


def test_the_readme_names_the_same_ports_and_commands() -> None:
    section = _readme_section()
    for port in (naming.SERVING_NODEPORT, naming.MLFLOW_NODEPORT):
        assert f":{port}" in section
    assert "scripts/minikube-up.sh" in section and "scripts/minikube-down.sh" in section
    assert naming.SERVING_DEPLOYMENT in section
    for version in (VERSIONS["KFP_VERSION"], VERSIONS["AIRFLOW_CHART_VERSION"]):
        assert version in section
