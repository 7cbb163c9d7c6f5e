"""Promote and roll back, for people (``driftloop promote``, ``driftloop rollback``, the
manual promotion DAG) and for the live gate's automatic rollback: the same alias moves and
deployers the pipeline uses, and every action tagged on the version (who, when, why).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from driftloop.deploy import DeployError, make_deployer
from driftloop.errors import DriftloopError, RegistryError
from driftloop.promotion.pipeline import alias, restore_aliases
from driftloop.registry import ALIAS_CHAMPION, ALIAS_PREVIOUS, connect
from driftloop.run_context import Context

#: Tags a manual action leaves on the version it acted on (who, when, why), and on the
#: version a rollback took out of service.
TAG_MANUAL_ACTION = "manual_action"
TAG_MANUAL_BY = "manual_by"
TAG_MANUAL_AT = "manual_at"
TAG_MANUAL_REASON = "manual_reason"
TAG_ROLLED_BACK_AT = "rolled_back_at"
TAG_ROLLED_BACK_BY = "rolled_back_by"
TAG_ROLLED_BACK_REASON = "rolled_back_reason"
MANUAL_ACTIONS = ("promote", "rollback")


@dataclass
class ManualResult:
    """What ``driftloop promote`` or ``rollback`` did."""

    action: str
    version: str
    champion_before: str
    previous_after: str
    deploy: dict[str, Any]
    reason: str
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        known = sorted((int(mv.version) for mv in client.search_model_versions(
            f"name = '{name}'")), reverse=True)
        listed = ", ".join(map(str, known[:10])) or "none"
        raise RegistryError(f"model {name!r} has no version {version!r} (versions: "
                            f"{listed}); nothing changed") from None


def promote_version(ctx: Context, version: str, *, reason: str, actor: str,
                    target: str, timeout_s: float = 300.0) -> ManualResult:
    """Make ``version`` champion (the old champion becomes ``previous``) and serve it.

    Refuses, changing nothing, an unknown version, the champion itself, or an empty reason.
    When the deploy fails the aliases go back where they were, and nothing is tagged.
    """
    if not reason.strip():
        raise DriftloopError("give a reason (--reason): it is recorded on the version")
    client = connect(ctx.settings)
    mv = _version(client, ctx.name, version)
    version = str(mv.version)
    old_champion = alias(client, ctx.name, ALIAS_CHAMPION)
    if version == old_champion:
        raise DriftloopError(f"v{version} is already champion of {ctx.name!r}; nothing "
                             "changed")
    return _move_and_serve(ctx, client, "promote", version, reason=reason, actor=actor,
                           target=target, timeout_s=timeout_s)


def rollback(ctx: Context, *, reason: str, actor: str, target: str,
             timeout_s: float = 300.0) -> ManualResult:
    """``previous`` becomes champion again (and the champion it replaces, ``previous``),
    served through the deploy target; the reason is recorded on both versions."""
    client = connect(ctx.settings)
    champion = alias(client, ctx.name, ALIAS_CHAMPION)
    previous = alias(client, ctx.name, ALIAS_PREVIOUS)
    if not previous:
        now = f"v{champion}" if champion else "none"
        raise DriftloopError(f"model {ctx.name!r} has no previous version to roll back to "
                             f"(champion: {now}); nothing changed")
    return _move_and_serve(ctx, client, "rollback", previous, reason=reason, actor=actor,
                           target=target, timeout_s=timeout_s)


def _move_and_serve(ctx: Context, client: Any, action: str, version: str, *, reason: str,
                    actor: str, target: str, timeout_s: float) -> ManualResult:
    from datetime import UTC, datetime

    from driftloop.registry import promote as move_aliases
    from driftloop.registry import set_version_tags

    deployer = make_deployer(target, ctx.settings, timeout_s=timeout_s)
    old_champion = alias(client, ctx.name, ALIAS_CHAMPION)
    old_previous = alias(client, ctx.name, ALIAS_PREVIOUS)
    from driftloop.promotion.live import shadow_annotation

    move_aliases(client, ctx.name, version)
    try:
        result = deployer.deploy(version,
                                 shadow=shadow_annotation(client, ctx.name, version))
    except Exception as exc:
        restored = restore_aliases(client, ctx.name, version, old_champion, old_previous)
        cause = str(exc) if isinstance(exc, DriftloopError) else f"{type(exc).__name__}: {exc}"
        raise DeployError(f"{action} of v{version} not served: {cause}; {restored}") from None
    now = datetime.now(UTC).isoformat(timespec="seconds")
    set_version_tags(client, ctx.name, version, {
        TAG_MANUAL_ACTION: action, TAG_MANUAL_BY: actor, TAG_MANUAL_AT: now,
        TAG_MANUAL_REASON: reason})
    if action == "rollback" and old_champion:
        set_version_tags(client, ctx.name, old_champion, {
            TAG_ROLLED_BACK_AT: now, TAG_ROLLED_BACK_BY: actor,
            TAG_ROLLED_BACK_REASON: reason})
    return ManualResult(action, version, old_champion, alias(client, ctx.name, ALIAS_PREVIOUS),
                        result.as_dict(), reason, actor)
