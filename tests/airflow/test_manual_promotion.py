"""The manual promote/rollback DAG with ``dag.test()``, as a person triggers it from the UI:
a live ``driftloop serve``, a real MLflow registry, and the ``driftloop`` command run where
retrains run (the local backend: a subprocess of this interpreter).

Unit-level checks (the request's validation, the outcome sentence, the cluster's pod) are in
tests/airflow/test_manual_action.py.
"""

from __future__ import annotations

import pytest

from driftloop_airflow.local_runs import run_manual_action
from tests.airflow.conftest import Live

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
