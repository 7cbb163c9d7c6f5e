"""The detection-quality benchmark's peers, each run in its own environment.

    benchmarks/.venv-evidently/bin/python benchmarks/drift_quality_peers.py evidently OUT.jsonl
    benchmarks/.venv-alibi/bin/python benchmarks/drift_quality_peers.py alibi OUT.jsonl

Each regenerates the benchmark's windows from their seeds (``drift_streams``; the driver
checks the fingerprints), runs the peer's defaults on every window and writes one JSON line
per window: the window verdict, the features named, and the milliseconds the call took.

- Evidently: ``Report([DataDriftPreset()])`` with the columns' kinds declared; a column is
  named when its ``ValueDrift`` crosses the method's threshold, the window drifts when the
  preset's ``DriftedColumnsCount`` share reaches its ``drift_share`` (0.5).
- alibi-detect: ``KSDrift`` on the numeric columns, and ``TabularDrift`` on all columns
  (KS for numeric, chi-squared for the categoricals, integer-coded), both with their default
  p 0.05 and Bonferroni; a feature is named when its p-value is under the corrected threshold.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.drift_streams import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    fingerprint,
    reference,
    windows,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Runner = Callable[["pd.DataFrame"], "tuple[bool, list[str], float]"]


def evidently_runner() -> Runner:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    ref = Dataset.from_pandas(reference(), data_definition=definition)

    def run(frame: pd.DataFrame) -> tuple[bool, list[str], float]:
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(frame, data_definition=definition), ref)
        ms = (time.perf_counter() - started) * 1e3
        named, detected = [], False
        for metric in snapshot.dict()["metrics"]:
            config = metric.get("config", {})
            if config.get("type", "").endswith("DriftedColumnsCount"):
                detected = metric["value"]["share"] >= config["drift_share"]
            elif config.get("type", "").endswith("ValueDrift"):
                value, threshold = metric["value"], config["threshold"]
                p_value = "p_value" in config["method"]
                if (value < threshold) if p_value else (value >= threshold):
                    named.append(config["column"])
        return detected, named, ms
    return run


def alibi_runners() -> dict[str, Runner]:
    import numpy as np
    from alibi_detect.cd import KSDrift, TabularDrift

    ref = reference()
    codes = {c: {v: i for i, v in enumerate(sorted(ref[c].unique()))} for c in CATEGORICAL}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        cats = [frame[c].map(codes[c]).fillna(len(codes[c])).to_numpy(np.float64)
                for c in CATEGORICAL]
        return np.column_stack([frame[NUMERIC].to_numpy(np.float64), *cats])

    x_ref = encode(ref)
    ks = KSDrift(x_ref[:, :len(NUMERIC)], p_val=0.05)
    # Categories inferred from the reference (None); an unseen one gets the next code, and
    # TabularDrift tests on the union of the reference's and the window's categories.
    per_feature = {len(NUMERIC) + j: None for j in range(len(CATEGORICAL))}
    tabular = TabularDrift(x_ref, p_val=0.05, categories_per_feature=per_feature)

    def run_with(detector: Any, columns: int) -> Runner:
        def run(frame: pd.DataFrame) -> tuple[bool, list[str], float]:
            x = encode(frame)[:, :columns]
            started = time.perf_counter()
            out = detector.predict(x, drift_type="feature")["data"]
            ms = (time.perf_counter() - started) * 1e3
            flags = np.asarray(out["is_drift"]).ravel()
            named = [FEATURES[j] for j in range(columns) if flags[j]]
            return bool(flags.any()), named, ms
        return run
    return {"alibi-ksdrift": run_with(ks, len(NUMERIC)),
            "alibi-tabulardrift": run_with(tabular, len(FEATURES))}


def main() -> int:
    peer, out = sys.argv[1], Path(sys.argv[2])
    runners = {"evidently": evidently_runner()} if peer == "evidently" else alibi_runners()
    with out.open("w") as sink:
        for stream, size, i, frame in windows():
            for name, run in runners.items():
                detected, named, ms = run(frame)
                sink.write(json.dumps({"tool": name, "stream": stream, "size": size, "i": i,
                                       "fingerprint": fingerprint(frame),
                                       "detected": bool(detected), "named": named,
                                       "ms": ms}) + "\n")
            if i == 0:
                print(f"[{peer}] {stream} x {size}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
