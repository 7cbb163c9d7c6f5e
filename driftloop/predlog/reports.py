"""Reports stored with the log: what a person opens after the task that wrote it is gone.

In the cluster a task runs in a pod that is deleted when it ends; a report written to its
disk would go with it. The log is the one store every shape already shares (the server
reads and writes it), so reports live there, by name, and the server serves them
(``GET /reports/<name>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from driftloop.errors import DriftloopError
from driftloop.predlog.codec import now_micros
from driftloop.predlog.schema import reports

#: Letters, digits and ``._:+-`` in ``/``-separated parts; no empty part, no ``..``.
NAME_PATTERN = r"^[A-Za-z0-9._:+-]+(/[A-Za-z0-9._:+-]+)*$"
_NAME = re.compile(NAME_PATTERN)
CONTENT_TYPES = ("text/html", "text/markdown", "application/json", "text/plain")


class BadReport(DriftloopError):
    """A report name or content type the store refuses; the message says why."""


@dataclass(frozen=True)
class Report:
    name: str
    content_type: str
    body: bytes
    ts: int


def check_name(name: str) -> str:
    if not 1 <= len(name) <= 255 or not _NAME.match(name) or ".." in name.split("/"):
        raise BadReport(f"report name {name!r} is not valid: 1-255 characters of letters, "
                        "digits and ._:+- in /-separated parts")
    return name


class ReportsMixin:
    """The report half of :class:`~driftloop.predlog.store.PredictionLog`."""

    engine: Any

    def put_report(self, name: str, body: bytes, content_type: str = "text/html") -> Report:
        """Store (or replace) a report; a rerun of the task overwrites its own report."""
        check_name(name)
        if content_type not in CONTENT_TYPES:
            raise BadReport(f"content type {content_type!r} is not stored (one of: "
                            f"{', '.join(CONTENT_TYPES)})")
        report = Report(name, content_type, bytes(body), now_micros())
        with self.engine.begin() as conn:
            conn.execute(delete(reports).where(reports.c.name == name))
            conn.execute(reports.insert().values(name=name, content_type=content_type,
                                                 body=report.body, ts=report.ts))
        return report

    def get_report(self, name: str) -> Report | None:
        stmt = select(reports.c.name, reports.c.content_type, reports.c.body,
                      reports.c.ts).where(reports.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Report(row[0], row[1], bytes(row[2]), row[3])

    def list_reports(self, prefix: str = "", limit: int = 100) -> list[tuple[str, int, int]]:
        """(name, bytes, ts) of the newest reports whose name starts with ``prefix``."""
        stmt = select(reports.c.name, reports.c.body, reports.c.ts).where(
            reports.c.name.startswith(prefix, autoescape=True)
        ).order_by(reports.c.ts.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [(name, len(body), ts) for name, body, ts in conn.execute(stmt)]
