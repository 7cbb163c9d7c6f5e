"""resources.yaml: the pools, variables and connections every shape applies, from one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftloop_airflow.resources import ResourcesError, apply, load, main
from tests.airflow.conftest import set_connection


def test_the_declaration_holds_the_retrain_pool_and_both_connections() -> None:
    from driftloop_airflow.config import KFP_CONN_ID, RETRAIN_POOL, SERVING_CONN_ID

    resources = load()
    assert resources.pools[RETRAIN_POOL].slots == 1
    assert resources.pools[RETRAIN_POOL].include_deferred is False
    assert set(resources.connections) == {SERVING_CONN_ID, KFP_CONN_ID}


@pytest.mark.parametrize(("text", "words"), [
    ("pools:\n  p:\n    slots: 0\n", "pool 'p' needs whole `slots` >= 1, got 0"),
    ("pools:\n  p:\n    slots: two\n", "got 'two'"),
    ("pool:\n  p:\n    slots: 1\n", "unknown section(s) ['pool']"),
])
def test_a_malformed_declaration_is_refused_naming_the_problem(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text(text)
    with pytest.raises(ResourcesError) as err:
        load(path)
    assert words in str(err.value)


def test_apply_creates_the_pools_then_names_each_missing_connection(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from airflow.models.pool import Pool

    Pool.delete_pool("driftloop_retrain")
    assert main(["check"]) == 1
    assert "pool driftloop_retrain is missing" in capsys.readouterr().err
    monkeypatch.delenv("AIRFLOW_CONN_DRIFTLOOP_KFP", raising=False)
    set_connection(monkeypatch, "driftloop_serving", {"conn_type": "http", "host": "x"})
    with pytest.raises(ResourcesError) as err:
        apply()
    assert "connection driftloop_kfp does not resolve" in str(err.value)
    assert "AIRFLOW_CONN_DRIFTLOOP_KFP" in str(err.value)
    assert "driftloop_serving" not in str(err.value)
    # The pool went in all the same: a fixed connection is all that is left to do.
    assert Pool.get_pool("driftloop_retrain").slots == 1
    set_connection(monkeypatch, "driftloop_kfp", {"conn_type": "generic",
                                                  "extra": json.dumps({"backend": "local"})})
    assert main(["apply"]) == 0
    out = capsys.readouterr().out
    assert "pool driftloop_retrain: 1 slot(s), as declared" in out
    assert "connection driftloop_kfp: resolves" in out


def test_apply_restores_a_pool_someone_changed(airflow_db: Path) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("driftloop_retrain", slots=4, description="x",
                               include_deferred=False)
    done = apply(check_connections=False)
    assert "pool driftloop_retrain: updated with 1 slot(s)" in done
    assert Pool.get_pool("driftloop_retrain").slots == 1


def test_store_connections_puts_both_in_the_metadata_db(
    airflow_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make up's connections are rows a person sees in Admin -> Connections (issue 15,
    finding 4), rewritten from the environment at each start and described as declared."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from driftloop_airflow.localenv import local_connections_environ
    from driftloop_airflow.resources import store_connections

    def stored() -> dict[str, Connection]:
        with create_session() as session:
            rows = session.query(Connection).filter(
                Connection.conn_id.in_(["driftloop_serving", "driftloop_kfp"])).all()
            session.expunge_all()
            return {c.conn_id: c for c in rows}

    env = local_connections_environ(server_url="http://127.0.0.1:8123",
                                    state_dir=tmp_path, token="t0k")
    # Nothing is stored while one value is missing, and the error names it.
    partial = {k: v for k, v in env.items() if k != "AIRFLOW_CONN_DRIFTLOOP_KFP"}
    with pytest.raises(ResourcesError, match="no value to store for AIRFLOW_CONN_DRIFTLOOP_KFP"):
        store_connections(environ=partial)
    assert stored() == {}

    assert store_connections(environ=env) == [
        "connection driftloop_serving: created in the metadata DB",
        "connection driftloop_kfp: created in the metadata DB"]
    rows = stored()
    serving, kfp = rows["driftloop_serving"], rows["driftloop_kfp"]
    assert (serving.conn_type, serving.host, serving.port, serving.password) == (
        "http", "127.0.0.1", 8123, "t0k")
    assert serving.description == load().connections["driftloop_serving"]["description"]
    assert json.loads(kfp.extra)["backend"] == "local"
    assert store_connections(environ=env)[0] == (
        "connection driftloop_serving: as declared in the metadata DB")
    moved = local_connections_environ(server_url="http://127.0.0.1:9000",
                                      state_dir=tmp_path, token="t0k")
    assert store_connections(environ=moved)[0] == "connection driftloop_serving: updated " \
        "in the metadata DB"
    assert stored()["driftloop_serving"].port == 9000
    # From the CLI make up runs, with the environment only it supplies.
    for key, value in moved.items():
        monkeypatch.setenv(key, value)
    assert main(["apply", "--store-connections"]) == 0
    assert "connection driftloop_kfp: as declared in the metadata DB" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["check", "--store-connections"])
    assert "--store-connections goes with `apply`" in capsys.readouterr().err
    with create_session() as session:  # other tests set their connections in the environment
        session.query(Connection).filter(Connection.conn_id.like("driftloop_%")).delete(
            synchronize_session=False)
