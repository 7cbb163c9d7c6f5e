"""The retrain pipeline's side of promotion: registering a challenger, moving the
``champion`` and ``previous`` aliases, serving the new champion, and putting everything back
when serving fails.

- At most one version per run key is ever promoted: a rerun with the same parameters finds
  it and promotes nothing (it only makes sure the champion is what serves).
- A failed deploy moves the aliases back to where they were and tags the version
  ``rolled_back``; the deployer has already left the old model serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from driftloop import lineage
from driftloop.deploy import DeployError, DeployResult, make_deployer
from driftloop.errors import DriftloopError, RegistryError
from driftloop.gate import GateResult
from driftloop.gate import decision as gate_outcomes
from driftloop.registry import ALIAS_CHAMPION, ALIAS_PREVIOUS, alias_version, connect
from driftloop.run_context import Context, Lineage

TAG_RUN_KEY = "run_key"
TAG_OUTCOME = "retrain_outcome"
TAG_DEPLOY_TARGET = "deploy_target"
TAG_DEPLOY_ERROR = "deploy_error"
OUTCOME_PROMOTED = "promoted"
OUTCOME_REJECTED = "rejected"
#: The gate could not decide on the rows it had: registered without alias, not a failure.
OUTCOME_INSUFFICIENT = "insufficient_evidence"
#: Passed, and sent to the shadow stage (alias ``challenger``): the live gate decides.
OUTCOME_SHADOW = "shadow"
OUTCOME_ROLLED_BACK = "rolled_back"


@dataclass
class RegisterOutcome:
    version: str
    #: This run moved the champion alias.
    promoted: bool
    #: The version to deploy ("" when there is nothing to deploy).
    deploy_version: str
    old_champion: str
    old_previous: str
    note: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions_with_run_key(client: Any, name: str, key: str) -> list[Any]:
    """Versions of ``name`` tagged with ``key``, newest first.

    Not guarded: if the registry cannot answer, promoting could not be made idempotent, so
    the step fails instead.
    """
    found = client.search_model_versions(f"name = '{name}' and tags.{TAG_RUN_KEY} = '{key}'")
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)


def _run_metadata(run_id: str) -> dict[str, Any]:
    import mlflow.artifacts

    from driftloop.registry import ARTIFACT_DIR

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT_DIR}/metadata.json")


def _version_tags(ctx: Context, lin: Lineage, run_id: str, gate: GateResult,
                  outcome: str) -> dict[str, str]:
    from driftloop.retrain_report import version_tags as report_tags

    meta = _run_metadata(run_id)
    return {
        **report_tags(connect(ctx.settings), run_id),
        **lin.tags(),
        lineage.TAG_SPEC_HASH: str(meta.get("spec_hash", ctx.spec.content_hash())),
        lineage.TAG_DATA_FINGERPRINT: str(meta.get("data_fingerprint", "")),
        lineage.TAG_GIT_COMMIT: lineage.git_commit(),
        lineage.TAG_INFERENCE_FORM: str(meta.get("inference_form", "unknown")),
        **gate.tags(),
        TAG_RUN_KEY: lin.run_key(ctx),
        TAG_OUTCOME: outcome,
    }


def alias(client: Any, name: str, which: str) -> str:
    """The version an alias points at, or "" when it is unset."""
    mv = alias_version(client, name, which)
    return "" if mv is None else str(mv.version)


def register(
    ctx: Context, lin: Lineage, run_id: str, model_uri: str, gate: GateResult, *,
    promote: bool,
) -> RegisterOutcome:
    """Register the challenger; promote it (``promote``) or record its rejection.

    Idempotent per run key: if an earlier run with the same key promoted a version, nothing
    is registered or moved again; if it recorded one (either way) and this run rejects,
    nothing new is registered.
    """
    from driftloop.registry import promote as move_aliases
    from driftloop.registry import register_version, set_version_tags

    client = connect(ctx.settings)
    key = lin.run_key(ctx)
    old_champion = alias(client, ctx.name, ALIAS_CHAMPION)
    old_previous = alias(client, ctx.name, ALIAS_PREVIOUS)
    earlier = versions_with_run_key(client, ctx.name, key)
    promoted_before = [mv for mv in earlier if mv.tags.get(TAG_OUTCOME) == OUTCOME_PROMOTED]
    if promoted_before:
        version = str(promoted_before[0].version)
        still = version == old_champion
        return RegisterOutcome(
            version, False, version if still and promote else "", old_champion, old_previous,
            f"run key {key} was already promoted as v{version}" +
            (" (still champion: making sure it serves)" if still else
             f"; the champion has since moved to v{old_champion or 'none'}: left alone"),
        )
    shadow = bool(promote and old_champion and (
        ctx.settings.shadow if ctx.settings.shadow is not None else ctx.spec.gate.shadow))
    in_shadow = [mv for mv in earlier if mv.tags.get(TAG_OUTCOME) == OUTCOME_SHADOW]
    if shadow and in_shadow:
        version = str(in_shadow[0].version)
        return RegisterOutcome(version, False, old_champion, old_champion, old_previous,
                               f"run key {key} already sent v{version} to the shadow stage")
    if not promote and earlier:
        version = str(earlier[0].version)
        return RegisterOutcome(version, False, "", old_champion, old_previous,
                               f"run key {key} already recorded as v{version} "
                               f"({earlier[0].tags.get(TAG_OUTCOME, '?')}); nothing new")
    # Tagged "promoted" before the alias moves: should this process die in between, a
    # rerun will not promote a second version (the champion then simply stays the old one).
    outcome = (OUTCOME_SHADOW if shadow else OUTCOME_PROMOTED if promote
               else OUTCOME_INSUFFICIENT if gate.outcome == gate_outcomes.OUTCOME_INSUFFICIENT
               else OUTCOME_REJECTED)
    version = register_version(client, ctx.name, run_id, model_uri,
                               _version_tags(ctx, lin, run_id, gate, outcome))
    if not promote:
        return RegisterOutcome(version, False, "", old_champion, old_previous,
                               f"v{version} registered without alias: {gate.reason}")
    from driftloop.promotion.live import start_probation, start_shadow

    if shadow:
        # The champion is served again, so the servers load the challenger beside it.
        start_shadow(client, ctx.name, version)
        return RegisterOutcome(version, False, old_champion, old_champion, old_previous,
                               f"v{version} is challenger, in shadow beside champion "
                               f"v{old_champion}: the live gate decides")
    try:
        if old_champion:  # before the aliases move: the reload then scores the old one too
            start_probation(client, ctx.name, version, ctx.settings.probation_hours)
        move_aliases(client, ctx.name, version)
    except Exception as exc:
        restore_aliases(client, ctx.name, version, old_champion, old_previous)
        set_version_tags(client, ctx.name, version, {TAG_OUTCOME: OUTCOME_ROLLED_BACK})
        raise RegistryError(f"moving the champion alias to v{version} failed ({exc}); "
                            "aliases restored") from None
    return RegisterOutcome(version, True, version, old_champion, old_previous,
                           f"v{version} is champion (previous: v{old_champion or 'none'})")


def restore_aliases(client: Any, name: str, failed: str, old_champion: str,
                    old_previous: str) -> str:
    """Point ``champion`` and ``previous`` back to where they were before ``failed`` was
    promoted — unless someone else has moved ``champion`` since (then leave it alone)."""
    current = alias(client, name, ALIAS_CHAMPION)
    if current != failed:
        return (f"champion alias points at v{current or 'none'} (not v{failed}): left alone")
    for which, target in ((ALIAS_CHAMPION, old_champion), (ALIAS_PREVIOUS, old_previous)):
        if target:
            client.set_registered_model_alias(name, which, target)
        else:
            client.delete_registered_model_alias(name, which)
    return f"champion alias restored to v{old_champion}" if old_champion else \
        "champion alias removed (there was no champion before)"


def deploy(
    ctx: Context, target: str, version: str, *, old_champion: str, old_previous: str,
    timeout_s: float,
) -> DeployResult:
    """Serve ``version`` through the target's deployer; on failure put the aliases back."""
    from driftloop.deploy import NoDeployer
    from driftloop.registry import set_version_tags

    if not version:
        return NoDeployer().deploy("")
    from driftloop.promotion.live import shadow_annotation

    deployer = make_deployer(target, ctx.settings, timeout_s=timeout_s)
    try:
        shadow = shadow_annotation(connect(ctx.settings), ctx.name, version)
        result = deployer.deploy(version, shadow=shadow)
    except Exception as exc:
        if version == old_champion:  # it was champion before this run: nothing to undo
            raise DeployError(f"{exc}; v{version} was already champion: aliases unchanged") \
                from None
        client = connect(ctx.settings)
        restored = restore_aliases(client, ctx.name, version, old_champion, old_previous)
        set_version_tags(client, ctx.name, version, {
            TAG_OUTCOME: OUTCOME_ROLLED_BACK, TAG_DEPLOY_TARGET: target,
            TAG_DEPLOY_ERROR: str(exc)[:4000],
        })
        if isinstance(exc, DriftloopError):
            raise DeployError(f"{exc}; {restored}") from None
        raise DeployError(f"{type(exc).__name__}: {exc}; {restored}") from exc
    return result


def registry_state(ctx: Context, run_key: str | None) -> dict[str, Any]:
    """Champion and the versions of a run key: taken before and after a run."""
    client = connect(ctx.settings)
    found = versions_with_run_key(client, ctx.name, run_key) if run_key else []
    return {
        "champion": alias(client, ctx.name, ALIAS_CHAMPION) or None,
        "previous": alias(client, ctx.name, ALIAS_PREVIOUS) or None,
        "run_key_versions": {str(mv.version): dict(mv.tags) for mv in found},
    }


def summarize(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What a run changed: champion before/after, the version it registered, the gate."""
    new = sorted(set(after["run_key_versions"]) - set(before["run_key_versions"]), key=int)
    mine = new[-1] if new else (max(after["run_key_versions"], key=int)
                                if after["run_key_versions"] else None)
    tags = after["run_key_versions"].get(mine, {}) if mine else {}
    gate = None
    if tags.get("gate_passed"):
        gate = {k.removeprefix("gate_"): v for k, v in tags.items() if k.startswith("gate_")}
        gate["passed"] = tags["gate_passed"] == "true"
    return {
        "champion_before": before["champion"],
        "champion_after": after["champion"],
        "promoted": after["champion"] != before["champion"],
        "new_version": new[-1] if new else None,
        "version": mine,
        "outcome": tags.get(TAG_OUTCOME),
        "gate": gate,
        "deploy_error": tags.get(TAG_DEPLOY_ERROR),
    }
