"""Evidently's DataDriftPreset on the drift benchmark's arrays, in its own environment.

Evidently needs pandas<3 and driftloop's environment has pandas 3, so ``make bench`` creates
``benchmarks/.venv-evidently`` (not committed) and runs this file with it. It reads the arrays
``drift_bench`` saved, times ``Report([DataDriftPreset()]).run(current, reference)`` (the
preset's defaults, and with ``num_method="ks"``), and prints JSON on stdout.

    benchmarks/.venv-evidently/bin/python benchmarks/evidently_bench.py ARRAYS.npz [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("arrays")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    data = np.load(args.arrays)
    reference, window = data["reference"], data["window"]
    columns = [f"f{i:02d}" for i in range(reference.shape[1])]
    ref_df = pd.DataFrame(reference, columns=columns)
    cur_df = pd.DataFrame(window, columns=columns)
    out = {"evidently": evidently.__version__, "pandas": pd.__version__}
    for label, preset in (("default", DataDriftPreset), ("ks", lambda: DataDriftPreset(
            num_method="ks"))):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            snapshot = Report([preset()]).run(cur_df, ref_df)
            times.append(time.perf_counter() - started)
        drifted = None
        try:
            for metric in snapshot.dict()["metrics"]:
                if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
                    drifted = metric["value"]["count"]
        except Exception:  # the snapshot layout differs across versions; timing is the point
            drifted = None
        out[label] = {"seconds": times, "median_s": statistics.median(times),
                      "drifted_columns": drifted}
        print(f"[evidently] {label}: median {statistics.median(times):.2f} s", file=sys.stderr,
              flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
