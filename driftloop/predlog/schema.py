"""The log's tables, and its migrations: each runs once and is recorded.

``predictions``
    One row per served row (on PostgreSQL, partitioned by day: :mod:`.partitions`):
    ``id``, ``ts`` (µs since the epoch, UTC), ``request_id`` (unique), ``model_name``,
    ``model_version``, ``num`` (numeric features, packed float64),
    ``cat`` (categoricals as a JSON list, NULL without any), ``prediction`` (label) and
    ``proba`` (JSON object label -> probability).
``labels``
    Ground truth by request id: ``request_id`` (primary key: the first label wins),
    ``label``, ``ts`` (when it arrived). A label is stored *on its own*, whether or not its
    prediction's row has been written yet: replicas flush their rows a moment after they
    answer, and a label may reach another replica first. Readers join the two tables on
    ``request_id``, so a label counts as soon as its prediction is in the log.
``reports``
    Reports people open in a browser (the drift monitor's validation report of a window),
    by ``name``: ``content_type``, ``body``, ``ts``. Stored with the log every shape shares
    so that they outlive the task pod that wrote them (``GET /reports/<name>`` serves them).
``refusals``
    Rows ``/predict`` refused for a bad feature value, counted per minute, model, feature
    and reason (``missing``, ``type``, ``range``): ``ts`` (the minute, µs), ``model_name``,
    ``feature``, ``reason``, ``rows``. Each replica adds its own counts; readers sum them.
    A refused row is never logged, so this is how the drift answer knows its rate.
``shadow_predictions``
    What a model scoring *beside* the served one answered for the same rows (the shadow
    stage's ``challenger``, or the old champion during probation): ``ts``, ``request_id``
    (the served row's), ``model_name``, ``model_version``, ``prediction``. Callers never
    see these answers; the gate pairs them with the served ones and the labels by
    ``request_id``.
``schema_migrations``
    The migrations applied to this log (``version``, ``name``, ``ts``): each runs once, in
    order, when a server or task first opens a log that lacks it.
``replicas``
    One heartbeat row per running server (``instance_id``, ``host``, ``pid``,
    ``started_ts``, ``seen_ts``, ``model_version``): how a server knows it is one of several
    sharing this log (a hot reload would reach only one of them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine

from driftloop.predlog import partitions
from driftloop.predlog.codec import now_micros

log = logging.getLogger(__name__)

metadata = MetaData()

#: SQLite only aliases ``rowid`` for ``INTEGER PRIMARY KEY``; PostgreSQL wants a bigint.
_ID = BigInteger().with_variant(Integer(), "sqlite")

predictions = Table(
    "predictions", metadata,
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

labels = Table(
    "labels", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    # Live accuracy ("the latest N labels") and orphans ("labels of the last day").
    Index("ix_labels_ts", "ts"),
)

replicas = Table(
    "replicas", metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_ts", BigInteger, nullable=False),
    Column("seen_ts", BigInteger, nullable=False),
    Column("model_version", String(32), nullable=True),
)

reports = Table(
    "reports", metadata,
    Column("name", String(255), primary_key=True),
    Column("content_type", String(100), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("ts", BigInteger, nullable=False),
)

refusals = Table(
    "refusals", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Index("ix_refusals_model_ts", "model_name", "ts"),
)

shadow_predictions = Table(
    "shadow_predictions", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("prediction", String(200), nullable=False),
    # "the shadow version's rows since t" and "its row for request r" (one per version).
    Index("ix_shadow_model_version_ts", "model_name", "model_version", "ts"),
    Index("ux_shadow_request_version", "request_id", "model_version", unique=True),
)

migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
)

#: Column order of the row tuples ``rows_for`` builds and ``write_rows`` inserts.
INSERT_COLUMNS = ("ts", "request_id", "model_name", "model_version", "num", "cat",
                  "prediction", "proba")

#: The table labels lived in before they were stored on their own. It copied the served
#: prediction at write time, so a label could only be taken once its row was written.
LEGACY_FEEDBACK = "feedback"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    #: Whether this log needs it (a fresh log is created in the latest form and does not).
    needed: Callable[[Any], bool]
    apply: Callable[[Any], None]


#: Tries of the schema step on SQLite, where replicas starting together race on it.
SQLITE_SCHEMA_ATTEMPTS = 6


def create_schema(engine: Engine) -> list[str]:
    """Create what is missing and apply the pending migrations, in one transaction
    (idempotent; replicas may race on it: PostgreSQL serialises them with an advisory
    lock). Returns the names of the migrations applied now."""
    if engine.dialect.name == "postgresql":
        return _create_schema(engine)
    # SQLite has no advisory lock, and pysqlite runs DDL outside the transaction: replicas
    # starting together interleave their CREATEs ("table ... already exists", "database is
    # locked"). Every step checks first, so trying again converges once the other is done.
    for attempt in range(SQLITE_SCHEMA_ATTEMPTS):
        try:
            return _create_schema(engine)
        except Exception:
            if attempt == SQLITE_SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _create_schema(engine: Engine) -> list[str]:
    pg = engine.dialect.name == "postgresql"
    applied_now: list[str] = []
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": partitions.LOCK_KEY})
        tables = set(inspect(conn).get_table_names())
        others = [t for t in metadata.sorted_tables if t is not predictions]
        metadata.create_all(conn, tables=others, checkfirst=True)
        if "predictions" not in tables:
            if pg:
                conn.execute(text(partitions.PARENT_DDL))
                for ddl in partitions.PARENT_INDEXES:
                    conn.execute(text(ddl))
            else:
                predictions.create(conn)
        done = set(conn.execute(select(migrations.c.version)).scalars())
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            if migration.needed(conn):
                migration.apply(conn)
                applied_now.append(migration.name)
            conn.execute(migrations.insert().values(
                version=migration.version, name=migration.name, ts=now_micros()))
        if pg:
            partitions.ensure_ahead(conn)
    for name in applied_now:
        log.warning("prediction log: migration applied: %s", name)
    return applied_now


def _has_feedback_table(conn: Any) -> bool:
    return LEGACY_FEEDBACK in inspect(conn).get_table_names()


def _migrate_feedback(conn: Any) -> None:
    """Copy every legacy label into ``labels`` (first label wins, as before), then drop the
    old table (in the migration's transaction: a crash leaves both or the finished copy)."""
    copied = conn.execute(text(
        f"INSERT INTO labels (request_id, label, ts) "
        f"SELECT request_id, label, ts FROM {LEGACY_FEEDBACK} WHERE true "
        f"ON CONFLICT (request_id) DO NOTHING")).rowcount
    conn.execute(text(f"DROP TABLE {LEGACY_FEEDBACK}"))
    log.warning("prediction log: migrated %d label(s) from the legacy '%s' table into "
                "'labels'", copied, LEGACY_FEEDBACK)


def _unpartitioned_postgres(conn: Any) -> bool:
    return conn.dialect.name == "postgresql" and not partitions.is_partitioned(conn)


def _partition_predictions(conn: Any) -> None:
    """Move a PostgreSQL log's one-table ``predictions`` into the day-partitioned form:
    rename it aside, create the parent and the days its rows span, copy, keep the ids."""
    old = "predictions_unpartitioned"
    conn.execute(text(f"ALTER TABLE predictions RENAME TO {old}"))
    for index in ("ix_predictions_model_ts", "ux_predictions_request_id"):
        conn.execute(text(f"ALTER INDEX IF EXISTS {index} RENAME TO {index}_unpartitioned"))
    conn.execute(text(f"ALTER TABLE {old} RENAME CONSTRAINT predictions_pkey "
                      f"TO {old}_pkey"))
    conn.execute(text(partitions.PARENT_DDL))
    for ddl in partitions.PARENT_INDEXES:
        conn.execute(text(ddl))
    lo, hi = conn.execute(text(f"SELECT min(ts), max(ts) FROM {old}")).one()
    if lo is not None:
        partitions.ensure(conn, lo, hi)
    columns = "id, " + ", ".join(INSERT_COLUMNS)
    moved = conn.execute(text(f"INSERT INTO predictions ({columns}) "
                              f"SELECT {columns} FROM {old}")).rowcount
    conn.execute(text("SELECT setval(pg_get_serial_sequence('predictions', 'id'), "
                      "coalesce((SELECT max(id) FROM predictions), 0) + 1, false)"))
    conn.execute(text(f"DROP TABLE {old}"))
    log.warning("prediction log: %d row(s) moved into day partitions", moved)


#: In order; each runs once per log and is recorded in ``schema_migrations``.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "labels stored on their own (from the legacy feedback table)",
              _has_feedback_table, _migrate_feedback),
    Migration(2, "predictions partitioned by day (PostgreSQL)",
              _unpartitioned_postgres, _partition_predictions),
)
