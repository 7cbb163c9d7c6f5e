"""``python -m kfp_pipelines compile | run-local``: the retrain pipeline's command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from driftloop.errors import DriftloopError


def build_parser() -> argparse.ArgumentParser:
    from kfp_pipelines.retrain_pipeline import PACKAGE_PATH, PARAMETERS

    parser = argparse.ArgumentParser(
        prog="python -m kfp_pipelines",
        description="Compile the driftloop retrain pipeline, or run it with KFP's local runner.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compile", help="write the pipeline package (YAML) for a KFP server")
    p.add_argument("--output", type=Path, default=PACKAGE_PATH,
                   help=f"where to write it (default: {PACKAGE_PATH.name} beside the code)")
    params = ", ".join(f"{k} (default {v!r})" for k, v in PARAMETERS.items())
    p = sub.add_parser(
        "run-local", help="run the pipeline locally; the last stdout line is a JSON summary",
        description=f"Pipeline parameters: {params}.",
    )
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a pipeline parameter (repeatable)")
    p.add_argument("--pipeline-root", type=Path, default=None,
                   help="where task artifacts go (default: <DRIFTLOOP_STATE_DIR>/kfp)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "compile":
        from kfp_pipelines.retrain_pipeline import compile_pipeline

        path = compile_pipeline(args.output)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    from kfp_pipelines.local_run import UsageError, parse_params, run_local

    try:
        params = parse_params(args.param)
    except UsageError as exc:
        print(f"kfp_pipelines: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_local(params, pipeline_root=args.pipeline_root)
    except DriftloopError as exc:
        summary = {"status": "failed", "failed_step": None, "error": str(exc)}
    print(json.dumps(summary, default=str), flush=True)
    return 0 if summary["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
