"""The cluster's manifests, played with ``podman kube play``: the rendered minikube overlay's
PostgreSQL, MLflow and serving workloads, with their ConfigMaps, Secrets and volumes, plus
the bootstrap Job's pod.

podman runs pods, not a cluster, so a few things are adapted, each one here and named in
:data:`ADAPTATIONS` (the test reports them); everything else (images' commands and args,
env from ConfigMaps and Secrets, security contexts, read-only root filesystems, volumes,
probes) is played as rendered:
"""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from typing import Any

import yaml

from driftloop.settings import PROJECT_ROOT

OVERLAY = PROJECT_ROOT / "k8s" / "overlays" / "minikube"
BOOTSTRAP_JOB = PROJECT_ROOT / "k8s" / "jobs" / "bootstrap.yaml"
POSTGRES_STANDIN = "localhost/driftloop-local/postgres-standin:15"
NETWORK = "driftloop-play"
SUBNET = "10.89.77.0/24"
#: Each workload's pod IP on the play network (a Service's name resolves to it).
IPS = {"postgres": "10.89.77.10", "mlflow": "10.89.77.11", "driftloop-serving": "10.89.77.12",
       "driftloop-bootstrap": "10.89.77.13"}
#: The pods a play makes: a Deployment's single replica is ``<name>-pod-0``, a Pod its name.
POD_NAMES = ("postgres-pod-0", "mlflow-pod-0", "driftloop-bootstrap",
             "driftloop-serving-pod-0")
#: In-cluster DNS names of the Services, as the manifests use them.
SERVICES = {"postgres": "postgres", "mlflow": "mlflow", "driftloop-serving": "driftloop-serving"}

ADAPTATIONS = [
    "no cluster DNS: each pod gets a fixed IP on one podman network, and hostAliases map the "
    "Services' names (<service>, <service>.driftloop, <service>.driftloop.svc, "
    "<service>.driftloop.svc.cluster.local) to them",
    "the StatefulSet postgres runs as a Deployment, its volumeClaimTemplate as a named "
    "PersistentVolumeClaim (podman plays no StatefulSet)",
    f"postgres:17-bookworm cannot be pulled here: {POSTGRES_STANDIN} (Debian's PostgreSQL "
    "15 behind the official image's entrypoint contract, scripts/images/bases.sh)",
    "the Job driftloop-bootstrap runs as a Pod with restartPolicy Never (podman plays no Job)",
    "one replica per Deployment (podman would start each replica with the same fixed IP "
    "and host ports); the HPA, RBAC, Services and Namespace are not played",
    "ConfigMaps are repeated in each played file (podman resolves references within one "
    "file); Secrets are created with `podman secret create` from the rendered Secrets' data "
    "(podman 4.3 stores a played Secret as YAML and then fails to read it as JSON)",
    "Kubernetes' $(VAR) references in env values, command and args are expanded from the "
    "container's env before the play (podman 4.3 passes them literally)",
    "every containerPort gets a free hostPort on 127.0.0.1 (podman publishes each "
    "containerPort on the host, and 5432 is taken here)",
    "HTTP probes: podman's healthcheck for a livenessProbe runs curl inside the container, "
    "which the images do not carry (the kubelet probes from outside); the test makes each "
    "probe's request from inside the pod instead",
]


def rendered_workload(name: str) -> dict[str, Any]:
    """The rendered Deployment or StatefulSet ``name``, as the cluster gets it."""
    return next(d for d in rendered() if d["kind"] in ("Deployment", "StatefulSet")
                and d["metadata"]["name"] == name)


def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(OVERLAY)], capture_output=True,
                         text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _aliases() -> list[dict[str, Any]]:
    return [{"ip": IPS[workload], "hostnames": [
        name, f"{name}.driftloop", f"{name}.driftloop.svc",
        f"{name}.driftloop.svc.cluster.local"]} for workload, name in SERVICES.items()]


def workloads(free_port: Any) -> dict[str, tuple[list[dict[str, Any]], dict[str, int]]]:
    """Per workload, in the order to play them: the documents (its ConfigMaps, claims and
    itself, adapted) and its host ports by port name."""
    docs = rendered()
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    for d in configmaps:
        d["metadata"].pop("namespace", None)
    config = {d["metadata"]["name"]: d.get("data") or {} for d in configmaps}
    secret_data = secrets()

    postgres = copy.deepcopy(by[("StatefulSet", "postgres")])
    claim = postgres["spec"].pop("volumeClaimTemplates")[0]
    postgres["kind"] = "Deployment"
    postgres["spec"].pop("serviceName", None)
    postgres["spec"]["template"]["spec"]["volumes"].append(
        {"name": "data", "persistentVolumeClaim": {"claimName": "postgres-data"}})
    for container in postgres["spec"]["template"]["spec"]["containers"]:
        container["image"] = POSTGRES_STANDIN
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "postgres-data"}, "spec": claim["spec"]}

    job = yaml.safe_load(BOOTSTRAP_JOB.read_text())
    bootstrap = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "driftloop-bootstrap",
                              "labels": job["spec"]["template"]["metadata"]["labels"]},
                 "spec": copy.deepcopy(job["spec"]["template"]["spec"])}
    plays = {
        "postgres": ([pvc], postgres),
        "mlflow": ([by[("PersistentVolumeClaim", "mlflow-artifacts")]],
                   copy.deepcopy(by[("Deployment", "mlflow")])),
        "driftloop-bootstrap": ([], bootstrap),
        "driftloop-serving": ([], copy.deepcopy(by[("Deployment", "driftloop-serving")])),
    }
    out = {}
    for name, (extra, workload) in plays.items():
        workload["metadata"].pop("namespace", None)
        if workload["kind"] == "Deployment":
            workload["spec"]["replicas"] = 1
        pod = workload["spec"] if workload["kind"] == "Pod" else \
            workload["spec"]["template"]["spec"]
        pod["hostAliases"] = _aliases()
        expand(pod, config, secret_data)
        ports = free_host_ports(pod, free_port)
        out[name] = ([*copy.deepcopy(configmaps), *extra, workload], ports)
    return out


def secrets() -> dict[str, dict[str, str]]:
    """The rendered Secrets' data, by name (the played pods read them as podman secrets)."""
    out: dict[str, dict[str, str]] = {}
    for doc in rendered():
        if doc["kind"] == "Secret":
            data = dict(doc.get("stringData") or {})
            for key, value in (doc.get("data") or {}).items():
                data[key] = base64.b64decode(value).decode()
            out[doc["metadata"]["name"]] = data
    return out


def expand(pod: dict[str, Any], configmaps: dict[str, dict[str, str]],
           secret_data: dict[str, dict[str, str]]) -> None:
    """Expand ``$(VAR)`` in each container's env values, command and args, as the kubelet
    does: from the variables defined before it (envFrom ConfigMaps, then env in order)."""
    for container in pod["containers"]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            env.update(configmaps.get(source.get("configMapRef", {}).get("name"), {}))
        for item in container.get("env") or []:
            if "value" in item:
                item["value"] = env_expanded(str(item["value"]), env)
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secret_data[ref["name"]][ref["key"]]
        for key in ("command", "args"):
            if key in container:
                container[key] = [env_expanded(str(a), env) for a in container[key]]


def free_host_ports(pod: dict[str, Any], free_port: Any) -> dict[str, int]:
    """A free hostPort on 127.0.0.1 for each containerPort; ``{port name: host port}``."""
    found = {}
    for container in pod["containers"]:
        for port in container.get("ports") or []:
            port["hostIP"], port["hostPort"] = "127.0.0.1", free_port()
            found[port.get("name", str(port["containerPort"]))] = port["hostPort"]
    return found


def dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def env_expanded(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion, for the report."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                  value)
