"""When rows leave the prediction log: the retention period, held back by what registered
models still need.

A retrain's version records the production window it trained on (``window_start`` and
``window_end`` tags). While that version is ``champion`` or ``previous`` (the rollback
target), its window must stay rebuildable, so the cutoff never passes the earliest such
window's start. Once the version leaves both aliases, its rows age out normally.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop import lineage
from driftloop.errors import DriftloopError
from driftloop.predlog import PredictionLog, to_micros
from driftloop.registry import ALIAS_CHAMPION, ALIAS_PREVIOUS, alias_version
from driftloop.settings import Settings

log = logging.getLogger(__name__)

#: Aliases whose training windows the log keeps (the registry's names).
KEPT_ALIASES = (ALIAS_CHAMPION, ALIAS_PREVIOUS)


@dataclass(frozen=True)
class Hold:
    """A registered version whose training window keeps rows past retention."""

    model: str
    version: str
    alias: str
    window_start: datetime

    def describe(self) -> str:
        return (f"{self.model} v{self.version} ({self.alias}) trained on rows from "
                f"{self.window_start.isoformat()}")


def holds(client: Any) -> list[Hold]:
    """Every registered model's champion and previous versions with a production window."""
    found: list[Hold] = []
    for model in _all_registered_models(client):
        for alias in KEPT_ALIASES:
            if alias not in (getattr(model, "aliases", None) or {}):
                continue
            mv = alias_version(client, model.name, alias)
            start = (mv.tags or {}).get(lineage.TAG_WINDOW_START) if mv else None
            if not start:
                continue
            when = datetime.fromisoformat(start.replace("Z", "+00:00"))
            found.append(Hold(model.name, str(mv.version), alias,
                              when if when.tzinfo else when.replace(tzinfo=UTC)))
    return found


def _all_registered_models(client: Any) -> list[Any]:
    """Every registered model, page by page (MLflow answers 100 at a time by default): a
    model missed here would lose the rows its versions need."""
    models: list[Any] = []
    page = client.search_registered_models(max_results=1000)
    while True:
        models.extend(page)
        if not getattr(page, "token", None):
            return models
        page = client.search_registered_models(max_results=1000, page_token=page.token)


@dataclass(frozen=True)
class Plan:
    retention_days: float
    cutoff: datetime
    held_by: Hold | None

    def as_dict(self) -> dict[str, Any]:
        return {"retention_days": self.retention_days, "cutoff": self.cutoff.isoformat(),
                "held_back_by": self.held_by.describe() if self.held_by else None}


def plan(settings: Settings, kept: list[Hold], now: datetime | None = None) -> Plan | None:
    """The cutoff, or None when retention is off (``log_retention_days=0``)."""
    if settings.log_retention_days == 0:
        return None
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.log_retention_days)
    earliest = min(kept, key=lambda h: h.window_start, default=None)
    if earliest is not None and earliest.window_start < cutoff:
        return Plan(settings.log_retention_days, earliest.window_start, earliest)
    return Plan(settings.log_retention_days, cutoff, None)


def apply(settings: Settings, log_: PredictionLog, client: Any,
          now: datetime | None = None) -> dict[str, Any]:
    """Run retention once; returns what was decided and removed (for XCom, CLI and API)."""
    try:
        kept = holds(client)
    except Exception as exc:
        raise DriftloopError(
            f"retention needs the registry to know which rows registered models still need, "
            f"and it could not be read: {exc}. Nothing was deleted.") from exc
    chosen = plan(settings, kept, now)
    if chosen is None:
        return {"retention_days": 0, "skipped": "retention is off "
                "(DRIFTLOOP_LOG_RETENTION_DAYS=0): nothing is deleted"}
    result = log_.purge(to_micros(chosen.cutoff),
                        batch_rows=settings.log_retention_batch_rows,
                        archive_url=settings.log_archive_url)
    return {**chosen.as_dict(), **result.as_dict()}
