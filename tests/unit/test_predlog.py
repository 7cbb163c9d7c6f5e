"""The prediction log on SQLite and (when available) real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftloop.predlog import (
    Heartbeat,
    LogWriter,
    PredictionLog,
    from_micros,
    rows_for,
    to_micros,
)
from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LABELS = ["setosa", "versicolor", "virginica"]


def _log_rows(log: PredictionLog, n: int, *, start: datetime = T0, step_s: float = 1.0,
              model: str = "iris-classifier", version: str = "1", seed: int = 0,
              categorical: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Write n rows one per ``step_s`` seconds from ``start``; returns ids and features."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(5, 1, size=(n, 4))
    proba = rng.dirichlet([1, 1, 1], size=n)
    preds = [LABELS[i] for i in proba.argmax(axis=1)]
    ids = [uuid.uuid4().hex for _ in range(n)]
    rows = []
    for i in range(n):
        ts = to_micros(start + timedelta(seconds=i * step_s))
        cat = categorical[i : i + 1] if categorical is not None else None
        rows += rows_for(ts, [ids[i]], model, version, numeric[i : i + 1], cat, [preds[i]],
                         proba[i : i + 1], LABELS)
    log.write_rows(rows)
    return ids, numeric


def test_time_conversions_are_exact_and_treat_naive_as_utc() -> None:
    us = to_micros("2030-01-01T12:00:00.000123Z")
    assert from_micros(us) == datetime(2030, 1, 1, 12, 0, 0, 123, tzinfo=UTC)
    assert to_micros(datetime(2030, 1, 1, 12)) == to_micros(T0)
    assert to_micros("2030-01-01T13:00:00+01:00") == to_micros(T0)


def test_latest_and_interval_windows_return_exact_features(log_url: str) -> None:
    log = PredictionLog(log_url)
    _, numeric = _log_rows(log, 100)
    latest = log.latest_window("iris-classifier", 30, 4, 0)
    assert latest.rows == 30
    # The latest 30 rows, bit for bit (order within a window does not matter to drift).
    np.testing.assert_array_equal(np.sort(latest.numeric, axis=0),
                                  np.sort(numeric[70:], axis=0))
    assert latest.first_ts == to_micros(T0 + timedelta(seconds=70))
    assert latest.last_ts == to_micros(T0 + timedelta(seconds=99))
    # [start, end): row 10 is in, row 20 is out.
    window = log.interval_window("iris-classifier", T0 + timedelta(seconds=10),
                                 T0 + timedelta(seconds=20), 4, 0)
    assert window.rows == 10 and window.total_rows == 10 and not window.sampled
    np.testing.assert_array_equal(np.sort(window.numeric, axis=0),
                                  np.sort(numeric[10:20], axis=0))
    # Other models' rows never enter a window.
    _log_rows(log, 5, model="other", start=T0 + timedelta(seconds=10))
    assert log.count("iris-classifier", T0, T0 + timedelta(hours=1)) == 100
    assert log.latest_window("nobody", 30, 4, 0).rows == 0


def test_interval_over_the_cap_is_an_even_sample(log_url: str) -> None:
    log = PredictionLog(log_url)
    rows = []
    for i in range(1000):  # feature 0 holds the row's position in time
        rows += rows_for(to_micros(T0) + i * 100_000, [f"r{i}"], "iris-classifier", "1",
                         np.array([[float(i), 0, 0, 0]]), None, ["setosa"],
                         np.array([[1.0, 0, 0]]), LABELS)
    log.write_rows(rows)
    window = log.interval_window("iris-classifier", T0, T0 + timedelta(hours=1), 4, 0,
                                 max_rows=100)
    assert window.total_rows == 1000
    assert window.sampled and 90 <= window.rows <= 100
    positions = np.sort(window.numeric[:, 0])
    assert positions[0] < 20 and positions[-1] > 980  # spread over the whole interval
    assert np.diff(positions).max() <= 20
    # The window's bounds are the interval's.
    assert (window.first_ts, window.last_ts) == (to_micros(T0), to_micros(T0 + timedelta(hours=1)))


def test_categoricals_round_trip(log_url: str) -> None:
    log = PredictionLog(log_url)
    cats = np.array([["Biscoe", "male"], ["Dream", "female"], ["Atlantis", "x"]], dtype=object)
    _log_rows(log, 3, categorical=cats, model="penguins-classifier")
    window = log.latest_window("penguins-classifier", 10, 4, 2)
    assert sorted(map(tuple, window.categorical.tolist())) == sorted(map(tuple, cats.tolist()))


def test_labels_first_wins_and_feed_labeled_frame(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, numeric = _log_rows(log, 10)
    spec = load_spec(IRIS_SPEC)
    end = T0 + timedelta(hours=1)
    first = log.add_feedback([(ids[0], "setosa"), (ids[1], "virginica"), (ids[0], "nope")])
    assert first.recorded == [ids[0], ids[1]] and first.already_recorded == []
    assert first.not_yet_matched == []
    again = log.add_feedback([(ids[0], "virginica"), (ids[2], "versicolor")])
    assert again.recorded == [ids[2]] and again.already_recorded == [ids[0]]

    frame = log.labeled_frame(T0, end, spec)
    assert list(frame.columns) == [*spec.feature_names, "species", "ts", "request_id",
                                   "model_version", "prediction"]
    assert frame["request_id"].tolist() == ids[:3]
    assert frame["species"].tolist() == ["setosa", "virginica", "versicolor"]  # first wins
    np.testing.assert_array_equal(frame[spec.feature_names].to_numpy(), numeric[:3])
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(frame["ts"].dtype)
    assert frame["ts"].iloc[0] == T0
    # [start, end) applies to the served time.
    later = log.labeled_frame(T0 + timedelta(seconds=1), end, spec)
    assert later["request_id"].tolist() == ids[1:3]
    empty = log.labeled_frame(T0 - timedelta(hours=2), T0 - timedelta(hours=1), spec)
    assert empty.empty and list(empty.columns) == list(frame.columns)


def test_a_label_before_its_row_is_kept_and_joins_when_the_row_lands(log_url: str) -> None:
    """Another replica may answer the label before this one writes the prediction."""
    log = PredictionLog(log_url)
    spec = load_spec(IRIS_SPEC)
    end = T0 + timedelta(hours=1)
    early = log.add_feedback([("later-1", "setosa"), ("later-2", "virginica")])
    assert early.recorded == ["later-1", "later-2"]
    assert early.not_yet_matched == ["later-1", "later-2"] and early.correct == 0
    assert log.labeled_frame(T0, end, spec).empty
    assert log.live_pairs("iris-classifier", 100) == []
    # The rows land: the labels join them, in training rows and in live accuracy.
    rows = rows_for(to_micros(T0), ["later-1", "later-2"], "iris-classifier", "1",
                    np.ones((2, 4)), None, ["setosa", "setosa"], np.eye(3)[[0, 0]], LABELS)
    log.write_rows(rows)
    frame = log.labeled_frame(T0, end, spec)
    assert frame["request_id"].tolist() == ["later-1", "later-2"]
    assert frame["species"].tolist() == ["setosa", "virginica"]
    pairs = log.live_pairs("iris-classifier", 100)
    assert sorted(pairs) == [("setosa", "setosa"), ("virginica", "setosa")]
    # Repeats are still first-wins, and now matched.
    again = log.add_feedback([("later-1", "virginica")])
    assert again.already_recorded == ["later-1"] and again.recorded == []


def test_orphans_are_labels_unmatched_past_the_grace_period(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, _ = _log_rows(log, 2)
    log.add_feedback([(ids[0], "setosa"), ("never-served", "setosa")])
    assert log.orphan_labels(60) == 0  # within the grace period: only not yet matched
    in_an_hour = to_micros(datetime.now(UTC) + timedelta(hours=1))
    assert log.orphan_labels(60, now_us=in_an_hour) == 1
    # Past the look-back (a day), old orphans are no longer counted.
    in_two_days = to_micros(datetime.now(UTC) + timedelta(days=2))
    assert log.orphan_labels(60, now_us=in_two_days) == 0


def test_a_legacy_feedback_table_is_migrated_once(tmp_path: Path) -> None:
    """Logs written before labels stood alone kept them in ``feedback``: nothing is lost."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE feedback (request_id VARCHAR(64) PRIMARY KEY, label "
                "VARCHAR(200) NOT NULL, ts BIGINT NOT NULL, model_name VARCHAR(200) NOT NULL, "
                "model_version VARCHAR(32) NOT NULL, prediction VARCHAR(200) NOT NULL)")
    con.execute("INSERT INTO feedback VALUES ('a', 'setosa', 5, 'iris-classifier', '1', "
                "'setosa'), ('b', 'virginica', 6, 'iris-classifier', '1', 'setosa')")
    con.commit()
    con.close()
    log = PredictionLog(f"sqlite:///{path}")
    assert log._stored_labels(["a", "b"]) == {"a": ("setosa", 5), "b": ("virginica", 6)}
    tables = sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert ("feedback",) not in tables
    PredictionLog(f"sqlite:///{path}")  # a second open (another replica) changes nothing
    assert log._stored_labels(["a", "b"]) == {"a": ("setosa", 5), "b": ("virginica", 6)}


def test_replicas_heartbeat_into_the_log_and_leave_on_stop(log_url: str) -> None:
    log = PredictionLog(log_url)
    beats = [Heartbeat(log, f"replica-{i}", lambda: "3", interval=0.05) for i in range(2)]
    for beat in beats:
        beat.start()
    live = log.live_replicas()
    assert [r.instance_id for r in live] == ["replica-0", "replica-1"]
    assert {r.model_version for r in live} == {"3"}
    beats[0].stop()
    assert [r.instance_id for r in log.live_replicas()] == ["replica-1"]
    assert log.live_replicas(within_s=-1) == []  # a replica not seen lately is gone
    beats[1].stop()
    assert log.live_replicas() == []


def test_labeled_frame_with_categorical_spec(log_url: str) -> None:
    log = PredictionLog(log_url)
    spec = load_spec(PENGUINS_SPEC)
    cats = np.array([["Biscoe", "male"], ["Dream", "female"]], dtype=object)
    ids, numeric = _log_rows(log, 2, categorical=cats, model=spec.name)
    log.add_feedback([(ids[0], "Gentoo"), (ids[1], "Adelie")])
    frame = log.labeled_frame(T0, T0 + timedelta(minutes=1), spec, model_name=spec.name)
    assert frame["island"].tolist() == ["Biscoe", "Dream"]
    assert frame["sex"].tolist() == ["male", "female"]
    assert frame["species"].tolist() == ["Gentoo", "Adelie"]
    np.testing.assert_array_equal(frame[list(spec.features.numeric)].to_numpy(), numeric)


def test_interval_rows_paginate_with_labels(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, numeric = _log_rows(log, 25)
    log.add_feedback([(ids[3], "setosa")])
    names = list(load_spec(IRIS_SPEC).features.numeric)
    page, total = log.interval_rows("iris-classifier", T0, T0 + timedelta(hours=1), limit=10,
                                    offset=0, numeric=names, categorical=[])
    assert total == 25 and len(page) == 10
    assert [r["request_id"] for r in page] == ids[:10]
    assert page[3]["label"] == "setosa" and page[4]["label"] is None
    assert page[0]["sepal_length"] == numeric[0, 0]
    assert page[0]["ts"] == "2030-01-01T12:00:00Z"
    last, _ = log.interval_rows("iris-classifier", T0, T0 + timedelta(hours=1), limit=10,
                                offset=20, numeric=names, categorical=[])
    assert [r["request_id"] for r in last] == ids[20:]


def test_live_accuracy_over_latest_labels(log_url: str) -> None:
    from driftloop.tasks import get_task

    classification = get_task("classification")
    log = PredictionLog(log_url)
    ids, _ = _log_rows(log, 6)
    assert classification.live(log.live_pairs("iris-classifier", 100)) == {"accuracy": None}
    served = log.served_predictions(ids)
    truth = [(rid, served[rid] if i % 3 else "wrong") for i, rid in enumerate(ids)]
    log.add_feedback(truth)
    pairs = log.live_pairs("iris-classifier", 100)
    assert len(pairs) == 6
    assert classification.live(pairs) == {"accuracy": 4 / 6}
    assert len(log.live_pairs("iris-classifier", 2)) == 2  # the latest labels only


def test_writer_batches_off_thread_and_stop_drains(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    # A long interval and big batches: rows stay queued until stop() drains them.
    writer = LogWriter(log, flush_interval=1.0, batch_rows=10_000)
    writer.start()
    ids = []
    for i in range(300):
        rid = f"r{i}"
        ids.append(rid)
        writer.submit(1, lambda rid=rid, i=i: rows_for(
            to_micros(T0) + i, [rid], "m", "1", np.array([[i, 0, 0, 0.0]]), None,
            ["setosa"], np.array([[1.0, 0, 0]]), LABELS))
    assert writer.pending_rows == 300
    assert writer.stop() == 0
    assert writer.pending_rows == 0 and writer.written_rows == 300
    assert set(log.served_predictions(ids)) == set(ids)


def _one_row(rid: str) -> list[tuple]:
    return rows_for(to_micros(T0), [rid], "m", "1", np.zeros((1, 4)), None, ["setosa"],
                    np.array([[1.0, 0, 0]]), LABELS)


def test_writer_refuses_admission_when_full_and_queues_every_admitted_row(
    tmp_path: Path,
) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    refused: list[int] = []
    writer = LogWriter(log, flush_interval=1.0, batch_rows=10_000, queue_max_rows=5,
                       on_refused=refused.append)
    for i in range(4):
        assert writer.admit(1)
        assert writer.submit(1, lambda i=i: _one_row(f"a{i}"))
    assert not writer.admit(2)  # 4 + 2 > 5: the caller answers 503
    assert writer.refused_rows == 2 and refused == [2] and writer.dropped_rows == 0
    assert writer.retry_after() == 5  # no write measured yet
    # An admitted request that was answered is always queued, even past the limit.
    assert writer.admit(1) and writer.submit(1, lambda: _one_row("a4"))
    assert writer.submit(1, lambda: _one_row("a5"))
    writer.start()
    assert writer.flush(timeout=10)
    assert len(log.served([f"a{i}" for i in range(6)])) == 6
    assert writer.admit(5) and 1 <= writer.retry_after() <= 30
    writer.stop()


def test_writer_shed_policy_drops_counts_and_says_so(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    dropped: list[int] = []
    writer = LogWriter(log, flush_interval=1.0, batch_rows=10_000, queue_max_rows=5,
                       overflow="shed", on_dropped=dropped.append)
    for i in range(4):
        assert writer.admit(1) and writer.submit(1, lambda i=i: _one_row(f"a{i}"))
    assert writer.admit(2)  # shed admits everything ...
    assert not writer.submit(2, lambda: _one_row("b0") + _one_row("b1"))  # ... and drops
    assert writer.dropped_rows == 2 and dropped == [2] and writer.refused_rows == 0
    writer.start()
    assert writer.flush(timeout=10)
    assert len(log.served([f"a{i}" for i in range(4)])) == 4
    assert not log.served(["b0", "b1"])
    writer.stop()


def test_writer_refuses_an_unknown_overflow_policy(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(ValueError, match="'drop' is not one of reject, shed"):
        LogWriter(log, overflow="drop")  # type: ignore[arg-type]


def test_writer_takes_up_to_max_write_rows_per_transaction(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    sizes: list[int] = []
    real = log.write_rows
    log.write_rows = lambda rows: (sizes.append(len(rows)), real(rows))[1]  # type: ignore
    writer = LogWriter(log, batch_rows=10, max_write_rows=250)
    for i in range(600):
        writer.submit(1, lambda i=i: _one_row(f"r{i}"))
    assert writer.stop() == 0
    assert sizes == [250, 250, 100] and writer.written_rows == 600


def test_writer_retries_a_failed_write_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    log = PredictionLog(f"sqlite:///{path}")
    # A real failure: another connection holds SQLite's write lock past the busy timeout.
    log.engine.dispose()
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    short = PredictionLog(f"sqlite:///{path}", create=False)
    short.engine.pool.dispose()
    from sqlalchemy import event

    @event.listens_for(short.engine, "connect")
    def _short_busy(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA busy_timeout=50")

    writer = LogWriter(short, flush_interval=0.05, batch_rows=100)
    writer.submit(1, lambda: rows_for(to_micros(T0), ["x1"], "m", "1", np.zeros((1, 4)), None,
                                      ["setosa"], np.array([[1.0, 0, 0]]), LABELS))
    writer.start()
    assert not writer.flush(timeout=0.5)
    assert writer.failed_writes >= 1 and writer.pending_rows == 1
    blocker.rollback()
    blocker.close()
    assert writer.flush(timeout=10)
    writer.stop()
    assert log.served(["x1"])["x1"] == ("m", "1", "setosa")


def test_a_full_disk_loses_nothing_pushes_back_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), reached by capping the file's
    pages: writes fail and are retried, the queue fills, new requests are refused; once
    there is room, every queued row is written."""
    from sqlalchemy import event

    path = tmp_path / "p.db"
    PredictionLog(f"sqlite:///{path}").dispose()
    cap = {"pages": sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]}
    log = PredictionLog(f"sqlite:///{path}", create=False)

    @event.listens_for(log.engine, "connect")
    def _cap(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count={cap['pages']}")

    writer = LogWriter(log, flush_interval=0.05, batch_rows=50, queue_max_rows=1_000)
    ids = [f"r{i}" for i in range(1_000)]
    for i in range(0, 1_000, 100):
        assert writer.admit(100)
        writer.submit(100, lambda i=i: rows_for(
            to_micros(T0), ids[i : i + 100], "m", "1", np.zeros((100, 4)), None,
            ["setosa"] * 100, np.array([[1.0, 0, 0]] * 100), LABELS))
    writer.start()
    assert not writer.flush(timeout=1.0)
    assert writer.failed_writes >= 1 and writer.pending_rows == 1_000
    assert "database or disk is full" in caplog.text and "will retry" in caplog.text
    assert not writer.admit(1) and writer.retry_after() == 5  # the server answers 503
    cap["pages"] = 1_000_000  # room again: new connections see it
    log.engine.dispose()
    assert writer.flush(timeout=30)
    assert writer.stop() == 0 and writer.dropped_rows == 0
    assert set(log.served(ids)) == set(ids)


def test_rows_store_probabilities_as_named_json(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}")
    _log_rows(log, 1)
    with log.engine.connect() as conn:
        proba = conn.exec_driver_sql("SELECT proba FROM predictions").scalar_one()
    assert set(json.loads(proba)) == set(LABELS)


def _open_log(path: str, barrier: Any) -> list[str]:
    from sqlalchemy import create_engine

    from driftloop.predlog.schema import create_schema

    engine = create_engine(f"sqlite:///{path}")
    barrier.wait(timeout=30)  # every "replica" starts at once
    try:
        return create_schema(engine)
    finally:
        engine.dispose()


def test_replicas_starting_together_on_a_new_sqlite_log_all_start(tmp_path: Path) -> None:
    """Two replicas started at once on a fresh SQLite log crashed one of them in CI
    ("table schema_migrations already exists"): the schema step converges instead."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from sqlalchemy import create_engine, inspect

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        for round_ in range(3):
            path = str(tmp_path / f"log-{round_}.db")
            barrier = manager.Barrier(4)
            with ProcessPoolExecutor(4, mp_context=context) as pool:
                results = list(pool.map(_open_log, [path] * 4, [barrier] * 4))
            assert len(results) == 4  # none raised
            engine = create_engine(f"sqlite:///{path}")
            with engine.connect() as conn:
                assert {"predictions", "labels", "schema_migrations"} <= set(
                    inspect(conn).get_table_names())
                versions = conn.exec_driver_sql(
                    "SELECT version FROM schema_migrations").scalars().all()
            engine.dispose()
            assert len(versions) == len(set(versions))  # each migration recorded once
