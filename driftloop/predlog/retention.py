"""Retention: rows older than a cutoff leave the log in bounded steps that never block the
writers for long.

- SQLite: one transaction per batch of at most ``batch_rows`` rows, found by walking the
  table in id order from its oldest end (ids grow with time), so each batch costs its own
  size, not the table's; a writer waits at most one batch.
- PostgreSQL: whole day partitions whose day ended before the cutoff are detached
  (``DETACH PARTITION ... CONCURRENTLY``: inserts carry on) and dropped. A row therefore lives
  between the retention period and one day more.
- Labels and reports older than the cutoff go in batches on both (refusal counts and shadow
  answers with the reports).

With an archive URL, each batch (or partition) is written to Parquet first
(:mod:`.archive`); if that fails, nothing is deleted and the error says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text

from driftloop.predlog import archive, partitions
from driftloop.predlog.codec import iso
from driftloop.predlog.schema import INSERT_COLUMNS

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("id", *INSERT_COLUMNS)
LABEL_COLUMNS = ("request_id", "label", "ts")


@dataclass
class PurgeResult:
    cutoff: str
    predictions_deleted: int = 0
    labels_deleted: int = 0
    reports_deleted: int = 0
    shadow_deleted: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetentionMixin:
    engine: Any
    dialect: str

    def purge(self, cutoff_us: int, *, batch_rows: int = 10_000,
              archive_url: str | None = None) -> PurgeResult:
        """Delete predictions, labels and reports older than ``cutoff_us``."""
        started = time.perf_counter()
        result = PurgeResult(cutoff=iso(cutoff_us))
        if self.dialect == "postgresql" and self._partitioned():
            self._drop_partitions(cutoff_us, batch_rows, archive_url, result)
        else:
            self._delete_predictions(cutoff_us, batch_rows, archive_url, result)
        self._delete_labels(cutoff_us, batch_rows, archive_url, result)
        with self.engine.begin() as conn:
            result.reports_deleted = conn.execute(
                text("DELETE FROM reports WHERE ts < :c"), {"c": cutoff_us}).rowcount
            # Refusal counts: one small row per minute and feature at most.
            conn.execute(text("DELETE FROM refusals WHERE ts < :c"), {"c": cutoff_us})
            # Shadow answers: short-lived by nature (a shadow stage or a probation period).
            result.shadow_deleted = conn.execute(
                text("DELETE FROM shadow_predictions WHERE ts < :c"),
                {"c": cutoff_us}).rowcount
        result.seconds = round(time.perf_counter() - started, 3)
        log.info("prediction log retention: %s", result.as_dict())
        return result

    def _partitioned(self) -> bool:
        with self.engine.connect() as conn:
            return partitions.is_partitioned(conn)

    def _delete_predictions(self, cutoff_us: int, batch_rows: int, archive_url: str | None,
                            result: PurgeResult) -> None:
        """Batches in id order from the oldest row; stops at the first batch with nothing
        to delete (rows are in time order up to the writers' few seconds of skew)."""
        last_id = -1
        columns = ", ".join(PREDICTION_COLUMNS) if archive_url else "id, ts"
        while True:
            batch_started = time.perf_counter()
            with self.engine.begin() as conn:
                rows = conn.execute(text(
                    f"SELECT {columns} FROM predictions WHERE id > :after "
                    f"ORDER BY id LIMIT :n"), {"after": last_id, "n": batch_rows}).all()
                old = [r for r in rows if r[1] < cutoff_us]
                if not old:
                    return
                last_id = rows[-1][0]
                if archive_url:
                    result.archived.append(archive.write(
                        archive_url, "predictions", f"ids-{old[0][0]:012d}-{old[-1][0]:012d}",
                        PREDICTION_COLUMNS, old))
                # One range delete: exactly the rows above (this id range, older than the
                # cutoff), found through the primary key.
                deleted = conn.execute(text(
                    "DELETE FROM predictions WHERE id >= :lo AND id <= :hi AND ts < :c"),
                    {"lo": old[0][0], "hi": old[-1][0], "c": cutoff_us}).rowcount
            result.predictions_deleted += deleted
            result.batches += 1
            if len(rows) < batch_rows or len(old) < len(rows):
                return  # reached the newer rows: the rest is kept
            _yield_to_writers(batch_started)

    def _drop_partitions(self, cutoff_us: int, batch_rows: int, archive_url: str | None,
                         result: PurgeResult) -> None:
        with self.engine.connect() as conn:
            days = partitions.existing(conn)
            leftovers = partitions.detached(conn)
        for day, name in sorted({**leftovers, **days}.items()):
            if partitions.day_bounds(day)[1] > cutoff_us:
                continue
            with self.engine.connect() as conn:
                count = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                if archive_url and count:  # streamed: a day may not fit in memory
                    found = conn.execution_options(stream_results=True).execute(text(
                        f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM {name} ORDER BY id"))
                    for part, rows in enumerate(found.partitions(batch_rows)):
                        result.archived.append(archive.write(
                            archive_url, "predictions", f"{name}-{part:04d}",
                            PREDICTION_COLUMNS, rows))
            # CONCURRENTLY: writers are not blocked; it cannot run inside a transaction.
            with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                if day in days:
                    _detach(conn, name)
                conn.execute(text(f"DROP TABLE {name}"))
            result.predictions_deleted += count
            result.partitions_dropped.append(name)
            result.batches += 1

    def _delete_labels(self, cutoff_us: int, batch_rows: int, archive_url: str | None,
                       result: PurgeResult) -> None:
        while True:
            batch_started = time.perf_counter()
            with self.engine.begin() as conn:
                if not archive_url:  # one statement: the database does the work
                    deleted = conn.execute(text(
                        "DELETE FROM labels WHERE request_id IN (SELECT request_id FROM "
                        "labels WHERE ts < :c ORDER BY ts LIMIT :n)"),
                        {"c": cutoff_us, "n": batch_rows}).rowcount
                else:
                    rows = conn.execute(text(
                        "SELECT request_id, label, ts FROM labels WHERE ts < :c ORDER BY ts "
                        "LIMIT :n"), {"c": cutoff_us, "n": batch_rows}).all()
                    if rows:
                        result.archived.append(archive.write(
                            archive_url, "labels", f"ts-{rows[0][2]}-{rows[-1][2]}",
                            LABEL_COLUMNS, rows))
                    deleted = 0
                    for i in range(0, len(rows), 900):  # SQLite's bound-parameter limit
                        chunk = [r[0] for r in rows[i : i + 900]]
                        marks = ", ".join(f":r{j}" for j in range(len(chunk)))
                        deleted += conn.execute(
                            text(f"DELETE FROM labels WHERE request_id IN ({marks})"),
                            {f"r{j}": v for j, v in enumerate(chunk)}).rowcount
            if not deleted:
                return
            result.labels_deleted += deleted
            result.batches += 1
            if deleted < batch_rows:
                return
            _yield_to_writers(batch_started)


def _detach(conn: Any, name: str) -> None:
    """Detach without blocking writers; finish a detach an earlier run left pending."""
    try:
        conn.execute(text(f"ALTER TABLE predictions DETACH PARTITION {name} CONCURRENTLY"))
    except Exception as exc:
        if "pending detach" not in str(exc):
            raise
        conn.execute(text(f"ALTER TABLE predictions DETACH PARTITION {name} FINALIZE"))


def _yield_to_writers(batch_started: float) -> None:
    """Pause as long as the batch took (at most 0.1 s): the log's writers (SQLite has one
    write lock) and the server's requests get at least half the time while retention
    runs."""
    time.sleep(min(time.perf_counter() - batch_started, 0.1))
