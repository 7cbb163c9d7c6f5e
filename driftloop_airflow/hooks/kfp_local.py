"""The local backend of KfpHook: the same retrain pipeline through the KFP local runner.

``<python> -m kfp_pipelines run-local ...`` runs in a detached subprocess (its own session,
so it outlives the task that started it and the task can defer). Each run has a directory
under ``<state_dir>/kfp-local/runs/<run_id>/``:

- ``run.json``: the record (run id, parameters, command, pid, created_at);
- ``stdout.log`` / ``stderr.log``: the runner's output; its last JSON line is the result;
- ``exit_code``: written by the wrapper shell when the runner ends (atomically, via rename);
- ``terminated``: written before the process group is killed (user kill, cancel).

The state is derived from those files and the process, with KFP's state names, so the
triggerer polls a run it did not start. Submissions are serialized with an ``flock`` on
``submit.lock``: two DAG runs on this machine never both submit.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop_airflow.hooks.kfp_run import (
    CANCELED,
    CANCELING,
    FAILED,
    RUNNING,
    SUCCEEDED,
    KfpRun,
)

#: The wrapper records the runner's exit status when it ends, whoever is (not) waiting for it.
_WRAPPER = ('d="$1"; shift; "$@" >"$d/stdout.log" 2>"$d/stderr.log"; '
            'echo $? >"$d/exit_code.tmp"; mv "$d/exit_code.tmp" "$d/exit_code"')
_TAIL_LINES = 15


@dataclass(frozen=True)
class LocalConfig:
    runs_dir: Path
    python: str = field(default_factory=lambda: sys.executable)
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    pipeline_root: str | None = None
    extra_args: tuple[str, ...] = ()

    @classmethod
    def from_connection(cls, conn: Any, *, default_state_dir: Path,
                        default_workdir: Path) -> LocalConfig:
        extra = conn.extra_dejson or {}
        state_dir = Path(extra.get("state_dir") or default_state_dir).expanduser()
        return cls(
            runs_dir=(state_dir / "kfp-local" / "runs").resolve(),
            python=extra.get("python") or sys.executable,
            workdir=str(extra.get("workdir") or default_workdir),
            env={str(k): str(v) for k, v in (extra.get("env") or {}).items()},
            pipeline_root=extra.get("pipeline_root"),
            extra_args=tuple(str(a) for a in extra.get("args") or ()),
        )


def runner_command(config: LocalConfig, parameters: dict[str, Any]) -> list[str]:
    """``python -m kfp_pipelines run-local --param NAME=VALUE ...`` (its README's flags)."""
    command = [config.python, "-m", "kfp_pipelines", "run-local"]
    for name, value in parameters.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        command += ["--param", f"{name}={value}"]
    if config.pipeline_root:
        command += ["--pipeline-root", config.pipeline_root]
    return [*command, *config.extra_args]


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a finished child nobody waited for still answers kill 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def _last_json_line(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def read_run(runs_dir: Path, run_id: str) -> KfpRun:
    """A local run's state from its directory and process (no process handle needed)."""
    run_dir = runs_dir / run_id
    record_path = run_dir / "run.json"
    if not record_path.exists():
        raise FileNotFoundError(f"no local KFP run {run_id!r} under {runs_dir}")
    record = json.loads(record_path.read_text())
    run = KfpRun(run_id=run_id, state=RUNNING, display_name=record.get("display_name"),
                 created_at=datetime.fromisoformat(record["created_at"]), backend="local",
                 url=str(run_dir), details={"pid": record.get("pid"),
                                            "parameters": record.get("parameters")})
    exit_path = run_dir / "exit_code"
    terminated = (run_dir / "terminated").exists()
    if exit_path.exists():
        code = int(exit_path.read_text().strip() or "1")
        run.finished_at = datetime.fromtimestamp(exit_path.stat().st_mtime, tz=UTC)
        run.result = _last_json_line(run_dir / "stdout.log")
        if code == 0 and not terminated:
            run.state = SUCCEEDED
        else:
            run.state = CANCELED if terminated else FAILED
            reported = (run.result or {}).get("error")
            step = (run.result or {}).get("failed_step")
            if reported and step:
                reported = f"step {step}: {reported}"
            run.error = str(reported) if reported else (
                f"the local runner exited with status {code}; stderr ends with:\n"
                f"{_tail(run_dir / 'stderr.log')}")
        return run
    pid = int(record.get("pid") or 0)
    if pid and _pid_alive(pid):
        run.state = CANCELING if terminated else RUNNING
        return run
    run.state = CANCELED if terminated else FAILED
    run.finished_at = datetime.now(UTC)
    run.error = (f"the local runner (pid {pid}) ended without recording an exit status "
                 f"(killed?); stderr ends with:\n{_tail(run_dir / 'stderr.log')}")
    return run


class KfpLocalBackend:
    """Runs the pipeline with the KFP local runner in a detached subprocess."""

    name = "local"

    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    def submit(self, display_name: str, parameters: dict[str, Any]) -> KfpRun:
        run_id = f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        run_dir = self.config.runs_dir / run_id
        run_dir.mkdir(parents=True)
        command = runner_command(self.config, parameters)
        env = {**os.environ, **self.config.env}
        created = datetime.now(UTC)
        record = {"run_id": run_id, "display_name": display_name, "parameters": parameters,
                  "command": command, "created_at": created.isoformat(),
                  "workdir": self.config.workdir, "pid": None}
        (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str))
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "driftloop-kfp-local", str(run_dir), *command],
                cwd=self.config.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            (run_dir / "exit_code").write_text("127\n")
            (run_dir / "stderr.log").write_text(f"cannot start {shlex.join(command)}: {exc}\n")
            raise
        record["pid"] = process.pid
        (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str))
        return read_run(self.config.runs_dir, run_id)

    def get(self, run_id: str) -> KfpRun:
        return read_run(self.config.runs_dir, run_id)

    def recent(self, limit: int = 20) -> list[KfpRun]:
        if not self.config.runs_dir.exists():
            return []
        names = sorted((p.name for p in self.config.runs_dir.iterdir()
                        if (p / "run.json").exists()), reverse=True)
        runs = [read_run(self.config.runs_dir, name) for name in names[:limit]]
        return sorted(runs, key=lambda r: r.created_at or datetime.min.replace(tzinfo=UTC),
                      reverse=True)

    def terminate(self, run_id: str) -> None:
        terminate_local(self.config.runs_dir, run_id)

    @contextmanager
    def submission_lock(self) -> Iterator[None]:
        """Cross-process mutual exclusion for "check cooldown + submit" on this machine."""
        self.config.runs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.runs_dir / "submit.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def trigger_kwargs(self) -> dict[str, Any]:
        return {"runs_dir": str(self.config.runs_dir)}


def terminate_local(runs_dir: Path, run_id: str) -> None:
    """Mark the run terminated, then kill its process group (the runner and its children)."""
    run_dir = runs_dir / run_id
    record = json.loads((run_dir / "run.json").read_text())
    if (run_dir / "exit_code").exists():
        return
    (run_dir / "terminated").write_text(datetime.now(UTC).isoformat())
    pid = int(record.get("pid") or 0)
    if pid:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)


class AsyncKfpLocalPoller:
    """The triggerer's view of a local run: file reads off the event loop."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.runs_dir = Path(runs_dir)

    async def get(self, run_id: str) -> KfpRun:
        return await asyncio.to_thread(read_run, self.runs_dir, run_id)

    async def terminate(self, run_id: str) -> None:
        await asyncio.to_thread(terminate_local, self.runs_dir, run_id)
