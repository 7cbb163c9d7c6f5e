"""The serving image as the cluster runs it: non-root, read-only root filesystem, its state
on a volume, a champion bootstrapped offline, every endpoint answering, the image's own
healthcheck passing, and SIGTERM stopping it cleanly with every served row in the log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.images.conftest import built, free_port, owned_dir, run, wait_ready

pytestmark = pytest.mark.images

#: The serving image's user (docker/serving.Dockerfile).
UID = 10001
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 2.8, 4.3, 1.3]]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state volume with a champion bootstrapped inside the image, with no network."""
    image = built("serving")
    state = owned_dir(tmp_path_factory.mktemp("serving-state") / "state", UID)
    boot = run("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
               "-v", f"{state}:/var/lib/driftloop", image, "driftloop", "bootstrap")
    assert "iris-classifier v1 is champion" in boot.stdout + boot.stderr
    return state


def test_serves_as_non_root_on_a_read_only_root_and_every_endpoint_answers(
        state: Path, container) -> None:
    image = built("serving")
    port = free_port()
    name = container("--read-only", "--tmpfs", "/tmp", "-v", f"{state}:/var/lib/driftloop",
                     "-p", f"127.0.0.1:{port}:8000", image)
    url = f"http://127.0.0.1:{port}"
    assert wait_ready(url)["model"] == {"name": "iris-classifier", "version": "1"}

    assert run("exec", name, "id", "-u").stdout.strip() == str(UID)
    write = run("exec", name, "touch", "/opt/driftloop/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr

    predicted = httpx.post(f"{url}/predict", json={"instances": ROWS}, timeout=30)
    assert predicted.status_code == 200, predicted.text
    rows = predicted.json()["predictions"]
    assert [r["label"] for r in rows] == ["setosa", "virginica", "versicolor"]
    feedback = httpx.post(f"{url}/feedback", json={"labels": [
        {"request_id": r["request_id"], "label": r["label"]} for r in rows]}, timeout=30)
    assert feedback.status_code == 200 and len(feedback.json()["recorded"]) == 3
    drift = httpx.get(f"{url}/drift/status", timeout=30)
    assert drift.status_code == 200 and drift.json()["status"] == "insufficient_data"
    metrics = httpx.get(f"{url}/metrics", timeout=30)
    assert metrics.status_code == 200
    assert 'driftloop_predictions_total{label="setosa"} 1.0' in metrics.text
    assert httpx.get(f"{url}/model", timeout=30).json()["inference_form"] == "onnx"


def test_the_image_healthcheck_passes(state: Path, container) -> None:
    image = built("serving")
    config = json.loads(run("image", "inspect", image).stdout)[0]
    check = ((config.get("Config") or {}).get("Healthcheck") or config.get("Healthcheck")
             or config.get("HealthCheck"))
    assert check and check["Test"][-1] == "/opt/driftloop/healthcheck.py", \
        "HEALTHCHECK lost (podman keeps it only with --format docker)"
    name = container("--read-only", "--tmpfs", "/tmp", "-v", f"{state}:/var/lib/driftloop",
                     "-p", f"127.0.0.1:{free_port()}:8000", image)
    run("exec", name, "python", "-c",
        "import time, urllib.request\n"
        "for _ in range(240):\n"
        "    try:\n"
        "        urllib.request.urlopen('http://127.0.0.1:8000/ready'); break\n"
        "    except Exception: time.sleep(0.5)\n")
    # The check the engine runs on its interval, run now (docker has no `healthcheck run`).
    proc = run("exec", name, *check["Test"][1:], check=False) \
        if check["Test"][0] == "CMD" else run("healthcheck", "run", name, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sigterm_stops_it_cleanly_with_the_log_flushed(state: Path, container) -> None:
    image = built("serving")
    port = free_port()
    name = container("--read-only", "--tmpfs", "/tmp", "-v", f"{state}:/var/lib/driftloop",
                     "-p", f"127.0.0.1:{port}:8000", image)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    ids = []
    for _ in range(20):
        answer = httpx.post(f"{url}/predict", json={"instances": ROWS}, timeout=30)
        ids += [r["request_id"] for r in answer.json()["predictions"]]
    run("stop", "-t", "30", name)  # SIGTERM, then SIGKILL after 30 s
    state_of = json.loads(run("inspect", name).stdout)[0]["State"]
    assert state_of["ExitCode"] == 0, state_of
    logs = run("logs", name)
    assert "prediction log drained" in logs.stdout + logs.stderr
    with sqlite3.connect(state / "predictions.db") as db:
        found = {rid for (rid,) in db.execute(
            f"SELECT request_id FROM predictions WHERE request_id IN "
            f"({','.join('?' * len(ids))})", ids)}
    assert found == set(ids)  # every answered row is in the log after the stop
