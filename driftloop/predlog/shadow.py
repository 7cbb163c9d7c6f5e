"""Shadow predictions: what a model scoring beside the served one answered for the same rows.

The shadow stage loads the ``challenger`` beside the champion on every replica; probation
keeps the old champion scoring after a promotion. Callers only ever get the served model's
answers; the other model's are written here, off the request path, keyed by the served
row's ``request_id``. The gate then compares the two **on the same labeled live rows**:
:meth:`ShadowMixin.shadow_pairs` joins shadow rows, served rows and labels by request id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from driftloop.predlog.codec import to_micros
from driftloop.predlog.schema import labels, predictions, shadow_predictions


@dataclass
class ShadowPairs:
    """Labeled live rows both models answered: the label, the served answer (and which
    version gave it), the shadow model's answer. Oldest first."""

    shadow_version: str
    truth: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    served_version: list[str] = field(default_factory=list)
    shadow: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.truth)


class ShadowMixin:
    engine: object
    dialect: str

    def write_shadow(self, rows: Iterable[tuple[int, str, str, str, str]]) -> int:
        """Add ``(ts, request_id, model_name, model_version, prediction)`` rows in one
        transaction. A row already there for that request and version is kept (a retried
        write adds nothing). Returns the rows inserted now.

        A driver-level ``executemany`` of one prepared INSERT, as the served rows are
        written: SQLAlchemy's per-row compilation cost half the server's throughput when
        every served row was also scored in shadow (benchmarks/RESULTS.md)."""
        values = list(rows)
        if not values:
            return 0
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"  # type: ignore[attr-defined]
        sql = ("INSERT INTO shadow_predictions (ts, request_id, model_name, model_version, "
               f"prediction) VALUES ({', '.join([mark] * 5)}) "
               "ON CONFLICT (request_id, model_version) DO NOTHING")
        with self.engine.begin() as conn:  # type: ignore[attr-defined]
            return int(conn.exec_driver_sql(sql, values).rowcount)

    def shadow_pairs(self, model_name: str, shadow_version: str, *,
                     since: datetime | str | int | None = None,
                     served_version: str | None = None) -> ShadowPairs:
        """Every labeled row the shadow version answered (since ``since``), with the served
        answer beside it; only rows served by ``served_version`` when given (the champion
        the shadow is compared with: rows served before a swap are another comparison)."""
        s, p, lab = shadow_predictions.c, predictions.c, labels.c
        stmt = (select(lab.label, p.prediction, p.model_version, s.prediction)
                .select_from(shadow_predictions
                             .join(predictions, p.request_id == s.request_id)
                             .join(labels, lab.request_id == s.request_id))
                .where(s.model_name == model_name, s.model_version == shadow_version)
                .order_by(s.ts, s.id))
        if since is not None:
            stmt = stmt.where(s.ts >= to_micros(since))
        if served_version is not None:
            stmt = stmt.where(p.model_version == served_version)
        out = ShadowPairs(shadow_version)
        with self.engine.connect() as conn:  # type: ignore[attr-defined]
            for truth, served, version, shadow in conn.execute(stmt):
                out.truth.append(str(truth))
                out.served.append(str(served))
                out.served_version.append(str(version))
                out.shadow.append(str(shadow))
        return out

    def shadow_counts(self, model_name: str) -> dict[str, dict[str, int]]:
        """Per shadow version: rows it answered, and how many of them are labeled."""
        s, lab = shadow_predictions.c, labels.c
        stmt = (select(s.model_version, func.count(), func.count(lab.request_id))
                .select_from(shadow_predictions.outerjoin(
                    labels, lab.request_id == s.request_id))
                .where(s.model_name == model_name)
                .group_by(s.model_version))
        with self.engine.connect() as conn:  # type: ignore[attr-defined]
            return {str(v): {"rows": int(n), "labeled": int(k)}
                    for v, n, k in conn.execute(stmt)}
