"""The closed loop, phase by phase: stable traffic, drift, recovery, bad data.

Everything real: a ``driftloop serve`` process, the MLflow store, the prediction log, the
drift-monitor DAG run through ``dag.test()`` with the KFP local runner behind it. The
function :func:`run_demo` returns every figure it shows, so the integration test asserts the
same scenario the user watches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from demo.stack import Server, reset_state
from demo.traffic import (
    BROKEN_FACTOR,
    BackgroundTraffic,
    Served,
    TrafficClient,
    broken_rows,
    drift_factor,
    drifted_rows,
    stable_rows,
    utcnow,
)
from driftloop.errors import DriftloopError
from driftloop.progress import Progress
from driftloop.settings import PROJECT_ROOT, Settings

#: Background answers the new version must give before the swap counts as "under load".
UNDER_LOAD_MIN_ANSWERS = 100


def swapped_under_load(bg: Served, before: str, after: str) -> bool:
    """The claim "the hot swap happened under load" holds: background requests were answered
    by both versions, at least :data:`UNDER_LOAD_MIN_ANSWERS` of them by the new one, and
    nothing failed."""
    by = bg.total_by_version
    return (after != before and by.get(before, 0) > 0
            and by.get(after, 0) >= UNDER_LOAD_MIN_ANSWERS
            and bg.failed == 0 and bg.labels_failed == 0)


def under_load_verdict(bg: Served, before: str, after: str) -> str:
    if swapped_under_load(bg, before, after):
        return "the hot swap happened under load"
    if after == before:
        return "no swap happened (the champion did not change)"
    return (f"the hot swap was NOT shown under load (it needs both versions answering, "
            f">= {UNDER_LOAD_MIN_ANSWERS} by v{after}, and 0 failed)")


@dataclass
class DemoConfig:
    state_dir: Path = PROJECT_ROOT / ".driftloop"
    spec_path: Path = PROJECT_ROOT / "specs" / "iris.yaml"
    port: int = 8000
    stable_rows: int = 300
    drift_rows: int = 300
    after_rows: int = 300
    broken_rows: int = 150
    #: Pause between background requests while Airflow and KFP work (the hot swap happens
    #: under this load).
    background_pause_s: float = 0.01
    seed: int = 7
    reset: bool = True


@dataclass
class Event:
    at: datetime
    what: str


@dataclass
class PhaseResult:
    name: str
    window: tuple[datetime, datetime]
    served: Served
    dag_run_id: str = ""
    dag_state: str = ""
    tasks: dict[str, str | None] = field(default_factory=dict)
    decision: str = ""
    drift: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None
    skipped_reason: str | None = None

    @property
    def retrain_failed(self) -> bool:
        return self.tasks.get("submit_retrain") == "failed"

    @property
    def retrained(self) -> bool:
        return self.tasks.get("submit_retrain") == "success" and not self.skipped_reason


@dataclass
class DemoResult:
    config: DemoConfig
    model_name: str
    champion_before: str
    champion_after: str
    phases: dict[str, PhaseResult]
    background: Served
    after: Served
    timeline: list[Event]
    time_to_recovery_s: float | None
    lineage: dict[str, str]
    artifacts: dict[str, str]
    #: every registered version -> its tags (trigger, retrain_outcome, ...)
    versions: dict[str, dict[str, str]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr (Airflow's task logs) to ``log``, at the
    file-descriptor level so loggers that captured the streams earlier are caught too."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _demo_environ(config: DemoConfig) -> dict[str, str]:
    """The environment every part shares: this demo's state dir and spec, nothing inherited
    from the caller's DRIFTLOOP_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(config.state_dir),
               DRIFTLOOP_SPEC_PATH=str(config.spec_path),
               DRIFTLOOP_SERVER_URL=f"http://127.0.0.1:{config.port}")
    return env


def _start_airflow_migration(config: DemoConfig, server: Server) -> subprocess.Popen[bytes]:
    """Put the local Airflow environment into this process and migrate its metadata DB in a
    child, in parallel with the bootstrap (Airflow is imported only later)."""
    from driftloop_airflow.localenv import airflow_environ, local_connections_environ

    home = config.state_dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_environ(home))
    os.environ.update(local_connections_environ(
        server_url=server.url, state_dir=config.state_dir, token=server.token,
        python=sys.executable))
    log = (config.state_dir / "logs" / "airflow-migrate.log").open("wb")
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.Popen([str(airflow), "db", "migrate"], env=dict(os.environ),
                            stdout=log, stderr=subprocess.STDOUT)


def _phase(name: str, start: datetime, served: Served, outcome: Any) -> PhaseResult:
    submit = outcome.xcoms.get("submit_retrain", {})
    return PhaseResult(
        name=name, window=(start, utcnow()), served=served, dag_run_id=outcome.run_id,
        dag_state=outcome.state, tasks=outcome.tasks,
        decision=next((t for t in ("retrain_parameters", "no_retrain")
                       if outcome.tasks.get(t) == "success"), "refused"),
        drift=outcome.value("drift_status"),
        validation=outcome.value("validate_window", "validation")
        or outcome.value("validate_window"),
        retrain=submit.get("return_value"), skipped_reason=submit.get("skipped_reason"),
    )


def run_demo(config: DemoConfig, progress: Progress | None = None) -> DemoResult:
    progress = progress or Progress()
    timeline: list[Event] = []

    def mark(what: str) -> None:
        timeline.append(Event(utcnow(), what))
        progress.line(what)

    started = utcnow()
    state = config.state_dir.resolve()
    config.state_dir = state
    if config.reset and reset_state(state):
        progress.line(f"starting from a clean local state (removed the previous {state})")
    (state / "logs").mkdir(parents=True, exist_ok=True)
    env = _demo_environ(config)
    os.environ.update(env)
    mark(f"demo started: state {state}, spec {config.spec_path.name}")
    settings = Settings()
    server = Server(state, config.port, env)
    migration = _start_airflow_migration(config, server)

    from driftloop.bootstrap import bootstrap, model_name
    from driftloop.data import load_training_data
    from driftloop.spec import load_spec

    spec = load_spec(config.spec_path)
    name = model_name(settings, spec)
    with progress.step(f"bootstrapping the champion ({config.spec_path.name})"):
        boot = bootstrap(settings)
    champion_before = boot.info["version"]
    mark(f"champion {name} v{champion_before} registered "
         f"(holdout {spec.gate.metric} {boot.info['metrics'][spec.gate.metric]:.3f})")

    with progress.step(f"starting the server on {server.url}"):
        server.start()
    mark(f"server ready at {server.url}, serving v{champion_before}")
    try:
        with progress.step("migrating the local Airflow metadata DB"):
            if migration.wait(timeout=600) != 0:
                raise DriftloopError("`airflow db migrate` failed; see "
                                     f"{state / 'logs' / 'airflow-migrate.log'}")
            from driftloop_airflow.local_runs import run_drift_monitor
            from driftloop_airflow.resources import apply

            apply()  # resources.yaml: the declaration every shape applies
        return _loop(config, progress, mark, timeline, started, spec, name, champion_before,
                     server, run_drift_monitor, load_training_data(spec).frame)
    finally:
        server.stop()


def _loop(config: DemoConfig, progress: Progress, mark: Any, timeline: list[Event],
          started: datetime, spec: Any, name: str, champion_before: str, server: Server,
          run_drift_monitor: Any, frame: Any) -> DemoResult:
    client = TrafficClient(server.url, spec)
    phases: dict[str, PhaseResult] = {}
    params = {"cooldown_minutes": 0, "deploy_target": "local"}
    airflow_log = config.state_dir / "logs" / "demo-airflow.log"
    progress.line(f"Airflow task logs of the DAG runs go to {airflow_log}")

    def monitor(start: datetime, end: datetime) -> Any:
        with _output_to(airflow_log):
            return run_drift_monitor(start, end, **params)

    def serve_then_monitor(name: str, rows: Any, describe: str) -> PhaseResult:
        """Serve a phase's rows, then run the drift monitor on exactly that window."""
        start = utcnow()
        served = client.serve(rows)
        mark(describe.format(sent=served.sent, quality=live_quality(spec, served)))
        with progress.step(f"drift monitor DAG on the {name} window"):
            outcome = monitor(start, utcnow() + timedelta(milliseconds=1))
        phases[name] = _phase(name, start, served, outcome)
        mark(f"drift monitor: {_verdict(phases[name])}")
        return phases[name]

    # --- 1. stable traffic: no drift, no retrain ------------------------------------------
    serve_then_monitor("stable", stable_rows(frame, config.stable_rows, config.seed),
                       "stable phase: {sent} requests from the training distribution, "
                       "live {quality}")

    # --- 2. drift: live quality falls, Airflow notices, KFP retrains, the server swaps ----
    start = utcnow()
    from driftloop.expectations import spec_suite

    growth = drift_factor(frame, spec, spec_suite(frame, spec), config.seed)
    served = client.serve(drifted_rows(frame, spec, config.drift_rows, config.seed + 1,
                                       growth))
    mark(f"drift phase: {served.sent} requests, every measurement x{growth:g}; champion "
         f"v{champion_before} live {live_quality(spec, served)}")
    end = utcnow() + timedelta(milliseconds=1)
    background = BackgroundTraffic(server.url, spec,
                                   drifted_rows(frame, spec, 2000, config.seed + 2, growth),
                                   config.background_pause_s)
    background.start()
    with progress.step("drift monitor DAG on the drifted window (retrain on the KFP local "
                       "runner, gate, register, hot reload)"):
        outcome = monitor(start, end)
    phases["drift"] = _phase("drift", start, served, outcome)
    drift_phase = phases["drift"]
    mark(f"drift monitor: {_verdict(drift_phase)}")
    result = (drift_phase.retrain or {}).get("result") or {}
    champion_after = str(result.get("champion_after") or champion_before)
    if champion_after != champion_before:
        mark(f"new champion v{champion_after} serving ({result.get('gate', {}).get('reason')})")
    if champion_after != champion_before:
        # Keep the load on until the new version has answered enough of it: a swap that
        # no background request saw is not a swap under load.
        background.wait_for_version(champion_after, UNDER_LOAD_MIN_ANSWERS, timeout_s=120)
    bg = background.stop()
    mark(f"background traffic during the retrain and swap: {bg.sent} requests and "
         f"{bg.labels_sent} labels, {bg.failed + bg.labels_failed} failed; answered by "
         + (", ".join(f"v{v} ({n})" for v, n in sorted(bg.total_by_version.items())) or "none")
         + f"; {under_load_verdict(bg, champion_before, champion_after)}")

    after = client.serve(drifted_rows(frame, spec, config.after_rows, config.seed + 3,
                                      growth))
    mark(f"after the swap: {after.sent} drifted requests, live "
         f"{live_quality(spec, after)} (v{champion_after})")
    shadow = client.get("/model").get("shadow") or {}
    if shadow.get("role") == "probation":
        # The loop's safety net after an automatic promotion (driftloop.promotion.live).
        mark(f"probation: v{shadow['version']} keeps scoring beside v{champion_after} "
             f"({shadow['scored_rows']} rows so far); the hourly live gate rolls "
             f"v{champion_after} back if it does significantly worse on live labeled rows")

    # --- 3. bad data: refused, no retrain --------------------------------------------------
    serve_then_monitor("broken", broken_rows(frame, spec, config.broken_rows, config.seed + 4),
                       "bad-data phase: {sent} requests with "
                       f"{spec.features.numeric[0]} in the wrong unit (x{BROKEN_FACTOR:g})")
    client.close()

    first_drift = drift_phase.served.first_at
    swapped = bg.first_seen.get(champion_after) or after.first_seen.get(champion_after)
    ttr = (swapped - first_drift).total_seconds() if (
        first_drift and swapped and champion_after != champion_before) else None
    lineage, artifacts, versions = _lineage(config, name, champion_after, drift_phase,
                                            phases["broken"])
    return DemoResult(
        config=config, model_name=name, champion_before=champion_before,
        champion_after=champion_after, phases=phases, background=bg, after=after,
        timeline=timeline, time_to_recovery_s=ttr, lineage=lineage, artifacts=artifacts,
        versions=versions, seconds=(utcnow() - started).total_seconds(),
    )


def _lineage(config: DemoConfig, name: str, version: str, drift: PhaseResult,
             broken: PhaseResult) -> tuple[dict[str, str], dict[str, str],
                                           dict[str, dict[str, str]]]:
    from driftloop.registry import connect

    client = connect(Settings())
    tags = dict(client.get_model_version(name, version).tags)
    versions = {str(mv.version): dict(mv.tags)
                for mv in client.search_model_versions(f"name = '{name}'")}
    result = (drift.retrain or {}).get("result") or {}
    artifacts = {"kfp_run": str(result.get("artifacts") or ""),
                 "mlflow_store": str(config.state_dir / "mlflow.db"),
                 "prediction_log": str(config.state_dir / "predictions.db"),
                 "validation_report": str((broken.validation or {}).get("report") or ""),
                 "validation_report_url": str((broken.validation or {}).get("report_url")
                                              or "")}
    kfp_dir = Path(artifacts["kfp_run"]) if artifacts["kfp_run"] else None
    evaluation = kfp_dir / "evaluate-model" / "report" if kfp_dir else None
    if evaluation is not None and evaluation.is_file():
        # The KFP artifact is a file named "report"; a copy with .html opens in a browser.
        copy = config.state_dir / "reports" / f"retrain-{kfp_dir.name}.html"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(evaluation, copy)
        artifacts["evaluation_report"] = str(copy)
    # The same report on the challenger's MLflow run, linked from the version's tag.
    artifacts["evaluation_report_mlflow"] = tags.get("evaluation_report", "")
    return tags, artifacts, versions


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def live_quality(spec: Any, served: Served, version: str | None = None) -> str:
    """The task's live figures in words: ``accuracy 96.7%``, or ``mae 231.4, rmse 298``."""
    figures = served.live(spec.task_impl, version)
    return ", ".join(f"{name} {_pct(value) if name == 'accuracy' else _num(value)}"
                     for name, value in figures.items())


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _verdict(phase: PhaseResult) -> str:
    drift = phase.drift or {}
    if phase.decision == "refused":
        summary = (phase.validation or {}).get("summary", "validation failed")
        return f"data REFUSED, no retrain: {summary}"
    if phase.retrained:
        result = (phase.retrain or {}).get("result") or {}
        return (f"DRIFT: {'; '.join(drift.get('reasons') or []) or '?'} → retrain "
                f"{result.get('outcome', '?')} (KFP run {result.get('kfp_run_name')})")
    if phase.retrain_failed:
        return (f"DRIFT: {'; '.join(drift.get('reasons') or []) or '?'} → retrain FAILED "
                "(its error is in the Airflow task log)")
    if phase.skipped_reason:
        return f"retrain skipped: {phase.skipped_reason}"
    return (f"no drift ({drift.get('window', {}).get('rows', '?')} rows, "
            f"{len(drift.get('drifted_features', []))} drifted features) → no retrain")
