"""Prediction drift and label drift: the model's answers and the world's, beside the inputs.

A classifier's are category counts against a reference, tested like a categorical feature
(the registry's ``chi2`` by default, the total variation distance as the effect): the
predicted classes of the window against the model's own predictions on its training
reference, and the labels that came back through ``/feedback`` for the window's rows against
the training labels. A regressor's are values, tested like a numeric feature
(:func:`compare_values`: the registry's ``anderson`` by default, the shift in reference
standard deviations as the effect). Both arrive as counts of the logged text (the log
stores a value as its ``repr``), so one GROUP BY serves both. Each is its own question with
its own test, so no correction across features applies; a window with fewer than
``min_rows`` of them has no verdict (labels often arrive late and few).
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


def compare_values(output: Output, reference: Mapping[str, int] | None,
                   window: Mapping[str, int], thresholds: Thresholds,
                   test: str | None = None) -> dict[str, Any]:
    """The drift of a numeric output (a regressor's predictions or labels): the window's
    values against the reference's, as a numeric feature is tested."""
    from driftloop.drift.reference import DEFAULT_TESTS, Reference

    rows = int(sum(window.values()))
    if not reference:
        return compare_counts(output, reference, window, thresholds)  # says no_reference
    if rows < thresholds.min_rows:
        return compare_counts(output, reference, window, thresholds)  # insufficient_data

    def values(counts: Mapping[str, int]) -> np.ndarray:
        numbers = np.array([float(k) for k in counts], dtype=np.float64)
        return np.repeat(numbers, [int(v) for v in counts.values()])

    chosen = test or DEFAULT_TESTS["numeric"]
    ref = Reference.from_arrays([output], values(reference)[:, None], [],
                                np.empty((0, 0), dtype=object), {output: chosen})
    result = ref.evaluate(values(window)[:, None], None, thresholds).features[0]
    return {"status": "ok", "rows": rows, **asdict(result)}
