"""The log's tables, and the one-time migration from the schema before labels stood alone.

``predictions``
    One row per served row: ``id``, ``ts`` (µs since the epoch, UTC), ``request_id``
    (unique), ``model_name``, ``model_version``, ``num`` (numeric features, packed float64),
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
``replicas``
    One heartbeat row per running server (``instance_id``, ``host``, ``pid``,
    ``started_ts``, ``seen_ts``, ``model_version``): how a server knows it is one of several
    sharing this log (a hot reload would reach only one of them).
"""

from __future__ import annotations

import logging

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
    text,
)
from sqlalchemy.engine import Engine

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

#: Column order of the row tuples ``rows_for`` builds and ``write_rows`` inserts.
INSERT_COLUMNS = ("ts", "request_id", "model_name", "model_version", "num", "cat",
                  "prediction", "proba")

#: The table labels lived in before they were stored on their own. It copied the served
#: prediction at write time, so a label could only be taken once its row was written.
LEGACY_FEEDBACK = "feedback"


def create_schema(engine: Engine) -> None:
    """Create the tables and indexes, then migrate a legacy ``feedback`` table (idempotent;
    replicas may race on it)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except Exception:
        # Another replica created them between the check and the create.
        metadata.create_all(engine, checkfirst=True)
    if LEGACY_FEEDBACK in inspect(engine).get_table_names():
        _migrate_feedback(engine)


def _migrate_feedback(engine: Engine) -> None:
    """Copy every legacy label into ``labels`` (first label wins, as before), then drop the
    old table, in one transaction: a crash leaves either both or the finished copy."""
    conflict = "ON CONFLICT (request_id) DO NOTHING"
    with engine.begin() as conn:
        if LEGACY_FEEDBACK not in inspect(conn).get_table_names():
            return  # another replica migrated it first
        copied = conn.execute(text(
            f"INSERT INTO labels (request_id, label, ts) "
            f"SELECT request_id, label, ts FROM {LEGACY_FEEDBACK} WHERE true {conflict}"
        )).rowcount
        conn.execute(text(f"DROP TABLE {LEGACY_FEEDBACK}"))
    log.warning("prediction log: migrated %d label(s) from the legacy '%s' table into "
                "'labels'", copied, LEGACY_FEEDBACK)
