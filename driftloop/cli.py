"""The ``driftloop`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from driftloop.errors import DriftloopError
from driftloop.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "spec", None):
        overrides["spec_path"] = args.spec
    return _validated(overrides)


def _validated(overrides: dict[str, Any]) -> Settings:
    """Settings, or an error naming each bad DRIFTLOOP_* value (not a traceback)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            (f"DRIFTLOOP_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise DriftloopError(f"invalid settings: {problems}") from None


def mlflow_ui_hint(settings: Settings) -> str:
    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        return (f"make mlflow-ui   (or: mlflow ui --backend-store-uri {uri} --port 5000), "
                "then open http://127.0.0.1:5000")
    return f"open {uri}"


def _print_info(info: dict[str, Any], stream: Any = sys.stdout) -> None:
    print(f"model:           {info['name']}", file=stream)
    print(f"version:         {info['version']}  aliases: {', '.join(info['aliases']) or '-'}",
          file=stream)
    print(f"run:             {info['run_id']}", file=stream)
    print(f"inference form:  {info['inference_form']}", file=stream)
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(info["metrics"].items())
                        if k != "support")
    print(f"holdout metrics: {metrics}", file=stream)
    lineage = {k: v for k, v in sorted(info["tags"].items()) if k != "inference_form"}
    print("lineage:         " + ", ".join(f"{k}={v}" for k, v in lineage.items()), file=stream)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from driftloop.bootstrap import bootstrap
    from driftloop.progress import Progress

    settings = _settings(args)
    result = bootstrap(settings, force=args.force, progress=Progress())
    print("champion created:" if result.created else "champion already present (unchanged):")
    _print_info(result.info)
    print(f"MLflow UI:       {mlflow_ui_hint(settings)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from driftloop.bootstrap import model_name
    from driftloop.registry import ALIAS_CHAMPION, alias_version, connect, describe
    from driftloop.spec import load_spec

    settings = _settings(args)
    name = model_name(settings, load_spec(settings.spec_path))
    client = connect(settings)
    version = args.version
    if version is None:
        champion = alias_version(client, name, ALIAS_CHAMPION)
        if champion is None:
            raise DriftloopError(f"no champion for model {name!r} in {settings.tracking_uri}; "
                                 "run `driftloop bootstrap` first")
        version = champion.version
    info = describe(client, name, str(version))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_info(info)
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from driftloop import retention
    from driftloop.predlog import PredictionLog
    from driftloop.predlog.codec import masked_url
    from driftloop.registry import connect

    settings = _settings(args)
    try:
        log = PredictionLog(settings.log_url)
        try:
            summary = retention.apply(settings, log, connect(settings))
        finally:
            log.dispose()
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise DriftloopError(
            f"the prediction log {masked_url(settings.log_url)} could not be used "
            f"({reason}); whatever was deleted before stays deleted. Run it again once the "
            "database answers.") from None
    if args.json:
        print(json.dumps(summary, indent=2))
    elif "skipped" in summary:
        print(summary["skipped"])
    else:
        held = summary["held_back_by"]
        print(f"removed rows older than {summary['cutoff']} "
              f"(retention {summary['retention_days']:g} days"
              f"{'; held back by ' + held if held else ''}):")
        print(f"  predictions {summary['predictions_deleted']}, labels "
              f"{summary['labels_deleted']}, reports {summary['reports_deleted']} in "
              f"{summary['batches']} batch(es), {summary['seconds']:.1f} s")
        for name in summary["partitions_dropped"]:
            print(f"  dropped partition {name}")
        for url in summary["archived"]:
            print(f"  archived {url}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # The web stack is imported here only: the core library stays free of it.
    try:
        from serving.run import serve
    except ImportError as exc:
        raise DriftloopError(f"serving needs the `serving` extra ({exc.name} is missing): "
                             "install driftloop[serving]") from None

    overrides: dict[str, Any] = {}
    for field in ("spec", "host", "port", "model_version"):
        value = getattr(args, field, None)
        if value is not None:
            overrides["spec_path" if field == "spec" else field] = value
    settings = _validated(overrides)
    serve(settings, log_level=args.log_level, access_log=args.access_log)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop", description="Serve a model, watch its inputs drift, retrain it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bootstrap", help="train the spec's model and make it champion")
    p.add_argument("--spec", help="model spec YAML (default: DRIFTLOOP_SPEC_PATH or iris)")
    p.add_argument("--force", action="store_true",
                   help="train and promote a new version even if a champion exists")
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("info", help="show the champion (or a version): metrics, lineage")
    p.add_argument("--spec", help="model spec YAML (names the model)")
    p.add_argument("--version", help="a version number instead of the champion")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("retention", help="delete prediction-log rows past "
                       "DRIFTLOOP_LOG_RETENTION_DAYS (archiving them first if configured)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("serve", help="serve the champion over HTTP (FastAPI under uvicorn)")
    p.add_argument("--spec", help="model spec YAML (names the model)")
    p.add_argument("--host", help="bind address (default: DRIFTLOOP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: DRIFTLOOP_PORT or 8000)")
    p.add_argument("--model-version", dest="model_version",
                   help="serve this version instead of the champion (DRIFTLOOP_MODEL_VERSION)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true",
                   help="log every request (off by default: it costs throughput)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DriftloopError as exc:
        print(f"driftloop: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("driftloop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
