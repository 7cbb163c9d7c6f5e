"""The prediction log: every served row, durably, and the windows drift is computed on.

The log, not a replica's memory, is the source of drift state: every replica writes to the
same database and every replica reads its windows from it, so they all answer the same and a
restart forgets nothing. One SQLAlchemy URL selects the backend: SQLite (WAL) for the local
shape, PostgreSQL in the cluster.

Tables
    ``predictions``: ``id``, ``ts`` (UTC, integer microseconds since the Unix epoch: exact,
    cheap to index and the same on both backends), ``request_id`` (unique), ``model_name``,
    ``model_version``, ``num`` (the numeric features in the spec's order, packed little-endian
    float64: a window of 10k rows decodes with one ``np.frombuffer``), ``cat`` (the
    categorical features as a JSON list, NULL without categoricals), ``prediction`` (label)
    and ``proba`` (JSON object label -> probability).
    ``feedback``: ``request_id`` (primary key: the first label wins, repeats change nothing),
    ``label``, ``ts``, and the served ``model_name``/``model_version``/``prediction`` copied
    at write time so live accuracy needs no join.

Writes go through :class:`LogWriter`, a background thread that batches rows off the request
path (see its docstring for the durability promise).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine, make_url

from driftloop.errors import DriftloopError

log = logging.getLogger(__name__)

_metadata = MetaData()

#: SQLite only aliases ``rowid`` for ``INTEGER PRIMARY KEY``; PostgreSQL wants a bigint.
_ID = BigInteger().with_variant(Integer(), "sqlite")

predictions = Table(
    "predictions", _metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("num", LargeBinary, nullable=False),
    Column("cat", Text, nullable=True),
    Column("prediction", String(200), nullable=False),
    Column("proba", Text, nullable=False),
    # Windows: "rows of model M with ts in [a, b)" and "the latest N rows of model M".
    Index("ix_predictions_model_ts", "model_name", "ts"),
    Index("ux_predictions_request_id", "request_id", unique=True),
)

feedback = Table(
    "feedback", _metadata,
    Column("request_id", String(64), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("prediction", String(200), nullable=False),
    # Live accuracy: "the latest N labels of model M".
    Index("ix_feedback_model_ts", "model_name", "ts"),
)

#: Column order of the row tuples :func:`rows_for` builds and :meth:`write_rows` inserts.
INSERT_COLUMNS = ("ts", "request_id", "model_name", "model_version", "num", "cat",
                  "prediction", "proba")

#: Rows per ``IN (...)`` lookup: far under every backend's bound-parameter limit.
_LOOKUP_CHUNK = 500


class UnknownRequestIds(DriftloopError):
    """Feedback names request ids the log has never seen."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        shown = ", ".join(self.ids[:20]) + (" ..." if len(self.ids) > 20 else "")
        super().__init__(f"unknown request_id(s) ({len(self.ids)}): {shown}")


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def to_micros(value: datetime | str | float | int) -> int:
    """A timestamp as integer microseconds since the epoch; naive datetimes are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, float):
        return round(value * 1_000_000)
    return int(value)


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def _iso(us: int) -> str:
    """ISO-8601 UTC with a ``Z``, as the serving API writes every time."""
    return from_micros(us).isoformat().replace("+00:00", "Z")


def now_micros() -> int:
    return time.time_ns() // 1000


@dataclass
class Window:
    """Decoded features of a window: numeric (rows, k) float64, categorical (rows, m) str.

    ``first_ts``/``last_ts``: the interval's bounds, or (latest rows) the oldest and newest
    row's time; None for an empty latest window.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    first_ts: int | None
    last_ts: int | None
    total_rows: int  # rows in the window before any sampling

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])

    @property
    def sampled(self) -> bool:
        return self.rows < self.total_rows


@dataclass
class FeedbackResult:
    recorded: list[str] = field(default_factory=list)
    already_recorded: list[str] = field(default_factory=list)
    correct: int = 0  # of the newly recorded labels, how many matched the prediction


@dataclass
class LiveAccuracy:
    labeled: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labeled if self.labeled else None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; NORMAL sync survives a killed process (only an OS
    # crash can lose the last transactions). busy_timeout: replicas share the file.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _decode_numeric(blobs: Sequence[bytes], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed rows as an (n, k) array, and a mask of the rows whose length matched ``k``."""
    width = 8 * k
    if set(map(len, blobs)) <= {width}:  # every row has this layout: one join, one view
        ok = np.ones(len(blobs), dtype=bool)
    else:
        ok = np.fromiter((len(b) == width for b in blobs), dtype=bool, count=len(blobs))
        blobs = [b for b, good in zip(blobs, ok, strict=True) if good]
    if not blobs:
        return np.empty((0, k)), ok
    flat = np.frombuffer(b"".join(blobs), dtype="<f8")
    return flat.reshape(-1, k), ok


def _decode_categorical(texts: Sequence[str | None], m: int) -> np.ndarray:
    if m == 0:
        return np.empty((len(texts), 0), dtype=object)
    out = np.empty((len(texts), m), dtype=object)
    for i, text in enumerate(texts):
        values = json.loads(text) if text else []
        if len(values) != m:
            raise ValueError(f"logged row has {len(values)} categorical values, expected {m}")
        out[i, :] = values
    return out


class PredictionLog:
    """Reads and writes the log. Thread-safe (SQLAlchemy's pool); cheap to share."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = sqlalchemy_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                from pathlib import Path

                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        #: The driver's placeholder: the hot queries below go straight to the DB-API cursor.
        self._mark = mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (f"INSERT INTO predictions ({', '.join(INSERT_COLUMNS)}) "
                            f"VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})")
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        """Create the tables and indexes (idempotent; replicas may race on it)."""
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except Exception:
            # Another replica created them between the check and the create.
            _metadata.create_all(self.engine, checkfirst=True)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- writes -------------------------------------------------------------------------
    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows (tuples in :data:`INSERT_COLUMNS` order) in one transaction.

        A driver-level ``executemany``: SQLAlchemy's per-row parameter processing would cost
        more than the rest of the write.
        """
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._insert_sql, list(rows))

    def served(self, request_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """request_id -> (model_name, model_version, prediction) for the ids that exist."""
        found: dict[str, tuple[str, str, str]] = {}
        ids = list(dict.fromkeys(request_ids))
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                stmt = select(predictions.c.request_id, predictions.c.model_name,
                              predictions.c.model_version, predictions.c.prediction
                              ).where(predictions.c.request_id.in_(chunk))
                for rid, name, version, pred in conn.execute(stmt):
                    found[rid] = (name, version, pred)
        return found

    def add_feedback(self, labels: Sequence[tuple[str, str]]) -> FeedbackResult:
        """Record ground truth by request id; all-or-nothing on unknown ids.

        The first label recorded for an id wins; repeating it (or sending another) changes
        nothing and is reported in ``already_recorded``.
        """
        first: dict[str, str] = {}
        for rid, label in labels:
            first.setdefault(rid, label)
        served = self.served(list(first))
        unknown = [rid for rid in first if rid not in served]
        if unknown:
            raise UnknownRequestIds(unknown)
        result = FeedbackResult()
        ts = now_micros()
        with self.engine.begin() as conn:
            existing: set[str] = set()
            ids = list(first)
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                existing.update(conn.execute(
                    select(feedback.c.request_id).where(feedback.c.request_id.in_(chunk))
                ).scalars())
            new_rows = []
            for rid, label in first.items():
                if rid in existing:
                    result.already_recorded.append(rid)
                    continue
                name, version, pred = served[rid]
                new_rows.append({"request_id": rid, "label": label, "ts": ts,
                                 "model_name": name, "model_version": version,
                                 "prediction": pred})
            if new_rows:
                conn.execute(self._insert_ignore(feedback), new_rows)
        # A concurrent writer may have won a race for some ids: report what is stored now.
        stored = self._feedback_labels([r["request_id"] for r in new_rows])
        for row in new_rows:
            rid = row["request_id"]
            if stored.get(rid) == (row["label"], ts):
                result.recorded.append(rid)
                result.correct += int(row["label"] == row["prediction"])
            else:
                result.already_recorded.append(rid)
        return result

    def _insert_ignore(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing(index_elements=["request_id"])

    def _feedback_labels(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = list(ids[i : i + _LOOKUP_CHUNK])
                stmt = select(feedback.c.request_id, feedback.c.label, feedback.c.ts).where(
                    feedback.c.request_id.in_(chunk))
                for rid, label, ts in conn.execute(stmt):
                    out[rid] = (label, ts)
        return out

    # --- reads --------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of a driver-level query: a 10k-row window decodes in a few milliseconds
        instead of SQLAlchemy's per-row result processing."""
        with self.engine.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, tuple(params))
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def _window(self, blobs: Sequence[bytes], cats: Sequence[str | None] | None, k: int, m: int,
                first_ts: int | None, last_ts: int | None, total: int) -> Window:
        numeric, ok = _decode_numeric(blobs, k)
        if not ok.all():
            log.warning("prediction log: %d row(s) with another feature layout skipped",
                        int((~ok).sum()))
            if cats is not None:
                cats = [c for c, good in zip(cats, ok, strict=True) if good]
        categorical = (_decode_categorical(cats, m) if cats is not None
                       else np.empty((numeric.shape[0], 0), dtype=object))
        return Window(numeric, categorical, first_ts, last_ts, total)

    def latest_window(self, model_name: str, rows: int, n_numeric: int,
                      n_categorical: int) -> Window:
        """The most recent ``rows`` logged rows of a model."""
        mark = self._mark
        cat = ", cat" if n_categorical else ""
        found = self._fetch(f"SELECT ts, num{cat} FROM predictions WHERE model_name = {mark} "
                            f"ORDER BY ts DESC LIMIT {mark}", (model_name, int(rows)))
        if not found:
            return self._window([], [] if n_categorical else None, n_numeric, n_categorical,
                                None, None, 0)
        return self._window([r[1] for r in found],
                            [r[2] for r in found] if n_categorical else None,
                            n_numeric, n_categorical, found[-1][0], found[0][0], len(found))

    def count(self, model_name: str | None, start: datetime | str | int,
              end: datetime | str | int) -> int:
        stmt = select(func.count()).select_from(predictions).where(
            *self._interval(model_name, start, end))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    @staticmethod
    def _interval(model_name: str | None, start: Any, end: Any) -> list[Any]:
        where = [predictions.c.ts >= to_micros(start), predictions.c.ts < to_micros(end)]
        if model_name is not None:
            where.append(predictions.c.model_name == model_name)
        return where

    def interval_window(self, model_name: str, start: datetime | str | int,
                        end: datetime | str | int, n_numeric: int, n_categorical: int,
                        max_rows: int | None = None) -> Window:
        """Exactly the rows of ``[start, end)``; over ``max_rows`` rows, an even sample.

        The sample keeps every ``step``-th row by id, which is spread evenly over the
        interval (ids grow with time on both backends).
        """
        lo, hi = to_micros(start), to_micros(end)
        total = self.count(model_name, lo, hi)
        mark = self._mark
        sql = (f"SELECT num{', cat' if n_categorical else ''} FROM predictions "
               f"WHERE model_name = {mark} AND ts >= {mark} AND ts < {mark}")
        params: list[Any] = [model_name, lo, hi]
        if max_rows is not None and total > max_rows:
            modulo = "%" if mark == "?" else "%%"  # pyformat drivers need '%' escaped
            sql += f" AND id {modulo} {mark} = 0"
            params.append(-(-total // max_rows))
        found = self._fetch(sql, params)
        return self._window([r[0] for r in found],
                            [r[1] for r in found] if n_categorical else None,
                            n_numeric, n_categorical, lo, hi, total)

    def interval_rows(self, model_name: str | None, start: datetime | str | int,
                      end: datetime | str | int, *, limit: int, offset: int,
                      numeric: Sequence[str], categorical: Sequence[str]
                      ) -> tuple[list[dict[str, Any]], int]:
        """One page of an interval's rows (ts order), each with its feedback label or None."""
        where = self._interval(model_name, start, end)
        stmt = (select(predictions.c.ts, predictions.c.request_id, predictions.c.model_version,
                       predictions.c.num, predictions.c.cat, predictions.c.prediction,
                       feedback.c.label)
                .select_from(predictions.outerjoin(
                    feedback, feedback.c.request_id == predictions.c.request_id))
                .where(*where).order_by(predictions.c.ts, predictions.c.id)
                .limit(limit).offset(offset))
        total = self.count(model_name, start, end)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).all()
        out: list[dict[str, Any]] = []
        for ts, rid, version, num, cat, pred, label in found:
            row: dict[str, Any] = {"ts": _iso(ts), "request_id": rid,
                                   "model_version": version}
            values = np.frombuffer(num, dtype="<f8")
            if len(values) == len(numeric):
                row.update(zip(numeric, values.tolist(), strict=True))
            cats = json.loads(cat) if cat else []
            if len(cats) == len(categorical):
                row.update(zip(categorical, cats, strict=True))
            row["prediction"] = pred
            row["label"] = label
            out.append(row)
        return out, total

    def labeled_frame(self, start: datetime | str | int, end: datetime | str | int,
                      spec: Any, *, model_name: str | None = None) -> pd.DataFrame:
        """Rows of ``[start, end)`` that have feedback, for retraining.

        Columns: the spec's features, the spec's target (the feedback label), ``ts`` (UTC),
        ``request_id``, ``model_version``, ``prediction``. ``model_name`` restricts to one
        model (default: every row whose feature layout matches the spec).
        """
        numeric = list(spec.features.numeric)
        categorical = list(spec.features.categorical)
        stmt = (select(predictions.c.ts, predictions.c.request_id, predictions.c.model_version,
                       predictions.c.num, predictions.c.cat, predictions.c.prediction,
                       feedback.c.label)
                .select_from(predictions.join(
                    feedback, feedback.c.request_id == predictions.c.request_id))
                .where(*self._interval(model_name, start, end))
                .order_by(predictions.c.ts, predictions.c.id))
        with self.engine.connect() as conn:
            found = conn.execute(stmt).all()
        columns = [*numeric, *categorical, spec.target, "ts", "request_id", "model_version",
                   "prediction"]
        if not found:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            for c in numeric:
                frame[c] = frame[c].astype(np.float64)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
            return frame
        num, ok = _decode_numeric([r[3] for r in found], len(numeric))
        kept = [r for r, good in zip(found, ok, strict=True) if good]
        cat = _decode_categorical([r[4] for r in kept], len(categorical))
        data: dict[str, Any] = {c: num[:, i] for i, c in enumerate(numeric)}
        data.update({c: cat[:, j] for j, c in enumerate(categorical)})
        data[spec.target] = [r[6] for r in kept]
        data["ts"] = pd.to_datetime(np.array([r[0] for r in kept], dtype="int64"), unit="us",
                                    utc=True)
        data["request_id"] = [r[1] for r in kept]
        data["model_version"] = [r[2] for r in kept]
        data["prediction"] = [r[5] for r in kept]
        return pd.DataFrame(data, columns=columns)

    def live_accuracy(self, model_name: str, last: int) -> LiveAccuracy:
        """Accuracy of the served predictions over the latest ``last`` labels of a model."""
        recent = (select(feedback.c.label, feedback.c.prediction)
                  .where(feedback.c.model_name == model_name)
                  .order_by(feedback.c.ts.desc()).limit(last).subquery())
        stmt = select(func.count(), func.coalesce(func.sum(
            (recent.c.label == recent.c.prediction).cast(Integer)), 0))
        with self.engine.connect() as conn:
            labeled, correct = conn.execute(stmt).one()
        return LiveAccuracy(int(labeled), int(correct))


class LogWriter:
    """Batches served rows into the log from a background thread.

    Durability promise: a row waits in memory at most ``flush_interval`` seconds (0.2 s by
    default, at most 1 s) plus one write, so a hard kill (SIGKILL, OOM) loses at most the
    rows served in the last ~1 s; a graceful stop (SIGTERM through the server's lifespan)
    drains everything first. Rows over ``queue_max_rows`` (the database is down or too slow)
    are dropped and counted rather than growing memory without bound.
    """

    def __init__(self, log: PredictionLog, *, flush_interval: float = 0.2,
                 batch_rows: int = 500, queue_max_rows: int = 100_000,
                 on_dropped: Any = None) -> None:
        self.log = log
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.queue_max_rows = queue_max_rows
        self._on_dropped = on_dropped
        self._entries: deque[tuple[int, int, Callable[[], list[tuple[Any, ...]]]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._written_cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._submitted_seq = 0
        self._written_seq = 0
        self.pending_rows = 0
        self.dropped_rows = 0
        self.written_rows = 0
        self.failed_writes = 0

    def submit(self, n_rows: int, build: Callable[[], list[tuple[Any, ...]]]) -> bool:
        """Queue ``n_rows`` rows that ``build()`` turns into column dicts; False (and
        counted as dropped) when the queue is full.

        Building (packing, JSON) happens on the writer thread: the request path only
        appends a reference to a deque.
        """
        with self._lock:
            if self.pending_rows + n_rows > self.queue_max_rows:
                self.dropped_rows += n_rows
                dropped = True
            else:
                self._submitted_seq += 1
                self._entries.append((self._submitted_seq, n_rows, build))
                self.pending_rows += n_rows
                dropped = False
                full = self.pending_rows >= self.batch_rows
        if dropped:
            if self._on_dropped is not None:
                self._on_dropped(n_rows)
            return False
        if full:
            self._wake.set()
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftloop-log-writer",
                                            daemon=True)
            self._thread.start()

    def _take(self) -> tuple[int, list[tuple[Any, ...]]]:
        builders = []
        taken = 0
        last_seq = 0
        with self._lock:
            while self._entries and taken < self.batch_rows:
                seq, n_rows, build = self._entries.popleft()
                builders.append(build)
                taken += n_rows
                last_seq = seq
        batch: list[tuple[Any, ...]] = []
        for build in builders:
            try:
                batch.extend(build())
            except Exception:  # a bug in building must not stop the writer
                log.exception("prediction log: could not encode rows; they are dropped")
        if len(batch) != taken:
            with self._lock:
                self.pending_rows -= taken - len(batch)
                self.dropped_rows += taken - len(batch)
        return last_seq, batch

    def _put_back(self, seq: int, batch: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._entries.appendleft((seq, len(batch), lambda: batch))

    def _write_pending(self) -> bool:
        """Write everything queued; False if a write failed (rows stay queued)."""
        while True:
            seq, batch = self._take()
            if not batch:
                self._mark_written(seq)
                return True
            try:
                self.log.write_rows(batch)
            except Exception as exc:
                self.failed_writes += 1
                log.error("prediction log write of %d rows failed (will retry): %s",
                          len(batch), exc)
                self._put_back(seq, batch)
                return False
            with self._lock:
                self.pending_rows -= len(batch)
                self.written_rows += len(batch)
            self._mark_written(seq)

    def _mark_written(self, seq: int) -> None:
        if not seq:
            return
        with self._written_cond:
            self._written_seq = max(self._written_seq, seq)
            self._written_cond.notify_all()

    def _run(self) -> None:
        backoff = self.flush_interval
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            ok = self._write_pending()
            if self._stopping and (ok or not self._entries):
                return
            if not ok:
                time.sleep(min(backoff, 1.0))
                backoff = min(backoff * 2, 1.0)
            else:
                backoff = self.flush_interval

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row submitted before this call is written."""
        with self._lock:
            target = self._submitted_seq
        if target == 0:
            return True
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._written_cond:
            while self._written_seq < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._written_cond.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> int:
        """Drain the queue and stop; returns the rows that could not be written."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log: drain did not finish in %.0f s", timeout)
        else:
            self._write_pending()
        with self._lock:
            left = self.pending_rows
        if left:
            log.error("prediction log: %d row(s) could not be written at shutdown", left)
        return left


@lru_cache(maxsize=64)
def _proba_template(labels: tuple[str, ...]) -> str:
    """``{"setosa": %r, ...}``: JSON for finite floats (``repr`` is valid JSON), ~4x faster
    than ``json.dumps`` per row."""
    items = ", ".join(f"{json.dumps(label)}: %r" for label in
                      (lb.replace("%", "%%") for lb in labels))
    return "{" + items + "}"


def rows_for(ts: int, request_ids: Sequence[str], model_name: str, model_version: str,
             numeric: np.ndarray, categorical: np.ndarray | None, predictions_: Sequence[str],
             probabilities: np.ndarray, labels: Sequence[str]) -> list[tuple[Any, ...]]:
    """Row tuples (:data:`INSERT_COLUMNS`) for served rows; numeric features packed as
    little-endian float64, probabilities as a JSON object."""
    num = np.ascontiguousarray(numeric, dtype="<f8")
    template = _proba_template(tuple(labels))
    plist = np.asarray(probabilities, dtype=np.float64).tolist()
    with_cats = categorical is not None and categorical.shape[1] > 0
    out = []
    for i, rid in enumerate(request_ids):
        cat = json.dumps([str(v) for v in categorical[i]]) if with_cats else None
        out.append((ts, rid, model_name, model_version, num[i].tobytes(), cat,
                    predictions_[i], template % tuple(plist[i])))
    return out
