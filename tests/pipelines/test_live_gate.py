"""The live gate against a running ``driftloop serve``: the server scores the shadow model
beside the champion on real traffic, the labels come through ``/feedback``, and
``driftloop live-gate`` (run as the DAG runs it, in its own process) decides on those rows.

- Probation: a promotion that looked good offline (a stump above a lowered floor) does much
  worse than the old champion live, and is rolled back by itself.
- Shadow stage: a challenger that does much better live than the champion is promoted, and
  its own probation begins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.predlog import PredictionLog
from driftloop.settings import PROJECT_ROOT
from tests.pipelines.conftest import MODEL, LocalLoop, Server, iris_rows, running_server
from tests.processes import wait_until

pytestmark = pytest.mark.slow


def stump_champion(loop: LocalLoop, where: Path) -> None:
    """v2: a one-split tree (Iris accuracy ~0.67), past a floor lowered to 0.5, made champion
    over the forest v1 (now ``previous``)."""
    from driftloop.bootstrap import bootstrap

    spec = where / "stump.yaml"
    spec.write_text(f"""
name: {MODEL}
data: {{source: sklearn:iris}}
target: species
features: {{numeric: [sepal_length, sepal_width, petal_length, petal_width]}}
estimator: {{class: sklearn.tree.DecisionTreeClassifier, params: {{max_depth: 1}}}}
gate: {{metric: accuracy, min_value: 0.5, max_regression: 0.02}}
""")
    bootstrap(loop.settings.model_copy(update={"spec_path": spec}), force=True)
    assert (loop.alias("champion"), loop.alias("previous")) == ("2", "1")


def live_gate(loop: LocalLoop) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "driftloop", "live-gate", "--deploy-target",
                           "local", "--json"], env=loop.env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def traffic(loop: LocalLoop, server: Server, shadow_version: str, rows: int = 150) -> None:
    """Labeled traffic, until the shadow model's answers for it are in the log."""
    server.predict_and_label(iris_rows(rows, seed=91))
    log = PredictionLog(loop.settings.log_url)
    try:
        wait_until(lambda: log.shadow_pairs(MODEL, shadow_version).rows >= rows,
                   f"{rows} labeled rows answered by shadow v{shadow_version}", timeout=60)
    finally:
        log.dispose()


@pytest.fixture
def stump_served(loop: LocalLoop, tmp_path: Path) -> Iterator[Server]:
    from driftloop.promotion.live import start_probation
    from driftloop.registry import connect

    stump_champion(loop, tmp_path)
    start_probation(connect(loop.settings), MODEL, "2", hours=1)
    with running_server(loop, tmp_path) as server:
        yield server


def test_a_promotion_that_fails_live_is_rolled_back_on_probation(
        loop: LocalLoop, stump_served: Server) -> None:
    server = stump_served
    shadow = server.get("/model").json()["shadow"]
    assert (server.served_version(), shadow["version"], shadow["role"]) == ("2", "1",
                                                                            "probation")
    traffic(loop, server, "1")

    decision = live_gate(loop)
    assert decision["action"] == "rolled_back" and decision["alert"] is True
    assert decision["champion"] == "1" and decision["rows"] >= 150
    assert decision["reason"].startswith("v2 rolled back to v1: probation: v2 is "
                                         "significantly worse than v1 on ")
    gate = decision["gate"]
    assert gate["high"] < 0 and gate["p_value"] < 0.001 and gate["test"] == "mcnemar"
    # The registry, the server and both versions' stories agree.
    assert (loop.alias("champion"), loop.alias("previous")) == ("1", "2")
    assert server.served_version() == "1"
    assert server.get("/model").json()["shadow"] is None  # v1 is on no probation
    tags = loop.versions()
    assert tags["2"]["probation_outcome"] == "rolled_back"
    assert tags["2"]["rolled_back_by"] == "driftloop probation"
    assert tags["1"]["manual_by"] == "driftloop probation"
    assert tags["1"]["manual_reason"] == tags["2"]["probation_reason"]
    # Nothing left to decide: a second call changes nothing.
    assert live_gate(loop)["action"] == "nothing"


@pytest.mark.full
def test_a_challenger_better_live_is_promoted_from_the_shadow_stage(
        loop: LocalLoop, tmp_path: Path) -> None:
    from driftloop.promotion.live import start_shadow
    from driftloop.registry import connect

    stump_champion(loop, tmp_path)  # v2 (stump) serves; v1 (forest) goes to shadow
    start_shadow(connect(loop.settings), MODEL, "1")
    with running_server(loop, tmp_path) as server:
        shadow = server.get("/model").json()["shadow"]
        assert (shadow["version"], shadow["role"]) == ("1", "challenger")
        traffic(loop, server, "1")
        decision = live_gate(loop)
        assert decision["action"] == "promoted", decision
        assert decision["reason"].startswith("challenger v1 promoted over v2; on probation "
                                             "until ")
        assert "passed: accuracy " in decision["reason"] and "live labeled rows" in \
            decision["reason"]
        assert (loop.alias("champion"), loop.alias("previous"), loop.alias("challenger")) == \
            ("1", "2", None)
        # Served now, and on probation: the old champion scores beside it.
        assert server.served_version() == "1"
        shadow = server.get("/model").json()["shadow"]
        assert (shadow["version"], shadow["role"]) == ("2", "probation")
        tags = loop.versions()["1"]
        assert tags["shadow_outcome"] == "promoted" and tags["probation_until"]
        assert tags["manual_by"] == "driftloop live gate"
