"""Airflow test fixtures: a session Airflow home, a migrated metadata DB, connections.

The Airflow home is configured at collection (before any test module imports Airflow);
``airflow db migrate`` runs once per session and only when a test needs the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.env import configure

AIRFLOW_HOME = configure()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's metadata DB, migrated (``dag.test()`` and pools need it)."""
    import os

    from driftloop_airflow.local_runs import migrate

    migrate(dict(os.environ))
    from airflow.models.pool import Pool
    from driftloop_airflow.config import RETRAIN_POOL

    Pool.create_or_update_pool(RETRAIN_POOL, slots=1, description="driftloop retrain submit",
                               include_deferred=False)
    return AIRFLOW_HOME / "airflow.db"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict) -> None:
    """An Airflow Connection through its ``AIRFLOW_CONN_<ID>`` variable (JSON form)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))


@pytest.fixture
def token_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "token"
    path.write_text("sa-token-1\n")
    yield path
