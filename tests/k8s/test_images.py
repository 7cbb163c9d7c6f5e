"""The Dockerfiles: lint, what each image installs from the lock, what it copies, health check.

No Docker engine runs here; the images are built by the `images` job of
.github/workflows/ci.yaml and by scripts/minikube-up.sh.
"""

from __future__ import annotations

import fnmatch
import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop import naming
from tests.k8s.conftest import BIN, DOCKER, ROOT, find_uv, pinned, pyproject

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
IMAGES = naming.images()


def dockerfile(name: str) -> str:
    return (DOCKER / f"{name}.Dockerfile").read_text()


def instructions(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hadolint"), "--no-color", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(path: Path) -> None:
    out = hadolint(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    out = hadolint(bad)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # :latest
    assert "DL3013" in out.stdout  # unpinned pip install


def test_the_three_images_are_the_ones_images_env_names() -> None:
    assert {p.name for p in DOCKERFILES} == {"serving.Dockerfile", "trainer.Dockerfile",
                                             "airflow.Dockerfile"}
    assert set(IMAGES) == {"DRIFTLOOP_SERVING_IMAGE", "DRIFTLOOP_TRAINER_IMAGE",
                           "DRIFTLOOP_AIRFLOW_IMAGE"}


# --- what each image installs --------------------------------------------------------------


def exported_requirements(name: str) -> dict[str, str]:
    """Run the image's own ``uv export`` line here and return {package: version}."""
    (line,) = [ins for ins in instructions(dockerfile(name)) if "uv export" in ins]
    command = line.split("uv export", 1)[1].split("&&", 1)[0]
    args = [a for a in shlex.split(command) if a != "-o" and not a.startswith("/tmp/")]
    assert "--frozen" in args and "--no-dev" in args, "the image must install the lock as is"
    out = subprocess.run([find_uv(), "export", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert out.returncode == 0, out.stderr
    found = {}
    for req in out.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", req)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    assert len(found) > 20
    return found


def test_the_serving_image_has_the_server_stack_and_no_kfp() -> None:
    reqs = exported_requirements("serving")
    assert {"fastapi", "uvicorn", "mlflow", "scikit-learn", "psycopg", "prometheus-client"} <= \
        set(reqs)
    assert "kfp" not in reqs and "apache-airflow" not in reqs


def test_the_trainer_image_has_the_pinned_kfp_with_kubernetes_36() -> None:
    reqs = exported_requirements("trainer")
    kfp_pin = pinned("kfp", pyproject()["project"]["optional-dependencies"]["pipelines"])
    assert reqs["kfp"] == kfp_pin
    assert reqs["kubernetes"].startswith("36."), "the uv override keeps kubernetes 36.x"
    assert "mlflow" in reqs and "apache-airflow" not in reqs


def test_the_airflow_image_has_airflow_and_no_kfp_mlflow_or_sklearn() -> None:
    reqs = exported_requirements("airflow")
    airflow_pin = pinned("apache-airflow",
                         pyproject()["project"]["optional-dependencies"]["airflow"])
    assert reqs["apache-airflow"] == airflow_pin
    assert {"great-expectations", "apache-airflow-providers-cncf-kubernetes", "httpx",
            "pydantic-settings"} <= set(reqs)
    for forbidden in ("kfp", "kfp-server-api", "mlflow", "mlflow-skinny", "scikit-learn"):
        assert forbidden not in reqs, forbidden


def test_the_airflow_base_image_is_the_pinned_airflow_on_python_311() -> None:
    airflow_pin = pinned("apache-airflow",
                         pyproject()["project"]["optional-dependencies"]["airflow"])
    (arg,) = re.findall(r"^ARG AIRFLOW_IMAGE=(\S+)$", dockerfile("airflow"), re.M)
    assert arg == f"apache/airflow:{airflow_pin}-python3.11"
    from tests.k8s.conftest import K8S, load_docs

    values = load_docs(K8S / "airflow" / "values.yaml")[0]
    assert values["airflowVersion"] == airflow_pin


def test_installs_are_hash_checked_and_the_project_never_resolves_again() -> None:
    for name in ("serving", "trainer", "airflow"):
        text = " ".join(instructions(dockerfile(name)))
        assert "--require-hashes" in text, name
        assert re.search(r"install[^&]*--no-deps[^&]*\.whl", text), name


# --- users, copies, build context -----------------------------------------------------------


@pytest.mark.parametrize("name", ["serving", "trainer"])
def test_our_images_run_as_a_non_root_user(name: str) -> None:
    users = [ins.split(None, 1)[1] for ins in instructions(dockerfile(name))
             if ins.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}


def test_the_airflow_image_keeps_the_official_images_user() -> None:
    assert not [ins for ins in instructions(dockerfile("airflow")) if ins.startswith("USER ")]


def test_dags_are_baked_where_airflow_looks() -> None:
    """The DAGs in the DAG folder; driftloop_airflow comes in the wheel (an installed
    package), so the plugins folder stays empty and needs no .airflowignore."""
    copies = {}
    steps = instructions(dockerfile("airflow"))
    last_from = max(i for i, ins in enumerate(steps) if ins.startswith("FROM "))
    for ins in steps[last_from:]:
        parts = ins.split()
        if parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            args = [p for p in parts[1:] if not p.startswith("--")]
            copies[args[0].rstrip("/")] = args[-1].rstrip("/")
    assert copies == {"dags": "/opt/airflow/dags",
                      "kfp_pipelines/retrain_pipeline.yaml":
                      "/opt/airflow/pipelines/retrain_pipeline.yaml"}
    design = (ROOT / "DESIGN.md").read_text()
    for folder in ("dags", "driftloop_airflow"):
        assert f"| `{folder}/` |" in design, f"{folder}/ is not a folder DESIGN.md names"


def _dockerignore_allows(path: str) -> bool:
    allowed = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if pattern == "*" or fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def test_every_copied_path_is_in_the_build_context() -> None:
    checked = 0
    for path in DOCKERFILES:
        for ins in instructions(path.read_text()):
            parts = ins.split()
            if parts[0] != "COPY" or any(p.startswith("--from") for p in parts):
                continue
            for src in [p for p in parts[1:] if not p.startswith("--")][:-1]:
                assert _dockerignore_allows(src.rstrip("/")), f"{path.name}: {src} is ignored"
                checked += 1
    assert checked >= 12
    assert not _dockerignore_allows(".venv") and not _dockerignore_allows(".git")
    assert not _dockerignore_allows("driftloop/__pycache__")


# --- the serving image's HEALTHCHECK -------------------------------------------------------


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """A real HTTP server on a free port whose /health answers the status in ``state[0]``."""
    state = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py")],
                          env={**os.environ, "DRIFTLOOP_PORT": str(port)},
                          capture_output=True, text=True, timeout=30)


def test_healthcheck_passes_when_health_answers_200(health_server) -> None:
    port, _ = health_server
    assert run_healthcheck(port).returncode == 0


def test_healthcheck_fails_naming_the_status(health_server) -> None:
    port, state = health_server
    state[0] = 503
    out = run_healthcheck(port)
    assert out.returncode == 1 and "answered 503" in out.stderr


def test_healthcheck_fails_when_nothing_listens(health_server) -> None:
    port, _ = health_server
    out = run_healthcheck(port + 1 if port < 65535 else port - 1)
    assert out.returncode == 1 and "unreachable" in out.stderr


def test_the_serving_image_checks_health_with_that_script() -> None:
    text = " ".join(instructions(dockerfile("serving")))
    assert 'HEALTHCHECK' in text and "/opt/driftloop/healthcheck.py" in text
    assert "COPY docker/healthcheck.py /opt/driftloop/healthcheck.py" in text
