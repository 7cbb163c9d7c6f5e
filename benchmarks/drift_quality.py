"""Detection quality, side by side: driftloop, Evidently and alibi-detect on the same windows.

    python -m benchmarks.drift_quality [--skip-peers] [--out FILE]     (make bench-drift)

The streams and windows are ``benchmarks/drift_streams.py``'s: generated, fixed seeds,
documented changes, a 20,000-row reference. Every tool sees exactly the same windows (each
peer regenerates them in its own environment from their seeds; the fingerprints are
compared here before any figure is computed). Per window size:

- false alarms: drift-free windows called drifted;
- detection: drifted windows called drifted;
- attribution recall: per drifted window, the share of the truly changed features named,
  averaged;
- attribution precision: of all features named, the share truly changed; and the share of
  unchanged features named (false names);
- ms per window: the median time of one window's call, reference prepared beforehand where
  the tool allows it (driftloop's ``Reference``, alibi's detectors; Evidently takes the
  reference on every run).

driftloop runs with its default tests and with the alternatives, so the defaults are the
measured best.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, machine
from benchmarks.drift_streams import (
    CATEGORICAL,
    FEATURES,
    NULLABLE,
    NUMERIC,
    STREAMS,
    WINDOWS,
    changed,
    fingerprint,
    reference,
    windows,
)

PEERS = {"evidently": REPO / "benchmarks" / ".venv-evidently" / "bin" / "python",
         "alibi": REPO / "benchmarks" / ".venv-alibi" / "bin" / "python"}
VARIANTS = {  # name -> (numeric test, categorical test); the first is the default
    "driftloop": (None, None),
    "driftloop ks+chi2": ("ks", "chi2"),
    "driftloop cvm+chi2": ("cvm", "chi2"),
    "driftloop anderson+chi2": ("anderson", "chi2"),
    "driftloop ks+jensen_shannon": ("ks", "jensen_shannon"),
    "driftloop anderson+jensen_shannon": ("anderson", "jensen_shannon"),
}


def run_driftloop() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from driftloop.drift import DEFAULT_TESTS, Reference

    ref = reference()
    detectors = {}
    for name, (num, cat) in VARIANTS.items():
        tests = {**{f: num for f in NUMERIC if num}, **{f: cat for f in CATEGORICAL if cat}}
        detectors[name] = Reference.from_frame(ref, NUMERIC, CATEGORICAL, tests,
                                               nullable=NULLABLE)
    out = []
    for stream, size, i, frame in windows():
        numeric = frame[NUMERIC].to_numpy(np.float64)
        categorical = frame[CATEGORICAL].to_numpy(object)
        for name, detector in detectors.items():
            started = time.perf_counter()
            result = detector.evaluate(numeric, categorical)
            ms = (time.perf_counter() - started) * 1e3
            out.append({"tool": name, "stream": stream, "size": size, "i": i,
                        "fingerprint": fingerprint(frame), "detected": result.dataset_drift,
                        "named": [c.feature for c in result.changes], "ms": ms})
        if i == 0:
            print(f"[drift-quality] driftloop: {stream} x {size}", flush=True)
    return out, {"defaults": dict(DEFAULT_TESTS)}


def run_peer(peer: str, work: Path) -> list[dict[str, Any]]:
    python = PEERS[peer]
    if not python.exists():
        raise SystemExit(f"error: {python} is missing: `make bench-drift` creates it")
    out = work / f"{peer}.jsonl"
    print(f"[drift-quality] {peer} (its own environment; Evidently takes ~10 min) ...",
          flush=True)
    subprocess.run([str(python), str(REPO / "benchmarks" / "drift_quality_peers.py"), peer,
                    str(out)], check=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def score(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """tool -> size -> the figures of the module docstring."""
    cells: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(row["tool"], row["size"])].append(row)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (tool, size), got in sorted(cells.items()):
        null = [r for r in got if not changed(r["stream"])]
        drifted = [r for r in got if changed(r["stream"])]
        recall = [len(set(r["named"]) & changed(r["stream"])) / len(changed(r["stream"]))
                  for r in drifted]
        named = sum(len(r["named"]) for r in got)
        right = sum(len(set(r["named"]) & changed(r["stream"])) for r in got)
        unchanged = sum(len(FEATURES) - len(changed(r["stream"])) for r in got)
        per_stream = {s: {"detected": float(np.mean([r["detected"] for r in got
                                                     if r["stream"] == s])),
                          "recall": float(np.mean([len(set(r["named"]) & changed(s))
                                                   / len(changed(s)) for r in got
                                                   if r["stream"] == s])) if changed(s)
                          else None}
                      for s in STREAMS}
        out[tool][str(size)] = {
            "windows": len(got),
            "false_alarm_rate": float(np.mean([r["detected"] for r in null])),
            "detection_rate": float(np.mean([r["detected"] for r in drifted])),
            "attribution_recall": float(np.mean(recall)),
            "attribution_precision": right / named if named else 1.0,
            "false_name_rate": (named - right) / unchanged,
            "ms_per_window": statistics.median(r["ms"] for r in got),
            "streams": per_stream,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "drift_quality.json")
    args = parser.parse_args(argv)
    started = time.time()
    rows, info = run_driftloop()
    expected = {(r["stream"], r["size"], r["i"]): r["fingerprint"] for r in rows}
    work = args.out.parent / "drift_quality"
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_peers:
        for peer in PEERS:
            peer_rows = run_peer(peer, work)
            wrong = [r for r in peer_rows
                     if expected.get((r["stream"], r["size"], r["i"])) != r["fingerprint"]]
            if wrong or len(peer_rows) < len(expected):
                raise SystemExit(f"error: {peer} saw other windows than driftloop "
                                 f"({len(wrong)} fingerprints differ, {len(peer_rows)} rows "
                                 f"for {len(expected)} windows): not comparable")
            rows += peer_rows
    result = {"machine": machine(), "reference_rows": len(reference()),
              "windows": {str(k): v for k, v in WINDOWS.items()},
              "streams": {s: [{"feature": c.feature, "change": c.what} for c in changes]
                          for s, changes in STREAMS.items()},
              "scores": score(rows), "seconds": time.time() - started, **info}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"[drift-quality] wrote {args.out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


PEER_NAMES = {"evidently": "Evidently `DataDriftPreset()`",
              "alibi-ksdrift": "alibi-detect `KSDrift` (numeric only)",
              "alibi-tabulardrift": "alibi-detect `TabularDrift`"}


def _pct(x: float) -> str:
    return f"{x:.1%}" if x not in (0.0, 1.0) else f"{x:.0%}"


def _compare(ours: float, peers: dict[str, float], higher_is_better: bool) -> str:
    said = []
    for name, value in peers.items():
        if abs(value - ours) < 1e-12:
            said.append(f"ties {name}")
        elif (ours > value) == higher_is_better:
            said.append(f"beats {name} ({_pct(value)})")
        else:
            said.append(f"trails {name} ({_pct(value)})")
    return "; ".join(said)


def section(r: dict[str, Any]) -> str:
    """The RESULTS.md section for ``benchmarks/results/drift_quality.json``."""
    scores = r["scores"]
    sizes = sorted(scores["driftloop"], key=int)
    tools = ["driftloop", *[t for t in PEER_NAMES if t in scores],
             *[t for t in scores if t.startswith("driftloop ")]]
    lines = [
        "## Drift detection quality (`make bench-drift`)", "",
        "The project's own streams (`benchmarks/drift_streams.py`: seven independent features, "
        "fixed seeds; `score` and `channel` are nullable, `score` missing in 2 % of the rows "
        f"everywhere), a {r['reference_rows']:,}-row reference, and per stream "
        + ", ".join(f"{n} windows of {int(s):,} rows" for s, n in r["windows"].items())
        + " (the 50,000-row windows are bootstrap samples of a 100,000-row pool). Every tool "
        "sees the same windows (their fingerprints are checked). Peers with their defaults, "
        "each in its own environment, given the same missing values (NaN; None for a "
        "categorical): Evidently leaves them out of its tests, alibi-detect's `TabularDrift` "
        "sees a missing category as one more code and `KSDrift` gets NaN in its KS test. "
        "driftloop runs with its default tests "
        f"({r['defaults']['numeric']} for numeric features, {r['defaults']['categorical']} "
        "for categoricals) and, below the peers, with each alternative. "
        f"One run took {r['seconds'] / 60:.0f} min.", "",
        "| stream | what changes |", "|---|---|",
    ]
    for stream, changes in r["streams"].items():
        lines.append(f"| {stream} | " + ("; ".join(f"`{c['feature']}`: {c['change']}"
                                                   for c in changes) or "nothing") + " |")
    lines += ["", "False alarms: drift-free windows called drifted. Detection: drifted windows "
              "called drifted. Recall: per drifted window, the share of the changed features "
              "named. Precision: the share of named features that changed. False names: the "
              "share of unchanged features named. ms: median per window.", ""]
    for size in sizes:
        lines += [f"### {int(size):,}-row windows", "",
                  "| tool | false alarms | detection | recall | precision | false names | "
                  "ms/window |", "|---|---:|---:|---:|---:|---:|---:|"]
        for tool in tools:
            s = scores[tool].get(size)
            if not s:
                continue
            name = PEER_NAMES.get(tool, f"**{tool}**" if tool == "driftloop" else tool)
            lines.append(f"| {name} | {_pct(s['false_alarm_rate'])} | "
                         f"{_pct(s['detection_rate'])} | {_pct(s['attribution_recall'])} | "
                         f"{_pct(s['attribution_precision'])} | {_pct(s['false_name_rate'])} | "
                         f"{s['ms_per_window']:.1f} |")
        lines.append("")
    smallest = sizes[0]
    lines += [f"### By stream, {int(smallest):,}-row windows: detection (recall)", "",
              "| stream | " + " | ".join(PEER_NAMES.get(t, f"**{t}**" if t == "driftloop"
                                                       else t) for t in tools[:4]) + " |",
              "|---|" + "---:|" * len(tools[:4])]
    for stream in r["streams"]:
        cells = []
        for tool in tools[:4]:
            got = (scores[tool].get(smallest) or {}).get("streams", {}).get(stream)
            if not got:
                cells.append("-")
                continue
            recall = "" if got["recall"] is None else f" ({_pct(got['recall'])})"
            cells.append(f"{_pct(got['detected'])}{recall}")
        lines.append(f"| {stream} | " + " | ".join(cells) + " |")
    lines += ["", "On the drift-free streams (none-a, none-b) detection is the false-alarm "
              "rate.", "", "### Targets", ""]
    ours = scores["driftloop"]
    peers = {t: scores[t] for t in PEER_NAMES if t in scores}

    def peer_values(size: str, key: str) -> dict[str, float]:
        return {PEER_NAMES[t]: v[size][key] for t, v in peers.items() if size in v}

    def target(ok: bool, text: str, size: str, key: str, higher: bool) -> str:
        return (f"- {text}: **{'met' if ok else 'NOT met'}**; "
                + _compare(ours[size][key], peer_values(size, key), higher))

    for size in sizes:
        fa = ours[size]["false_alarm_rate"]
        lines.append(target(fa == 0, f"false alarms 0 % at {int(size):,} rows: {_pct(fa)}",
                            size, "false_alarm_rate", False))
    for size in sizes:
        det = ours[size]["detection_rate"]
        goal = 0.99 if int(size) < 2000 else 1.0
        lines.append(target(det >= goal, f"detection >= {_pct(goal)} at {int(size):,} rows: "
                            f"{_pct(det)}", size, "detection_rate", True))
    for size in sizes:
        rec = ours[size]["attribution_recall"]
        goal = 0.75 if int(size) < 2000 else 0.90
        lines.append(target(rec >= goal, f"attribution recall >= {_pct(goal)} at "
                            f"{int(size):,} rows: {_pct(rec)}", size, "attribution_recall",
                            True))
    worst = max(ours[s]["false_name_rate"] for s in sizes)
    worst_size = max(sizes, key=lambda s: ours[s]["false_name_rate"])
    lines.append(target(worst <= 0.02, f"unchanged features named <= 2 % (worst size, "
                        f"{int(worst_size):,} rows): {_pct(worst)}", worst_size,
                        "false_name_rate", False))
    if "evidently" in scores:
        ratios = {s: scores["evidently"][s]["ms_per_window"] / ours[s]["ms_per_window"]
                  for s in sizes}
        lines.append(f"- speed >= 20x Evidently per window: **"
                     f"{'met' if min(ratios.values()) >= 20 else 'NOT met'}**: "
                     + ", ".join(f"{v:.0f}x at {int(s):,} rows" for s, v in ratios.items()))
    return "\n".join(lines)
