"""Run the retrain pipeline with KFP's local runner and report what it changed.

Each task runs as a subprocess of the current interpreter (``SubprocessRunner(use_venv=
False)``: the components install nothing), writing its artifacts under
``<state_dir>/kfp/<run name>/``. The run's log goes to stderr; stdout receives exactly one
JSON line, for the Airflow side to parse::

    {"status": "succeeded"|"failed", "failed_step": ..., "error": ..., "run_key": ...,
     "champion_before": ..., "champion_after": ..., "promoted": ..., "new_version": ...,
     "version": ..., "outcome": ..., "gate": {...}, "kfp_run_name": ..., "artifacts": ...}
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from driftloop.errors import DriftloopError
from driftloop.retrain import FAILURE_MARKER
from kfp_pipelines.retrain_pipeline import PARAMETERS


class UsageError(DriftloopError):
    """A bad ``--param``: the run does not start."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs → typed pipeline arguments (types from the defaults)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE")
        if name not in PARAMETERS:
            raise UsageError(f"--param {name!r}: unknown parameter (known: "
                             f"{', '.join(PARAMETERS)})")
        kind = type(PARAMETERS[name])
        try:
            out[name] = kind(raw)
        except ValueError:
            raise UsageError(f"--param {name}={raw!r}: not a valid {kind.__name__}") from None
    return out


class _Tee(io.TextIOBase):
    """Forwards writes and keeps the step-failure marker lines."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._partial = ""
        self.failures: list[dict[str, str]] = []

    def write(self, text: str) -> int:
        self._target.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            # The runner indents subprocess output; the marker may not start the line.
            _, marker, payload = line.partition(FAILURE_MARKER + " ")
            if marker:
                with contextlib.suppress(ValueError):
                    self.failures.append(json.loads(payload))
        return len(text)

    def flush(self) -> None:
        self._target.flush()


def _resolve(params: dict[str, Any]) -> tuple[Any, str | None]:
    """(context, run key) of the request; None where the parameters do not resolve (the
    run's load_data step then fails, naming the reason)."""
    from driftloop import run_context

    try:
        ctx = run_context.context(params.get("model_name", ""), params.get("spec", ""))
    except DriftloopError:
        return None, None
    try:
        lin = run_context.Lineage(params.get("trigger", PARAMETERS["trigger"]),
                              params.get("window_start", ""), params.get("window_end", ""),
                              params.get("airflow_run_id", ""))
    except DriftloopError:
        return ctx, None
    return ctx, lin.run_key(ctx)


def _run_identity(root: Path, new_runs: list[str]) -> dict[str, Any]:
    """This run's KFP name (its directory under the pipeline root; submissions on one
    machine are serialized by the Airflow hook) and id (from load_data's run record)."""
    if not new_runs:
        return {"kfp_run_name": None, "kfp_run_id": None, "artifacts": None}
    run_dir = root / new_runs[-1]
    run_id = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        output = json.loads((run_dir / "load-data" / "executor_output.json").read_text())
        run_id = json.loads(output["parameterValues"]["run"])["kfp_run_id"] or None
    return {"kfp_run_name": run_dir.name, "kfp_run_id": run_id, "artifacts": str(run_dir)}


@contextlib.contextmanager
def _env_unchanged() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def run_local(params: dict[str, Any], *, pipeline_root: Path | None = None,
              log: TextIO | None = None) -> dict[str, Any]:
    """Run the pipeline locally; returns the summary (also on failure)."""
    from kfp import local

    from driftloop import promotion
    from driftloop.settings import Settings
    from kfp_pipelines.retrain_pipeline import retrain_pipeline

    log = log or sys.stderr
    root = (pipeline_root or Settings().state_dir / "kfp").resolve()
    root.mkdir(parents=True, exist_ok=True)
    ctx, run_key = _resolve(params)
    with _env_unchanged():
        # MLflow exports the tracking URI it is given into os.environ; the tasks must not
        # inherit it: like KFP pods, each finds the store from DRIFTLOOP_* alone.
        before = promotion.registry_state(ctx, run_key) if ctx is not None else None
    runs_before = {p.name for p in root.iterdir()}
    started = time.monotonic()
    tee = _Tee(log)
    error: str | None = None
    with warnings.catch_warnings():
        # The trainer image's name has no "python" in it; the local runner warns about that.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   raise_on_error=True)
        with contextlib.redirect_stdout(tee):
            try:
                retrain_pipeline(**params)
            except RuntimeError as exc:  # the local runner's "finished with status FAILURE"
                error = str(exc)
    new_runs = sorted({p.name for p in root.iterdir()} - runs_before)
    summary: dict[str, Any] = {
        "status": "failed" if error else "succeeded",
        "failed_step": None, "error": None,
        "run_key": run_key,
        "model": ctx.name if ctx else None,
    }
    if error:
        first = tee.failures[0] if tee.failures else {}
        summary["failed_step"] = first.get("step")
        summary["error"] = first.get("error") or error
    if ctx is not None and before is not None:
        summary.update(promotion.summarize(before, promotion.registry_state(ctx, run_key)))
    summary.update(_run_identity(root, new_runs))
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary
