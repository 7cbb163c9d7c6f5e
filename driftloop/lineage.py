"""Where a model came from: code commit, spec hash, data fingerprint, trigger."""

from __future__ import annotations

import os
import subprocess

from driftloop.settings import PROJECT_ROOT

#: Version tags every registered version carries (others are added by the retrain pipeline).
TAG_TRIGGER = "trigger"
TAG_SPEC_HASH = "spec_hash"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_GIT_COMMIT = "git_commit"
TAG_INFERENCE_FORM = "inference_form"
TAG_AIRFLOW_RUN_ID = "airflow_run_id"
TAG_KFP_RUN_ID = "kfp_run_id"
TAG_WINDOW_START = "window_start"
TAG_WINDOW_END = "window_end"
TAG_GATE_PASSED = "gate_passed"
TAG_GATE_REASON = "gate_reason"
#: ``<report>_report``: where a retrained version's HTML reports are (``runs:/...`` URIs).
REPORTS = ("validation", "evaluation")


def report_tag(report: str) -> str:
    return f"{report}_report"

TRIGGERS = ("bootstrap", "drift", "schedule", "manual")


def git_commit() -> str:
    """The code's commit: ``DRIFTLOOP_GIT_COMMIT`` (set in images), else ``git``, else unknown."""
    from_env = os.environ.get("DRIFTLOOP_GIT_COMMIT")
    if from_env:
        return from_env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=5, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
