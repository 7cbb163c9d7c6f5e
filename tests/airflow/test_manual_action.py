"""The manual promote/rollback action's parts: the request checks (refused before anything
runs), the outcome sentence, the local runner against the real CLI, and the cluster's pod as
KubernetesPodOperator would create it (no API server here: the pod spec is built dry)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from driftloop import naming
from driftloop.settings import PROJECT_ROOT
from driftloop_airflow.hooks.driftloop_cli import (
    CLI_RUNNERS,
    POD_XCOM_FILE,
    CliCommandFailed,
    LocalCliRunner,
    PodCliRunner,
)
from driftloop_airflow.hooks.kfp_local import LocalConfig
from driftloop_airflow.operators.promotion import command
from driftloop_airflow.outcome import describe_action, describe_live


def test_a_request_becomes_the_clis_arguments() -> None:
    assert command("promote", "v3", " bad data upstream ", "ana (Airflow run r1)", "local",
                   300) == ["promote", "3", "--reason", "bad data upstream", "--by",
                            "ana (Airflow run r1)", "--timeout", "300", "--deploy-target",
                            "local"]
    assert command("rollback", "", "v3 answers 500s", "ana", None, 60.5) == \
        ["rollback", "--reason", "v3 answers 500s", "--by", "ana", "--timeout", "60.5"]


@pytest.mark.parametrize(("action", "version", "reason", "message"), [
    ("delete", "3", "why", "action must be one of rollback, promote, got 'delete'"),
    ("promote", "3", "  ", "give a reason"),
    ("promote", None, None, "give a reason"),
    ("promote", "", "why", "promote needs the version to promote"),
    ("rollback", "2", "why", "rollback takes no version"),
])
def test_bad_requests_are_refused_by_name(action: str, version: str | None,
                                          reason: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        command(action, version, reason, "ana", None, 300)


def test_the_outcome_says_what_happened_or_why_not() -> None:
    done = {"action": "promote", "version": "3", "champion_before": "2", "previous_after": "2",
            "deploy": {"target": "kubernetes", "status": "deployed"}, "reason": "fixed",
            "actor": "ana"}
    assert describe_action("promote", "success", done, None) == (
        "promote: v3 is champion (was v2; previous now v2); served via kubernetes: deployed; "
        "tagged by ana: fixed", False)
    assert describe_action("rollback", "failed", None, "no previous version") == (
        "rollback refused: no previous version; nothing changed", True)
    assert describe_action("promote", "failed", None, "no version '9'; nothing changed") == (
        "promote refused: no version '9'; nothing changed", True)
    assert describe_action("rollback", "upstream_failed", None, None) == (
        "rollback did not run (upstream_failed; see the task log)", True)


def test_the_local_runner_carries_driftloops_own_error(tmp_path: Path) -> None:
    """The real CLI, in a fresh state dir with no model: the refusal comes back as one line."""
    assert set(CLI_RUNNERS) == {"local", "rest"}, "a runner for every KFP backend"
    local = LocalCliRunner(LocalConfig(runs_dir=tmp_path, python=sys.executable,
                                       workdir=str(PROJECT_ROOT),
                                       env={"DRIFTLOOP_STATE_DIR": str(tmp_path)}))
    with pytest.raises(CliCommandFailed) as refused:
        local.run(["rollback", "--reason", "test", "--deploy-target", "none"], {}, 120)
    assert str(refused.value) == ("model 'iris-classifier' has no previous version to roll "
                                  "back to (champion: none); nothing changed")
    broken = LocalCliRunner(LocalConfig(runs_dir=tmp_path, python="/nonexistent/python"))
    with pytest.raises(CliCommandFailed, match="cannot start `/nonexistent/python -m driftloop"):
        broken.run(["rollback"], {}, 5)


def test_the_cluster_pod_runs_the_cli_in_the_trainer_image_as_the_promoter() -> None:
    runner = PodCliRunner(image=naming.images()["DRIFTLOOP_TRAINER_IMAGE"],
                          namespace=naming.NAMESPACE,
                          service_account=naming.PROMOTER_SERVICE_ACCOUNT,
                          config_map=naming.SETTINGS_CONFIG_MAP)
    args = command("promote", "3", "fixed", "ana (Airflow run r1)", "kubernetes", 300)
    pod = runner.operator("act-pod", args, 300).build_pod_request_obj(dry_run=True)
    assert pod.metadata.namespace == "driftloop"
    assert pod.spec.service_account_name == "driftloop-promoter"
    main = pod.spec.containers[0]
    assert main.image == "driftloop/trainer:0.1.0"
    assert main.command == ["/bin/sh", "-c", f'driftloop "$@" --json > {POD_XCOM_FILE} && '
                            f"cat {POD_XCOM_FILE}", "driftloop"]
    assert main.args == args
    assert [e.config_map_ref.name for e in main.env_from] == ["driftloop-settings"]
    assert main.security_context.read_only_root_filesystem is True
    assert main.security_context.allow_privilege_escalation is False
    assert pod.spec.security_context.run_as_non_root is True
    assert "/airflow/xcom" in {m.mount_path for m in main.volume_mounts}, \
        "the operator's XCom volume, where the answer is written"
    assert "/tmp" in {m.mount_path for m in main.volume_mounts}
    assert any(c.name == "airflow-xcom-sidecar" for c in pod.spec.containers)


def test_the_live_gate_outcome_says_failed_when_the_decision_could_not_be_taken() -> None:
    rolled = {"action": "rolled_back", "reason": "v2 rolled back to v1: probation: ..."}
    assert describe_live("success", rolled, None) == (
        "rolled_back: v2 rolled back to v1: probation: ...", False)
    assert describe_live("failed", None, "server unreachable") == (
        "live gate failed: server unreachable", True)
    assert describe_live(None, None, None) == (
        "live gate did not run (no state; see the task log)", True)
