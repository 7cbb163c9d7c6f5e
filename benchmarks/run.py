"""``make bench``: run the benchmarks, then write benchmarks/RESULTS.md from their JSON.

    python -m benchmarks.run [--only serving|shadow|drift|dag_parse|log|drift_quality] [--render]
    (--render: no runs, only RESULTS.md from benchmarks/results/*.json)
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from benchmarks import (
    dag_parse,
    drift_bench,
    drift_quality,
    log_bench,
    serving_bench,
    shadow_bench,
)
from benchmarks.common import REPO

RESULTS = REPO / "benchmarks" / "results"
REPORT = REPO / "benchmarks" / "RESULTS.md"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(value: float, target: float) -> str:
    return f"**{value:.1f}x** (target >= {target:g}x: {'met' if value >= target else 'NOT met'})"


def render() -> str:
    serving, drift = _load("serving"), _load("drift")
    lines = ["# Benchmarks", "",
             "Reproduce with `make bench` (installs `wrk` from Debian's packages when missing "
             "and creates `benchmarks/.venv-evidently` for Evidently, which needs pandas<3). "
             "Every figure is a ratio measured side by side in one run, because other "
             "processes share this machine's CPU; the raw numbers are in "
             "`benchmarks/results/*.json`. Rendered "
             f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.", ""]
    machine = (serving or drift or {}).get("machine")
    if machine:
        lines += [f"Machine: {machine['cpu']}, {machine['cores']} cores, "
                  f"{machine['memory_gb']} GB, Python {machine['python']}, "
                  f"{machine['platform']}.", ""]
    if serving:
        med = serving["median_rps"]
        lines += [
            "## Serving: `POST /predict`, one row, 32 connections", "",
            "Each server on CPU 0 (`taskset -c 0`, one process), `wrk -t1 -c32` on CPU 1, "
            f"{serving['rounds']} rounds of {serving['duration_s']} s (after a 3 s warm-up each); "
            "in every round driftloop and the bare endpoint run back to back, in alternating "
            "order, and the headline ratios are the medians of the rounds' ratios. "
            "driftloop as deployed: ONNX form, requests that arrive together sharing one model "
            "call (micro-batching; nothing waits for a batch to fill), every row written to the "
            "prediction log (SQLite, WAL), a poller calling `GET /drift/status` every second. "
            "The baseline is one FastAPI endpoint that parses the same JSON body and returns "
            "a constant (`benchmarks/bare_app.py`), on the same uvicorn/uvloop/httptools "
            "stack.", "",
            "| server | req/s (median) | p50 ms | p99 ms | non-2xx |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, label in (("driftloop", "driftloop `driftloop serve`"),
                            ("mlflow", "`mlflow models serve` (same champion)"),
                            ("bare", "bare FastAPI endpoint, no model")):
            runs = serving["runs"][name]
            p50 = sorted(r["p50_ms"] for r in runs)[len(runs) // 2]
            p99 = sorted(r["p99_ms"] for r in runs)[len(runs) // 2]
            lines.append(f"| {label} | {med[name]:,.0f} | {p50:.2f} | {p99:.2f} | "
                         f"{sum(r['non_2xx'] for r in runs)} |")
        lines += [
            "",
            f"- driftloop / `mlflow models serve`: {_verdict(serving['ratio_vs_mlflow'], 20)}",
            f"- driftloop / bare FastAPI: **{serving['ratio_vs_bare']:.0%}** (target >= 60 %: "
            f"{'met' if serving['ratio_vs_bare'] >= 0.6 else 'NOT met'})",
            f"- Rows in driftloop's prediction log after the runs: "
            f"{serving['driftloop_rows_logged']:,} (timed requests: "
            f"{serving['driftloop_requests_timed']:,}, plus warm-ups); "
            f"`GET /drift/status` calls during the runs: "
            f"{serving['drift_status_calls']['ok']} of {serving['drift_status_calls']['count']} "
            "answered 200.",
            "- Per-round ratios: driftloop / bare " + ", ".join(
                f"{r:.0%}" for r in serving["per_round_ratios"]["vs_bare"])
            + "; driftloop / mlflow " + ", ".join(
                f"{r:.0f}x" for r in serving["per_round_ratios"]["vs_mlflow"])
            + f" (ratios of the medians: {serving['ratio_of_medians']['vs_bare']:.0%} and "
            f"{serving['ratio_of_medians']['vs_mlflow']:.0f}x).",
            "- Rounds (req/s): " + "; ".join(
                f"{name} " + ", ".join(f"{r['rps']:,.0f}" for r in serving["runs"][name])
                for name in ("driftloop", "mlflow", "bare")),
            f"- Load average when the run started: "
            f"{', '.join(f'{x:.1f}' for x in serving['machine']['load_average_at_start'])}.",
            "",
        ]
    if drift:
        mem, e2e, evid = drift["in_memory"], drift.get("end_to_end"), drift.get("evidently")
        lines += [
            "## Drift: 10,000-row window x 50 features against a 100,000-row reference", "",
            "`python -m benchmarks.run --only drift` (part of `make bench`).", "",
            "Same in-memory arrays for everyone (standard normal; 5 window features shifted "
            "by 0.1-0.5 sd), one process on CPU 1, medians of alternating runs.", "",
            "| computation | time |", "|---|---:|",
            f"| driftloop `Reference.evaluate`, default test (`{mem.get('default_test', 'ks')}`; "
            "KS and Wasserstein effects, p-values, correction, decision, descriptions) | "
            f"{mem['driftloop_s'] * 1e3:.1f} ms |",
            f"| per-feature `scipy.stats.ks_2samp` loop | {mem['ks_2samp_loop_s'] * 1e3:.0f} ms |",
        ]
        if "driftloop_ks_s" in mem:
            lines.insert(-1, f"| driftloop `Reference.evaluate`, every feature on `ks` | "
                             f"{mem['driftloop_ks_s'] * 1e3:.1f} ms |")
        if evid:
            lines += [f"| Evidently {evid['evidently']} `DataDriftPreset()` (defaults) | "
                      f"{evid['default']['median_s']:.1f} s |",
                      f"| Evidently `DataDriftPreset(num_method=\"ks\")` | "
                      f"{evid['ks']['median_s']:.1f} s |"]
        if e2e:
            lines.append(f"| driftloop `GET /drift/status?start=&end=` end to end (server on "
                         f"CPU 0, rows read from the prediction log) | "
                         f"{e2e['interval_s'] * 1e3:.1f} ms |")
        lines += [
            "",
            f"- driftloop / `ks_2samp` loop: {_verdict(mem['ratio_vs_ks_2samp'], 10)} with the "
            "default test"
            + (f", {_verdict(mem['ratio_ks_vs_ks_2samp'], 10)} on `ks` alone (the loop's own "
               "computation)" if "ratio_ks_vs_ks_2samp" in mem else "")
            + f"; largest difference of the KS statistics: {mem['max_abs_statistic_diff']:.1e}.",
        ]
        if evid:
            lines.append(f"- driftloop / Evidently DataDriftPreset: "
                         f"{_verdict(drift['ratio_vs_evidently_default'], 100)} "
                         f"(with `num_method=\"ks\"`: {drift['ratio_vs_evidently_ks']:.0f}x).")
        if e2e:
            lines.append(f"- `GET /drift/status` end to end / the `ks_2samp` loop's computation "
                         f"alone: {_verdict(drift['ratio_end_to_end_vs_ks_2samp_loop'], 5)} "
                         f"(loop timed alternately with the requests: "
                         f"{e2e['ks_2samp_loop_s'] * 1e3:.0f} ms; latest-rows mode "
                         f"`?rows=10000`: {e2e['latest_s'] * 1e3:.1f} ms).")
        flagged = ", ".join(mem["driftloop_drifted"])
        lines += [
            f"- Verdicts on this window: driftloop flags {flagged} (Bonferroni at 0.05 and "
            f"the alarm's effect floors); a raw per-feature KS p < 0.05 flags "
            f"{mem['ks_2samp_raw_p_below_0.05']} of 50"
            + (f"; Evidently's default preset flags {evid['default']['drifted_columns']:.0f}"
               if evid and evid["default"]["drifted_columns"] is not None else "")
            + ". The shifts of 0.1-0.2 sd move the KS statistic by less than the floor: "
            "significant, not drift (see `driftloop/drift/decision.py`).",
            f"- Preparing the reference (sorting 100,000 x 50 once, when a model loads): "
            f"{mem['reference_prepare_s'] * 1e3:.0f} ms.",
            "",
        ]
    shadow = _load("shadow")
    if shadow:
        lines += [shadow_bench.section(shadow), ""]
    parse = _load("dag_parse")
    if parse:
        lines += [dag_parse.section(parse), ""]
    quality = _load("drift_quality")
    if quality:
        lines += [drift_quality.section(quality), ""]
    logged = _load("log")
    if logged:
        lines += [log_bench.section(logged), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["serving", "shadow", "drift", "dag_parse", "log",
                                           "drift_quality"])
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md")
    args = parser.parse_args(argv)
    if not args.render:
        if args.only in (None, "serving"):
            code = serving_bench.main([])
            if code:
                return code
        if args.only in (None, "shadow"):
            code = shadow_bench.main([])
            if code:
                return code
        if args.only in (None, "drift"):
            code = drift_bench.main([])
            if code:
                return code
        if args.only == "drift_quality":  # ~15 min, two more environments: make bench-drift
            code = drift_quality.main([])
            if code:
                return code
        if args.only == "log":  # minutes and 3 GB of disk: `make bench-log` only
            code = log_bench.main([])
            if code:
                return code
        if args.only in (None, "dag_parse"):
            result = dag_parse.measure(5)
            (RESULTS / "dag_parse.json").write_text(json.dumps(result, indent=2))
    REPORT.write_text(render())
    print(f"wrote {REPORT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
