"""``python -m demo`` (``make demo``): the whole closed loop, locally, with its numbers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    try:
        result = run_demo(config)
    except DriftloopError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    render(result, sys.stdout)
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
