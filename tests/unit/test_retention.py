"""Retention, PostgreSQL day partitions and the log's migrations, on real databases."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from driftloop import retention
from driftloop.predlog import PredictionLog, rows_for, sqlalchemy_url, to_micros
from driftloop.predlog import partitions as parts
from driftloop.predlog.archive import ArchiveError
from driftloop.predlog.schema import predictions
from driftloop.settings import Settings

LABELS = ["setosa", "versicolor", "virginica"]
#: Today at noon: labels are stamped with the real time, so the log's rows are around it.
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAY = timedelta(days=1)


def write_days(log: PredictionLog, first: datetime, days: int, per_day: int) -> list[str]:
    """``per_day`` rows spread over each of ``days`` days from ``first``; returns ids."""
    ids, rows = [], []
    for d in range(days):
        for i in range(per_day):
            ts = to_micros(first + d * DAY + timedelta(seconds=i * 86_400 // per_day))
            rid = uuid.uuid4().hex
            ids.append(rid)
            rows += rows_for(ts, [rid], "iris-classifier", "1", np.ones((1, 4)), None,
                             ["setosa"], np.array([[1.0, 0, 0]]), LABELS)
    log.write_rows(rows)
    return ids


def count(log: PredictionLog, table: str = "predictions") -> int:
    with log.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_purge_removes_old_rows_labels_and_reports_and_keeps_the_rest(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids = write_days(log, NOW - 40 * DAY, 40, 24)  # a row an hour for 40 days
    log.add_feedback([(ids[0], "setosa"), (ids[-1], "setosa")])
    cutoff = to_micros(NOW - 30 * DAY)
    with log.engine.begin() as conn:  # labels arrive when their rows are served
        conn.execute(text("UPDATE labels SET ts = :t WHERE request_id = :r"),
                     {"t": to_micros(NOW - 40 * DAY), "r": ids[0]})
    result = log.purge(cutoff, batch_rows=100)

    kept = count(log)
    if log.dialect == "postgresql":  # whole days: the cutoff's own day stays
        assert result.predictions_deleted == 10 * 24 - 12
        assert len(result.partitions_dropped) == 10
    else:
        assert result.predictions_deleted == 10 * 24
        assert result.batches >= 3  # bounded batches, not one big transaction
    assert kept == 40 * 24 - result.predictions_deleted
    assert result.labels_deleted == 1
    assert set(log._stored_labels([ids[0], ids[-1]])) == {ids[-1]}
    assert log.served([ids[-1]])
    # Idempotent: nothing more to remove.
    again = log.purge(cutoff, batch_rows=100)
    assert (again.predictions_deleted, again.labels_deleted) == (0, 0)


def test_purge_archives_every_removed_row_to_parquet_first(log_url: str,
                                                           tmp_path: Path) -> None:
    log = PredictionLog(log_url)
    write_days(log, NOW - 12 * DAY, 12, 10)
    before = count(log)
    result = log.purge(to_micros(NOW - 5 * DAY), batch_rows=25,
                       archive_url=str(tmp_path / "archive"))
    files = sorted((tmp_path / "archive" / "predictions").glob("*.parquet"))
    assert sorted(result.archived) == sorted(f"file://{f}" for f in files)
    archived = sum(pq.read_table(f).num_rows for f in files)
    assert archived == result.predictions_deleted > 0
    assert count(log) == before - archived
    table = pq.read_table(files[0])
    assert table.column_names[:3] == ["id", "ts", "request_id"]
    assert np.frombuffer(table.column("num")[0].as_py(), "<f8").tolist() == [1.0] * 4


def test_an_archive_that_cannot_be_written_deletes_nothing(log_url: str,
                                                           tmp_path: Path) -> None:
    log = PredictionLog(log_url)
    write_days(log, NOW - 12 * DAY, 12, 10)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ArchiveError, match="Nothing was deleted"):
        log.purge(to_micros(NOW - 5 * DAY), archive_url=str(blocker / "archive"))
    assert count(log) == 120


def test_writes_go_on_while_retention_runs(log_url: str) -> None:
    log = PredictionLog(log_url)
    write_days(log, NOW - 20 * DAY, 20, 200)
    written, errors = [], []

    def writer() -> None:
        try:
            for _ in range(20):
                written.extend(write_days(log, NOW, 1, 50))
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    log.purge(to_micros(NOW - 5 * DAY), batch_rows=200)
    thread.join()
    assert not errors
    assert set(log.served(written)) == set(written)


def test_plan_keeps_what_the_champion_and_previous_trained_on() -> None:
    settings = Settings(log_retention_days=30)
    recent = retention.Hold("m", "4", "champion", NOW - 3 * DAY)
    old = retention.Hold("m", "3", "previous", NOW - 45 * DAY)
    plain = retention.plan(settings, [recent], NOW)
    assert plain.cutoff == NOW - 30 * DAY and plain.held_by is None
    held = retention.plan(settings, [recent, old], NOW)
    assert held.cutoff == NOW - 45 * DAY and held.held_by == old
    assert "m v3 (previous) trained on rows from" in held.as_dict()["held_back_by"]
    assert retention.plan(Settings(log_retention_days=0), [old], NOW) is None


def test_a_retention_shorter_than_the_loops_windows_is_refused() -> None:
    with pytest.raises(ValueError, match="DRIFTLOOP_LOG_RETENTION_DAYS=3 is shorter than"):
        Settings(log_retention_days=3)


# --- PostgreSQL: day partitions and the migration into them --------------------------------


@pytest.mark.postgres
def test_a_new_postgres_log_is_partitioned_by_day_ahead_of_time(pg_database: str) -> None:
    log = PredictionLog(pg_database)
    with log.engine.connect() as conn:
        assert parts.is_partitioned(conn)
        days = set(parts.existing(conn))
        versions = conn.execute(text("SELECT version FROM schema_migrations ORDER BY 1"))
        assert list(versions.scalars()) == [1, 2]
    today = datetime.now(UTC).date()
    assert {today + timedelta(days=d) for d in range(parts.DAYS_AHEAD + 1)} <= days


@pytest.mark.postgres
def test_a_missing_partition_is_created_at_insert_and_nothing_is_lost(
    pg_database: str,
) -> None:
    log = PredictionLog(pg_database)
    later = (NOW + 60 * DAY).replace(hour=0)  # five rows within that one day
    ids = write_days(log, later, 1, 5)  # a day past the horizon: created on the way
    with log.engine.begin() as conn:
        name = parts.existing(conn)[later.date()]
        conn.execute(text(f"DROP TABLE {name}"))  # a person dropped it by hand
    log._horizon = 10**18  # the writer believes it exists: the insert itself fails
    again = write_days(log, later, 1, 5)
    assert set(log.served(again)) == set(again)
    assert not log.served(ids)


@pytest.mark.postgres
def test_an_unpartitioned_postgres_log_is_migrated_once_keeping_every_row(
    pg_database: str,
) -> None:
    engine = create_engine(sqlalchemy_url(pg_database))
    predictions.create(engine)  # the one-table layout of earlier versions
    engine.dispose()
    old = PredictionLog.__new__(PredictionLog)  # write through the old table, no schema
    old.__init__(pg_database, create=False)
    rows = []
    for d in range(3):
        rows += rows_for(to_micros(NOW - d * DAY), [f"old-{d}"], "m", "1", np.ones((1, 4)),
                         None, ["setosa"], np.array([[1.0, 0, 0]]), LABELS)
    with old.engine.begin() as conn:
        conn.exec_driver_sql(old._insert_sql, rows)
    old.dispose()

    log = PredictionLog(pg_database)
    with log.engine.connect() as conn:
        assert parts.is_partitioned(conn)
        assert {NOW.date() - d * DAY for d in range(3)} <= set(parts.existing(conn))
        ids_before = conn.execute(text("SELECT max(id) FROM predictions")).scalar_one()
    assert set(log.served([f"old-{d}" for d in range(3)])) == {"old-0", "old-1", "old-2"}
    new = write_days(log, NOW, 1, 2)
    with log.engine.connect() as conn:
        new_ids = conn.execute(text("SELECT min(id) FROM predictions WHERE request_id = "
                                    "ANY(:r)"), {"r": new}).scalar_one()
    assert new_ids > ids_before  # ids keep growing after the copy
    assert PredictionLog(pg_database).create_schema() == []  # applied once, never again


# --- what registered models still need (a real MLflow store) -------------------------------


def test_holds_are_the_champion_and_previous_training_windows(settings: Settings) -> None:
    from driftloop.registry import connect

    client = connect(settings)
    client.create_registered_model("m")
    versions = {}
    for start in ("", (NOW - 50 * DAY).isoformat(), (NOW - 2 * DAY).isoformat()):
        mv = client.create_model_version("m", source="file:///nowhere",
                                         tags={"window_start": start} if start else None)
        versions[start] = mv.version
    client.set_registered_model_alias("m", "previous", versions[(NOW - 50 * DAY).isoformat()])
    client.set_registered_model_alias("m", "champion", versions[(NOW - 2 * DAY).isoformat()])
    found = sorted(retention.holds(client), key=lambda h: h.alias)
    assert [(h.alias, h.window_start) for h in found] == [
        ("champion", NOW - 2 * DAY), ("previous", NOW - 50 * DAY)]
    chosen = retention.plan(settings, found, NOW)
    assert chosen.cutoff == NOW - 50 * DAY and chosen.held_by.alias == "previous"
    # Once the old version is no longer the rollback target, its rows age out.
    client.set_registered_model_alias("m", "previous", versions[""])
    assert retention.plan(settings, retention.holds(client), NOW).held_by is None


@pytest.mark.postgres
def test_a_day_left_detached_by_an_interrupted_run_is_dropped_by_the_next(
    pg_database: str,
) -> None:
    log = PredictionLog(pg_database)
    write_days(log, NOW - 40 * DAY, 3, 10)
    with log.engine.begin() as conn:
        name = parts.existing(conn)[(NOW - 40 * DAY).date()]
        conn.execute(text(f"ALTER TABLE predictions DETACH PARTITION {name}"))  # then killed
        assert (NOW - 40 * DAY).date() in parts.detached(conn)
    result = log.purge(to_micros(NOW - 30 * DAY))
    assert name in result.partitions_dropped
    with log.engine.connect() as conn:
        assert parts.detached(conn) == {}
        assert conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar_one() is None
    assert count(log) == 0


# --- the CLI: what a person running it sees ------------------------------------------------


def test_cli_retention_reports_what_it_removed_and_fails_clearly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from driftloop.cli import main
    from driftloop.registry import connect
    from tests.reliability.proxy import free_port

    connect(settings)  # an empty registry: nothing holds rows back
    url = f"sqlite:///{settings.state_dir / 'predictions.db'}"
    write_days(PredictionLog(url), NOW - 40 * DAY, 1, 3)
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("DRIFTLOOP_PREDICTION_LOG_URL", url)
    assert main(["retention"]) == 0
    out = capsys.readouterr().out
    assert "(retention 30 days):" in out and "predictions 3, labels 0" in out

    monkeypatch.setenv("DRIFTLOOP_PREDICTION_LOG_URL",
                       f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing")
    assert main(["retention"]) == 1
    err = capsys.readouterr().err
    assert "driftloop: error: the prediction log postgresql://nobody:***@127.0.0.1" in err
    assert "could not be used" in err and "secret" not in err and "Traceback" not in err

    monkeypatch.setenv("DRIFTLOOP_LOG_RETENTION_DAYS", "2")
    assert main(["retention"]) == 1
    assert "DRIFTLOOP_LOG_RETENTION_DAYS=2 is shorter than" in capsys.readouterr().err
