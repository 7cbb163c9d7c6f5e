"""KfpHook's local backend: detached runner processes, their state, the lock, the trigger.

The runner here is a real subprocess standing in for ``python -m kfp_pipelines run-local``
(a shell script that behaves as told), so the process handling, the state files and the
state mapping are exercised for real; the real pipeline runs in test_dag_runs.py.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from driftloop_airflow.hooks import kfp_run
from driftloop_airflow.hooks.kfp import KfpHook
from driftloop_airflow.hooks.kfp_local import (
    AsyncKfpLocalPoller,
    KfpLocalBackend,
    LocalConfig,
    read_run,
    runner_command,
)
from driftloop_airflow.triggers.kfp import KfpRunTrigger

FAKE_RUNNER = """#!/bin/sh
# Stands in for `python -m kfp_pipelines run-local ...`: records its argv, then behaves as told.
echo "$@" > "$FAKE_DIR/argv.$$"
echo "runner log line" >&2
if [ -n "$FAKE_CHILD" ]; then sleep 300 & echo $! > "$FAKE_DIR/child.pid"; fi
sleep "${FAKE_SLEEP:-0}"
[ -n "$FAKE_STDOUT" ] && echo "$FAKE_STDOUT"
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_RUNNER)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _backend(tmp_path: Path, runner: Path, **env: str) -> KfpLocalBackend:
    return KfpLocalBackend(LocalConfig(runs_dir=tmp_path / "runs", python=str(runner),
                                       workdir=str(tmp_path),
                                       env={"FAKE_DIR": str(tmp_path), **env}))


def _wait_terminal(backend: KfpLocalBackend, run_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = backend.get(run_id)
        if run.is_terminal:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {backend.get(run_id)}")


def test_success_reports_the_runners_json_summary(tmp_path: Path, runner: Path) -> None:
    summary = '{"status": "succeeded", "promoted": true, "new_version": "2"}'
    backend = _backend(tmp_path, runner, FAKE_SLEEP="0.5", FAKE_STDOUT=summary)
    run = backend.submit("retrain", {"trigger": "drift", "min_value": -1.0})
    assert run.state == kfp_run.RUNNING and run.is_active and run.backend == "local"
    done = _wait_terminal(backend, run.run_id)
    assert done.state == kfp_run.SUCCEEDED
    assert done.result == {"status": "succeeded", "promoted": True, "new_version": "2"}
    assert done.finished_at is not None and done.error is None
    argv = next(tmp_path.glob("argv.*")).read_text().split()
    assert argv == ["-m", "kfp_pipelines", "run-local", "--param", "trigger=drift",
                    "--param", "min_value=-1.0"]


def test_failed_step_and_error_come_from_the_summary(tmp_path: Path, runner: Path) -> None:
    summary = ('{"status": "failed", "failed_step": "validate_data", '
               '"error": "petal_length: 40% out of range"}')
    backend = _backend(tmp_path, runner, FAKE_STDOUT=summary, FAKE_EXIT="1")
    done = _wait_terminal(backend, backend.submit("retrain", {}).run_id)
    assert done.state == kfp_run.FAILED
    assert done.error == "step validate_data: petal_length: 40% out of range"
    assert "failed: step validate_data" in done.failure_message()


def test_a_crash_without_summary_reports_the_stderr_tail(tmp_path: Path, runner: Path) -> None:
    backend = _backend(tmp_path, runner, FAKE_EXIT="3")
    done = _wait_terminal(backend, backend.submit("retrain", {}).run_id)
    assert done.state == kfp_run.FAILED
    assert "exited with status 3" in done.error and "runner log line" in done.error


def test_terminate_kills_the_whole_process_group(tmp_path: Path, runner: Path) -> None:
    backend = _backend(tmp_path, runner, FAKE_SLEEP="300", FAKE_CHILD="1")
    run = backend.submit("retrain", {})
    child_pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 10
    while not child_pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    backend.terminate(run.run_id)
    done = _wait_terminal(backend, run.run_id)
    assert done.state == kfp_run.CANCELED
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the runner's own children must die with it"


def test_a_runner_killed_behind_our_back_is_failed_not_running(tmp_path: Path, runner: Path
                                                               ) -> None:
    import signal

    backend = _backend(tmp_path, runner, FAKE_SLEEP="300")
    run = backend.submit("retrain", {})
    os.killpg(run.details["pid"], signal.SIGKILL)
    done = _wait_terminal(backend, run.run_id)
    assert done.state == kfp_run.FAILED
    assert "ended without recording an exit status" in done.error


def test_a_runner_that_cannot_start_fails_the_submission(tmp_path: Path) -> None:
    backend = KfpLocalBackend(LocalConfig(runs_dir=tmp_path / "runs", python="/bin/true",
                                          workdir=str(tmp_path / "no-such-dir")))
    with pytest.raises(OSError):
        backend.submit("retrain", {})
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert read_run(tmp_path / "runs", run_dir.name).state == kfp_run.FAILED


def test_recent_runs_are_newest_first_and_feed_the_cooldown(tmp_path: Path, runner: Path
                                                            ) -> None:
    from datetime import UTC, datetime, timedelta

    backend = _backend(tmp_path, runner, FAKE_SLEEP="300")
    hook = KfpHook(backend=backend)
    first = backend.submit("a", {})
    backend.terminate(first.run_id)
    _wait_terminal(backend, first.run_id)
    second = backend.submit("b", {})
    assert [r.run_id for r in hook.recent_runs()] == [second.run_id, first.run_id]
    assert [r.run_id for r in hook.list_active_runs()] == [second.run_id]
    reason = hook.cooldown_reason(timedelta(0), datetime.now(UTC))
    assert reason is not None and second.run_id in reason
    backend.terminate(second.run_id)
    _wait_terminal(backend, second.run_id)
    assert hook.cooldown_reason(timedelta(0), datetime.now(UTC)) is None
    assert "cooldown" in hook.cooldown_reason(timedelta(hours=1), datetime.now(UTC))


def test_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no local KFP run 'nope'"):
        read_run(tmp_path, "nope")


def test_submission_lock_excludes_other_holders(tmp_path: Path, runner: Path) -> None:
    """flock: a second submitter waits until the first has checked and submitted."""
    backend = _backend(tmp_path, runner)
    order: list[str] = []
    entered = threading.Event()

    def other() -> None:
        entered.set()
        with _backend(tmp_path, runner).submission_lock():
            order.append("other")

    with backend.submission_lock():
        thread = threading.Thread(target=other)
        thread.start()
        entered.wait(5)
        time.sleep(0.3)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]


def test_runner_command_is_what_the_pipeline_cli_parses() -> None:
    """The flags are the pipeline's own (`run-local --param NAME=VALUE`), with its types."""
    from driftloop_airflow.decisions import retrain_parameters
    from kfp_pipelines.__main__ import build_parser
    from kfp_pipelines.local_run import parse_params
    from kfp_pipelines.retrain_pipeline import PARAMETERS

    params = retrain_parameters(
        window={"start": "2026-01-01T10:00:00+00:00", "end": "2026-01-01T11:00:00+00:00"},
        reason="drift", airflow_run_id="manual__x", model_name="iris-classifier",
        params={"gate_min_value": 0.9}, deploy_target="local")
    assert set(params) == set(PARAMETERS), "every pipeline parameter, no other"
    command = runner_command(LocalConfig(runs_dir=Path("/tmp"), python="py",
                                         pipeline_root="/tmp/root"), params)
    assert command[:4] == ["py", "-m", "kfp_pipelines", "run-local"]
    args = build_parser().parse_args(command[3:])
    assert str(args.pipeline_root) == "/tmp/root"
    parsed = parse_params(args.param)
    assert parsed == params
    assert all(type(parsed[k]) is type(PARAMETERS[k]) for k in parsed)


def test_trigger_follows_a_local_run_to_its_end(tmp_path: Path, runner: Path) -> None:
    backend = _backend(tmp_path, runner, FAKE_SLEEP="0.5",
                       FAKE_STDOUT='{"status": "succeeded", "promoted": false}')
    run = backend.submit("retrain", {})
    kwargs = KfpHook(backend=backend).trigger_kwargs()
    trigger = KfpRunTrigger(run.run_id, poll_interval=0.05, **kwargs)
    events = asyncio.run(_collect(trigger))
    assert [e["status"] for e in events] == ["done"]
    assert events[0]["run"]["state"] == "SUCCEEDED"
    assert events[0]["run"]["result"] == {"status": "succeeded", "promoted": False}


def test_trigger_deadline_yields_a_timeout_event(tmp_path: Path, runner: Path) -> None:
    backend = _backend(tmp_path, runner, FAKE_SLEEP="300")
    run = backend.submit("retrain", {})
    trigger = KfpRunTrigger(run.run_id, poll_interval=0.05, deadline=time.time() + 0.3,
                            **KfpHook(backend=backend).trigger_kwargs())
    events = asyncio.run(_collect(trigger))
    assert [e["status"] for e in events] == ["timeout"]
    assert "still RUNNING at the deadline" in events[0]["message"]
    asyncio.run(trigger.on_kill())
    assert _wait_terminal(backend, run.run_id).state == kfp_run.CANCELED


def test_trigger_serializes_to_what_rebuilds_it(tmp_path: Path) -> None:
    """The triggerer rebuilds the trigger from serialize(), through Airflow's serde."""
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    trigger = KfpRunTrigger("local-1", "local", "driftloop_kfp", runs_dir=str(tmp_path),
                            poll_interval=5.0, deadline=1_900_000_000.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "driftloop_airflow.triggers.kfp.KfpRunTrigger"
    rebuilt = import_string(classpath)(**deserialize(serialize(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_async_poller_reads_what_the_backend_reads(tmp_path: Path, runner: Path) -> None:
    backend = _backend(tmp_path, runner, FAKE_STDOUT='{"status": "succeeded"}')
    run = _wait_terminal(backend, backend.submit("retrain", {}).run_id)
    polled = asyncio.run(AsyncKfpLocalPoller(tmp_path / "runs").get(run.run_id))
    assert polled.as_event() == run.as_event()


def _alive(pid: int) -> bool:
    from driftloop_airflow.hooks.kfp_local import _pid_alive

    return _pid_alive(pid)


async def _collect(trigger: KfpRunTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _operator(tmp_path: Path, runner: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
              ) -> Any:
    from driftloop_airflow.operators.kfp import SubmitKfpRunOperator
    from tests.airflow.conftest import set_connection

    set_connection(monkeypatch, "kfp_test", {"conn_type": "generic", "extra": {
        "backend": "local", "state_dir": str(tmp_path), "python": str(runner),
        "workdir": str(tmp_path), "env": {"FAKE_DIR": str(tmp_path), **kwargs.pop("env", {})}}})
    kwargs.setdefault("display_name", "r")
    return SubmitKfpRunOperator(task_id="submit", kfp_conn_id="kfp_test",
                                parameters={"trigger": "drift"}, **kwargs)


def test_operator_defers_to_the_trigger_and_fails_with_the_runs_error(
        tmp_path: Path, runner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    # The run lasts 0.5 s: still running when the operator first looks, so it defers (an
    # instant exit made the operator see the end at once, and fail without deferring).
    op = _operator(tmp_path, runner, monkeypatch, env={
        "FAKE_SLEEP": "0.5", "FAKE_EXIT": "1",
        "FAKE_STDOUT": '{"status": "failed", "failed_step": "train_model", '
                       '"error": "no labeled rows"}'})
    ti = _TI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert isinstance(trigger, KfpRunTrigger) and trigger.backend == "local"
    assert trigger.run_id == ti.pushed["kfp_run_id"] and trigger.poll_interval == 2.0
    trigger.poll_interval = 0.05
    (event,) = asyncio.run(_collect(trigger))
    with pytest.raises(AirflowFailException,
                       match="failed: step train_model: no labeled rows"):
        op.execute_complete({"ti": ti}, event)


def test_operator_skips_while_a_run_is_active_and_terminates_on_timeout(
        tmp_path: Path, runner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

    op = _operator(tmp_path, runner, monkeypatch, env={"FAKE_SLEEP": "300"})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": _TI()})
    run_id = deferred.value.trigger.run_id
    # Another DAG run (its own run name).
    second = _operator(tmp_path, runner, monkeypatch, env={"FAKE_SLEEP": "300"},
                       display_name="r2")
    ti = _TI()
    with pytest.raises(AirflowSkipException, match=f"a retrain is still running: {run_id}"):
        second.execute({"ti": ti})
    assert ti.pushed["skipped_reason"].startswith("a retrain is still running")
    with pytest.raises(AirflowFailException, match="terminated it"):
        op.execute_complete({}, {"status": "timeout", "run_id": run_id,
                                 "message": f"KFP run {run_id} still RUNNING at the deadline"})
    backend = KfpHook("kfp_test").backend
    assert _wait_terminal(backend, run_id).state == kfp_run.CANCELED


def test_operator_can_wait_in_place(tmp_path: Path, runner: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    op = _operator(tmp_path, runner, monkeypatch, deferrable=False, poll_interval=0.05,
                   env={"FAKE_STDOUT": '{"status": "succeeded", "promoted": true}'})
    result = op.execute({"ti": _TI()})
    assert result["state"] == "SUCCEEDED" and result["result"]["promoted"] is True


def test_operator_refuses_bad_arguments(tmp_path: Path, runner: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    bad = _operator(tmp_path, runner, monkeypatch, cooldown_minutes="soon")
    with pytest.raises(AirflowFailException, match="cooldown_minutes must be a number"):
        bad.execute({"ti": _TI()})
    bad = _operator(tmp_path, runner, monkeypatch)
    bad.parameters = "{'trigger': 'drift'}"  # a template rendered to a string
    with pytest.raises(AirflowFailException, match="parameters must be a dict"):
        bad.execute({"ti": _TI()})
    assert not (tmp_path / "kfp-local" / "runs").exists() or not any(
        (tmp_path / "kfp-local" / "runs").glob("local-*"))


def test_a_later_attempt_follows_its_own_run_and_never_skips_for_it(
        tmp_path: Path, runner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow may retry a deferred task whose run already failed (it saw the deferral's
    exit as a state change from outside). The retry must fail with that run's error, not
    skip for the cooldown of its own run (a green task over a failed retrain), and must not
    submit a second retrain for the same DAG run."""
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    failing = {"FAKE_EXIT": "1", "FAKE_STDOUT": '{"status": "failed", "failed_step": '
                                                '"load_data", "error": "no such spec"}'}
    first = _operator(tmp_path, runner, monkeypatch, env=failing, cooldown_minutes=60)
    first_ti = _TI()
    try:
        first.execute({"ti": first_ti})
    except TaskDeferred as exc:
        run_id = exc.trigger.run_id
        _wait_terminal(KfpHook("kfp_test").backend, run_id)
    except AirflowFailException:  # the fake run failed before the task could defer
        run_id = first_ti.pushed["kfp_run_id"]
    else:
        raise AssertionError("the first attempt neither deferred nor failed")

    retry = _operator(tmp_path, runner, monkeypatch, env=failing, cooldown_minutes=60)
    ti = _TI()
    with pytest.raises(AirflowFailException, match=f"KFP run {run_id} .*failed: step "
                                                   "load_data: no such spec"):
        retry.execute({"ti": ti})
    assert ti.pushed["kfp_run_id"] == run_id and "skipped_reason" not in ti.pushed
    assert len(list((tmp_path / "kfp-local" / "runs").glob("local-*"))) == 1

    # While the run is still going, a later attempt waits for that same run.
    slow = _operator(tmp_path, runner, monkeypatch, env={"FAKE_SLEEP": "300"},
                     display_name="slow")
    with pytest.raises(TaskDeferred) as deferred:
        slow.execute({"ti": _TI()})
    again = _operator(tmp_path, runner, monkeypatch, display_name="slow")
    with pytest.raises(TaskDeferred) as followed:
        again.execute({"ti": _TI()})
    assert followed.value.trigger.run_id == deferred.value.trigger.run_id
    assert len(list((tmp_path / "kfp-local" / "runs").glob("local-*"))) == 2
    KfpHook("kfp_test").terminate_run(deferred.value.trigger.run_id)
