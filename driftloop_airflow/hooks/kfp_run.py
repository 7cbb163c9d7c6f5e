"""A retrain run as both KFP backends report it, in KFP's own state vocabulary.

The REST backend reads ``V2beta1Run.state`` (``V2beta1RuntimeState``); the local backend maps
its subprocess onto the same names, so the operator and the trigger decide on one mapping.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

# KFP v2beta1 RuntimeState values.
PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
SKIPPED = "SKIPPED"
FAILED = "FAILED"
CANCELING = "CANCELING"
CANCELED = "CANCELED"
PAUSED = "PAUSED"
UNSPECIFIED = "RUNTIME_STATE_UNSPECIFIED"

#: States after which nothing changes any more.
TERMINAL_STATES = frozenset({SUCCEEDED, SKIPPED, FAILED, CANCELED})
#: States of a run that still occupies the pipeline (a new retrain must wait for it).
#: A run just created may still report UNSPECIFIED; CANCELING is still winding down.
ACTIVE_STATES = frozenset({UNSPECIFIED, PENDING, RUNNING, CANCELING, PAUSED})


@dataclass
class KfpRun:
    run_id: str
    state: str
    display_name: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    #: What the pipeline reported at the end (the local runner's final JSON line).
    result: dict[str, Any] | None = None
    url: str | None = None
    backend: str = "rest"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        # Unknown (newer) states are treated as active: never submit over a run we cannot read.
        return self.state not in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCEEDED

    def failure_message(self) -> str:
        """Why a terminal, unsuccessful run did not succeed, for the failed task's log."""
        reason = {
            FAILED: "failed",
            CANCELED: "was canceled",
            SKIPPED: "was skipped",
        }.get(self.state, f"ended in state {self.state}")
        where = f" ({self.url})" if self.url else ""
        detail = f": {self.error}" if self.error else ""
        return f"KFP run {self.run_id}{where} {reason}{detail}"

    def as_event(self) -> dict[str, Any]:
        """JSON-safe form: trigger events and XCom carry it."""
        out = asdict(self)
        for key in ("created_at", "finished_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> KfpRun:
        values = dict(data)
        for key in ("created_at", "finished_at"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)
