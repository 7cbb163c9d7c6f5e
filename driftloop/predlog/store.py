"""The log itself: one SQLAlchemy URL, every replica's rows, the windows drift reads.

The log, not a replica's memory, is the source of drift state: every replica writes to the
same database and every replica reads its windows from it, so they all answer the same and a
restart forgets nothing. SQLite (WAL) for the local shape, PostgreSQL in the cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url

from driftloop.predlog import partitions
from driftloop.predlog.codec import (
    Window,
    decode_categorical,
    decode_numeric,
    iso,
    now_micros,
    sqlalchemy_url,
    to_micros,
)
from driftloop.predlog.labels import LOOKUP_CHUNK, LabelsMixin
from driftloop.predlog.refusals import RefusalsMixin
from driftloop.predlog.replicas import ReplicasMixin
from driftloop.predlog.reports import ReportsMixin
from driftloop.predlog.retention import RetentionMixin
from driftloop.predlog.schema import INSERT_COLUMNS, create_schema, labels, predictions
from driftloop.predlog.shadow import ShadowMixin

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; NORMAL sync survives a killed process (only an OS
    # crash can lose the last transactions). busy_timeout: replicas share the file.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class PredictionLog(LabelsMixin, RefusalsMixin, ReplicasMixin, ReportsMixin, RetentionMixin,
                    ShadowMixin):
    """Reads and writes the log. Thread-safe (SQLAlchemy's pool); cheap to share."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = sqlalchemy_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        #: The driver's placeholder: the hot queries below go straight to the DB-API cursor.
        self._mark = mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (f"INSERT INTO predictions ({', '.join(INSERT_COLUMNS)}) "
                            f"VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})")
        #: PostgreSQL: rows at or past this time need day partitions created first.
        self._horizon = 0
        self._floor = now_micros()
        self._copy_sql = f"COPY predictions ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            self.create_schema()

    def create_schema(self) -> list[str]:
        """Create the tables and indexes and apply pending migrations (idempotent; replicas
        may race on it); returns the migrations applied now."""
        return create_schema(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- writes -------------------------------------------------------------------------
    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows (tuples in :data:`INSERT_COLUMNS` order) in one transaction.

        PostgreSQL: ``COPY ... FROM STDIN``, twice the rows per second of an ``executemany``
        (benchmarks/RESULTS.md). SQLite: a driver-level ``executemany``; SQLAlchemy's
        per-row parameter processing would cost more than the rest of the write.
        """
        if not rows:
            return
        if self.dialect != "postgresql":
            with self.engine.begin() as conn:
                conn.exec_driver_sql(self._insert_sql, list(rows))
            return
        times = [row[0] for row in rows]
        first, last = min(times), max(times)
        if first < self._floor or last >= self._horizon:
            self._ensure_partitions(first, last)
        try:
            self._copy(rows)
        except Exception as exc:
            if "no partition of relation" not in str(exc):
                raise
            # A day with no partition (dropped by hand, or a clock far off): create, retry.
            log.warning("prediction log: no partition for rows of %s..%s; creating it",
                        iso(first), iso(last))
            self._ensure_partitions(first, last)
            self._copy(rows)

    def _copy(self, rows: Sequence[tuple[Any, ...]]) -> None:
        with self.engine.begin() as conn:
            cursor = conn.connection.cursor()
            with cursor.copy(self._copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)

    def _ensure_partitions(self, first: int, last: int) -> None:
        """Day partitions for ``[first, last]`` and the days ahead of now (PostgreSQL).

        Past rows (a backfill, a queue drained late) also get every day up to today, so
        ``[_floor, _horizon)`` is known to be covered and later writes skip the check."""
        now = now_micros()
        with self.engine.begin() as conn:
            partitions.ensure(conn, first, max(last, now) if first < now else last)
            self._horizon = max(self._horizon, partitions.ensure_ahead(conn, now))
        if first < now:
            self._floor = min(self._floor, partitions.day_bounds(partitions.day_of(first))[0])

    def served(self, request_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """request_id -> (model_name, model_version, prediction) for the ids that exist."""
        found: dict[str, tuple[str, str, str]] = {}
        ids = list(dict.fromkeys(request_ids))
        with self.engine.connect() as conn:
            for i in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[i : i + LOOKUP_CHUNK]
                stmt = select(predictions.c.request_id, predictions.c.model_name,
                              predictions.c.model_version, predictions.c.prediction
                              ).where(predictions.c.request_id.in_(chunk))
                for rid, name, version, pred in conn.execute(stmt):
                    found[rid] = (name, version, pred)
        return found

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
        numeric, ok = decode_numeric(blobs, k)
        if not ok.all():
            log.warning("prediction log: %d row(s) with another feature layout skipped",
                        int((~ok).sum()))
            if cats is not None:
                cats = [c for c, good in zip(cats, ok, strict=True) if good]
        categorical = (decode_categorical(cats, m) if cats is not None
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

    def output_counts(self, model_name: str, start: datetime | str | int,
                      end: datetime | str | int) -> tuple[dict[str, int], dict[str, int]]:
        """The predicted classes of ``[start, end)``'s rows, and the feedback labels of those
        rows that have one: two GROUP BY counts, for prediction and label drift."""
        where = self._interval(model_name, start, end)
        predicted = (select(predictions.c.prediction, func.count())
                     .where(*where).group_by(predictions.c.prediction))
        labelled = (select(labels.c.label, func.count())
                    .select_from(predictions.join(
                        labels, labels.c.request_id == predictions.c.request_id))
                    .where(*where).group_by(labels.c.label))
        with self.engine.connect() as conn:
            return ({str(k): int(v) for k, v in conn.execute(predicted)},
                    {str(k): int(v) for k, v in conn.execute(labelled)})

    def interval_rows(self, model_name: str | None, start: datetime | str | int,
                      end: datetime | str | int, *, limit: int, offset: int,
                      numeric: Sequence[str], categorical: Sequence[str]
                      ) -> tuple[list[dict[str, Any]], int]:
        """One page of an interval's rows (ts order), each with its label or None."""
        where = self._interval(model_name, start, end)
        stmt = (select(predictions.c.ts, predictions.c.request_id, predictions.c.model_version,
                       predictions.c.num, predictions.c.cat, predictions.c.prediction,
                       labels.c.label)
                .select_from(predictions.outerjoin(
                    labels, labels.c.request_id == predictions.c.request_id))
                .where(*where).order_by(predictions.c.ts, predictions.c.id)
                .limit(limit).offset(offset))
        total = self.count(model_name, start, end)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).all()
        out: list[dict[str, Any]] = []
        for ts, rid, version, num, cat, pred, label in found:
            row: dict[str, Any] = {"ts": iso(ts), "request_id": rid,
                                   "model_version": version}
            values = np.frombuffer(num, dtype="<f8")
            if len(values) == len(numeric):  # a missing value (NaN) is null, as it came
                row.update(zip(numeric, (None if v != v else v for v in values.tolist()),
                               strict=True))
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
                       labels.c.label)
                .select_from(predictions.join(
                    labels, labels.c.request_id == predictions.c.request_id))
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
        num, ok = decode_numeric([r[3] for r in found], len(numeric))
        kept = [r for r, good in zip(found, ok, strict=True) if good]
        cat = decode_categorical([r[4] for r in kept], len(categorical))
        data: dict[str, Any] = {c: num[:, i] for i, c in enumerate(numeric)}
        data.update({c: cat[:, j] for j, c in enumerate(categorical)})
        data[spec.target] = [r[6] for r in kept]
        data["ts"] = pd.to_datetime(np.array([r[0] for r in kept], dtype="int64"), unit="us",
                                    utc=True)
        data["request_id"] = [r[1] for r in kept]
        data["model_version"] = [r[2] for r in kept]
        data["prediction"] = [r[5] for r in kept]
        return pd.DataFrame(data, columns=columns)

