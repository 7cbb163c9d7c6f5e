"""``POST /predict`` with a model scoring in shadow beside the champion, against without.

Two ``driftloop serve`` processes on the same registry contents (champion v2, previous v1),
each on its own state; one also has v1 aliased ``challenger``, so it scores every served row
with v1 on its shadow thread and writes those answers to the log. Both serve on CPU 0
(``taskset -c 0``: the shadow thread shares that core, as it shares a pod's CPU limit), wrk
on CPU 1 with 32 connections, one row per request, rounds alternating between the two. The
issue's target: ``/predict`` with a shadow within 10 % of without.

After the runs every side must have answered 2xx only, and the shadow server's log must hold
a shadow answer for most served rows (skips are counted, and reported).

    python -m benchmarks.shadow_bench [--duration 10] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import REPO, free_port, machine
from benchmarks.serving_bench import ROW, Server, run_wrk, wrk_script

PY = str(REPO / ".venv" / "bin" / "python")


def prepare(state: Path, *, challenger: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(state), UV_PYTHON_DOWNLOADS="never",
               DRIFTLOOP_PROBATION_HOURS="0")
    for force in ([], ["--force"]):  # v1, then v2 champion with v1 previous
        subprocess.run([PY, "-m", "driftloop", "bootstrap", *force], env=env, cwd=REPO,
                       check=True, capture_output=True)
    if challenger:
        code = ("from driftloop.settings import Settings; from driftloop.registry import "
                "connect; from driftloop.promotion.live import start_shadow; "
                "start_shadow(connect(Settings()), 'iris-classifier', '1')")
        subprocess.run([PY, "-c", code], env=env, cwd=REPO, check=True, capture_output=True)
    return env


def section(result: dict[str, Any]) -> str:
    """This benchmark's part of RESULTS.md."""
    rps, p50, p99 = result["median_rps"], result["median_p50_ms"], result["median_p99_ms"]
    verdict = "met" if result["ratio"] >= 0.9 else "NOT met"
    lines = [
        "## Serving with a model in shadow: `POST /predict`, one row, 32 connections", "",
        "`python -m benchmarks.shadow_bench` (part of `make bench`). Two `driftloop serve` on "
        "CPU 0, one scoring v1 in shadow beside the champion v2 (its answers written to "
        "the log's `shadow_predictions` by a background thread on the same core), one "
        f"without; `wrk -t1 -c32` on CPU 1, {result['rounds']} rounds of "
        f"{result['duration_s']} s alternating, medians.", "",
        "| server | req/s (median) | p50 ms | p99 ms |", "|---|---:|---:|---:|",
        f"| with a shadow model | {rps['shadow']:,.0f} | {p50['shadow']} | {p99['shadow']} |",
        f"| without | {rps['plain']:,.0f} | {p50['plain']} | {p99['plain']} |", "",
        f"- With / without: **{result['ratio']:.0%}** (target >= 90 %: {verdict}); per round "
        + ", ".join(f"{r:.0%}" for r in result["per_round_ratios"]) + ".",
        f"- Shadow answers written: {result['shadow_rows_written']:,} for "
        f"{result['rows_answered_by_shadow_server']:,} rows the shadow server answered with "
        f"200 (skipped and counted: {result['shadow_skipped_rows']}; wrk does not count "
        "the requests in flight when a run ends, which were answered and scored too).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "shadow.json")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench-tools` installs it", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-shadow-"))
    print(f"[shadow] preparing two registries under {work} ...", flush=True)
    servers = []
    for name, challenger in (("shadow", True), ("plain", False)):
        env = prepare(work / name, challenger=challenger)
        port = free_port()
        servers.append(Server(name, [PY, "-m", "serving", "--port", str(port),
                                     "--log-level", "warning"], env,
                              f"http://127.0.0.1:{port}", "/ready",
                              wrk_script(work / f"{name}.lua", {"features": ROW})))
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    answered = 0
    try:
        for server in servers:
            server.start()
        shadow_info = httpx.get(servers[0].url + "/model", timeout=10).json()["shadow"]
        if not shadow_info or shadow_info["version"] != "1":
            print(f"[shadow] error: the shadow server loaded no shadow model: {shadow_info}",
                  file=sys.stderr)
            return 1
        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for server in order:
                url = server.url + "/predict"
                warm = run_wrk(url, server.script, args.warmup, args.connections)
                res = run_wrk(url, server.script, args.duration, args.connections)
                results[server.name].append(res)
                if server.name == "shadow":
                    answered += sum(r["requests"] - r["non_2xx"] for r in (warm, res))
                print(f"[shadow] round {rnd + 1} {server.name:6s} {res['rps']:9.1f} req/s "
                      f"p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms non-2xx "
                      f"{res['non_2xx']}", flush=True)
        info = httpx.get(servers[0].url + "/model", timeout=10).json()["shadow"]
    finally:
        for server in servers:
            server.stop()
    failed = {name: sum(r["non_2xx"] + r["socket_errors"] for r in runs)
              for name, runs in results.items()}
    if any(failed.values()):
        print(f"[shadow] error: non-2xx answers or socket errors {failed}: no ratio is printed",
              file=sys.stderr)
        return 1
    from driftloop.predlog import PredictionLog

    log = PredictionLog(f"sqlite:///{work / 'shadow' / 'predictions.db'}", create=False)
    shadow_rows = log.shadow_counts("iris-classifier").get("1", {}).get("rows", 0)
    log.dispose()
    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    p50 = {name: statistics.median(r["p50_ms"] for r in runs) for name, runs in results.items()}
    p99 = {name: statistics.median(r["p99_ms"] for r in runs) for name, runs in results.items()}
    per_round = [s["rps"] / p["rps"] for s, p in zip(results["shadow"], results["plain"],
                                                      strict=True)]
    summary = {
        "machine": machine(), "command": "python -m benchmarks.shadow_bench",
        "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
        "median_rps": median, "median_p50_ms": p50, "median_p99_ms": p99,
        "ratio": statistics.median(per_round), "per_round_ratios": per_round,
        "shadow_rows_written": shadow_rows, "rows_answered_by_shadow_server": answered,
        "shadow_skipped_rows": info.get("skipped_rows") if info else None, "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"[shadow] with shadow {median['shadow']:.0f} req/s, without {median['plain']:.0f}: "
          f"{summary['ratio']:.0%} (target >= 90%); shadow answers written for "
          f"{shadow_rows} of {answered} served rows ({summary['shadow_skipped_rows']} "
          "skipped)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
