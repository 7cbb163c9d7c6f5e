"""The two questions a window answers, and the thresholds behind them.

*Does this window drift?* drives the alarm and the retrain, so it must not fire on noise. A
feature **drifts** when its p-value, corrected across features (Bonferroni by default, or
Benjamini-Hochberg), is under ``p_value`` **and** one of its effects (``effects``) is big:

- the share of rows that moved is at least ``min_effect`` (0.1): the KS distance (some value
  is crossed by 10 % more or fewer rows), or for categoricals the total variation distance
  (10 % of rows changed category). That is roughly a 0.25-standard-deviation mean shift of a
  normal feature, where a model's answers start to move;
- a numeric feature's rows moved by ``min_shift_sd`` (0.25) reference standard deviations on
  average (the Wasserstein distance): the same 0.25 sd for a mean shift, and it also sees a
  longer tail or a wider spread, where no single value is crossed by 10 % of rows;
- a categorical's window has ``unseen_alarm`` (5 %) of rows in categories the reference never
  saw: the model's answers on them are guesses.

A nullable feature also drifts when its missing rate moved by ``unseen_alarm`` (5 points),
significantly (a chi-squared test of missing against present, corrected with the others).
Rows ``/predict`` refused for a bad value are reported (their rate per feature, from
``min_rate`` a change) but never raise the alarm: they were never served, so a retrain
cannot learn from them; that is a data-quality alert (DriftloopRefusedInputs) for a person.

The window drifts when any feature does; windows under ``min_rows`` (50) rows are
``insufficient_data``. Why both bars: a raw test at 0.05 fires on 5 % of same-distribution
windows per feature (1 - 0.95^k for k features), and with 10^5 rows any shift, however
negligible, has a tiny p-value, so significance alone says "large sample", not "changed".
Bonferroni bounds false alarms across features at ``p_value``; the effect floors ask that the
change be big enough to matter. 50 rows is where the asymptotic p-values are reasonable and a
0.1 effect can reach significance at all.

*Which features moved, and how?* is what a person acts on, so it names every real change,
not only the alarming ones. A feature **changed** when its corrected p-value is under the same
``p_value`` and one of its effects passes its lower floor: ``min_change`` (0.05, half the
alarm's), ``min_shift_change_sd`` (0.1 sd), or ``min_rate`` (1 % of rows in unseen
categories). The significance bar is the alarm's, so the family-wise rate of naming an
unchanged feature stays under ``p_value``; only the size bars are lower. Every drifted
feature has changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, get_args

import numpy as np

from driftloop.settings import DriftCorrection

Correction = DriftCorrection
CORRECTIONS: tuple[Correction, ...] = get_args(DriftCorrection)


@dataclass(frozen=True)
class Thresholds:
    p_value: float = 0.05
    correction: Correction = "bonferroni"
    min_effect: float = 0.1
    min_rows: int = 50
    min_change: float = 0.05
    min_rate: float = 0.01
    unseen_alarm: float = 0.05
    min_shift_sd: float = 0.25
    min_shift_change_sd: float = 0.1

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        """Each field from the setting ``drift_<field>`` (one name, two places)."""
        return cls(**{f.name: getattr(settings, f"drift_{f.name}") for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "correction"}

    def drifts(self, p_adjusted: float, effect: float, unseen_rate: float | None = None,
               shift_sd: float | None = None) -> bool:
        """The alarm: significant, and big by one of the effects."""
        return self._passes(p_adjusted, (effect, self.min_effect),
                            (unseen_rate, self.unseen_alarm), (shift_sd, self.min_shift_sd))

    def changed(self, p_adjusted: float, effect: float, unseen_rate: float | None = None,
                shift_sd: float | None = None) -> bool:
        """The attribution: as significant, with the lower floors."""
        return self._passes(p_adjusted, (effect, self.min_change),
                            (unseen_rate, self.min_rate), (shift_sd, self.min_shift_change_sd))

    def rate_drifts(self, p_adjusted: float | None, change: float | None) -> bool:
        """The alarm for a rate the reference also has (a nullable feature's missing rate):
        significant, and moved by ``unseen_alarm`` (5 points) or more."""
        return p_adjusted is not None and self._passes(p_adjusted, (change, self.unseen_alarm))

    def rate_changed(self, p_adjusted: float | None, change: float | None) -> bool:
        """The attribution for such a rate: as significant, moved by ``min_rate``."""
        return p_adjusted is not None and self._passes(p_adjusted, (change, self.min_rate))

    def _passes(self, p_adjusted: float, *effects: tuple[float | None, float]) -> bool:
        return bool(p_adjusted < self.p_value
                    and any(value is not None and value >= floor for value, floor in effects))


def adjust_p_values(p_values: np.ndarray, method: Correction) -> np.ndarray:
    """Bonferroni or Benjamini-Hochberg adjusted p-values (capped at 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    k = len(p)
    if k == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * k, 1.0)
    if method == "bh":
        order = np.argsort(p)
        scaled = p[order] * k / np.arange(1, k + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(k)
        out[order] = np.minimum(monotone, 1.0)
        return out
    raise ValueError(f"unknown correction {method!r} (use 'bonferroni' or 'bh')")
