"""The live gate: promotion decisions taken on live labeled rows, after the offline gate.

**Shadow stage** (``gate.shadow`` in the spec, or ``DRIFTLOOP_SHADOW``). A challenger that
passes the offline gate is aliased ``challenger`` instead of ``champion``. Every replica
scores it beside the champion (serving/shadow.py); callers only get the champion's answers;
the log keeps the challenger's (:mod:`driftloop.predlog.shadow`). :func:`decide` then runs
the same paired gate (:mod:`driftloop.gate`) on the labeled live rows both answered:

- passed: the challenger is promoted (champion → ``previous``, challenger → ``champion``,
  served through the deploy target) and its probation starts;
- rejected: the ``challenger`` alias is removed and the reason tagged;
- not enough evidence: it waits, until ``DRIFTLOOP_SHADOW_MAX_HOURS`` after the stage began;
  then it is rejected for want of evidence.

**Probation** (``DRIFTLOOP_PROBATION_HOURS``). After an automatic promotion (the pipeline's
or the shadow stage's) the previous champion keeps scoring in shadow until the tag
``probation_until``. When the new champion is *significantly worse* than the previous one on
the live labeled rows (the whole interval of new - previous below 0), the loop rolls it back
(:func:`driftloop.promotion.manual.rollback`, by ``driftloop probation``), records why on
both versions, and says so for the caller to alert. When the period ends without that,
probation ends (``probation_outcome=passed``) and the server stops scoring the old version.

Each call is one decision over the registry and the log as they are now: the hourly
``driftloop_live_gate`` DAG runs ``driftloop live-gate`` (where retrains run); so can a person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop.deploy import DeployError, make_deployer
from driftloop.errors import DriftloopError
from driftloop.gate import GateThresholds, decide
from driftloop.gate.decision import OUTCOME_INSUFFICIENT, GateResult
from driftloop.promotion.manual import (
    TAG_MANUAL_ACTION,
    TAG_MANUAL_AT,
    TAG_MANUAL_BY,
    TAG_MANUAL_REASON,
    rollback,
)
from driftloop.promotion.pipeline import alias, restore_aliases
from driftloop.registry import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    ALIAS_PREVIOUS,
    connect,
    set_version_tags,
)
from driftloop.run_context import Context
from driftloop.tasks import Task

TAG_SHADOW_STARTED = "shadow_started_at"
TAG_SHADOW_OUTCOME = "shadow_outcome"
TAG_SHADOW_REASON = "shadow_reason"
TAG_PROBATION_UNTIL = "probation_until"
TAG_PROBATION_OUTCOME = "probation_outcome"
TAG_PROBATION_REASON = "probation_reason"
ACTOR_SHADOW = "driftloop live gate"
ACTOR_PROBATION = "driftloop probation"
#: Why a version scores beside the champion.
ROLE_CHALLENGER = "challenger"
ROLE_PROBATION = "probation"
#: What one call did (LiveDecision.action).
ACTIONS = ("nothing", "waiting", "promoted", "rejected", "rolled_back", "probation_passed")


@dataclass
class LiveDecision:
    action: str
    model: str
    #: The champion after this decision.
    champion: str | None
    #: The version scored beside it, and why (None: nothing in shadow).
    shadow_version: str | None
    role: str | None
    #: Labeled live rows both answered.
    rows: int
    reason: str
    gate: dict[str, Any] | None = None
    deploy: dict[str, Any] | None = None
    #: A person should hear about it (an automatic rollback).
    alert: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def shadow_target(client: Any, name: str, champion: str | None,
                  now: datetime | None = None) -> tuple[str, str] | None:
    """``(version, role)`` to score beside ``champion``: the ``challenger`` alias, else
    ``previous`` while the champion is on probation; None when nothing is."""
    now = now or datetime.now(UTC)
    challenger = alias(client, name, ALIAS_CHALLENGER)
    if challenger and challenger != champion:
        return challenger, ROLE_CHALLENGER
    if not champion:
        return None
    tags = client.get_model_version(name, champion).tags
    until = _parse(tags.get(TAG_PROBATION_UNTIL))
    previous = alias(client, name, ALIAS_PREVIOUS)
    if (until is not None and until > now and not tags.get(TAG_PROBATION_OUTCOME)
            and previous and previous != champion):
        return previous, ROLE_PROBATION
    return None


def shadow_annotation(client: Any, name: str, champion: str | None) -> str | None:
    """What a deployer tells replicas they score beside ``champion`` ("4 (challenger)")."""
    found = shadow_target(client, name, champion)
    return None if found is None else f"{found[0]} ({found[1]})"


def start_shadow(client: Any, name: str, version: str, now: datetime | None = None) -> None:
    """Alias ``version`` ``challenger`` (replacing any earlier one) and date its stage."""
    client.set_registered_model_alias(name, ALIAS_CHALLENGER, str(version))
    set_version_tags(client, name, version, {TAG_SHADOW_STARTED: _iso(now or datetime.now(UTC))})


def start_probation(client: Any, name: str, version: str, hours: float,
                    now: datetime | None = None) -> str | None:
    """Put a newly promoted champion on probation for ``hours`` (0: none). Returns the end."""
    if hours <= 0:
        return None
    until = _iso((now or datetime.now(UTC)) + timedelta(hours=hours))
    set_version_tags(client, name, version, {TAG_PROBATION_UNTIL: until})
    return until


def decide_live(ctx: Context, *, target: str, timeout_s: float = 300.0,
                now: datetime | None = None) -> LiveDecision:
    """One decision of the live gate (see the module docstring)."""
    from driftloop.predlog import PredictionLog

    now = now or datetime.now(UTC)
    client = connect(ctx.settings)
    champion = alias(client, ctx.name, ALIAS_CHAMPION) or None
    found = shadow_target(client, ctx.name, champion, now)
    if champion is None or found is None:
        ended = _end_probation(ctx, client, champion, now, target, timeout_s)
        return ended or LiveDecision("nothing", ctx.name, champion, None, None, 0,
                                     "no challenger in shadow and no champion on probation")
    version, role = found
    log = PredictionLog(ctx.settings.log_url)
    try:
        pairs = log.shadow_pairs(ctx.name, version, served_version=champion)
    finally:
        log.dispose()
    thresholds = GateThresholds.from_spec(ctx.spec)
    if role == ROLE_CHALLENGER:
        return _judge_challenger(ctx, client, champion, version, pairs, thresholds, now,
                                 target, timeout_s)
    return _judge_probation(ctx, client, champion, version, pairs, thresholds, now, target,
                            timeout_s)


def _gate(task: Task, thresholds: GateThresholds, truth: list[str], champion: list[str],
          challenger: list[str], champion_version: str) -> GateResult:
    """The paired gate on live rows (labels and predictions as the log stores them)."""
    labels = sorted({*truth, *champion, *challenger})
    comparison = task.compare(thresholds.metric, truth, champion, challenger, labels,
                              confidence=thresholds.confidence)
    return decide(thresholds, comparison.challenger, comparison,
                  champion_version=champion_version, holdout_rows=len(truth),
                  holdout="live labeled")


def _judge_challenger(ctx: Context, client: Any, champion: str, version: str, pairs: Any,
                      thresholds: GateThresholds, now: datetime, target: str,
                      timeout_s: float) -> LiveDecision:
    started = _parse(client.get_model_version(ctx.name, version).tags.get(TAG_SHADOW_STARTED))
    deadline = (started or now) + timedelta(hours=ctx.settings.shadow_max_hours)
    late = now >= deadline
    if pairs.rows == 0:
        if not late:
            return LiveDecision("waiting", ctx.name, champion, version, ROLE_CHALLENGER, 0,
                                f"challenger v{version} in shadow: no labeled live row both "
                                f"answered yet; deadline {_iso(deadline)}")
        return _reject(ctx, client, champion, version, None,
                       f"no labeled live row both answered by the deadline {_iso(deadline)}",
                       target, timeout_s)
    gate = _gate(ctx.spec.task_impl, thresholds, pairs.truth, pairs.served, pairs.shadow,
                 champion)
    if gate.passed:
        return _promote(ctx, client, champion, version, gate, now, target, timeout_s)
    if gate.outcome == OUTCOME_INSUFFICIENT and not late:
        return LiveDecision("waiting", ctx.name, champion, version, ROLE_CHALLENGER,
                            pairs.rows, f"challenger v{version} in shadow, deadline "
                            f"{_iso(deadline)}: {gate.reason}", gate.as_dict())
    why = gate.reason if gate.outcome != OUTCOME_INSUFFICIENT else \
        f"by the deadline {_iso(deadline)}, {gate.reason}"
    return _reject(ctx, client, champion, version, gate, why, target, timeout_s)


def _promote(ctx: Context, client: Any, champion: str, version: str, gate: GateResult,
             now: datetime, target: str, timeout_s: float) -> LiveDecision:
    from driftloop.registry import promote as move_aliases

    deployer = make_deployer(target, ctx.settings, timeout_s=timeout_s)
    old_previous = alias(client, ctx.name, ALIAS_PREVIOUS)
    until = start_probation(client, ctx.name, version, ctx.settings.probation_hours, now)
    move_aliases(client, ctx.name, version)
    client.delete_registered_model_alias(ctx.name, ALIAS_CHALLENGER)
    try:
        result = deployer.deploy(version,
                                 shadow=shadow_annotation(client, ctx.name, version))
    except Exception as exc:
        restored = restore_aliases(client, ctx.name, version, champion, old_previous)
        client.set_registered_model_alias(ctx.name, ALIAS_CHALLENGER, version)
        cause = str(exc) if isinstance(exc, DriftloopError) else f"{type(exc).__name__}: {exc}"
        raise DeployError(f"promotion of challenger v{version} not served: {cause}; "
                          f"{restored}; it stays in shadow") from None
    reason = f"live gate {gate.reason}"
    set_version_tags(client, ctx.name, version, {
        TAG_SHADOW_OUTCOME: "promoted", TAG_SHADOW_REASON: reason[:4000],
        TAG_MANUAL_ACTION: "promote", TAG_MANUAL_BY: ACTOR_SHADOW, TAG_MANUAL_AT: _iso(now),
        TAG_MANUAL_REASON: reason[:4000]})
    probation = f"; on probation until {until}" if until else ""
    return LiveDecision("promoted", ctx.name, version, version, ROLE_CHALLENGER,
                        gate.holdout_rows, f"challenger v{version} promoted over v{champion}"
                        f"{probation}: {gate.reason}", gate.as_dict(), result.as_dict())


def _reject(ctx: Context, client: Any, champion: str, version: str, gate: GateResult | None,
            why: str, target: str, timeout_s: float) -> LiveDecision:
    client.delete_registered_model_alias(ctx.name, ALIAS_CHALLENGER)
    set_version_tags(client, ctx.name, version, {TAG_SHADOW_OUTCOME: "rejected",
                                                 TAG_SHADOW_REASON: why[:4000]})
    served = _refresh(ctx, champion, target, timeout_s)
    return LiveDecision("rejected", ctx.name, champion, version, ROLE_CHALLENGER,
                        gate.holdout_rows if gate else 0,
                        f"challenger v{version} rejected, v{champion} stays champion: {why}",
                        gate.as_dict() if gate else None, served)


def _judge_probation(ctx: Context, client: Any, champion: str, previous: str, pairs: Any,
                     thresholds: GateThresholds, now: datetime, target: str,
                     timeout_s: float) -> LiveDecision:
    until = client.get_model_version(ctx.name, champion).tags.get(TAG_PROBATION_UNTIL)
    if pairs.rows == 0:
        return LiveDecision("waiting", ctx.name, champion, previous, ROLE_PROBATION, 0,
                            f"v{champion} on probation until {until} against v{previous}: no "
                            "labeled live row both answered yet")
    # The new champion in the challenger's seat, the old one in the champion's.
    gate = _gate(ctx.spec.task_impl, thresholds, pairs.truth, pairs.shadow, pairs.served,
                 previous)
    if gate.significantly_worse():
        reason = (f"probation: v{champion} is significantly worse than v{previous} on "
                  f"{gate.holdout_rows} live labeled rows: {thresholds.metric} "
                  f"({'higher' if gate.higher_is_better else 'lower'} is better) "
                  f"{gate.challenger:.4f} vs {gate.champion:.4f}, {gate.difference:+.4f} "
                  f"({gate.confidence:.0%} interval [{gate.low:+.4f}, {gate.high:+.4f}], "
                  f"p={gate.p_value:.2g})")
        set_version_tags(client, ctx.name, champion, {
            TAG_PROBATION_OUTCOME: "rolled_back", TAG_PROBATION_REASON: reason[:4000]})
        done = rollback(ctx, reason=reason, actor=ACTOR_PROBATION, target=target,
                        timeout_s=timeout_s)
        return LiveDecision("rolled_back", ctx.name, done.version, champion, ROLE_PROBATION,
                            gate.holdout_rows, f"v{champion} rolled back to v{done.version}: "
                            f"{reason}", gate.as_dict(), done.deploy, alert=True)
    return LiveDecision("waiting", ctx.name, champion, previous, ROLE_PROBATION,
                        gate.holdout_rows, f"v{champion} on probation until {until} against "
                        f"v{previous}: not significantly worse so far ({gate.reason})",
                        gate.as_dict())


def _end_probation(ctx: Context, client: Any, champion: str | None, now: datetime,
                   target: str, timeout_s: float) -> LiveDecision | None:
    """A probation whose period has passed ends here, once."""
    if champion is None:
        return None
    tags = client.get_model_version(ctx.name, champion).tags
    until = _parse(tags.get(TAG_PROBATION_UNTIL))
    if until is None or until > now or tags.get(TAG_PROBATION_OUTCOME):
        return None
    reason = f"probation ended {_iso(until)} without a significant loss against the previous"
    set_version_tags(client, ctx.name, champion, {TAG_PROBATION_OUTCOME: "passed",
                                                  TAG_PROBATION_REASON: reason})
    served = _refresh(ctx, champion, target, timeout_s)
    return LiveDecision("probation_passed", ctx.name, champion, None, None, 0,
                        f"v{champion}: {reason}", None, served)


def _refresh(ctx: Context, champion: str, target: str, timeout_s: float) -> dict[str, Any]:
    """Serve the champion again, so the servers drop the version they no longer score."""
    client = connect(ctx.settings)
    return make_deployer(target, ctx.settings, timeout_s=timeout_s).deploy(
        champion, shadow=shadow_annotation(client, ctx.name, champion)).as_dict()
