"""Shared fixtures: isolated settings, a local MLflow store, and a real PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import PROJECT_ROOT, Settings

SPECS = PROJECT_ROOT / "specs"
IRIS_SPEC = SPECS / "iris.yaml"
PENGUINS_SPEC = SPECS / "penguins.yaml"
#: The bundled regression spec (the penguins' body mass).
MASS_SPEC = SPECS / "penguins-mass.yaml"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's DRIFTLOOP_* settings."""
    for key in list(os.environ):
        if key.startswith("DRIFTLOOP_") and key != "DRIFTLOOP_TEST_PG_URL":
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store, made once: migrating costs ~3 s per store.

    It holds no experiment of ours, so copies create theirs with their own artifact root.
    """
    from driftloop.registry import connect

    state = tmp_path_factory.mktemp("mlflow-template")
    client = connect(Settings(state_dir=state))
    client.search_experiments()  # forces the schema migration
    return state / "mlflow.db"


@pytest.fixture
def settings(tmp_path: Path, _migrated_mlflow_db: Path) -> Settings:
    """Local shape in a fresh state dir: SQLite MLflow store and prediction log."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(_migrated_mlflow_db, state / "mlflow.db")
    return Settings(state_dir=state, spec_path=IRIS_SPEC)


@pytest.fixture
def champion(settings: Settings) -> Settings:
    """``settings`` with the Iris champion (version 1) bootstrapped into its store."""
    from driftloop.bootstrap import bootstrap

    bootstrap(settings)
    return settings


def _pg_base_url() -> str | None:
    return os.environ.get("DRIFTLOOP_TEST_PG_URL") or None


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL), dropped afterwards.

    CI's server keeps what earlier runs left, so every test gets its own database.
    """
    base = _pg_base_url()
    if base is None:
        pytest.skip("DRIFTLOOP_TEST_PG_URL is not set (no PostgreSQL server for this run)")
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(_sqlalchemy_url(base))
    name = f"driftloop_t_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A prediction log's URL: SQLite, then (when available) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def mlflow_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose MLflow backend is SQLite, then (when available) real PostgreSQL."""
    state = tmp_path / "state"
    if request.param == "sqlite":
        return request.getfixturevalue("settings")
    db_url = request.getfixturevalue("pg_database")
    return Settings(state_dir=state, spec_path=IRIS_SPEC, mlflow_tracking_uri=db_url,
                    mlflow_artifact_root=(tmp_path / "artifacts").as_uri())


# --- no silent skips in CI ------------------------------------------------------------------
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI (``CI=true``) a test that would skip (a missing tool, service or package) fails
    instead, naming what is missing: a check that quietly disappears cannot pass CI. Local
    runs still skip, with their one-line reason (``-ra`` lists them)."""
    report = yield
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(
            report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"CI=true: this test would have been skipped, and CI allows no "
                           f"skip: {reason}")
    return report


def paired_gate(rows: int, *, both: int, champion_only: int, challenger_only: int,
                spec: Path = IRIS_SPEC, champion_version: str = "1") -> Any:
    """A real gate verdict on ``rows`` rows with the given paired table (the rest: both
    wrong): for tests of what is done with a verdict, not of how it is reached."""
    import numpy as np

    from driftloop.gate import GateThresholds, compare_classes, decide
    from driftloop.spec import load_spec

    truth, champion, challenger = (np.array(["a"] * rows), np.array(["b"] * rows),
                                   np.array(["b"] * rows))
    champion[:both + champion_only] = "a"
    challenger[:both] = "a"
    challenger[both + champion_only:both + champion_only + challenger_only] = "a"
    c = compare_classes("accuracy", truth, champion, challenger, ["a", "b"])
    return decide(GateThresholds.from_spec(load_spec(spec)), c.challenger, c,
                  champion_version=champion_version, holdout_rows=rows)
