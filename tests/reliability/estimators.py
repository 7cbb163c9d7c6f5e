"""Estimators that fail on purpose, for the pipeline fault tests."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import RandomForestClassifier


class ExplodingForest(RandomForestClassifier):
    """A RandomForest whose training dies (as an out-of-memory node would)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ExplodingForest:
        raise RuntimeError("simulated: the training node ran out of memory")
