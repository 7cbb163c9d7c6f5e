"""The promotion gate: a challenger replaces the champion only if it is good and no worse.

Two rules, both on the same holdout: the challenger's metric reaches the absolute floor
(``min_value``), and it falls at most ``max_regression`` below the champion's. The spec
sets the thresholds; a retrain run may override them (e.g. a stricter floor for a forced
weekly retrain). Without a champion only the floor applies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.errors import DriftloopError
from driftloop.spec import ModelSpec

#: Float noise allowed when comparing metrics (0.9 - 0.02 is not exactly 0.88).
EPSILON = 1e-9


class GateError(DriftloopError):
    """Thresholds or figures the gate cannot judge (out of range, not a number)."""


@dataclass(frozen=True)
class GateThresholds:
    metric: str
    min_value: float
    max_regression: float

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, *, min_value: float | None = None,
        max_regression: float | None = None,
    ) -> GateThresholds:
        """The spec's gate, with run overrides where given (None keeps the spec's value)."""
        for name, value in (("min_value", min_value), ("max_regression", max_regression)):
            if value is not None and not (
                isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1
            ):
                raise GateError(f"gate threshold {name} must be a number in [0, 1], "
                                f"got {value!r}")
        return cls(
            metric=spec.gate.metric,
            min_value=float(spec.gate.min_value if min_value is None else min_value),
            max_regression=float(
                spec.gate.max_regression if max_regression is None else max_regression
            ),
        )


@dataclass(frozen=True)
class GateResult:
    """The verdict and every figure behind it (tagged on the version, shown in the report)."""

    passed: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    champion_version: str | None
    min_value: float
    max_regression: float
    holdout_rows: int
    holdout: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateResult:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})

    def tags(self) -> dict[str, str]:
        """Registry tags: the verdict plus the figures, so the MLflow UI shows why."""
        return {
            "gate_passed": "true" if self.passed else "false",
            "gate_reason": self.reason,
            "gate_metric": self.metric,
            "gate_challenger": f"{self.challenger:.6f}",
            "gate_champion": "" if self.champion is None else f"{self.champion:.6f}",
            "gate_champion_version": self.champion_version or "",
            "gate_min_value": f"{self.min_value:g}",
            "gate_max_regression": f"{self.max_regression:g}",
            "gate_holdout_rows": str(self.holdout_rows),
            "gate_holdout": self.holdout,
        }


def _check_score(name: str, value: float | None) -> None:
    if value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
        raise GateError(f"the {name}'s score must be a number in [0, 1], got {value!r}")


def decide(
    thresholds: GateThresholds, challenger: float, champion: float | None, *,
    champion_version: str | None = None, holdout_rows: int, holdout: str = "holdout",
) -> GateResult:
    """Judge a challenger's score against the floor and the champion's score.

    ``holdout`` names the rows both were scored on (e.g. ``fresh`` labeled production rows
    or the ``mixed`` holdout), for the reason text and the tags.
    """
    _check_score("challenger", challenger)
    _check_score("champion", champion)
    if holdout_rows < 1:
        raise GateError("the gate needs at least one holdout row to judge on")
    m = thresholds.metric
    failures: list[str] = []
    if challenger + EPSILON < thresholds.min_value:
        failures.append(f"{m} {challenger:.4f} is below the floor {thresholds.min_value:g}")
    who = f"champion v{champion_version}" if champion_version else "the champion"
    if champion is not None and challenger + EPSILON < champion - thresholds.max_regression:
        failures.append(
            f"{m} {challenger:.4f} is {champion - challenger:.4f} below {who} "
            f"({champion:.4f}); at most {thresholds.max_regression:g} is allowed"
        )
    where = f"on {holdout_rows} {holdout} rows"
    if failures:
        reason = "rejected: " + "; ".join(failures) + f" ({where})"
    elif champion is None:
        reason = (f"passed: {m} {challenger:.4f} >= floor {thresholds.min_value:g}; no "
                  f"champion to compare against ({where})")
    else:
        reason = (f"passed: {m} {challenger:.4f} >= floor {thresholds.min_value:g} and "
                  f"within {thresholds.max_regression:g} of {who} ({champion:.4f}) ({where})")
    return GateResult(
        passed=not failures, reason=reason, metric=m, challenger=float(challenger),
        champion=None if champion is None else float(champion),
        champion_version=champion_version, min_value=thresholds.min_value,
        max_regression=thresholds.max_regression, holdout_rows=int(holdout_rows),
        holdout=holdout,
    )
