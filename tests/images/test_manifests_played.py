"""The cluster's wiring, run for the first time: the rendered minikube overlay's PostgreSQL,
MLflow and serving workloads, and the bootstrap Job's pod, played with ``podman kube play``
on the images `make images` built (tests/images/kube.py says what podman needs adapted).

It shows that the serving pod starts with the manifest's env (ConfigMap and Secrets),
security context, volumes and probes, reaches PostgreSQL and MLflow by their Service names,
serves the champion the bootstrap pod trained into the in-cluster MLflow, and writes its log
into the played PostgreSQL. It does not show an API server, a rollout, the Airflow chart or
KFP.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.images import kube
from tests.images.conftest import built, engine, free_port, run, wait_ready

pytestmark = pytest.mark.images


def _clean() -> None:
    """Remove what a play made (and only that: the machine's other pods stay)."""
    for pod in kube.POD_NAMES:
        run("pod", "rm", "-f", pod, check=False)
    for volume in ("postgres-data", "mlflow-artifacts"):
        run("volume", "rm", "-f", volume, check=False)
    for name in kube.secrets():
        run("secret", "rm", name, check=False)
    run("network", "rm", "-f", kube.NETWORK, check=False)


def _wait(what: str, check: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _status(container: str) -> str:
    proc = run("ps", "-a", "--filter", f"name=^{container}$", "--format", "{{.Status}}",
               check=False)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if engine() != "podman":
        pytest.skip("`kube play` is podman's")
    for name in ("serving", "trainer"):
        built(name)
    if run("image", "inspect", kube.POSTGRES_STANDIN, check=False).returncode != 0:
        pytest.skip(f"{kube.POSTGRES_STANDIN} is not built: run `make images`")
    where = tmp_path_factory.mktemp("played")
    print("adapted for podman:\n- " + "\n- ".join(kube.ADAPTATIONS))
    _clean()
    run("network", "create", "--subnet", kube.SUBNET, kube.NETWORK)
    for name, data in kube.secrets().items():
        payload = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        run("secret", "create", name, "-", input=json.dumps(payload))
    plays = kube.workloads(free_port)
    ports: dict[str, dict[str, int]] = {}
    try:
        for name, (docs, host_ports) in plays.items():
            path = where / f"{name}.yaml"
            path.write_text(kube.dump(docs))
            run("kube", "play", "--network", kube.NETWORK, "--ip", kube.IPS[name], str(path))
            ports[name] = host_ports
            if name == "postgres":
                _wait("PostgreSQL accepting connections", lambda: run(
                    "exec", "postgres-pod-0-postgres", "sh", "-c",
                    'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d mlflow',
                    check=False).returncode == 0)
            elif name == "mlflow":
                _wait("MLflow /health", lambda: _answers(
                    f"http://{kube.IPS['mlflow']}:5000/health"))
            elif name == "driftloop-bootstrap":
                _wait("the bootstrap pod to finish",
                      lambda: "Exited" in _status("driftloop-bootstrap-bootstrap"), 600)
        yield {"ports": ports, "where": where,
               "serving": "driftloop-serving-pod-0-serving",
               "url": f"http://{kube.IPS['driftloop-serving']}:8000"}
    finally:
        for container in ("driftloop-bootstrap-bootstrap", "driftloop-serving-pod-0-serving",
                          "mlflow-pod-0-mlflow", "postgres-pod-0-postgres"):
            logs = run("logs", container, check=False)
            print(f"--- {container} ---\n{(logs.stdout + logs.stderr)[-3000:]}")
        _clean()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_bootstrap_pod_trains_the_champion_into_the_played_mlflow(played) -> None:
    state = json.loads(run("inspect", "driftloop-bootstrap-bootstrap").stdout)[0]["State"]
    assert state["ExitCode"] == 0
    proc = run("logs", "driftloop-bootstrap-bootstrap")
    logs = proc.stdout + proc.stderr
    assert "iris-classifier v1 is champion" in logs
    assert "http://mlflow.driftloop.svc:5000" in logs  # through the Service's name


def test_the_serving_pod_starts_with_the_manifests_env_probes_and_volumes(played) -> None:
    ready = wait_ready(played["url"], timeout=180)
    assert ready["model"] == {"name": "iris-classifier", "version": "1"}
    name = played["serving"]
    config = json.loads(run("inspect", name).stdout)[0]
    env = dict(item.split("=", 1) for item in config["Config"]["Env"])
    # From the ConfigMap, the Secrets and the manifest's own env.
    assert env["DRIFTLOOP_MLFLOW_TRACKING_URI"] == "http://mlflow.driftloop.svc:5000"
    assert env["DRIFTLOOP_PREDICTION_LOG_URL"].startswith("postgresql+psycopg://driftloop:")
    assert env["DRIFTLOOP_PREDICTION_LOG_URL"].endswith("@postgres.driftloop.svc:5432/predictions")
    assert env["DRIFTLOOP_ADMIN_TOKEN"] == kube.secrets()["driftloop-serving"]["admin-token"]
    assert run("exec", name, "id", "-u").stdout.strip() == "10001"
    write = run("exec", name, "touch", "/opt/driftloop/x", check=False)
    assert "Read-only file system" in write.stderr
    mounts = {m["Destination"] for m in config["Mounts"]}
    assert {"/var/lib/driftloop", "/tmp"} <= mounts
    # podman turns the livenessProbe into a healthcheck that runs curl inside the container;
    # the image has no curl (the kubelet probes from outside), so each of the manifest's
    # HTTP probes is made here from inside the pod, as the kubelet would.
    assert "/health" in " ".join(config["Config"]["Healthcheck"]["Test"])
    container = next(c for c in kube.rendered_workload("driftloop-serving")["spec"][
        "template"]["spec"]["containers"] if c["name"] == "serving")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        port = ports.get(get["port"], get["port"])
        status = run("exec", name, "python", "-c",
                     "import urllib.request as u; print(u.urlopen("
                     f"'http://127.0.0.1:{port}{get['path']}', timeout=3).status)")
        assert status.stdout.strip() == "200", (probe, status.stdout, status.stderr)
    # The Service's host port, as a NodePort would expose it.
    host = played["ports"]["driftloop-serving"]["http"]
    assert httpx.get(f"http://127.0.0.1:{host}/health", timeout=10).status_code == 200


def test_the_served_rows_land_in_the_played_postgresql(played) -> None:
    url = played["url"]
    wait_ready(url, timeout=180)
    answer = httpx.post(f"{url}/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2],
                                                              [6.7, 3.0, 5.2, 2.3]]},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    labels = httpx.post(f"{url}/feedback", json={"labels": [
        {"request_id": r["request_id"], "label": r["label"]} for r in rows]}, timeout=30)
    assert labels.status_code == 200
    for path in ("/drift/status", "/metrics", "/model"):
        assert httpx.get(f"{url}{path}", timeout=30).status_code == 200, path
    ids = ",".join(f"'{r['request_id']}'" for r in rows)
    query = f"SELECT count(*) FROM predictions WHERE request_id IN ({ids})"

    def logged() -> bool:
        proc = run("exec", "postgres-pod-0-postgres", "sh", "-c",
                   'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER" '
                   f'-d predictions -Atc "{query}"', check=False)
        return proc.stdout.strip() == "2"

    _wait("the two served rows in PostgreSQL's predictions database", logged, 60)

