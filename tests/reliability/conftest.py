"""Reliability suite fixtures: the scale, the figures, a champion store, a live server.

Airflow's test home is configured here too (before any module imports Airflow), as
tests/airflow does, so the Airflow fault tests run in this folder alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import Settings
from tests.airflow.env import configure
from tests.conftest import IRIS_SPEC
from tests.processes import wait_until_answers
from tests.reliability.figures import Figures
from tests.reliability.proxy import FaultProxy, free_port
from tests.reliability.scale import SCALE
from tests.reliability.server import ServerProcess, running_server, server_env

configure()

# The pipeline tests' champion template (Iris v1 bootstrapped once per session) and the
# Airflow metadata DB fixture, registered here by import.
from tests.airflow.conftest import airflow_db  # noqa: E402,F401
from tests.pipelines.conftest import champion_template  # noqa: E402,F401


def pytest_report_header() -> str:
    return f"driftloop reliability scale: {SCALE.name}"


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    recorded = Figures(SCALE.name)
    yield recorded
    recorded.write()


def copy_store(template: Path, where: Path) -> Path:
    """A state dir whose MLflow store is a copy of the template's (champion v1).

    The artifacts stay where the template wrote them: register new versions here, never
    change the template's files.
    """
    state = where / "state"
    state.mkdir(parents=True)
    shutil.copyfile(template / "mlflow.db", state / "mlflow.db")
    return state


@pytest.fixture(scope="session")
def live_server(champion_template: Path,  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (champion v1, SQLite log) at debug log level with the access log on,
    shared by the contract fuzzing, the security checks (its whole output is searched for
    the admin token afterwards) and the Airflow fault tests (as their healthy server)."""
    where = tmp_path_factory.mktemp("live-server")
    state = copy_store(champion_template, where)
    env = server_env(state, f"sqlite:///{where / 'predictions.db'}",
                     DRIFTLOOP_MAX_BATCH_ROWS="50", DRIFTLOOP_MAX_BODY_BYTES="65536")
    with running_server(env, where / "server.log",
                        args=("--log-level", "debug", "--access-log")) as server:
        yield server


# --- an MLflow tracking server behind a cuttable proxy -------------------------------------


@dataclass
class MlflowStack:
    """``mlflow server`` (SQLite backend, artifacts served through it) holding the Iris
    champion v1, and a :class:`FaultProxy` in front of it. Clients under test use
    :attr:`proxied_uri`; the test itself uses :attr:`uri` (never cut)."""

    uri: str
    proxy: FaultProxy
    state: Path

    @property
    def proxied_uri(self) -> str:
        return f"http://{self.proxy.address}"

    def settings(self, *, proxied: bool = False) -> Settings:
        return Settings(state_dir=self.state, spec_path=IRIS_SPEC,
                        mlflow_tracking_uri=self.proxied_uri if proxied else self.uri)

    def client(self) -> Any:
        from driftloop.registry import connect

        return connect(self.settings())

    def alias(self, alias: str) -> str | None:
        from driftloop.registry import alias_version

        mv = alias_version(self.client(), "iris-classifier", alias)
        return None if mv is None else str(mv.version)


@pytest.fixture(scope="session")
def mlflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStack]:
    from driftloop.bootstrap import bootstrap

    where = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = where / "mlflow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server",
             "--backend-store-uri", f"sqlite:///{where / 'mlflow.db'}",
             "--artifacts-destination", str(where / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(proc, uri + "/health", log, timeout=240, what="mlflow server",
                           interval=0.3)
        state = where / "state"
        stack = MlflowStack(uri, FaultProxy("127.0.0.1", port).start(), state)
        bootstrap(stack.settings())
        try:
            yield stack
        finally:
            stack.proxy.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


#: MLflow's client retries a failed call 7 times with exponential backoff (~4 min in all).
#: The served model's registry calls are bounded here so a test of a registry that stays
#: away ends in seconds; the same variables bound them in production.
MLFLOW_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


@pytest.fixture(scope="session")
def mlflow_served(mlflow_stack: MlflowStack,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose registry is the MLflow server, through the proxy."""
    where = tmp_path_factory.mktemp("mlflow-served")
    env = server_env(mlflow_stack.state, f"sqlite:///{where / 'predictions.db'}",
                     DRIFTLOOP_MLFLOW_TRACKING_URI=mlflow_stack.proxied_uri,
                     DRIFTLOOP_SPEC_PATH=str(IRIS_SPEC), **MLFLOW_RETRIES)
    with running_server(env, where / "server.log") as server:
        yield server
