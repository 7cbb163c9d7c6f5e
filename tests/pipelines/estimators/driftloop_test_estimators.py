"""An estimator only the retrain pipeline can import (its directory is on the pipeline's
PYTHONPATH, not the server's): a version trained with it registers and passes the gate, but
the server cannot load it — a "broken version" as a missing dependency in the serving image
makes one."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier


class UnservableForest(RandomForestClassifier):
    """A RandomForest under a class the serving process cannot import."""
