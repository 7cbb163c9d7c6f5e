"""Prediction drift and label drift: the model's answers and the world's, beside the inputs.

Both are category counts against a reference, tested like a categorical feature (the
registry's ``chi2`` by default, the total variation distance as the effect): the predicted
classes of the window against the model's own predictions on its training reference, and
the labels that came back through ``/feedback`` for the window's rows against the training
labels. Each is its own question with its own test, so no correction across features
applies; a window with fewer than ``min_rows`` of them has no verdict (labels often arrive
late and few).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal

import numpy as np

from driftloop.drift import registry
from driftloop.drift.decision import Thresholds
from driftloop.drift.effects import describe_categorical, tvd
from driftloop.drift.reference import FeatureDrift

Output = Literal["prediction", "label"]
OUTPUTS: tuple[Output, ...] = ("prediction", "label")


def compare_counts(output: Output, reference: Mapping[str, int] | None,
                   window: Mapping[str, int], thresholds: Thresholds,
                   test: str = "chi2") -> dict[str, Any]:
    """The drift of one output: ``status`` ok, insufficient_data or no_reference, the rows
    compared, and (when ok) the fields of a categorical feature's row."""
    rows = int(sum(window.values()))
    if not reference:
        return {"status": "no_reference", "rows": rows, "drifted": False, "changed": False,
                "message": f"this model version has no {output} reference (registered "
                "before driftloop kept one)"}
    if rows < thresholds.min_rows:
        return {"status": "insufficient_data", "rows": rows, "drifted": False,
                "changed": False, "message": f"{rows} {output}(s) in the window, fewer than "
                f"{thresholds.min_rows} (DRIFTLOOP_DRIFT_MIN_ROWS)"}
    categories = sorted(reference)
    ref = np.array([reference[c] for c in categories] + [0], dtype=np.float64)
    win = np.zeros(len(categories) + 1)
    index = {c: i for i, c in enumerate(categories)}
    unseen: dict[str, int] = {}
    for value, count in window.items():
        i = index.get(value, len(categories))
        win[i] += count
        if i == len(categories):
            unseen[value] = int(count)
    chosen = registry.get(test, "categorical")
    assert chosen.categorical is not None
    stat, p = chosen.categorical(ref, win)
    unseen_rate = float(win[-1] / rows)
    effect = tvd(ref, win)
    result = FeatureDrift(output, "categorical", chosen.name, stat, p, p, effect,
                          thresholds.drifts(p, effect, unseen_rate),
                          description=describe_categorical(categories, ref, win, unseen),
                          unseen_categories=int(win[-1]), unseen_rate=unseen_rate)
    result.changed = result.drifted or thresholds.changed(p, effect, unseen_rate)
    if not result.changed:
        result.description = "no real change"
    return {"status": "ok", "rows": rows, **asdict(result)}
