"""Serving fixtures: a champion bootstrapped once per session, apps with their own log."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from driftloop.settings import Settings
from serving.app import create_app
from serving.served import ServedModel, load
from tests.conftest import IRIS_SPEC, MASS_SPEC, PENGUINS_SPEC

TOKEN = "test-admin-token"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def _bootstrapped(tmp_path_factory: pytest.TempPathFactory, migrated: Path, spec: Path,
                  name: str) -> Settings:
    from driftloop.bootstrap import bootstrap

    state = tmp_path_factory.mktemp(name)
    shutil.copyfile(migrated, state / "mlflow.db")
    settings = Settings(state_dir=state, spec_path=spec)
    bootstrap(settings)
    return settings


@pytest.fixture(scope="session")
def iris_store(tmp_path_factory: pytest.TempPathFactory, _migrated_mlflow_db: Path) -> Settings:
    """A store with the Iris champion v1, shared read-only by the serving tests."""
    return _bootstrapped(tmp_path_factory, _migrated_mlflow_db, IRIS_SPEC, "iris-store")


@pytest.fixture(scope="session")
def penguins_store(tmp_path_factory: pytest.TempPathFactory,
                   _migrated_mlflow_db: Path) -> Settings:
    return _bootstrapped(tmp_path_factory, _migrated_mlflow_db, PENGUINS_SPEC, "penguins")


@pytest.fixture(scope="session")
def mass_store(tmp_path_factory: pytest.TempPathFactory, _migrated_mlflow_db: Path) -> Settings:
    """A store with the regression champion v1 (penguins' body mass)."""
    return _bootstrapped(tmp_path_factory, _migrated_mlflow_db, MASS_SPEC, "mass")


@pytest.fixture(scope="session")
def mass_model(mass_store: Settings) -> ServedModel:
    return load(mass_store)


@pytest.fixture
def mass(make_client: Callable[..., TestClient], mass_store: Settings,
         mass_model: ServedModel) -> TestClient:
    return make_client(mass_store, mass_model)


@pytest.fixture(scope="session")
def iris_model(iris_store: Settings) -> ServedModel:
    return load(iris_store)


@pytest.fixture(scope="session")
def penguins_model(penguins_store: Settings) -> ServedModel:
    return load(penguins_store)


def serving_settings(store: Settings, tmp_path: Path, **overrides: Any) -> Settings:
    """The store's registry, a fresh prediction log under tmp_path, the admin token."""
    values: dict[str, Any] = {
        "state_dir": store.state_dir, "spec_path": store.spec_path,
        "prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}",
        "admin_token": TOKEN, "log_flush_interval_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(store, model, **settings)``: a started app (lifespan run) per call."""
    clients: list[TestClient] = []

    def make(store: Settings, model: ServedModel | None = None, **overrides: Any) -> TestClient:
        settings = serving_settings(store, tmp_path, **overrides)
        client = TestClient(create_app(settings, model=model), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def iris(make_client: Callable[..., TestClient], iris_store: Settings,
         iris_model: ServedModel) -> TestClient:
    return make_client(iris_store, iris_model)


@pytest.fixture
def penguins(make_client: Callable[..., TestClient], penguins_store: Settings,
             penguins_model: ServedModel) -> TestClient:
    return make_client(penguins_store, penguins_model)


def state_of(client: TestClient) -> Any:
    return client.app.state.driftloop


def logged_rows(client: TestClient) -> int:
    """Rows in the client's prediction log, after draining what is queued."""
    state = state_of(client)
    assert state.writer.flush(timeout=10)
    with state.log.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one())
