"""Load during rollout: reloads of good and broken versions under concurrent /predict load.

32 keep-alive connections post /predict back to back while the admin API reloads versions
one after another: good ones (they must swap in) and broken ones (registered, but their
ONNX file is corrupt or their artifacts are gone: they must be refused with the old model
still serving). Every request is recorded with its send/receive instants and the version
that answered; every reload with its call's bounds; ``GET /model`` is polled alongside to
narrow down each switch instant. Then:

- no request failed;
- every answer's version was serving at some instant of its request;
- after a graceful stop, the prediction log holds every answered row, under the version
  that answered it.

``make test``: 2,000 requests during 3 reloads; ``make reliability``: 10,000 during 5.
(This replaces tests/serving/test_processes.py's reload-under-load test.)
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from driftloop.predlog import PredictionLog
from driftloop.registry import connect, register_version
from driftloop.settings import Settings
from tests.conftest import IRIS_SPEC
from tests.reliability.conftest import copy_store
from tests.reliability.figures import Figures
from tests.reliability.load import (
    Answer,
    Poll,
    Reload,
    poll_model,
    predict_load,
    serving_windows,
    unexplained,
)
from tests.reliability.scale import SCALE
from tests.reliability.server import TOKEN, running_server, server_env

pytestmark = pytest.mark.slow

MODEL = "iris-classifier"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def register_versions(state: Path) -> dict[str, str]:
    """Versions 2 and 3 (good: v1's model again), 4 (its ONNX file is corrupt) and 5 (a run
    whose driftloop/ artifacts are missing). Returns version -> kind."""
    import mlflow.artifacts

    client = connect(Settings(state_dir=state, spec_path=IRIS_SPEC))
    v1 = client.get_model_version(MODEL, "1")
    kinds = {"1": "good"}
    for _ in range(2):
        kinds[register_version(client, MODEL, v1.run_id, v1.source, {"kind": "good"})] = "good"
    experiment = client.get_run(v1.run_id).info.experiment_id
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(run_id=v1.run_id,
                                                         artifact_path="driftloop",
                                                         dst_path=tmp))
        (local / "model.onnx").write_bytes(b"\x08\x07not an onnx graph")
        run = client.create_run(experiment, run_name="corrupt-onnx")
        client.log_artifacts(run.info.run_id, str(local), "driftloop")
        client.set_terminated(run.info.run_id)
    kinds[register_version(client, MODEL, run.info.run_id, v1.source,
                           {"kind": "corrupt onnx"})] = "broken: corrupt ONNX"
    empty = client.create_run(experiment, run_name="artifacts-removed")
    client.set_terminated(empty.info.run_id)
    kinds[register_version(client, MODEL, empty.info.run_id, v1.source,
                           {"kind": "no artifacts"})] = "broken: artifacts missing"
    assert sorted(kinds) == ["1", "2", "3", "4", "5"]
    return kinds


#: The reloads, in order: good and broken versions mixed; the last one goes back to v1.
PLANS = {3: ["2", "4", "1"], 5: ["2", "4", "3", "5", "1"]}


async def rollout(url: str, plan: list[str], total: int, connections: int,
                  ) -> tuple[list[Answer], list[Poll], list[Reload]]:
    answers: list[Answer] = []
    polls: list[Poll] = []
    reloads: list[Reload] = []
    reloads_done = asyncio.Event()
    tail = max(200, total // 20)  # answers after the last reload, on its version
    stop_at: list[int] = []

    def stop(sent: int) -> bool:
        return reloads_done.is_set() and sent >= max(total, stop_at[0])

    async def controller() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=180, headers=AUTH) as admin:
            for k, version in enumerate(plan):
                # Spread over the run: reload k once (k+1)/(n+1) of the requests are answered.
                while len(answers) < total * (k + 1) // (len(plan) + 1):
                    await asyncio.sleep(0.005)
                before = (await admin.get("/model")).json()["version"]
                started = time.monotonic()
                response = await admin.post("/admin/reload", json={"version": version})
                ended = time.monotonic()
                after = (await admin.get("/model")).json()["version"]
                body = response.json()
                reloads.append(Reload(version, started, ended, response.status_code,
                                      str(body.get("detail", "")), before, after))
        stop_at.append(len(answers) + tail)
        reloads_done.set()

    polling = asyncio.Event()
    poller = asyncio.create_task(poll_model(url, polls, polling))
    await asyncio.gather(controller(), predict_load(url, connections, stop, answers))
    polling.set()
    await poller
    return answers, polls, reloads


@pytest.mark.timeout(1200)
def test_reloads_under_load_fail_no_request_and_every_answer_is_from_a_serving_version(
    champion_template: Path, tmp_path: Path, figures: Figures,
) -> None:
    state = copy_store(champion_template, tmp_path)
    kinds = register_versions(state)
    plan = PLANS[SCALE.rollout_reloads]
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    env = server_env(state, log_url, DRIFTLOOP_MODEL_VERSION="1")  # start on v1
    with running_server(env, tmp_path / "server.log") as server:
        started = time.monotonic()
        answers, polls, reloads = asyncio.run(rollout(
            server.url, plan, SCALE.rollout_requests, SCALE.rollout_connections))
        seconds = time.monotonic() - started
        exit_code = server.terminate()  # graceful: the log is drained
        assert exit_code in (0, -15), server.output()[-3000:]

    # Each reload did what its version deserves; a refused one left the old model serving.
    for reload in reloads:
        if kinds[reload.version] == "good":
            assert reload.status == 200, (reload, kinds)
            assert reload.served_after == reload.version
        else:
            assert reload.status == 422, (reload, kinds)
            assert f"still serving version {reload.served_before}" in reload.detail
            assert reload.served_after == reload.served_before
    assert [r.version for r in reloads] == plan

    failed = [a for a in answers if not a.ok]
    windows, uncertainty = serving_windows("1", reloads, polls)
    wrong = unexplained(answers, windows)
    versions = Counter(a.version for a in answers if a.ok)
    latencies = sorted(a.received - a.sent for a in answers)

    # The log, after the drain: every answered row, under the version that answered it.
    expected = {rid: a.version for a in answers if a.ok for rid in a.request_ids}
    log = PredictionLog(log_url, create=False)
    try:
        stored = log.served(list(expected))
    finally:
        log.dispose()
    missing = [rid for rid in expected if rid not in stored]
    mislabeled = [rid for rid, version in expected.items()
                  if rid in stored and stored[rid][1] != version]

    figures.record(
        "rollout_load", requests=len(answers), connections=SCALE.rollout_connections,
        failed_requests=len(failed), answers_not_from_a_serving_version=len(wrong),
        rows_answered=len(expected), rows_missing_from_log=len(missing),
        rows_logged_under_another_version=len(mislabeled),
        reloads=[{"version": r.version, "kind": kinds[r.version], "status": r.status,
                  "seconds": round(r.ended - r.started, 3)} for r in reloads],
        answers_by_version=dict(sorted(versions.items())),
        max_switch_uncertainty_ms=round(1000 * max(uncertainty), 1),
        model_polls=len(polls), seconds=round(seconds, 1),
        requests_per_second=round(len(answers) / seconds),
        latency_ms={"p50": round(1000 * statistics.median(latencies), 1),
                    "p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
                    "max": round(1000 * latencies[-1], 1)})

    assert len(answers) >= SCALE.rollout_requests
    assert failed == [], Counter((a.status, a.error) for a in failed).most_common(5)
    assert wrong == [], wrong[:5]
    # Every good version of the plan answered some requests; no broken one ever did.
    assert set(versions) == {v for v in ["1", *plan] if kinds[v] == "good"}
    assert missing == [] and mislabeled == []
