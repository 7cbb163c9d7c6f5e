"""The promotion gate: is a challenger good enough, and shown no worse than the champion?

- :mod:`driftloop.gate.paired`: the paired statistics (exact McNemar, Newcombe's interval,
  the paired bootstrap, rows needed);
- :mod:`driftloop.gate.compare`: the registry of paired tests per gate metric;
- :mod:`driftloop.gate.decision`: thresholds, the three outcomes and their reasons;
- :mod:`driftloop.gate.evaluation`: both models scored on the retrain's holdout.
"""

from __future__ import annotations

from driftloop.gate.compare import Comparison, compare_classes, compare_values
from driftloop.gate.decision import (
    OUTCOME_INSUFFICIENT,
    OUTCOME_PASSED,
    OUTCOME_REJECTED,
    OUTCOMES,
    GateError,
    GateResult,
    GateThresholds,
    decide,
)

__all__ = [
    "OUTCOMES", "OUTCOME_INSUFFICIENT", "OUTCOME_PASSED", "OUTCOME_REJECTED", "Comparison",
    "GateError", "GateResult", "GateThresholds", "compare_classes", "compare_values", "decide",
]
