"""Uncertainty of the book's results when fine-tuning runs are nested in pre-trained models (chapter 06).

A cell of Tables 1 and 2 holds several pre-trained models (pre-training seeds), each fine-tuned with
several fine-tuning seeds. Runs of one pre-trained model share its quirks, so they are not
independent: the unit of replication is the pre-trained model. Every interval here is therefore a
Student t interval on *per-pre-training means* (the mean over a model's fine-tuning seeds), with the
Welch-Satterthwaite degrees of freedom when groups are combined. This accounts for the nesting: the
spread of per-model means contains both the pre-training and the fine-tuning variance.

``variance_components`` splits a cell's spread into its two sources (one-way random-effects ANOVA,
method of moments), and ``min_detectable`` gives the smallest true difference a design detects with
a stated power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

__all__ = ["NotComputable", "Interval", "unit_means", "mean_interval", "contrast", "variance_components",
           "min_detectable", "METHOD"]

METHOD = ("95% Student t interval on per-pre-training means (each the mean over that model's fine-tuning "
          "seeds), Welch-Satterthwaite degrees of freedom when cells are combined")


class NotComputable(ValueError):
    """An interval that the design cannot give (fewer than two pre-trained models in a group)."""


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval, standard error, degrees of freedom and unit count."""

    estimate: float
    low: float
    high: float
    se: float
    df: float
    units: tuple[int, ...]  # pre-trained models in each combined group
    level: float = 0.95

    def text(self, digits: int = 2) -> str:
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _t(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``'s own kernel)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def unit_means(values_by_unit: Mapping[Hashable, Sequence[float]]) -> list[float]:
    """The mean of each unit's values (a unit = one pre-trained model), in key order."""
    means = []
    for key in sorted(values_by_unit, key=str):
        values = list(values_by_unit[key])
        if not values:
            raise ValueError(f"unit {key!r} has no values")
        means.append(sum(values) / len(values))
    return means


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else float("nan")
    return mean, var


def contrast(groups: Iterable[tuple[float, Sequence[float]]], level: float = 0.95) -> Interval:
    """Interval of ``sum_i c_i * mean(x_i)`` for independent groups of unit means ``x_i``.

    Standard error ``sqrt(sum c_i^2 s_i^2 / n_i)``; degrees of freedom by Welch-Satterthwaite;
    a Student t interval. Every group needs at least two units (else ``NotComputable``)."""
    groups = [(float(c), list(xs)) for c, xs in groups if c != 0]
    if not groups:
        raise ValueError("a contrast needs at least one group with a non-zero coefficient")
    estimate, var, denom = 0.0, 0.0, 0.0
    for c, xs in groups:
        if len(xs) < 2:
            raise NotComputable(f"a group has {len(xs)} pre-trained model(s); an interval needs at least 2")
        mean, s2 = _mean_var(xs)
        estimate += c * mean
        term = c * c * s2 / len(xs)
        var += term
        denom += term * term / (len(xs) - 1)
    if var == 0:
        raise NotComputable("every pre-trained model gave the same value: there is no spread to build an interval on")
    se = math.sqrt(var)
    df = var * var / denom if denom > 0 else float(sum(len(xs) - 1 for _, xs in groups))
    half = _t(0.5 + level / 2, df) * se
    return Interval(estimate, estimate - half, estimate + half, se, df, tuple(len(xs) for _, xs in groups), level)


def mean_interval(xs: Sequence[float], level: float = 0.95) -> Interval:
    """Interval of the mean of unit means ``xs`` (a one-group contrast)."""
    return contrast([(1.0, xs)], level)


def variance_components(values_by_unit: Mapping[Hashable, Sequence[float]]) -> dict:
    """Split the spread of nested values into a between-unit and a within-unit standard deviation.

    Method of moments of the one-way random-effects model ``x_ij = mu + a_i + e_ij``: the within
    variance is the pooled variance of values around their unit's mean (here: fine-tuning seeds),
    the between variance ``(MSB - MSW) / n0`` (here: pre-training seeds), clipped at 0, with ``n0``
    the usual effective group size for unequal groups. NaN where the design cannot give a part."""
    groups = [list(v) for _, v in sorted(values_by_unit.items(), key=lambda kv: str(kv[0])) if len(v)]
    k, n = len(groups), sum(len(g) for g in groups)
    if k == 0:
        raise ValueError("no values")
    grand = sum(sum(g) for g in groups) / n
    ssw = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups)
    ssb = sum(len(g) * (sum(g) / len(g) - grand) ** 2 for g in groups)
    msw = ssw / (n - k) if n > k else float("nan")
    msb = ssb / (k - 1) if k > 1 else float("nan")
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (k - 1) if k > 1 else float("nan")
    between = max(0.0, (msb - msw) / n0) if k > 1 and not math.isnan(msw) else float("nan")
    return {"within_sd": math.sqrt(msw) if not math.isnan(msw) else float("nan"),
            "between_sd": math.sqrt(between) if not math.isnan(between) else float("nan"),
            "units": k, "values": n}


def min_detectable(se: float, df: float, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at ``level`` detects with probability ``power``,
    for an estimate with standard error ``se`` and ``df`` degrees of freedom: ``(t_{1-a/2} + t_power) se``."""
    if not (se >= 0 and df > 0):
        raise NotComputable(f"no minimal detectable difference for se={se}, df={df}")
    return (_t(0.5 + level / 2, df) + _t(power, df)) * se
