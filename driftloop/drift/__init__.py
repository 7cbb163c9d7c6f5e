"""Drift of live inputs against the training reference: two questions, one registry.

*Does this window drift?* (the alarm, ``decision``) and *which features moved, and how?*
(the attribution: every real change, ranked by effect, with a plain description). The tests
are registered by name (``registry``), one small module each: ``ks`` and ``cvm`` for numeric
features, ``chi2`` and ``jensen_shannon`` for categoricals.
"""

from __future__ import annotations

from driftloop.drift import anderson, chi2, cvm, jensen_shannon, ks  # noqa: F401  (registers)
from driftloop.drift.decision import CORRECTIONS, Correction, Thresholds, adjust_p_values
from driftloop.drift.ks import ks_p_values, ks_statistics
from driftloop.drift.reference import (
    DEFAULT_TESTS,
    UNSEEN,
    DriftResult,
    FeatureDrift,
    Reference,
    evaluate_frames,
    resolve_tests,
)
from driftloop.drift.registry import TESTS, names

__all__ = ["CORRECTIONS", "DEFAULT_TESTS", "TESTS", "UNSEEN", "Correction", "DriftResult",
           "FeatureDrift", "Reference", "Thresholds", "adjust_p_values", "evaluate_frames",
           "ks_p_values", "ks_statistics", "names", "resolve_tests"]
