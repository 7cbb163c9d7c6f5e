"""Pipeline faults: whatever breaks in a retrain, the champion alias and the served model
stay what they were.

The retrain steps run in process (``driftloop.retrain``, what the KFP components call)
against the MLflow server of :class:`~tests.reliability.conftest.MlflowStack`, reached
through its cuttable proxy, while a real server serves that registry's champion:

- training raises;
- the gate fails;
- the registry becomes unreachable between registering the version and moving the alias;
- the Kubernetes rollout never becomes ready (the deployer times out and patches back).

Whole pipeline runs (KFP local runner) with a worse challenger, invalid data, a server that
is down and an unservable version are in tests/pipelines (test_local_run, test_live_server);
``make reliability`` runs them too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from driftloop import promotion, retrain, run_context
from driftloop.deploy import DeployError, KubernetesDeployer
from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC, paired_gate
from tests.reliability.conftest import MlflowStack
from tests.reliability.figures import Figures
from tests.reliability.server import ServerProcess
from tests.unit.test_deploy import FakeApiServer, serving_deployment

pytestmark = pytest.mark.slow

MODEL = "iris-classifier"
#: The registry's calls in this process fail after one quick retry instead of ~4 minutes.
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


@dataclass
class Standing:
    """What must not change: the aliases and what the server serves."""

    champion: str | None
    previous: str | None
    versions: set[str]


@dataclass
class Pipeline:
    stack: MlflowStack
    server: ServerProcess
    ctx: run_context.Context
    data: Path

    def standing(self) -> Standing:
        versions = {str(mv.version) for mv in
                    self.stack.client().search_model_versions(f"name = '{MODEL}'")}
        return Standing(self.stack.alias("champion"), self.stack.alias("previous"), versions)

    def served(self) -> str:
        response = httpx.get(self.server.url + "/model", timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["version"])

    def assert_unchanged(self, before: Standing, *, new_versions: int = 0) -> None:
        after = self.standing()
        assert (after.champion, after.previous) == (before.champion, before.previous)
        assert len(after.versions - before.versions) == new_versions
        assert self.served() == before.champion
        predicted = httpx.post(self.server.url + "/predict",
                               json={"features": [5.1, 3.5, 1.4, 0.2]}, timeout=30)
        assert predicted.json()["model"]["version"] == before.champion

    def lineage(self, key: str) -> run_context.Lineage:
        return run_context.Lineage("manual", airflow_run_id=f"reliability__{key}")

    def train(self, lin: run_context.Lineage, where: Path,
              spec: Path = IRIS_SPEC) -> dict[str, Any]:
        ctx = run_context.Context(self.ctx.settings, load_spec(spec), MODEL)
        return retrain.train(ctx, lin, self.data, where)

    def passing_gate(self) -> Any:
        return paired_gate(30, both=26, champion_only=0, challenger_only=3)


@pytest.fixture(scope="module")
def pipeline(mlflow_stack: MlflowStack, mlflow_served: ServerProcess,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FAST_FAIL.items():
            patch.setenv(key, value)
        settings = mlflow_stack.settings(proxied=True)
        ctx = run_context.Context(settings, load_spec(IRIS_SPEC), MODEL)
        data = tmp_path_factory.mktemp("retrain") / "data"
        retrain.load_data(ctx, run_context.Lineage("manual"), data)  # the spec's source rows
        yield Pipeline(mlflow_stack, mlflow_served, ctx, data)


@pytest.mark.timeout(300)
def test_training_that_raises_fails_the_step_and_changes_nothing(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str], figures: Figures,
) -> None:
    spec = tmp_path / "exploding.yaml"
    spec.write_text(IRIS_SPEC.read_text().replace(
        "sklearn.ensemble.RandomForestClassifier",
        "tests.reliability.estimators.ExplodingForest"))
    assert "ExplodingForest" in spec.read_text()
    before = pipeline.standing()
    with pytest.raises(RuntimeError, match="simulated: the training node ran out of memory"), \
            retrain.step("train_model"):
        pipeline.train(pipeline.lineage("exploding"), tmp_path / "model", spec)
    marker = capsys.readouterr().out.strip().splitlines()[-1]
    assert marker.startswith(retrain.FAILURE_MARKER)
    assert json.loads(marker.removeprefix(retrain.FAILURE_MARKER)) == {
        "step": "train_model",
        "error": "RuntimeError: simulated: the training node ran out of memory"}
    pipeline.assert_unchanged(before)
    figures.record("pipeline_faults", training_raises="champion and served version unchanged; "
                   "no version registered; the step names the error")


@pytest.mark.timeout(300)
def test_a_failed_gate_registers_without_alias_and_deploys_nothing(
    pipeline: Pipeline, tmp_path: Path, figures: Figures,
) -> None:
    lin = pipeline.lineage("gate")
    before = pipeline.standing()
    info = pipeline.train(lin, tmp_path / "model")
    ev = retrain.evaluate(pipeline.ctx, pipeline.data, info["model_uri"], min_value=1.0,
                          max_regression=None, min_fresh_rows=30,
                          report_path=tmp_path / "report.html")
    assert ev.gate.passed is False and "is below the floor 1" in ev.gate.reason
    outcome = promotion.register(pipeline.ctx, lin, info["run_id"], info["model_uri"], ev.gate,
                               promote=False)
    assert (outcome.promoted, outcome.deploy_version) == (False, "")
    result = promotion.deploy(pipeline.ctx, "local", outcome.deploy_version,
                            old_champion=outcome.old_champion,
                            old_previous=outcome.old_previous, timeout_s=5)
    assert result.status == "skipped"
    pipeline.assert_unchanged(before, new_versions=1)
    tags = pipeline.stack.client().get_model_version(MODEL, outcome.version).tags
    assert tags["retrain_outcome"] == "rejected" and tags["gate_passed"] == "false"
    figures.record("pipeline_faults", gate_fails="registered unaliased (tagged rejected), "
                   "nothing deployed; champion and served version unchanged")


@pytest.mark.timeout(300)
def test_registry_lost_between_register_and_alias_moves_no_alias(
    pipeline: Pipeline, tmp_path: Path, figures: Figures,
) -> None:
    lin = pipeline.lineage("midway")
    info = pipeline.train(lin, tmp_path / "model")
    before = pipeline.standing()
    proxy = pipeline.stack.proxy
    fired = proxy.cut_when(rb"POST /api/2\.0/mlflow/registered-models/alias")
    try:
        with pytest.raises(Exception) as failure:
            promotion.register(pipeline.ctx, lin, info["run_id"], info["model_uri"],
                             pipeline.passing_gate(), promote=True)
        assert fired.is_set(), "the registry was not cut at the alias call"
    finally:
        proxy.restore()
    assert pipeline.stack.proxied_uri in str(failure.value)
    # The version was registered (tagged promoted before the alias moves, so no rerun of
    # this run key promotes a second one); no alias moved; the server never changed.
    pipeline.assert_unchanged(before, new_versions=1)
    (orphan,) = promotion.versions_with_run_key(pipeline.stack.client(), MODEL,
                                              lin.run_key(pipeline.ctx))
    assert list(orphan.aliases) == []
    # A rerun with the same parameters promotes nothing and deploys nothing.
    rerun = promotion.register(pipeline.ctx, lin, info["run_id"], info["model_uri"],
                             pipeline.passing_gate(), promote=True)
    assert (rerun.promoted, rerun.deploy_version) == (False, "")
    pipeline.assert_unchanged(before, new_versions=1)
    figures.record("pipeline_faults", registration_fails_midway=(
        f"registry cut at the first alias call: {type(failure.value).__name__} naming the "
        "tracking server; no alias moved, served version unchanged; a rerun of the same run "
        "key promotes nothing"))


@pytest.mark.timeout(300)
def test_rollout_that_times_out_is_undone_and_the_champion_alias_restored(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Figures,
) -> None:
    """deploy_target=kubernetes: the real kubernetes client against an in-memory API server
    whose rollout of the new version never becomes ready (tests/unit/test_deploy.py)."""
    api_server = FakeApiServer(serving_deployment(pinned="1"), rollouts=["never", "ok"])
    api_client = k8s.ApiClient(k8s.Configuration(host="https://k8s.invalid"))
    api_client.rest_client.pool_manager = api_server
    monkeypatch.setattr(promotion.pipeline, "make_deployer", lambda target, settings, timeout_s: (
        KubernetesDeployer(k8s.AppsV1Api(api_client), timeout_s=timeout_s,
                           poll_interval_s=0.05, log=lambda _m: None)))

    lin = pipeline.lineage("rollout")
    info = pipeline.train(lin, tmp_path / "model")
    before = pipeline.standing()
    outcome = promotion.register(pipeline.ctx, lin, info["run_id"], info["model_uri"],
                               pipeline.passing_gate(), promote=True)
    assert outcome.promoted and pipeline.stack.alias("champion") == outcome.version
    with pytest.raises(DeployError) as failure:
        promotion.deploy(pipeline.ctx, "kubernetes", outcome.deploy_version,
                       old_champion=outcome.old_champion, old_previous=outcome.old_previous,
                       timeout_s=1.0)
    message = str(failure.value)
    assert f"rollout of version {outcome.version}" in message and "not ready after 1s" in message
    assert "rolled back to version 1" in message and "champion alias restored to v1" in message
    assert api_server.pinned() == ("1", "1")  # the Deployment serves v1 again
    pipeline.assert_unchanged(before, new_versions=1)
    tags = pipeline.stack.client().get_model_version(MODEL, outcome.version).tags
    assert tags["retrain_outcome"] == "rolled_back" and tags["deploy_target"] == "kubernetes"
    figures.record("pipeline_faults", rollout_times_out=(
        "Deployment patched back to v1, champion alias restored to v1, version tagged "
        "rolled_back; served version unchanged"))


@pytest.mark.timeout(120)
def test_fault_injection_is_real(pipeline: Pipeline) -> None:
    """The helpers above can see a change: promoting moves what they compare."""
    before = pipeline.standing()
    client = pipeline.stack.client()
    client.set_registered_model_alias(MODEL, "champion", max(before.versions, key=int))
    try:
        with pytest.raises(AssertionError):
            pipeline.assert_unchanged(before)
    finally:
        client.set_registered_model_alias(MODEL, "champion", before.champion)
    pipeline.assert_unchanged(before)

