"""Airflow test fixtures: a session Airflow home, a migrated metadata DB, connections.

The Airflow home is configured at collection (before any test module imports Airflow);
``airflow db migrate`` runs once per session and only when a test needs the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.airflow.env import configure

AIRFLOW_HOME = configure()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's metadata DB, migrated (``dag.test()`` and pools need it)."""
    import os

    from driftloop_airflow.local_runs import migrate
    from driftloop_airflow.resources import apply

    migrate(dict(os.environ))
    apply(check_connections=False)  # each test sets the connections it uses
    return AIRFLOW_HOME / "airflow.db"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict) -> None:
    """An Airflow Connection through its ``AIRFLOW_CONN_<ID>`` variable (JSON form)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


@pytest.fixture
def token_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "token"
    path.write_text("sa-token-1\n")
    yield path


# --- a live local driftloop: MLflow store with champion v1, `driftloop serve`, connections --
# The pipeline tests' helpers (champion template, server, Iris rows) are reused as they are.
from tests.pipelines.conftest import (  # noqa: E402
    LocalLoop,
    Server,
    champion_template,  # noqa: F401  (a fixture: registered here by import)
    make_loop,
    running_server,
)


@dataclass
class Live:
    """One live local driftloop: its state, its server, and where local KFP runs go."""

    loop: LocalLoop
    server: Server
    kfp_state: Path

    def connections(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point driftloop_serving at the server and driftloop_kfp at the local runner."""
        import sys

        from driftloop_airflow.localenv import connections_environ, local_kfp_connection

        pipeline_env = {k: v for k, v in self.loop.env.items()
                        if k.startswith("DRIFTLOOP_") or k == "PYTHONPATH"}
        kfp = local_kfp_connection(state_dir=self.kfp_state, python=sys.executable,
                                   env=pipeline_env)
        for key, value in connections_environ(server_url=self.server.url,
                                              serving_token=self.server.token,
                                              kfp=kfp).items():
            monkeypatch.setenv(key, value)
        # In-process tasks (dag.test) read the same state dir as the server.
        monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(self.loop.state))

    def kfp_runs(self) -> list[dict]:
        runs = self.kfp_state / "kfp-local" / "runs"
        return [json.loads((d / "run.json").read_text())
                for d in sorted(runs.iterdir()) if (d / "run.json").exists()] \
            if runs.exists() else []


@contextmanager
def live_driftloop(template: Path, where: Path) -> Iterator[Live]:
    loop = make_loop(template, where)
    with running_server(loop, where) as server:
        yield Live(loop, server, where / "airflow-kfp")


@pytest.fixture(scope="module")
def shared_live(champion_template: Path,  # noqa: F811
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server for tests that do not change the registry's champion."""
    with live_driftloop(champion_template, tmp_path_factory.mktemp("shared-live")) as live:
        yield live


@pytest.fixture
def live(champion_template: Path, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    """A fresh server (champion v1) for a test that retrains."""
    with live_driftloop(champion_template, tmp_path) as live:
        yield live
