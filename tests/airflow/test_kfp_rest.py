"""KfpHook's REST backend: the exact requests it sends and the states it maps.

No KFP API server runs here; a recording stand-in answers over real HTTP. The requests are
compared with the ones kfp-server-api's generated client (what ``kfp.Client`` uses) sends for
the same operation, and bodies are checked against its models.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop_airflow.hooks import kfp_run
from driftloop_airflow.hooks.kfp import KfpHook, backend_from_connection
from driftloop_airflow.hooks.kfp_rest import (
    AsyncKfpRestPoller,
    KfpApiError,
    KfpRestBackend,
    RestConfig,
    load_pipeline_spec,
    parse_run,
)
from driftloop_airflow.triggers.kfp import KfpRunTrigger
from tests.airflow.conftest import set_connection
from tests.airflow.kfp_api import FakeKfpApi, running_fake_kfp

PARAMS = {"model_name": "iris-classifier", "spec": "", "trigger": "drift",
          "window_start": "2026-01-01T10:00:00+00:00", "window_end": "2026-01-01T11:00:00+00:00",
          "airflow_run_id": "scheduled__2026-01-01T10:00:00+00:00", "deploy_target": "kubernetes",
          "min_value": -1.0, "max_regression": -1.0, "min_fresh_rows": 30,
          "deploy_timeout_s": 300}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The retrain pipeline, compiled by its own command."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("pkg") / "retrain_pipeline.yaml"
    subprocess.run([sys.executable, "-m", "kfp_pipelines", "compile", "--output", str(out)],
                   check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture
def api() -> Any:
    with running_fake_kfp() as fake:
        yield fake


def _config(api: FakeKfpApi, package: Path, **overrides: Any) -> RestConfig:
    values: dict[str, Any] = {"base_url": api.url, "namespace": "team-a",
                              "pipeline_package": str(package), "token": "t0k3n",
                              "service_account": "driftloop-pipeline-runner"}
    values.update(overrides)
    return RestConfig(**values)


def _sdk(api: FakeKfpApi, token: str | None = "t0k3n") -> Any:
    import kfp_server_api

    config = kfp_server_api.Configuration(host=api.url)
    if token:  # what kfp.Client does with existing_token / SA credentials
        config.api_key["authorization"] = token
        config.api_key_prefix["authorization"] = "Bearer"
    return kfp_server_api.ApiClient(config)


def _same_request(ours: Any, theirs: Any) -> None:
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert sorted(ours.query) == sorted(theirs.query)
    assert ours.body == theirs.body
    assert ours.headers.get("authorization") == theirs.headers.get("authorization")


def _kfp_client(api: FakeKfpApi) -> Any:
    """The kfp SDK's own client against the same stand-in (tests may import the SDK)."""
    import warnings

    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=api.url, existing_token="t0k3n", namespace="team-a")


def test_submit_sends_what_kfp_client_sends(api: FakeKfpApi, package: Path) -> None:
    """Find the experiment, then create the run with the compiled YAML inline: the same two
    requests as ``kfp.Client.create_run_from_pipeline_package``."""
    import kfp_server_api

    api.experiments.append({"experiment_id": "exp-7", "display_name": "driftloop"})
    run = KfpRestBackend(_config(api, package)).submit("driftloop-retrain-drift-x", PARAMS)
    assert run.run_id == "run-1" and run.state == kfp_run.PENDING and run.is_active
    find, create_run = api.requests
    assert create_run.body["experiment_id"] == "exp-7"
    assert create_run.body["runtime_config"] == {"parameters": PARAMS}
    assert "platform_spec" in create_run.body["pipeline_spec"]  # kfp-kubernetes settings kept
    assert set(create_run.body) <= set(kfp_server_api.V2beta1Run.attribute_map.values())

    api.requests.clear()
    _kfp_client(api).create_run_from_pipeline_package(
        str(package), arguments=PARAMS, run_name="driftloop-retrain-drift-x",
        experiment_name="driftloop", namespace="team-a",
        service_account="driftloop-pipeline-runner")
    sdk_find, sdk_run = api.requests
    _same_request(find, sdk_find)
    _same_request(create_run, sdk_run)


def test_experiment_creation_matches_kfp_client(api: FakeKfpApi, package: Path) -> None:
    backend = KfpRestBackend(_config(api, package))
    assert backend.experiment_id() == "exp-1"
    ours = api.requests[1]
    assert ours.body["namespace"] == "team-a"
    api.requests.clear()
    api.experiments.clear()
    _kfp_client(api).create_experiment(
        "driftloop", description="driftloop retrain runs (submitted by Airflow)",
        namespace="team-a")
    _same_request(ours, next(r for r in api.requests if r.method == "POST"))


def test_existing_experiment_is_reused_and_runs_are_read_listed_terminated(
        api: FakeKfpApi, package: Path) -> None:
    import kfp_server_api

    api.experiments.append({"experiment_id": "exp-7", "display_name": "driftloop"})
    backend = KfpRestBackend(_config(api, package))
    run = backend.submit("r", PARAMS)
    assert [r.method for r in api.requests] == ["GET", "POST"], "no second experiment"
    assert api.requests[1].body["experiment_id"] == "exp-7"

    api.requests.clear()
    backend.get(run.run_id)
    backend.recent(20)
    backend.terminate(run.run_id)
    get, _find, listing, terminate = api.requests
    api.requests.clear()
    sdk_runs = kfp_server_api.RunServiceApi(_sdk(api))
    sdk_runs.run_service_get_run(run_id=run.run_id)
    sdk_runs.run_service_list_runs(experiment_id="exp-7", namespace="team-a", page_size=20,
                                   sort_by="created_at desc")
    sdk_runs.run_service_terminate_run(run_id=run.run_id)
    for ours, theirs in zip([get, listing, terminate], api.requests, strict=True):
        _same_request(ours, theirs)


def test_pipeline_version_reference_instead_of_the_yaml(api: FakeKfpApi, package: Path) -> None:
    config = _config(api, package, pipeline_id="p-1", pipeline_version_id="v-3",
                     experiment_id="exp-9", namespace=None, service_account=None,
                     pipeline_root="minio://mlpipeline/driftloop")
    KfpRestBackend(config).submit("r", {"trigger": "schedule"})
    (create,) = api.requests  # experiment id given: no lookup
    assert create.body == {
        "display_name": "r", "experiment_id": "exp-9",
        "pipeline_version_reference": {"pipeline_id": "p-1", "pipeline_version_id": "v-3"},
        "runtime_config": {"parameters": {"trigger": "schedule"},
                           "pipeline_root": "minio://mlpipeline/driftloop"},
    }


def test_service_account_token_is_read_from_its_file_on_every_request(
        api: FakeKfpApi, package: Path, token_file: Path) -> None:
    """Projected tokens rotate: the file is re-read, never cached."""
    backend = KfpRestBackend(_config(api, package, token=None, token_path=str(token_file)))
    backend.experiment_id()
    token_file.write_text("sa-token-2")
    backend.recent(1)
    auth = [r.headers["authorization"] for r in api.requests]
    assert auth[0] == "Bearer sa-token-1" and auth[-1] == "Bearer sa-token-2"


def test_missing_token_file_is_a_clear_error(api: FakeKfpApi, package: Path,
                                             tmp_path: Path) -> None:
    backend = KfpRestBackend(_config(api, package, token=None,
                                     token_path=str(tmp_path / "absent")))
    with pytest.raises(KfpApiError, match="cannot read the KFP service-account token"):
        backend.experiment_id()
    assert api.requests == []


def test_api_errors_name_the_call_and_the_servers_message(api: FakeKfpApi, package: Path
                                                          ) -> None:
    api.errors[("POST", "/apis/v2beta1/runs")] = (
        403, {"error": "denied", "code": 7,
              "message": "PermissionDenied: user cannot create runs in team-a"})
    backend = KfpRestBackend(_config(api, package))
    with pytest.raises(KfpApiError) as err:
        backend.submit("r", PARAMS)
    text = str(err.value)
    assert "POST" in text and "/apis/v2beta1/runs" in text and "403" in text
    assert "user cannot create runs in team-a" in text and "namespace team-a" in text
    with pytest.raises(KfpApiError, match=r"404.*run nope not found"):
        backend.get("nope")


def test_unreachable_api_and_missing_package(package: Path, tmp_path: Path) -> None:
    backend = KfpRestBackend(RestConfig(base_url="http://127.0.0.1:9", experiment_id="e",
                                        pipeline_package=str(package), timeout=2))
    with pytest.raises(KfpApiError, match=r"cannot reach the KFP API at http://127\.0\.0\.1:9"):
        backend.get("r")
    with pytest.raises(KfpApiError, match="python -m kfp_pipelines compile"):
        load_pipeline_spec(tmp_path / "missing.yaml")
    not_a_pipeline = tmp_path / "x.yaml"
    not_a_pipeline.write_text("a: 1\n")
    with pytest.raises(KfpApiError, match="not a compiled KFP pipeline"):
        load_pipeline_spec(not_a_pipeline)


@pytest.mark.parametrize(("state", "terminal", "active", "succeeded"), [
    ("RUNTIME_STATE_UNSPECIFIED", False, True, False),
    ("PENDING", False, True, False),
    ("RUNNING", False, True, False),
    ("PAUSED", False, True, False),
    ("CANCELING", False, True, False),
    ("SUCCEEDED", True, False, True),
    ("SKIPPED", True, False, False),
    ("FAILED", True, False, False),
    ("CANCELED", True, False, False),
    ("SOME_FUTURE_STATE", False, True, False),
])
def test_state_mapping(state: str, terminal: bool, active: bool, succeeded: bool) -> None:
    run = parse_run(RestConfig(base_url="http://kfp", ui_url="http://ui"),
                    {"run_id": "r1", "state": state, "created_at": "2026-01-01T10:00:00Z",
                     "finished_at": "1970-01-01T00:00:00Z",
                     "error": {"code": 2, "message": "step train failed: OOMKilled"}})
    assert (run.is_terminal, run.is_active, run.succeeded) == (terminal, active, succeeded)
    assert run.finished_at is None, "KFP's zero timestamp means not finished"
    assert run.created_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert run.url == "http://ui/#/runs/details/r1"


def test_every_kfp_runtime_state_is_mapped() -> None:
    """No state of KFP's enum falls through to the 'unknown' path."""
    import kfp_server_api

    known = set(kfp_server_api.V2beta1RuntimeState.allowable_values)
    assert known == kfp_run.TERMINAL_STATES | kfp_run.ACTIVE_STATES


def test_failure_message_carries_the_runs_error() -> None:
    run = parse_run(RestConfig(base_url="http://kfp"),
                    {"run_id": "r1", "state": "FAILED",
                     "error": {"message": "evaluate-model: gate metric missing"}})
    assert run.failure_message() == (
        "KFP run r1 (http://kfp/#/runs/details/r1) failed: evaluate-model: gate metric missing")


def test_cooldown_from_the_runs_list(api: FakeKfpApi, package: Path) -> None:
    hook = KfpHook(backend=KfpRestBackend(_config(api, package, experiment_id="e")))
    now = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert hook.cooldown_reason(timedelta(hours=1), now) is None  # no runs at all
    run = hook.submit_run("r", PARAMS)  # created 10:00, PENDING
    reason = hook.cooldown_reason(timedelta(0), now)
    assert reason is not None and "still running" in reason and run.run_id in reason
    assert hook.cooldown_reason(timedelta(0), now, block_if_active=False) is None
    api.runs[run.run_id]["state"] = "SUCCEEDED"
    reason = hook.cooldown_reason(timedelta(hours=1), now)
    assert reason is not None and "cooldown" in reason and "11:00:00" in reason
    assert hook.cooldown_reason(timedelta(minutes=20), now) is None
    assert hook.cooldown_reason(timedelta(0), now) is None


def test_connection_selects_the_backend(monkeypatch: pytest.MonkeyPatch, package: Path,
                                        tmp_path: Path) -> None:
    set_connection(monkeypatch, "kfp_cluster", {
        "conn_type": "http", "host": "ml-pipeline.kubeflow", "port": 8888,
        "extra": {"experiment": "fraud", "namespace": "ml", "use_sa_token": True,
                  "pipeline_package": str(package)}})
    set_connection(monkeypatch, "kfp_local", {
        "conn_type": "generic", "extra": {"backend": "local", "state_dir": str(tmp_path)}})
    set_connection(monkeypatch, "kfp_bad", {"conn_type": "generic",
                                            "extra": {"backend": "argo"}})
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", "/var/run/tokens/kfp")
    cluster = KfpHook("kfp_cluster").backend
    assert isinstance(cluster, KfpRestBackend)
    assert cluster.config.base_url == "http://ml-pipeline.kubeflow:8888"
    assert (cluster.config.experiment, cluster.config.namespace) == ("fraud", "ml")
    assert cluster.config.token_path == "/var/run/tokens/kfp"
    local = KfpHook("kfp_local")
    assert local.backend.name == "local"
    assert local.trigger_kwargs() == {"backend": "local", "kfp_conn_id": "kfp_local",
                                      "runs_dir": str(tmp_path / "kfp-local" / "runs")}
    from airflow.sdk import BaseHook

    with pytest.raises(ValueError, match="'argo' is not one of 'rest'"):
        backend_from_connection(BaseHook.get_connection("kfp_bad"))


def test_trigger_polls_the_api_until_the_run_ends(api: FakeKfpApi, package: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kfp_fake", {"conn_type": "http", "host": api.url,
                                             "password": "t0k3n",
                                             "extra": {"experiment_id": "e"}})
    run = KfpHook("kfp_fake").submit_run("r", PARAMS)
    api.state_sequence[run.run_id] = ["RUNNING", "RUNNING", "FAILED"]
    api.runs[run.run_id]["error"] = {"code": 2, "message": "train-model: exit 1"}
    trigger = KfpRunTrigger(run.run_id, "rest", "kfp_fake", poll_interval=0.01)
    events = asyncio.run(_collect(trigger))
    assert len(events) == 1
    assert events[0]["status"] == "done"
    assert events[0]["run"]["state"] == "FAILED"
    assert events[0]["run"]["error"] == "train-model: exit 1"
    gets = [r for r in api.requests if r.path.endswith(run.run_id)]
    assert len(gets) == 3 and all(r.headers["authorization"] == "Bearer t0k3n" for r in gets)


def test_trigger_kill_terminates_the_run(api: FakeKfpApi, package: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kfp_fake", {"conn_type": "http", "host": api.url,
                                             "extra": {"experiment_id": "e"}})
    run = KfpHook("kfp_fake").submit_run("r", PARAMS)
    asyncio.run(KfpRunTrigger(run.run_id, "rest", "kfp_fake").on_kill())
    assert api.requests[-1].method == "POST"
    assert api.requests[-1].path == f"/apis/v2beta1/runs/{run.run_id}:terminate"


def test_trigger_gives_up_after_repeated_poll_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kfp_down", {"conn_type": "http", "host": "127.0.0.1",
                                             "port": 9, "extra": {"timeout": 1}})
    events = asyncio.run(_collect(KfpRunTrigger("r1", "rest", "kfp_down", poll_interval=0.01)))
    assert [e["status"] for e in events] == ["error"]
    assert "failed 5 times in a row" in events[0]["message"]
    assert "cannot reach the KFP API" in events[0]["message"]


def test_async_poller_sends_the_sync_request(api: FakeKfpApi, package: Path) -> None:
    config = _config(api, package, experiment_id="e")
    run = KfpRestBackend(config).submit("r", PARAMS)
    api.requests.clear()
    KfpRestBackend(config).get(run.run_id)
    asyncio.run(AsyncKfpRestPoller(config).get(run.run_id))
    sync, async_ = api.requests
    _same_request(sync, async_)


async def _collect(trigger: KfpRunTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]
