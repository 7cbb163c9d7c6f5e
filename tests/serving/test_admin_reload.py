"""POST /admin/reload: token, hot swap, and every failure leaving the old model serving."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from driftloop.bootstrap import bootstrap
from driftloop.registry import connect
from driftloop.settings import Settings
from serving.app import StartupError, create_app
from tests.serving.conftest import IRIS_ROW, TOKEN, serving_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _version(client: TestClient) -> str:
    return client.get("/model").json()["version"]


def _artifact(settings: Settings, version: str, name: str) -> Path:
    client = connect(settings)
    run_id = client.get_model_version("iris-classifier", version).run_id
    root = urlparse(client.get_run(run_id).info.artifact_uri).path
    return Path(root) / "driftloop" / name


@pytest.mark.parametrize(("headers", "status", "words"), [
    ({}, 401, "missing bearer token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "missing bearer token"),
    ({"Authorization": "Bearer wrong"}, 403, "wrong bearer token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, 403, "wrong bearer token"),
])
def test_reload_needs_the_bearer_token(iris: TestClient, headers: dict, status: int,
                                       words: str) -> None:
    response = iris.post("/admin/reload", json={}, headers=headers)
    assert response.status_code == status
    assert words in response.json()["detail"]
    assert TOKEN not in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_reload_is_refused_when_the_server_has_no_token(make_client, iris_store,
                                                        iris_model) -> None:
    client = make_client(iris_store, iris_model, admin_token=None)
    response = client.post("/admin/reload", json={}, headers=AUTH)
    assert response.status_code == 403
    assert "DRIFTLOOP_ADMIN_TOKEN is not set" in response.json()["detail"]


def test_reloading_the_current_champion_is_unchanged(iris: TestClient) -> None:
    response = iris.post("/admin/reload", json={}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "unchanged" and body["previous_version"] == "1"
    assert body["model"]["version"] == "1"
    assert iris.post("/admin/reload", headers=AUTH).json()["status"] == "unchanged"


def test_reload_swaps_model_and_drift_reference_and_failures_keep_the_old_one(
    champion: Settings, tmp_path: Path
) -> None:
    # The lifespan loads the champion itself here (no preloaded model).
    app = create_app(serving_settings(champion, tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert _version(client) == "1"
        bootstrap(champion, force=True)  # v2 becomes champion
        response = client.post("/admin/reload", json={}, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "reloaded" and body["previous_version"] == "1"
        assert body["model"]["version"] == "2" and body["model"]["aliases"] == ["champion"]
        assert _version(client) == "2"
        served = client.post("/predict", json={"features": IRIS_ROW}).json()
        assert served["model"]["version"] == "2"
        assert client.get("/drift/status").json()["reference"]["model_version"] == "2"
        assert 'version="2"' in client.get("/metrics").text

        # Back to 1 by number (int or string).
        assert client.post("/admin/reload", json={"version": 1}, headers=AUTH
                           ).json()["model"]["version"] == "1"

        # A version that does not exist: 404, still serving 1.
        response = client.post("/admin/reload", json={"version": "99"}, headers=AUTH)
        assert response.status_code == 404
        assert "no version 99" in response.json()["detail"]
        assert "still serving version 1" in response.json()["detail"]
        assert _version(client) == "1"

        response = client.post("/admin/reload", json={"version": "two"}, headers=AUTH)
        assert response.status_code == 422 and _version(client) == "1"

        # A version whose ONNX artifact is corrupt: 422 naming it, still serving 1.
        _artifact(champion, "2", "model.onnx").write_bytes(b"this is not an onnx model")
        response = client.post("/admin/reload", json={"version": "2"}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "ONNX form does not load" in response.json()["detail"]
        assert _version(client) == "1"
        assert client.post("/predict", json={"features": IRIS_ROW}).status_code == 200
        # ... and one whose drift reference is gone.
        bootstrap(champion, force=True)  # v3
        _artifact(champion, "3", "reference.parquet").unlink()
        response = client.post("/admin/reload", json={"version": "3"}, headers=AUTH)
        assert response.status_code == 422
        assert "reference.parquet" in response.json()["detail"]
        assert _version(client) == "1"
        text = client.get("/metrics").text
        assert 'driftloop_model_reloads_total{result="failure"} 3.0' in text
        assert 'driftloop_model_reloads_total{result="success"} 2.0' in text


def test_unreachable_registry_is_503_and_the_model_keeps_serving(
    make_client, iris_store, iris_model
) -> None:
    client = make_client(iris_store, iris_model,
                         mlflow_tracking_uri="http://127.0.0.1:9")  # nothing listens there
    response = client.post("/admin/reload", json={}, headers=AUTH)
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    assert "still serving version 1" in response.json()["detail"]
    assert client.post("/predict", json={"features": IRIS_ROW}).status_code == 200


def test_pinned_version_is_served_instead_of_the_champion(champion: Settings,
                                                          tmp_path: Path) -> None:
    bootstrap(champion, force=True)
    app = create_app(serving_settings(champion, tmp_path, model_version="1"))
    with TestClient(app) as client:
        body = client.get("/model").json()
        assert body["version"] == "1" and body["pinned"] is True
        assert body["aliases"] == ["previous"]


def test_startup_without_a_champion_fails_with_the_fix(settings: Settings,
                                                       tmp_path: Path) -> None:
    app = create_app(serving_settings(settings, tmp_path))
    with pytest.raises(StartupError, match="run `driftloop bootstrap` first"), TestClient(app):
        pass


def test_a_reload_with_other_replicas_on_the_log_is_refused_and_changes_nothing(
    make_client, iris_store: Settings, iris_model, tmp_path: Path
) -> None:
    """Two servers on one log (replicas behind a Service): a hot reload would reach one of
    them, so it is refused (409) naming the other, unless asked for this replica only."""
    a = make_client(iris_store, iris_model)
    b = make_client(iris_store, iris_model)  # same tmp_path: the same prediction log
    other = b.app.state.driftloop.instance_id
    response = a.post("/admin/reload", json={"version": "1"}, headers=AUTH)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "2 live servers share this prediction log" in detail and other in detail
    assert "deploy_target=kubernetes" in detail and "nothing was changed" in detail
    assert 'driftloop_model_reloads_total{result="success"}' not in a.get("/metrics").text
    assert "driftloop_replicas 2.0" in a.get("/metrics").text
    # Asked for explicitly, one replica reloads (here: the version it already serves).
    one = a.post("/admin/reload", json={"version": "1", "this_replica_only": True},
                 headers=AUTH)
    assert one.status_code == 200 and one.json()["status"] == "unchanged"
    # Once the other replica stops (its heartbeat row goes), reloads pass again.
    b.__exit__(None, None, None)
    assert a.post("/admin/reload", json={"version": "1"}, headers=AUTH).status_code == 200


@pytest.mark.parametrize("body", [
    {"version": True},  # once read as version 1 (lax int); found by the contract fuzzing
    {"version": 2.5}, {"version": "two"}, {"version": 0}, {"version": "1; drop"},
    {"version": "1", "this_replica_only": "yes"}, {"versoin": "1"},
])
def test_a_bad_reload_body_is_a_422_and_changes_nothing(iris: TestClient, body: dict) -> None:
    response = iris.post("/admin/reload", json=body, headers=AUTH)
    assert response.status_code == 422, (body, response.text)
    assert response.json()["detail"].startswith("invalid request")
    assert 'driftloop_model_reloads_total{result="success"}' not in iris.get("/metrics").text
    assert _version(iris) == "1"


def test_a_log_the_server_cannot_open_stops_it_naming_the_log(
    iris_store: Settings, tmp_path: Path
) -> None:
    """A prediction log the server cannot open (here: its path is a directory's child of a
    file) stops the start with the URL and the cause: no server that serves without logging."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings = serving_settings(iris_store, tmp_path,
                                prediction_log_url=f"sqlite:///{blocker / 'p.db'}")
    app = create_app(settings)
    with pytest.raises(StartupError) as err, TestClient(app):
        pass
    assert f"prediction log sqlite:///{blocker / 'p.db'} cannot be opened" in str(err.value)
