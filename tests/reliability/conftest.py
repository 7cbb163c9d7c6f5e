"""Reliability suite fixtures: the scale, the figures, a champion store, a live server.

Airflow's test home is configured here too (before any module imports Airflow), as
tests/airflow does, so the Airflow fault tests run in this folder alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.env import configure
from tests.reliability.figures import Figures
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
