"""The promotion DAGs with ``dag.test()``: the manual promote/rollback DAG as a person
triggers it from the UI, and the hourly live gate rolling back a champion that fails its
probation, with its alert. A live ``driftloop serve``, a real MLflow registry, and the
``driftloop`` command run where retrains run (the local backend: a subprocess).

Unit-level checks (the request's validation, the outcome sentence, the cluster's pod) are in
tests/airflow/test_manual_action.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from driftloop_airflow.local_runs import run_live_gate, run_manual_action
from tests.airflow.conftest import Live
from tests.airflow.kfp_api import recording_server

pytestmark = [pytest.mark.slow, pytest.mark.full, pytest.mark.usefixtures("airflow_db")]


def test_rollback_and_promote_from_airflow_move_the_champion_and_reload_the_server(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from driftloop.bootstrap import bootstrap

    live.connections(monkeypatch)
    bootstrap(live.loop.settings, force=True)  # v2 champion, v1 previous; v1 still served
    assert (live.loop.alias("champion"), live.loop.alias("previous")) == ("2", "1")

    # dag.test() triggers as the user "dag_test"; the UI passes the logged-in user's name.
    back = run_manual_action("rollback", reason="v2 answers wrong on new traffic",
                             deploy_target="local")
    assert back.state == "success", back.tasks
    assert (live.loop.alias("champion"), live.loop.alias("previous")) == ("1", "2")
    assert live.server.served_version() == "1"
    tags = live.loop.versions()
    assert tags["1"]["manual_action"] == "rollback"
    assert tags["1"]["manual_reason"] == "v2 answers wrong on new traffic"
    assert tags["1"]["manual_by"] == f"dag_test (Airflow run {back.run_id})"
    assert tags["2"]["rolled_back_reason"] == "v2 answers wrong on new traffic"
    assert back.value("outcome") == (
        "rollback: v1 is champion (was v2; previous now v2); served via local: unchanged; "
        "tagged by "
        f"dag_test (Airflow run {back.run_id}): v2 answers wrong on new traffic")
    # (unchanged: the server never stopped serving v1 when v2 took the alias)

    forward = run_manual_action("promote", version="v2", reason="fixed upstream",
                                deploy_target="local")
    assert forward.state == "success", forward.tasks
    assert "served via local: deployed" in forward.value("outcome")
    assert live.loop.alias("champion") == "2" and live.server.served_version() == "2"
    assert live.loop.versions()["2"]["manual_reason"] == "fixed upstream"

    # Refused, nothing changed: the run fails once (no retries) and says why.
    unknown = run_manual_action("promote", version="99", reason="typo",
                                deploy_target="local")
    assert unknown.state == "failed"
    assert unknown.tasks == {"act": "failed", "outcome": "failed"}
    assert unknown.value("outcome") == ("promote refused: model 'iris-classifier' has no "
                                        "version '99' (versions: 2, 1); nothing changed")
    assert unknown.value("act", "error") == \
        "model 'iris-classifier' has no version '99' (versions: 2, 1); nothing changed"
    assert live.loop.alias("champion") == "2" and live.server.served_version() == "2"


def test_the_live_gate_rolls_back_a_champion_that_fails_probation_and_alerts(
        live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from driftloop.promotion.live import start_probation
    from driftloop.registry import connect
    from tests.pipelines.test_live_gate import stump_champion, traffic

    live.connections(monkeypatch)
    nothing = run_live_gate(deploy_target="local")
    assert nothing.state == "success", nothing.tasks
    assert nothing.value("outcome") == ("nothing: no challenger in shadow and no champion on "
                                        "probation")
    stump_champion(live.loop, tmp_path)
    start_probation(connect(live.loop.settings), "iris-classifier", "2", hours=1)
    # What the pipeline's deploy step does after a promotion: the server reloads.
    reloaded = httpx.post(f"{live.server.url}/admin/reload", timeout=60,
                          headers={"Authorization": f"Bearer {live.server.token}"})
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["shadow"]["role"] == "probation"
    traffic(live.loop, live.server, "1")
    with recording_server(lambda *_: (200, {})) as (hook_url, alerts):
        monkeypatch.setenv("DRIFTLOOP_ALERT_WEBHOOK_URL", hook_url)
        back = run_live_gate(deploy_target="local")
    assert back.state == "success", back.tasks
    assert back.value("outcome").startswith(
        "rolled_back: v2 rolled back to v1: probation: v2 is significantly worse than v1")
    (alert,) = [a.body for a in alerts]
    assert alert["text"].startswith("driftloop: v2 rolled back to v1: probation: ")
    assert alert["task_id"] == "judge"
    assert live.loop.alias("champion") == "1" and live.server.served_version() == "1"
