"""The promotion gate: a challenger replaces the champion only if it is good, and shown to be
no worse than the champion on the same rows.

- **The floor.** The challenger's metric reaches ``min_value`` (a point estimate: it is the
  spec's statement of "good enough to serve").
- **The paired test.** Champion and challenger predict the same rows
  (:mod:`driftloop.gate.compare`). With ``require: non_inferiority`` the lower end of the
  interval of ``challenger - champion`` must lie above ``-max_regression``; with
  ``superiority`` above 0.
- **Three outcomes.** ``passed``; ``rejected`` (below the floor, or the difference itself is
  past the margin: more rows would not change the answer); ``insufficient_evidence`` when
  the difference is within the margin but the interval still reaches past it: the rows
  cannot tell, and the reason says how many would ("n=30, need ~620"). It is neither a pass
  nor a fail: the challenger is registered without the alias.

The spec sets the thresholds; a retrain run may override the floor and the margin (e.g. a
stricter floor for a forced weekly retrain). Without a champion only the floor applies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, get_args

from driftloop.errors import DriftloopError
from driftloop.gate.compare import Comparison
from driftloop.gate.paired import rows_needed
from driftloop.spec import GateRequirement, ModelSpec

#: Float noise allowed when comparing metrics (0.9 - 0.02 is not exactly 0.88).
EPSILON = 1e-9

OUTCOME_PASSED = "passed"
OUTCOME_REJECTED = "rejected"
OUTCOME_INSUFFICIENT = "insufficient_evidence"
OUTCOMES = (OUTCOME_PASSED, OUTCOME_REJECTED, OUTCOME_INSUFFICIENT)
#: How each outcome's reason begins, in words.
VERDICT_WORDS = {OUTCOME_PASSED: "passed", OUTCOME_REJECTED: "rejected",
                 OUTCOME_INSUFFICIENT: "not enough evidence"}
REQUIREMENTS: tuple[str, ...] = get_args(GateRequirement)


class GateError(DriftloopError):
    """Thresholds or figures the gate cannot judge (out of range, not a number)."""


@dataclass(frozen=True)
class GateThresholds:
    """The gate's figures. A higher-is-better metric has a floor (``min_value``); a
    lower-is-better one (rmse, mae, mape) a ceiling (``max_value``), and its margin is how
    much *higher* the challenger's error may be."""

    metric: str
    min_value: float | None
    max_regression: float
    require: str = "non_inferiority"
    confidence: float = 0.95
    max_value: float | None = None
    higher_is_better: bool = True
    #: The metric lies in [0, 1] (accuracy and friends): so must the challenger's score.
    unit_interval: bool = True

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, *, min_value: float | None = None,
        max_regression: float | None = None, max_value: float | None = None,
    ) -> GateThresholds:
        """The spec's gate, with run overrides where given (None keeps the spec's value)."""
        metric = spec.gate_metric
        bounds = "in [0, 1]" if metric.unit_interval else ">= 0"
        for name, value in (("min_value", min_value), ("max_regression", max_regression),
                            ("max_value", max_value)):
            if value is not None and not (
                isinstance(value, int | float) and math.isfinite(value) and value >= 0
                and (value <= 1 or not metric.unit_interval)
            ):
                raise GateError(f"gate threshold {name} must be a number {bounds} for "
                                f"{metric.name}, got {value!r}")
        wrong = max_value if metric.higher_is_better else min_value
        if wrong is not None:
            which = "max_value" if metric.higher_is_better else "min_value"
            raise GateError(f"gate threshold {which} does not apply to {metric.name} "
                            f"({metric.direction}): override "
                            f"{'min_value' if metric.higher_is_better else 'max_value'}")
        margin = spec.gate.max_regression if max_regression is None else max_regression
        assert margin is not None  # checked when the spec loaded
        return cls(
            metric=metric.name,
            min_value=(float(spec.gate.min_value if min_value is None else min_value)
                       if metric.higher_is_better else None),
            max_regression=float(margin),
            require=spec.gate.require,
            confidence=spec.gate.confidence,
            max_value=(None if metric.higher_is_better else
                       float(spec.gate.max_value if max_value is None else max_value)),
            higher_is_better=metric.higher_is_better,
            unit_interval=metric.unit_interval,
        )

    @property
    def margin(self) -> float:
        """How far worse than the champion the interval may reach."""
        return 0.0 if self.require == "superiority" else self.max_regression

    @property
    def threshold(self) -> float:
        """The floor, or the ceiling."""
        value = self.min_value if self.higher_is_better else self.max_value
        assert value is not None
        return value

    @property
    def threshold_word(self) -> str:
        return "floor" if self.higher_is_better else "ceiling"

    def clears(self, score: float) -> bool:
        if self.higher_is_better:
            return score + EPSILON >= self.threshold
        return score - EPSILON <= self.threshold


@dataclass(frozen=True)
class GateResult:
    """The verdict and every figure behind it (tagged on the version, shown in the report)."""

    passed: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    champion_version: str | None
    min_value: float | None
    max_regression: float
    holdout_rows: int
    holdout: str
    outcome: str = OUTCOME_PASSED
    require: str = "non_inferiority"
    confidence: float = 0.95
    #: The paired comparison (None without a champion).
    test: str | None = None
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    champion_only: int | None = None
    challenger_only: int | None = None
    #: With ``insufficient_evidence``: rows the interval would need (None: no number would).
    rows_needed: int | None = None
    #: A lower-is-better metric's ceiling (``min_value`` is then None).
    max_value: float | None = None
    higher_is_better: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def significantly_worse(self) -> bool:
        """The whole interval lies on the worse side of 0 (probation's rollback rule)."""
        if self.low is None or self.high is None:
            return False
        return self.high < 0 if self.higher_is_better else self.low > 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateResult:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def tags(self) -> dict[str, str]:
        """Registry tags: the verdict plus the figures, so the MLflow UI shows why."""

        def num(value: float | None, fmt: str = ".6f") -> str:
            return "" if value is None else format(value, fmt)

        return {
            "gate_passed": "true" if self.passed else "false",
            "gate_outcome": self.outcome,
            "gate_reason": self.reason,
            "gate_metric": self.metric,
            "gate_challenger": f"{self.challenger:.6f}",
            "gate_champion": num(self.champion),
            "gate_champion_version": self.champion_version or "",
            "gate_min_value": "" if self.min_value is None else f"{self.min_value:g}",
            "gate_max_value": "" if self.max_value is None else f"{self.max_value:g}",
            "gate_direction": "higher" if self.higher_is_better else "lower",
            "gate_max_regression": f"{self.max_regression:g}",
            "gate_require": self.require,
            "gate_confidence": f"{self.confidence:g}",
            "gate_test": self.test or "",
            "gate_difference": num(self.difference),
            "gate_interval": "" if self.low is None or self.high is None else
            f"[{self.low:.6f}, {self.high:.6f}]",
            "gate_p_value": num(self.p_value, ".6g"),
            "gate_rows_needed": "" if self.rows_needed is None else str(self.rows_needed),
            "gate_holdout_rows": str(self.holdout_rows),
            "gate_holdout": self.holdout,
        }

    def flat_metrics(self) -> dict[str, float]:
        """The figures as numbers, for KFP's Metrics artifact and MLflow."""
        out = {"gate_passed": 1.0 if self.passed else 0.0,
               "gate_insufficient_evidence": float(self.outcome == OUTCOME_INSUFFICIENT)}
        for key in ("difference", "low", "high", "p_value", "rows_needed"):
            value = getattr(self, key)
            if value is not None:
                out[f"gate_{'interval_' if key in ('low', 'high') else ''}{key}"] = \
                    float(value)
        return out


def _check_score(name: str, value: float | None, unit_interval: bool) -> None:
    if value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value)
            and (not unit_interval or 0 <= value <= 1)):
        bounds = "a number in [0, 1]" if unit_interval else "a finite number"
        raise GateError(f"the {name}'s score must be {bounds}, got {value!r}")


def _fmt(value: float, t: GateThresholds, signed: bool = False) -> str:
    """A figure: 4 decimals for a [0, 1] metric, 4 significant digits for the others."""
    spec = ("+" if signed else "") + (".4f" if t.unit_interval else ".4g")
    return format(value, spec)


def decide(
    thresholds: GateThresholds, challenger: float, comparison: Comparison | None, *,
    champion_version: str | None = None, holdout_rows: int, holdout: str = "holdout",
) -> GateResult:
    """Judge a challenger's score against the floor (or ceiling) and, given the paired
    ``comparison`` with the champion on the same rows, against the champion.

    ``holdout`` names the rows both were scored on (e.g. ``fresh labeled`` production rows
    or the ``holdout``), for the reason text and the tags. The comparison's difference is
    ``challenger - champion`` in the metric's units; for a lower-is-better metric its sign is
    turned, so "better" is always above 0 in the checks below, while the text shows the
    metric's own figures and says which way is better.
    """
    t = thresholds
    _check_score("challenger", challenger, t.unit_interval)
    if comparison is not None:
        _check_score("champion", comparison.champion, t.unit_interval)
        if comparison.rows != holdout_rows:
            raise GateError(f"the comparison covers {comparison.rows} rows, the gate "
                            f"{holdout_rows}")
    if holdout_rows < 1:
        raise GateError("the gate needs at least one holdout row to judge on")
    if thresholds.require not in REQUIREMENTS:
        raise GateError(f"gate require must be one of {', '.join(REQUIREMENTS)}, got "
                        f"{thresholds.require!r}")
    m = t.metric
    word, sign = t.threshold_word, (">=" if t.higher_is_better else "<=")
    where = f"on {holdout_rows} {holdout} rows"
    floor_ok = t.clears(challenger)
    floor = (f"{word} {t.threshold:g} cleared" if floor_ok else
             f"{m} {_fmt(challenger, t)} is "
             f"{'below the floor' if t.higher_is_better else 'above the ceiling'} "
             f"{t.threshold:g}")
    needed: int | None = None
    if comparison is None:
        outcome = OUTCOME_PASSED if floor_ok else OUTCOME_REJECTED
        reason = (f"{outcome}: {m} {_fmt(challenger, t)} {sign} {word} {t.threshold:g}; no "
                  f"champion to compare against ({where})" if floor_ok else
                  f"rejected: {floor} ({where}); no champion to compare against")
        return _result(t, outcome, reason, challenger, None, champion_version, holdout_rows,
                       holdout, None)
    c = comparison
    hib = t.higher_is_better
    gain, gain_low = (c.difference, c.low) if hib else (-c.difference, -c.high)
    who = f"champion v{champion_version}" if champion_version else "the champion"
    level = (f"{c.confidence * 100:g} % interval [{_fmt(c.low, t, True)}, "
             f"{_fmt(c.high, t, True)}]")
    if hib:
        bound = "0" if t.require == "superiority" else f"-{t.margin:g}"
        side = "above"
        direction = ""
    else:
        bound = "0" if t.require == "superiority" else f"+{t.margin:g}"
        side = "below"
        direction = " (lower is better)"
    shown = "superior" if t.require == "superiority" else "non-inferior"
    figures = (f"{m} {_fmt(challenger, t)} vs {_fmt(c.champion, t)} for {who} on the same "
               f"{holdout_rows} {holdout} rows{direction}: {_fmt(c.difference, t, True)}, "
               f"{level}")
    if gain_low > -t.margin + EPSILON:
        verdict, outcome = f"{side} {bound} ({shown})", OUTCOME_PASSED
    elif gain <= -t.margin + EPSILON:
        verdict = ("not better than the champion (superiority required)"
                   if t.require == "superiority" else
                   f"worse than the champion by more than the {t.margin:g} allowed")
        outcome = OUTCOME_REJECTED
    else:
        needed = rows_needed(holdout_rows, gain, gain_low, t.margin)
        verdict = (f"reaches {'below' if hib else 'above'} {bound}: not enough evidence that "
                   f"it is {shown} (n={holdout_rows}, need ≈{needed})")
        outcome = OUTCOME_INSUFFICIENT
    if not floor_ok:
        outcome = OUTCOME_REJECTED
    reason = f"{VERDICT_WORDS[outcome]}: {figures} {verdict}; {c.evidence()}; {floor}"
    return _result(t, outcome, reason, challenger, c, champion_version, holdout_rows,
                   holdout, needed)


def _result(t: GateThresholds, outcome: str, reason: str, challenger: float,
            c: Comparison | None, champion_version: str | None, rows: int, holdout: str,
            needed: int | None) -> GateResult:
    return GateResult(
        passed=outcome == OUTCOME_PASSED, reason=reason, metric=t.metric,
        challenger=float(challenger), champion=None if c is None else c.champion,
        champion_version=champion_version, min_value=t.min_value,
        max_regression=t.max_regression, holdout_rows=int(rows), holdout=holdout,
        outcome=outcome, require=t.require, confidence=t.confidence,
        test=None if c is None else c.test, difference=None if c is None else c.difference,
        low=None if c is None else c.low, high=None if c is None else c.high,
        p_value=None if c is None else c.p_value,
        champion_only=None if c is None else c.champion_only,
        challenger_only=None if c is None else c.challenger_only, rows_needed=needed,
        max_value=t.max_value, higher_is_better=t.higher_is_better,
    )
