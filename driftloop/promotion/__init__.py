"""Promotion: how a version becomes champion, how it stops being one, and what people see.

One code path moves aliases and deploys, whoever asks:

- :mod:`.pipeline`: the retrain pipeline's register and deploy steps (at most one promotion
  per run key; a failed deploy puts the aliases back);
- :mod:`.manual`: ``driftloop promote`` / ``rollback`` and the manual promotion DAG;
- :mod:`.live`: the live gate: a ``challenger`` in shadow promoted or rejected on live
  labeled rows, and probation, which rolls a new champion back when it does worse live;
- :mod:`.history`: what the loop did, for ``driftloop status`` and ``history``.
"""

from __future__ import annotations

from driftloop.promotion.manual import (
    MANUAL_ACTIONS,
    TAG_MANUAL_ACTION,
    TAG_MANUAL_AT,
    TAG_MANUAL_BY,
    TAG_MANUAL_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TAG_ROLLED_BACK_REASON,
    ManualResult,
    promote_version,
    rollback,
)
from driftloop.promotion.pipeline import (
    OUTCOME_INSUFFICIENT,
    OUTCOME_PROMOTED,
    OUTCOME_REJECTED,
    OUTCOME_ROLLED_BACK,
    OUTCOME_SHADOW,
    TAG_DEPLOY_ERROR,
    TAG_DEPLOY_TARGET,
    TAG_OUTCOME,
    TAG_RUN_KEY,
    RegisterOutcome,
    alias,
    deploy,
    register,
    registry_state,
    restore_aliases,
    summarize,
    versions_with_run_key,
)

__all__ = [
    "MANUAL_ACTIONS", "OUTCOME_INSUFFICIENT", "OUTCOME_PROMOTED", "OUTCOME_REJECTED",
    "OUTCOME_ROLLED_BACK", "OUTCOME_SHADOW", "TAG_DEPLOY_ERROR", "TAG_DEPLOY_TARGET",
    "TAG_MANUAL_ACTION",
    "TAG_MANUAL_AT", "TAG_MANUAL_BY", "TAG_MANUAL_REASON", "TAG_OUTCOME",
    "TAG_ROLLED_BACK_AT", "TAG_ROLLED_BACK_BY", "TAG_ROLLED_BACK_REASON", "TAG_RUN_KEY",
    "ManualResult", "RegisterOutcome", "alias", "deploy", "promote_version", "register",
    "registry_state", "restore_aliases", "rollback", "summarize", "versions_with_run_key",
]
