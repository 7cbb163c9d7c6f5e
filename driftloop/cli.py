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


def _model(args: argparse.Namespace) -> tuple[Settings, Any, str]:
    from driftloop.bootstrap import model_name
    from driftloop.registry import connect
    from driftloop.spec import load_spec

    settings = _settings(args)
    name = model_name(settings, load_spec(settings.spec_path))
    return settings, connect(settings), name


def _actor(args: argparse.Namespace) -> str:
    if getattr(args, "by", None):
        return str(args.by)
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _story(row: dict[str, Any], indent: str) -> None:
    """A version's lines under its heading: who or what promoted it, the gate, a rollback."""
    print(f"{indent}{row['promoted_by']}")
    if row["gate"]:
        print(f"{indent}gate {row['gate']}")
    if row.get("rolled_back"):
        print(f"{indent}rolled back {row['rolled_back']}")
    if row.get("probation"):
        print(f"{indent}probation {row['probation']}")


def cmd_status(args: argparse.Namespace) -> int:
    from driftloop.promotion import history

    settings, client, name = _model(args)
    state = history.status(settings, client, name)
    if args.json:
        print(json.dumps(state, indent=2, default=str))
        return 0
    print(f"model:       {name}  ({state['versions']} versions in {state['registry']})")
    for which, row in state["aliases"].items():
        if row is None:
            print(f"{which + ':':12} none")
            continue
        print(f"{which + ':':12} v{row['version']}  trained {_when(row['created'])}, "
              f"trigger {row['trigger'] or '-'}, {row['inference_form'] or '?'} form")
        _story(row, " " * 13)
    server = state["server"]
    if "error" in server:
        print(f"server:      {server['url']} does not answer ({server['error']})")
    else:
        figures = ", ".join(f"{f} {server[f'live_{f}']:.4g}" for f in history.LIVE_FIGURES
                            if server.get(f"live_{f}") is not None)
        print(f"server:      {server['url']} serves v{server['version']} "
              f"({server['inference_form']})")
        print(f"last drift:  {server['drift']} (latest {server['window_rows']} rows)")
        print("live:        " + (f"{figures} on {int(server['live_labeled_rows'])} labeled rows"
                                 if figures else "no labels yet"))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from driftloop.promotion import history

    _, client, name = _model(args)
    every = history.versions(client, name)
    rows = every[: args.limit]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    shown = f", the newest {len(rows)} shown" if len(rows) < len(every) else ", newest first"
    print(f"{name}: {len(every)} version(s){shown}")
    for row in rows:
        aliases = f" [{', '.join(row['aliases'])}]" if row["aliases"] else ""
        print(f"v{row['version']}{aliases}  {_when(row['created'])}  trigger "
              f"{row['trigger'] or '-'}  outcome {row['outcome'] or '-'}")
        _story(row, " " * 4)
    return 0


def _manual(args: argparse.Namespace, action: str) -> int:
    from driftloop import promotion
    from driftloop.bootstrap import model_name
    from driftloop.run_context import Context
    from driftloop.spec import load_spec

    settings = _settings(args)
    spec = load_spec(settings.spec_path)
    ctx = Context(settings, spec, model_name(settings, spec))
    target = args.deploy_target or settings.deploy_target
    if action == "promote":
        result = promotion.promote_version(ctx, args.version, reason=args.reason,
                                           actor=_actor(args), target=target,
                                           timeout_s=args.timeout)
    else:
        result = promotion.rollback(ctx, reason=args.reason, actor=_actor(args),
                                    target=target, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    deployed = result.deploy
    print(f"{action}: v{result.version} is champion of {ctx.name} (was "
          f"v{result.champion_before or 'none'}; previous now v{result.previous_after or 'none'})")
    print(f"served:  {deployed['target']}: {deployed['status']} {deployed['detail']}".rstrip())
    print(f"tagged:  by {result.actor}: {result.reason}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    return _manual(args, "promote")


def cmd_rollback(args: argparse.Namespace) -> int:
    return _manual(args, "rollback")


def cmd_live_gate(args: argparse.Namespace) -> int:
    """One decision of the live gate: the shadow stage's challenger, or probation."""
    from driftloop.bootstrap import model_name
    from driftloop.promotion.live import decide_live
    from driftloop.run_context import Context
    from driftloop.spec import load_spec

    settings = _settings(args)
    spec = load_spec(settings.spec_path)
    ctx = Context(settings, spec, model_name(settings, spec))
    decision = decide_live(ctx, target=args.deploy_target or settings.deploy_target,
                           timeout_s=args.timeout)
    if args.json:
        print(json.dumps(decision.as_dict(), indent=2))
        return 0
    print(f"{decision.action}: {decision.reason}")
    if decision.deploy:
        print(f"served:  {decision.deploy['target']}: {decision.deploy['status']} "
              f"{decision.deploy['detail']}".rstrip())
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

    p = sub.add_parser("status", help="champion, previous and challenger with their story, "
                       "and what the server serves, its last drift verdict and live accuracy")
    p.add_argument("--spec", help="model spec YAML (names the model)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("history", help="every version: trigger, gate, who or what promoted it")
    p.add_argument("--spec", help="model spec YAML (names the model)")
    p.add_argument("--limit", type=int, default=20, help="newest versions shown (20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_history)

    from driftloop.deploy import DEPLOY_TARGETS

    for name, func, text in (
            ("promote", cmd_promote, "make VERSION champion (the champion becomes previous) "
             "and serve it; the reason is tagged on the version"),
            ("rollback", cmd_rollback, "previous becomes champion again and is served; the "
             "reason is tagged on both versions")):
        p = sub.add_parser(name, help=text)
        if name == "promote":
            p.add_argument("version", help="the registered version to promote")
        p.add_argument("--reason", required=name == "promote",
                       default="manual rollback" if name == "rollback" else None,
                       help="why (recorded on the version)")
        p.add_argument("--by", help="who (default: user@host)")
        p.add_argument("--spec", help="model spec YAML (names the model)")
        p.add_argument("--deploy-target", dest="deploy_target", choices=DEPLOY_TARGETS,
                       help="how to serve it: local (reload DRIFTLOOP_SERVER_URL), kubernetes "
                       "(patch the Deployment), none (aliases only); default "
                       "DRIFTLOOP_DEPLOY_TARGET")
        p.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for the rollout (300)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)

    p = sub.add_parser("live-gate", help="judge the challenger in shadow, or the champion "
                       "on probation, on the live labeled rows; promote, reject or roll back")
    p.add_argument("--spec", help="model spec YAML (names the model)")
    p.add_argument("--deploy-target", dest="deploy_target", choices=DEPLOY_TARGETS,
                   help="how a new champion is served (default DRIFTLOOP_DEPLOY_TARGET)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for a rollout (300)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_live_gate)

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
