"""The drift tests, by name: one small module per test, registered here.

A test answers one question for every column of one kind at once: is this window's
distribution the reference's? It returns a statistic and a p-value per column. What the
columns share is prepared once and handed in, so a new test is one small module with one
vectorised function and no I/O:

- numeric tests receive :class:`NumericRanks`: the sorted reference (prepared when a model
  loads), the sorted window and where each window point falls in the reference. Both KS and
  Cramér-von Mises are functions of those positions alone, so a window costs one sort and one
  ``searchsorted`` per feature whatever the tests.
- categorical tests receive :class:`CategoryCounts`: the reference's and the window's counts
  over the reference's categories plus one "unseen" bucket.

Effect sizes and the decision are the same for every test of a kind (``effects``,
``decision``): the test only brings its power.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class NumericRanks:
    """A window's numeric columns placed in the sorted reference.

    ``ref`` (k, n) and ``win`` (k, m) are sorted per row. ``right[j, i]`` is the number of
    reference values <= ``win[j, i]``; ``left[j, i]`` the number < it (equal to ``right``
    where nothing ties). ``win_last[j, i]`` is the 1-based position of the last window value
    equal to ``win[j, i]`` (its own position where nothing ties).
    """

    ref: np.ndarray
    win: np.ndarray
    right: np.ndarray
    left: np.ndarray
    win_last: np.ndarray
    #: Per column, None where the reference has no tied values; else the prefix sums of
    #: ``last[i]`` and ``last[i]**2`` (``last[i]``: 1-based position of the last reference
    #: value equal to the i-th), for tests that sum over reference points.
    ref_ties: tuple[tuple[np.ndarray, np.ndarray] | None, ...] = ()

    @property
    def n(self) -> int:
        return int(self.ref.shape[1])

    @property
    def m(self) -> int:
        return int(self.win.shape[1])

    def ks_distance(self) -> np.ndarray:
        """The KS statistic per column: every test's effect size, and the ``ks`` test's
        statistic; computed once per placement."""
        cached = self.__dict__.get("_ks")
        if cached is None:
            from driftloop.drift.ks import ks_statistics_from

            cached = ks_statistics_from(self)
            object.__setattr__(self, "_ks", cached)
        return cached

    def select(self, columns: np.ndarray) -> NumericRanks:
        """The same placement for a subset of the columns (those one test is given)."""
        if len(columns) == self.ref.shape[0]:
            return self
        ties = tuple(self.ref_ties[j] for j in columns) if self.ref_ties else ()
        return NumericRanks(self.ref[columns], self.win[columns], self.right[columns],
                            self.left[columns], self.win_last[columns], ties)

    @classmethod
    def place(cls, ref_sorted: np.ndarray, window: np.ndarray,
              ref_ties: tuple[tuple[np.ndarray, np.ndarray] | None, ...] | None = None,
              ) -> NumericRanks:
        """Sort ``window`` (m, k) and place it in ``ref_sorted`` (k, n)."""
        ref = np.asarray(ref_sorted, dtype=np.float64)
        win = np.asarray(window, dtype=np.float64)
        if win.ndim == 1:
            win = win[:, None]
        k, n = ref.shape
        m = win.shape[0]
        if win.shape[1] != k:
            raise ValueError(f"window has {win.shape[1]} numeric columns, reference has {k}")
        if m == 0 or n == 0:
            raise ValueError("a numeric drift test needs at least one reference and one "
                             "window value")
        w = np.array(win.T, order="C")  # one copy, then sorted in place
        w.sort(axis=1)
        right = np.empty((k, m), dtype=np.int64)
        left = np.empty((k, m), dtype=np.int64)
        last = np.empty((k, m), dtype=np.int64)
        own = np.arange(1, m + 1, dtype=np.int64)
        for j in range(k):
            row = w[j]
            r = right[j]
            r[:] = np.searchsorted(ref[j], row, side="right")
            # A point ties with the reference when the value just below its slot equals it.
            hit = (ref[j][np.maximum(r - 1, 0)] == row) & (r > 0)
            left[j] = r
            if hit.any():  # only points tying with a reference value are searched again
                left[j][hit] = np.searchsorted(ref[j], row[hit], side="left")
            if m > 1 and (row[1:] == row[:-1]).any():
                last[j] = np.searchsorted(row, row, side="right")
            else:
                last[j] = own
        if ref_ties is None:
            ref_ties = reference_ties(ref)
        return cls(ref, w, right, left, last, tuple(ref_ties))


def reference_ties(ref_sorted: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray] | None, ...]:
    """Per sorted reference column: None without ties, else prefix sums of the last-tie
    positions and their squares (int64: exact). Prepared once when a model loads."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for row in np.asarray(ref_sorted):
        if len(row) < 2 or not (row[1:] == row[:-1]).any():
            out.append(None)
            continue
        last = np.searchsorted(row, row, side="right").astype(np.int64)
        zero = np.zeros(1, dtype=np.int64)
        out.append((np.concatenate([zero, np.cumsum(last)]),
                    np.concatenate([zero, np.cumsum(last * last)])))
    return tuple(out)


NumericFn = Callable[[NumericRanks], "tuple[np.ndarray, np.ndarray]"]
CategoricalFn = Callable[[np.ndarray, np.ndarray], "tuple[float, float]"]


@dataclass(frozen=True)
class DriftTest:
    """A registered test. ``numeric(ranks) -> (statistics, p_values)`` over the k columns;
    ``categorical(ref_counts, win_counts) -> (statistic, p_value)`` for one column."""

    name: str
    kind: Kind
    title: str
    numeric: NumericFn | None = None
    categorical: CategoricalFn | None = None


TESTS: dict[str, DriftTest] = {}


def register(test: DriftTest) -> DriftTest:
    if test.name in TESTS:
        raise ValueError(f"drift test {test.name!r} is registered twice")
    if (test.kind == "numeric") != (test.numeric is not None):
        raise ValueError(f"drift test {test.name!r}: a {test.kind} test needs its function")
    TESTS[test.name] = test
    return test


def names(kind: Kind | None = None) -> list[str]:
    """Registered test names, of one kind or all: the one list a spec is checked against."""
    _load_builtin()
    return sorted(n for n, t in TESTS.items() if kind is None or t.kind == kind)


def get(name: str, kind: Kind) -> DriftTest:
    _load_builtin()
    test = TESTS.get(name)
    if test is None or test.kind != kind:
        raise ValueError(f"unknown {kind} drift test {name!r} (known: "
                         f"{', '.join(names(kind))})")
    return test


def _load_builtin() -> None:
    # Importing a test module registers it; the package's __init__ imports them all, this
    # keeps `registry` usable on its own.
    from driftloop.drift import anderson, chi2, cvm, jensen_shannon, ks  # noqa: F401
