"""Ground truth by request id: stored on its own, joined with the predictions when read.

Why on its own: several replicas share one log and each writes its served rows a moment
after it answers (a batching writer). A label posted right after a prediction may reach
another replica before that row is written, and a log that is briefly slow delays it more.
Refusing such a label would lose it for good, so a label is never refused for a request id
the log does not hold yet: it is stored, reported as ``not_yet_matched``, and joins its
prediction as soon as the row lands. A label whose id still matches nothing after a grace
period is an *orphan*: counted (``driftloop_feedback_orphans``), never silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import OperationalError

from driftloop.predlog.codec import now_micros
from driftloop.predlog.schema import labels, predictions

#: Rows per ``IN (...)`` lookup: far under every backend's bound-parameter limit.
LOOKUP_CHUNK = 500
#: Orphans are counted over the labels of this last period (an index range, not the table).
ORPHAN_LOOKBACK_S = 24 * 3600

T = TypeVar("T")


@dataclass
class FeedbackResult:
    #: Stored by this call (the first label for each of these ids).
    recorded: list[str] = field(default_factory=list)
    #: Had a label already; the first one is kept.
    already_recorded: list[str] = field(default_factory=list)
    #: Of ``recorded``: ids with no logged prediction yet (joined once the row is written).
    not_yet_matched: list[str] = field(default_factory=list)
    #: Of ``recorded`` and matched: how many labels equal the served prediction.
    correct: int = 0

    @property
    def matched(self) -> int:
        return len(self.recorded) - len(self.not_yet_matched)


def _locked(exc: OperationalError) -> bool:
    """SQLite's 'database is locked' / 'busy': another connection holds the write lock."""
    message = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in message or "busy" in message


class LabelsMixin:
    """The label half of :class:`~driftloop.predlog.store.PredictionLog`."""

    engine: Any
    dialect: str
    #: How long a label write keeps retrying a locked SQLite database before it gives up.
    label_write_timeout_s: float = 60.0

    def _retry_locked(self, write: Callable[[], T]) -> T:
        """Run ``write``, retrying while SQLite reports a lock (another replica or a long
        transaction holds it); PostgreSQL waits on row locks by itself."""
        deadline = time.monotonic() + self.label_write_timeout_s
        delay = 0.05
        while True:
            try:
                return write()
            except OperationalError as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _insert_ignore(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(labels).on_conflict_do_nothing(index_elements=["request_id"])

    def add_feedback(self, pairs: Sequence[tuple[str, str]]) -> FeedbackResult:
        """Store ground truth by request id; never refuses an id it does not know yet.

        The first label recorded for an id wins; repeating it (or sending another) changes
        nothing and is reported in ``already_recorded``. Within one call, the first pair for
        an id counts.
        """
        first: dict[str, str] = {}
        for rid, label in pairs:
            first.setdefault(rid, label)
        ts = now_micros()
        rows = [{"request_id": rid, "label": label, "ts": ts} for rid, label in first.items()]

        def write() -> None:
            with self.engine.begin() as conn:
                for i in range(0, len(rows), LOOKUP_CHUNK):
                    conn.execute(self._insert_ignore(), rows[i : i + LOOKUP_CHUNK])

        self._retry_locked(write)
        # Which rows are ours: an id stored earlier (or by a concurrent call) keeps its label
        # and time; ours carry this call's ts and label.
        stored = self._stored_labels(list(first))
        served = self.served_predictions(list(first))
        result = FeedbackResult()
        for rid, label in first.items():
            if stored.get(rid) != (label, ts):
                result.already_recorded.append(rid)
                continue
            result.recorded.append(rid)
            if rid not in served:
                result.not_yet_matched.append(rid)
            elif served[rid] == label:
                result.correct += 1
        return result

    def _stored_labels(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), LOOKUP_CHUNK):
                chunk = list(ids[i : i + LOOKUP_CHUNK])
                stmt = select(labels.c.request_id, labels.c.label, labels.c.ts).where(
                    labels.c.request_id.in_(chunk))
                for rid, label, ts in conn.execute(stmt):
                    out[rid] = (label, ts)
        return out

    def served_predictions(self, ids: Sequence[str]) -> dict[str, str]:
        """request_id -> served prediction, for the ids the log holds."""
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), LOOKUP_CHUNK):
                chunk = list(ids[i : i + LOOKUP_CHUNK])
                stmt = select(predictions.c.request_id, predictions.c.prediction).where(
                    predictions.c.request_id.in_(chunk))
                out.update((rid, pred) for rid, pred in conn.execute(stmt))
        return out

    def live_pairs(self, model_name: str, last: int) -> list[tuple[str, str]]:
        """``(label, served prediction)`` of the latest ``last`` labels of a model whose
        prediction is in the log: the task turns them into live figures (accuracy, or MAE
        and RMSE)."""
        stmt = (select(labels.c.label, predictions.c.prediction)
                .select_from(labels.join(
                    predictions, predictions.c.request_id == labels.c.request_id))
                .where(predictions.c.model_name == model_name)
                .order_by(labels.c.ts.desc()).limit(last))
        with self.engine.connect() as conn:
            return [(str(label), str(pred)) for label, pred in conn.execute(stmt)]

    def orphan_labels(self, grace_s: float, *, now_us: int | None = None) -> int:
        """Labels of the last day, older than ``grace_s``, whose request id matches no
        logged prediction: an id that was never served, or a row the log lost."""
        now_us = now_micros() if now_us is None else now_us
        stmt = select(func.count()).select_from(labels).where(
            labels.c.ts >= now_us - ORPHAN_LOOKBACK_S * 1_000_000,
            labels.c.ts < now_us - int(grace_s * 1_000_000),
            ~exists().where(and_(predictions.c.request_id == labels.c.request_id)),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
