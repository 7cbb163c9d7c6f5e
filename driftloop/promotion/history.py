"""What the loop did, for people: each version's story (why it was trained, what the gate
said, who or what promoted it) and the state now (the aliases, and what the server says).

``driftloop status`` and ``driftloop history`` print these; they read the same registry
tags the pipeline and :mod:`driftloop.promotion` write, and the server's own endpoints.
"""

from __future__ import annotations

import re
from typing import Any

from driftloop import lineage
from driftloop.gate.decision import VERDICT_WORDS
from driftloop.promotion.manual import (
    TAG_MANUAL_ACTION,
    TAG_MANUAL_AT,
    TAG_MANUAL_BY,
    TAG_MANUAL_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TAG_ROLLED_BACK_REASON,
)
from driftloop.promotion.pipeline import (
    OUTCOME_INSUFFICIENT,
    OUTCOME_PROMOTED,
    OUTCOME_REJECTED,
    OUTCOME_ROLLED_BACK,
    OUTCOME_SHADOW,
    TAG_OUTCOME,
)
from driftloop.registry import ALIAS_CHALLENGER, ALIAS_CHAMPION, ALIAS_PREVIOUS
from driftloop.settings import Settings
from driftloop.tasks import TASKS

#: How the gate's reasons begin.
GATE_VERDICTS = tuple(f"{word}:" for word in VERDICT_WORDS.values())
#: The aliases ``status`` shows, in order (``challenger``: the shadow stage's, when set).
SHOWN_ALIASES = (ALIAS_CHAMPION, ALIAS_PREVIOUS, ALIAS_CHALLENGER)


def promoted_by(tags: dict[str, str]) -> str:
    """Who or what made this version what it is, in words."""
    if tags.get(TAG_MANUAL_ACTION):
        return (f"{tags[TAG_MANUAL_ACTION]} by {tags.get(TAG_MANUAL_BY, '?')} at "
                f"{tags.get(TAG_MANUAL_AT, '?')}: {tags.get(TAG_MANUAL_REASON, '')}")
    trigger = tags.get(lineage.TAG_TRIGGER, "")
    outcome = tags.get(TAG_OUTCOME, "")
    if trigger == "bootstrap":
        return "driftloop bootstrap"
    run = tags.get(lineage.TAG_AIRFLOW_RUN_ID) or tags.get("kfp_run_name") or "-"
    if outcome == OUTCOME_PROMOTED:
        return f"retrain pipeline ({trigger}; run {run})"
    if outcome == OUTCOME_REJECTED:
        return f"not promoted: the gate rejected it ({trigger}; run {run})"
    if outcome == OUTCOME_INSUFFICIENT:
        return f"not promoted: the gate had too few rows to decide ({trigger}; run {run})"
    if outcome == OUTCOME_ROLLED_BACK:
        return f"rolled back: its deploy failed ({tags.get('deploy_error', '')[:200]})"
    if outcome == OUTCOME_SHADOW:
        if tags.get("shadow_outcome") == "rejected":
            return (f"not promoted: rejected in shadow by the live gate ({trigger}; run "
                    f"{run}): {tags.get('shadow_reason', '')}")
        return (f"in shadow as challenger since {tags.get('shadow_started_at', '?')} "
                f"({trigger}; run {run}): the live gate decides")
    return "-"


def version_row(mv: Any, aliases: list[str]) -> dict[str, Any]:
    tags = dict(mv.tags)
    gate = None
    if tags.get("gate_passed"):
        reason = tags.get("gate_reason", "")
        # The gate's own reasons begin with its verdict; older tags may not.
        gate = reason if reason.startswith(GATE_VERDICTS) else (
            ("passed" if tags["gate_passed"] == "true" else "failed")
            + (f": {reason}" if reason else ""))
    row: dict[str, Any] = {
        "version": str(mv.version),
        "aliases": sorted(aliases),
        "created": int(mv.creation_timestamp or 0),
        "trigger": tags.get(lineage.TAG_TRIGGER, ""),
        "window": [tags.get(lineage.TAG_WINDOW_START, ""), tags.get(lineage.TAG_WINDOW_END, "")],
        "outcome": tags.get(TAG_OUTCOME, ""),
        "gate": gate,
        "promoted_by": promoted_by(tags),
        "inference_form": tags.get(lineage.TAG_INFERENCE_FORM, ""),
    }
    if tags.get(TAG_ROLLED_BACK_AT):
        row["rolled_back"] = (f"by {tags.get(TAG_ROLLED_BACK_BY, '?')} at "
                              f"{tags[TAG_ROLLED_BACK_AT]}: "
                              f"{tags.get(TAG_ROLLED_BACK_REASON, '')}")
    if tags.get("probation_until"):
        outcome = tags.get("probation_outcome")
        row["probation"] = (f"until {tags['probation_until']}" if not outcome else
                            f"{outcome}: {tags.get('probation_reason', '')}")
    return row


def versions(client: Any, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first."""
    found = client.search_model_versions(f"name = '{name}'")
    # A search does not return aliases; the registered model has them all.
    by_version: dict[str, list[str]] = {}
    if found:
        for which, version in (client.get_registered_model(name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(which)
    return [version_row(mv, by_version.get(str(mv.version), []))
            for mv in sorted(found, key=lambda mv: int(mv.version), reverse=True)]


def server_state(settings: Settings, timeout: float = 5.0) -> dict[str, Any]:
    """What the server at ``DRIFTLOOP_SERVER_URL`` serves, its latest drift verdict and live
    accuracy; ``{"error": ...}`` (said, never raised) when it does not answer."""
    import httpx

    url = settings.server_url.rstrip("/")
    try:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            model = client.get("/model")
            model.raise_for_status()
            drift = client.get("/drift/status")
            metrics = client.get("/metrics").text
    except httpx.HTTPError as exc:
        return {"url": url, "error": f"{type(exc).__name__}: {exc}"}
    served = model.json()
    report = drift.json() if drift.status_code == 200 else {}
    if report.get("status") == "ok":
        verdict = ("DRIFT in " + ", ".join(
            f"{c['feature']} ({c['description']})" for c in report.get("changes", [])
            if c.get("drifted")) if report.get("dataset_drift") else "no drift")
    else:
        verdict = report.get("message") or f"no verdict ({drift.status_code})"
    return {"url": url, "version": served.get("version"),
            "inference_form": served.get("inference_form"),
            "drift": verdict, "window_rows": (report.get("window") or {}).get("rows"),
            "task": served.get("task"),
            # A classifier reports accuracy, a regressor MAE and RMSE (None: not this task's,
            # or no labels yet).
            **{f"live_{figure}": _metric(metrics, f"driftloop_live_{figure}")
               for figure in LIVE_FIGURES},
            "live_labeled_rows": _metric(metrics, "driftloop_live_labeled_rows")}


#: Every task's live figures, as ``/metrics`` names them ``driftloop_live_<figure>``.
LIVE_FIGURES = tuple(dict.fromkeys(f for t in TASKS.values() for f in t.live_figures))


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    if not found:
        return None
    value = float(found.group(1))
    return None if value != value else value


def status(settings: Settings, client: Any, name: str) -> dict[str, Any]:
    """The aliases with their versions' stories, and the server's state."""
    rows = {row["version"]: row for row in versions(client, name)}
    aliases = {which: next((r for r in rows.values() if which in r["aliases"]), None)
               for which in SHOWN_ALIASES}
    return {"model": name, "registry": settings.tracking_uri, "aliases": aliases,
            "versions": len(rows), "server": server_state(settings)}
