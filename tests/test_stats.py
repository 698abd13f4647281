"""Intervals for nested runs (fine-tunes within pre-trained models) on synthetic data of known variance."""

from __future__ import annotations

import math
import random

import pytest

from spdf_lib import stats


def _nested(rng, mu: float, sd_pre: float, sd_ft: float, n_pre: int, n_ft: int) -> dict:
    """values_by_unit: a pre-trained model's offset shared by its fine-tunes, plus per-fine-tune noise."""
    out = {}
    for p in range(n_pre):
        offset = rng.gauss(0.0, sd_pre)
        out[p] = [mu + offset + rng.gauss(0.0, sd_ft) for _ in range(n_ft)]
    return out


def test_interval_of_a_difference_covers_the_truth_at_its_level():
    """With three pre-trained models per arm, the 95% interval of sparse minus dense contains the true
    difference in about 95% of simulated experiments, although fine-tunes share their model's offset."""
    rng = random.Random(0)
    trials, hits = 3000, 0
    for _ in range(trials):
        dense = stats.unit_means(_nested(rng, 60.0, 0.8, 0.5, 3, 2))
        sparse = stats.unit_means(_nested(rng, 59.0, 0.8, 0.5, 3, 2))
        iv = stats.contrast([(1.0, sparse), (-1.0, dense)])
        hits += iv.low <= -1.0 <= iv.high
    assert 0.93 <= hits / trials <= 0.97


def test_treating_nested_runs_as_independent_would_undercover():
    """The reason for per-model means: pooling all fine-tunes as if independent gives too narrow an
    interval when the pre-training seed dominates (a check that the test above can fail)."""
    rng = random.Random(1)
    trials, hits = 2000, 0
    for _ in range(trials):
        dense = [v for vs in _nested(rng, 60.0, 1.5, 0.2, 3, 4).values() for v in vs]
        sparse = [v for vs in _nested(rng, 59.0, 1.5, 0.2, 3, 4).values() for v in vs]
        iv = stats.contrast([(1.0, sparse), (-1.0, dense)])
        hits += iv.low <= -1.0 <= iv.high
    assert hits / trials < 0.85


def test_contrast_matches_the_welch_formula():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    iv = stats.contrast([(1.0, a), (-1.0, b)])
    va, vb = 1.0 / 3, (20.0 / 3) / 4
    assert iv.estimate == pytest.approx(2.0 - 5.0)
    assert iv.se == pytest.approx(math.sqrt(va + vb))
    assert iv.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3))
    from scipy.stats import t

    assert iv.high - iv.estimate == pytest.approx(t.ppf(0.975, iv.df) * iv.se)


def test_variance_components_recover_known_spreads():
    rng = random.Random(2)
    comps = stats.variance_components(_nested(rng, 0.0, 2.0, 0.5, 400, 3))
    assert comps["between_sd"] == pytest.approx(2.0, rel=0.1)
    assert comps["within_sd"] == pytest.approx(0.5, rel=0.05)
    one_each = stats.variance_components({0: [1.0], 1: [2.0]})
    assert math.isnan(one_each["within_sd"]) and math.isnan(one_each["between_sd"])


def test_min_detectable_grows_with_the_standard_error_and_shrinks_with_df():
    assert stats.min_detectable(1.0, 10) > stats.min_detectable(0.5, 10)
    assert stats.min_detectable(1.0, 4) > stats.min_detectable(1.0, 40)
    assert stats.min_detectable(1.0, 1e6) == pytest.approx(1.96 + 0.8416, rel=1e-3)


def test_one_pretrained_model_gives_no_interval():
    with pytest.raises(stats.NotComputable, match="at least 2"):
        stats.contrast([(1.0, [60.0]), (-1.0, [59.0, 58.0])])


def test_no_spread_gives_no_interval():
    """A zero-width interval would claim certainty that identical values cannot give (e.g. BLEU 0 everywhere)."""
    with pytest.raises(stats.NotComputable, match="no spread"):
        stats.contrast([(1.0, [0.0, 0.0]), (-1.0, [0.0, 0.0, 0.0])])
