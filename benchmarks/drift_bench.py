"""Drift computation, side by side: driftloop vs a per-feature ``ks_2samp`` loop vs Evidently.

Arrays: a 100,000-row reference and a 10,000-row window, 50 numeric features (standard
normal; 5 window features shifted by 0.1 to 0.5 standard deviations). All timings are medians
of repeated runs on the same in-memory arrays, in one process pinned to CPU 1:

- driftloop: ``Reference.evaluate`` (KS statistics, p-values, correction, decision) on a
  reference prepared once (the server prepares it when a model loads; its cost is reported);
- the peer: ``[scipy.stats.ks_2samp(ref[:, j], win[:, j]) for j in range(50)]``;
- Evidently: ``Report([DataDriftPreset()]).run(...)`` in its own environment
  (``benchmarks/.venv-evidently``, see evidently_bench.py).

End to end: the same reference becomes a registered model's training reference (a
LogisticRegression on the 100,000 rows, bootstrapped into a temporary store), the server runs
on CPU 0, the window's 10,000 rows are served through ``POST /predict`` (so they are in the
prediction log), and ``GET /drift/status`` for their interval is timed from CPU 1, reading and
decoding the rows from the log included. Its ratio is against the ``ks_2samp`` loop's
computation alone.

    python -m benchmarks.drift_bench [--repeat 7] [--evidently-python PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import REPO, free_port, machine

N_REF, N_WIN, N_FEATURES = 100_000, 10_000, 50
SHIFTS = {3: 0.5, 11: 0.3, 19: 0.2, 27: 0.15, 42: 0.1}


def arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(N_REF, N_FEATURES))
    window = rng.normal(size=(N_WIN, N_FEATURES))
    for j, shift in SHIFTS.items():
        window[:, j] += shift
    return reference, window


def median_time(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def side_by_side(ours: Any, peer: Any, repeat: int) -> tuple[float, Any, float, Any]:
    """Medians of ``ours`` and ``peer``, run alternately so that load from other processes
    falls on both alike."""
    ours_t, peer_t = [], []
    ours_r = peer_r = None
    for _ in range(repeat):
        started = time.perf_counter()
        ours_r = ours()
        ours_t.append(time.perf_counter() - started)
        started = time.perf_counter()
        peer_r = peer()
        peer_t.append(time.perf_counter() - started)
    return statistics.median(ours_t), ours_r, statistics.median(peer_t), peer_r


def ks_loop(reference: np.ndarray, window: np.ndarray) -> list[Any]:
    from scipy.stats import ks_2samp

    return [ks_2samp(reference[:, j], window[:, j]) for j in range(reference.shape[1])]


def in_memory(reference: np.ndarray, window: np.ndarray, repeat: int) -> dict[str, Any]:
    from driftloop.drift import Reference

    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    prep_s, ref = median_time(lambda: Reference.from_arrays(names, reference), 3)
    ks_ref = Reference.from_arrays(names, reference, tests={n: "ks" for n in names})
    ours_s, result, peer_s, peer = side_by_side(lambda: ref.evaluate(window),
                                                lambda: ks_loop(reference, window), repeat)
    ks_s, _ = median_time(lambda: ks_ref.evaluate(window), repeat)
    # Every test's effect size is the KS distance: it must equal scipy's statistic.
    max_stat_diff = max(abs(f.effect_size - p.statistic)
                        for f, p in zip(result.features, peer, strict=True))
    raw_flags = sum(1 for p in peer if p.pvalue < 0.05)
    return {
        "driftloop_s": ours_s, "ks_2samp_loop_s": peer_s, "reference_prepare_s": prep_s,
        "ratio_vs_ks_2samp": peer_s / ours_s, "max_abs_statistic_diff": max_stat_diff,
        "default_test": result.features[0].test, "driftloop_ks_s": ks_s,
        "ratio_ks_vs_ks_2samp": peer_s / ks_s,
        "driftloop_drifted": result.drifted_features,
        "ks_2samp_raw_p_below_0.05": raw_flags,
    }


def evidently(python: Path, reference: np.ndarray, window: np.ndarray,
              work: Path, repeat: int) -> dict[str, Any] | None:
    if not python.exists():
        print(f"[drift] {python} missing: skipping Evidently (make bench creates it)",
              file=sys.stderr)
        return None
    path = work / "arrays.npz"
    np.savez(path, reference=reference, window=window)
    out = subprocess.run([str(python), str(REPO / "benchmarks" / "evidently_bench.py"),
                          str(path), "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(reference: np.ndarray, window: np.ndarray, work: Path,
               repeat: int) -> dict[str, Any]:
    """Register a 50-feature model whose reference is ``reference``; serve ``window``."""
    import pandas as pd

    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(reference, columns=names)
    frame["label"] = np.where(reference[:, :5].sum(axis=1) > 0, "high", "low")
    frame.to_parquet(work / "data.parquet", index=False)
    (work / "spec.yaml").write_text(json.dumps({
        "name": "bench-50", "data": {"source": "data.parquet"}, "target": "label",
        "features": {"numeric": names, "categorical": []},
        "estimator": {"class": "sklearn.linear_model.LogisticRegression",
                      "params": {"max_iter": 200}},
        "gate": {"metric": "accuracy", "min_value": 0.5},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(work / "state"),
               DRIFTLOOP_SPEC_PATH=str(work / "spec.yaml"),
               DRIFTLOOP_REFERENCE_MAX_ROWS=str(N_REF),
               DRIFTLOOP_MAX_BODY_BYTES=str(10_000_000))
    py = str(REPO / ".venv" / "bin" / "python")
    print("[drift] bootstrapping a 50-feature model on 100k rows ...", flush=True)
    started = time.perf_counter()
    subprocess.run([py, "-m", "driftloop", "bootstrap"], env=env, cwd=REPO, check=True,
                   capture_output=True)
    bootstrap_s = time.perf_counter() - started
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(["taskset", "-c", "0", py, "-m", "serving", "--port", str(port),
                                 "--log-level", "warning"], env=env, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text()}")
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server not ready")
                time.sleep(0.5)
            start = datetime.now(UTC) - timedelta(seconds=1)
            for i in range(0, N_WIN, 1000):
                response = client.post("/predict", json={"instances": window[i:i + 1000].tolist()})
                response.raise_for_status()
            time.sleep(1.0)  # the log writer flushes every 0.2 s
            end = datetime.now(UTC)
            params = {"start": start.isoformat(), "end": end.isoformat()}
            client.get("/drift/status", params=params)  # first call: connection, imports
            interval_s, body, peer_s, _ = side_by_side(
                lambda: client.get("/drift/status", params=params).json(),
                lambda: ks_loop(reference, window), repeat)
            latest_s, latest = median_time(
                lambda: client.get("/drift/status", params={"rows": N_WIN}).json(), repeat)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    if body["window"]["rows"] != N_WIN:
        raise RuntimeError(f"the interval held {body['window']['rows']} rows, not {N_WIN}")
    return {"interval_s": interval_s, "latest_s": latest_s, "ks_2samp_loop_s": peer_s,
            "bootstrap_s": bootstrap_s,
            "window_rows": body["window"]["rows"], "reference_rows": body["reference"]["rows"],
            "drifted": body["drifted_features"], "latest_drifted": latest["drifted_features"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--evidently-repeat", type=int, default=3)
    parser.add_argument("--evidently-python", type=Path,
                        default=REPO / "benchmarks" / ".venv-evidently" / "bin" / "python")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "drift.json")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    reference, window = arrays()
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-drift-"))
    try:
        print("[drift] in memory: driftloop vs ks_2samp loop ...", flush=True)
        memory = in_memory(reference, window, args.repeat)
        print(f"[drift] driftloop {memory['driftloop_s'] * 1e3:.1f} ms, ks_2samp loop "
              f"{memory['ks_2samp_loop_s'] * 1e3:.1f} ms: {memory['ratio_vs_ks_2samp']:.1f}x",
              flush=True)
        print("[drift] Evidently DataDriftPreset (its own venv) ...", flush=True)
        evid = evidently(args.evidently_python, reference, window, work, args.evidently_repeat)
        e2e = None if args.skip_end_to_end else end_to_end(reference, window, work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {
        "machine": machine(), "command": "make bench (python -m benchmarks.drift_bench)",
        "shape": {"reference_rows": N_REF, "window_rows": N_WIN, "features": N_FEATURES,
                  "shifted_features": {f"f{j:02d}": s for j, s in SHIFTS.items()}},
        "in_memory": memory, "evidently": evid, "end_to_end": e2e,
    }
    if evid is not None:
        summary["ratio_vs_evidently_default"] = evid["default"]["median_s"] / memory[
            "driftloop_s"]
        summary["ratio_vs_evidently_ks"] = evid["ks"]["median_s"] / memory["driftloop_s"]
    if e2e is not None:
        summary["ratio_end_to_end_vs_ks_2samp_loop"] = e2e["ks_2samp_loop_s"] / e2e[
            "interval_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k.startswith("ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
