"""``python -m demo`` (``make demo``): the whole closed loop, locally, with its numbers."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from driftloop.errors import DriftloopError
from driftloop.settings import PROJECT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.environ.get("STATE") or PROJECT_ROOT / ".driftloop"),
                        help="local state (default .driftloop; reset at the start)")
    parser.add_argument("--spec", type=Path,
                        default=Path(os.environ.get("SPEC") or PROJECT_ROOT / "specs/iris.yaml"),
                        help="model spec (default specs/iris.yaml)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000),
                        help="server port (default 8000)")
    parser.add_argument("--small", action="store_true",
                        help="fewer rows per phase (the integration test's scale)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = parser.parse_args(argv)

    from demo.report import render
    from demo.scenario import DemoConfig, run_demo

    config = DemoConfig(state_dir=args.state_dir, spec_path=args.spec.resolve(), port=args.port)
    if args.small:
        config.stable_rows = config.drift_rows = config.after_rows = 150
        config.broken_rows = 80
    from demo.traffic import BackgroundFailed

    died = _watch_threads()
    try:
        result = run_demo(config)
    except (DriftloopError, BackgroundFailed) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    render(result, sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    failures = _failures(result) + died
    for failure in failures:
        print(f"demo: error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _watch_threads() -> list[str]:
    """Every exception that ends a thread of this process, kept to fail the demo (Python
    would only print it and carry on)."""
    died: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        name = args.thread.name if args.thread is not None else "?"
        died.append(f"thread {name!r} died: " + "".join(traceback.format_exception(
            args.exc_type, args.exc_value, args.exc_traceback)).rstrip())
        previous(args)

    threading.excepthook = hook
    return died


def _failures(result: Any) -> list[str]:
    """Requests or labels the demo's clients sent that did not get a 2xx, and retrains that
    failed."""
    out = [f"{name} phase: the retrain failed in DAG run {phase.dag_run_id} (its error is "
           "in the Airflow task log)" for name, phase in result.phases.items()
           if phase.retrain_failed]
    served = {f"{name} phase": phase.served for name, phase in result.phases.items()}
    served.update({"background traffic": result.background, "after the swap": result.after})
    for what, s in served.items():
        if s.failed or s.labels_failed:
            out.append(f"{what}: {s.failed} of {s.sent} requests and {s.labels_failed} of "
                       f"{s.labels_sent} labels failed; first: {s.errors[:3]}")
    return out


if __name__ == "__main__":
    sys.exit(main())
