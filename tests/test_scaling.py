"""Chapter 09's analysis (spdf_lib.scaling) and its figures and tables (spdf_lib.figures.beyond), on
synthetic results whose true gap and spread are known."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from spdf_lib import figures, scaling, stats, verdicts  # noqa: E402
from spdf_lib.figures import beyond  # noqa: E402
from spdf_lib.flops import sparsifiable_weights  # noqa: E402
from spdf_lib.model import get_config  # noqa: E402

PARAMS = {"a": 10 ** 5, "b": 10 ** 6, "c": 10 ** 7, "d": 10 ** 8}
TRUE_SLOPE = -0.05  # nats per tenfold N
TRUE_GAP_AT_1E5 = 0.40


def true_gap(n_params: float) -> float:
    return TRUE_GAP_AT_1E5 + TRUE_SLOPE * (math.log10(n_params) - 5)


def pretrain(size, sparsity, seed, val_loss, variant=None, tokens=1000, flops=2e15, wall=10.0):
    result = {"size": size, "sparsity": sparsity, "seed": seed, "val_loss": val_loss, "tokens": tokens,
              "training_flops": flops, "log": {"wall_s": wall}}
    if variant is not None:
        result["variant"] = variant
    return result


def synthetic_runs(seeds=(0, 1, 2), noise=0.01, rng_seed=0, sizes=PARAMS, levels=(0.5, 0.75)):
    """Static Chinchilla runs: dense loss 4 - 0.3 log10(N), the gap ``true_gap(N) * s / 0.75`` at sparsity s."""
    rng = np.random.default_rng(rng_seed)
    runs = []
    for size, n in sizes.items():
        dense = 4.0 - 0.3 * math.log10(n)
        for seed in seeds:
            runs.append(pretrain(size, 0.0, seed, dense + rng.normal(0, noise), variant=""))
            for s in levels:
                runs.append(pretrain(size, s, seed, dense + true_gap(n) * s / 0.75 + rng.normal(0, noise)))
    return runs


# ------------------------------------------------------------------------------------- helpers

def test_missing_variant_is_the_chinchilla_static_run():
    assert verdicts.variant_of({"size": "a"}) == ""
    assert verdicts.variant_of({"variant": None}) == ""
    assert verdicts.variant_of({"variant": "rigl"}) == "rigl"
    # a run without ``variant`` counts as static in the gap; an iso-FLOP one does not
    runs = [pretrain("a", 0.0, 0, 3.0), pretrain("a", 0.0, 1, 3.2), pretrain("a", 0.5, 0, 3.5),
            pretrain("a", 0.5, 1, 3.7), pretrain("a", 0.5, 0, 9.0, variant="isoflop")]
    gaps = scaling.gap_frame(runs, PARAMS)
    assert len(gaps) == 1 and gaps["sparse val loss"].iloc[0] == pytest.approx(3.6)


@pytest.mark.parametrize("variant, sparsity, label", [("", 0.0, "dense"), ("", 0.5, "static 50%"),
                                                     ("isoflop", 0.5, "static 50%, iso-FLOP"),
                                                     ("rigl", 0.75, "RigL 75%"), ("set", 0.75, "SET 75%"),
                                                     ("", 0.875, "static 87.5%")])
def test_run_labels(variant, sparsity, label):
    assert scaling.run_label(variant, sparsity) == label


def test_paper_targets_are_the_non_embedding_weights_of_the_presets():
    targets = scaling.paper_targets()
    assert targets == {"GPT-2 Small": sparsifiable_weights(get_config("gpt2-small")),
                       "GPT-3 XL": sparsifiable_weights(get_config("gpt3-xl"))}
    assert targets["GPT-2 Small"] == 12 * (4 * 768 ** 2 + 2 * 768 * 3072)


# ------------------------------------------------------------------------------------------ gap

def test_gap_is_sparse_minus_dense_positive_when_sparse_is_worse_with_welch_interval():
    runs = [pretrain("a", 0.0, 0, 3.00), pretrain("a", 0.0, 1, 3.10), pretrain("a", 0.0, 2, 3.05),
            pretrain("a", 0.75, 0, 3.30), pretrain("a", 0.75, 1, 3.50)]
    row = scaling.gap_frame(runs, PARAMS).iloc[0]
    assert row["gap"] == pytest.approx(3.40 - 3.05) and row["gap"] > 0
    expected = stats.contrast([(1, [3.30, 3.50]), (-1, [3.00, 3.10, 3.05])])
    assert (row["low"], row["high"], row["se"], row["df"]) == pytest.approx(
        (expected.low, expected.high, expected.se, expected.df))
    assert (row["dense seeds"], row["sparse seeds"], row["non-embedding params"], row["interval"]) == \
        (3, 2, 10 ** 5, "")


def test_gap_with_one_seed_has_no_interval_and_says_why():
    runs = [pretrain("a", 0.0, 0, 3.0), pretrain("a", 0.0, 1, 3.1), pretrain("a", 0.5, 0, 3.4)]
    row = scaling.gap_frame(runs, PARAMS).iloc[0]
    assert row["gap"] == pytest.approx(0.35)
    assert np.isnan(row["low"]) and np.isnan(row["high"]) and np.isnan(row["se"])
    assert "1 pre-trained model" in row["interval"]


def test_gap_rows_are_ordered_by_sparsity_then_size_and_repeated_seeds_are_one_unit():
    runs = synthetic_runs(sizes={"c": 10 ** 7, "a": 10 ** 5}) + [pretrain("a", 0.5, 0, 100.0)]
    gaps = scaling.gap_frame(runs, PARAMS)
    assert list(zip(gaps["sparsity"], gaps["size"])) == [(0.5, "a"), (0.5, "c"), (0.75, "a"), (0.75, "c")]
    assert gaps["sparse seeds"].iloc[0] == 3  # the repeated seed 0 is averaged into one unit


def test_gap_frame_needs_the_parameter_count_of_every_size():
    with pytest.raises(KeyError, match="'z'"):
        scaling.gap_frame([pretrain("z", 0.0, 0, 3.0), pretrain("z", 0.5, 0, 3.1)], PARAMS)


# ---------------------------------------------------------------------------------------- trend

def test_the_fit_recovers_the_slope_of_a_gap_that_shrinks_with_size():
    gaps = scaling.gap_frame(synthetic_runs(noise=0.005), PARAMS)
    trend = scaling.fit_gap_trend(gaps, 0.75)
    assert trend.n == 4 and trend.df == 2
    assert trend.slope == pytest.approx(TRUE_SLOPE, abs=0.01)
    assert trend.predict(10 ** 6).estimate == pytest.approx(true_gap(10 ** 6), abs=0.01)
    ci = trend.slope_interval()
    assert ci.low < TRUE_SLOPE < ci.high and ci.high < 0
    half = scaling.fit_gap_trend(gaps, 0.5)
    assert half.slope == pytest.approx(TRUE_SLOPE * 0.5 / 0.75, abs=0.01)


def test_the_fit_matches_numpy_least_squares_and_the_textbook_prediction_interval():
    gaps = pd.DataFrame({"sparsity": [0.75] * 4, "non-embedding params": [1e5, 1e6, 1e7, 1e8],
                         "gap": [0.40, 0.33, 0.31, 0.24]})
    trend = scaling.fit_gap_trend(gaps, 0.75)
    slope, intercept = np.polyfit([5, 6, 7, 8], gaps["gap"], 1)
    assert (trend.slope, trend.intercept) == pytest.approx((slope, intercept))
    resid = gaps["gap"] - (intercept + slope * np.array([5, 6, 7, 8]))
    s = math.sqrt(float(np.sum(resid ** 2)) / 2)
    p = trend.predict(1e9)
    se = s * math.sqrt(1 / 4 + (9 - 6.5) ** 2 / 5.0)
    assert p.se == pytest.approx(se) and p.df == 2
    from scipy.stats import t
    assert p.high - p.estimate == pytest.approx(t.ppf(0.975, 2) * se)


def test_the_interval_of_a_prediction_widens_away_from_the_fitted_range():
    trend = scaling.fit_gap_trend(scaling.gap_frame(synthetic_runs(), PARAMS), 0.75)
    widths = [trend.predict(n).high - trend.predict(n).low for n in (10 ** 6.5, 10 ** 8, 10 ** 9, 10 ** 10)]
    assert all(a < b for a, b in zip(widths, widths[1:]))


def test_fewer_than_three_sizes_or_no_residual_spread_is_not_computable():
    gaps = scaling.gap_frame(synthetic_runs(sizes={"a": 10 ** 5, "b": 10 ** 6}), PARAMS)
    with pytest.raises(stats.NotComputable, match="2 model size"):
        scaling.fit_gap_trend(gaps, 0.75)
    line = pd.DataFrame({"sparsity": [0.5] * 3, "non-embedding params": [1e5, 1e6, 1e7], "gap": [0.3, 0.2, 0.1]})
    with pytest.raises(stats.NotComputable, match="line"):
        scaling.fit_gap_trend(line, 0.5)


def test_extrapolations_say_which_targets_are_outside_the_fitted_sizes():
    gaps = scaling.gap_frame(synthetic_runs(sizes={"a": 10 ** 5, "b": 10 ** 6, "c": 10 ** 7}), PARAMS)
    targets = {"inside": 3 * 10 ** 6, "GPT-3 XL": sparsifiable_weights(get_config("gpt3-xl"))}
    frame = scaling.extrapolations(gaps, targets)
    assert len(frame) == 4 and list(frame["sparsity"]) == [0.5, 0.5, 0.75, 0.75]
    row = frame[(frame["sparsity"] == 0.75) & (frame["target"] == "GPT-3 XL")].iloc[0]
    assert row["kind"] == "extrapolation" and row["fitted range"] == "1.0e+05-1.0e+07"
    assert row["factor beyond largest fitted"] == pytest.approx(targets["GPT-3 XL"] / 10 ** 7)
    trend = scaling.fit_gap_trend(gaps, 0.75)
    new = trend.predict(targets["GPT-3 XL"], new_size=True)  # the prediction interval of one more size
    assert (row["predicted gap"], row["low"], row["high"]) == pytest.approx((new.estimate, new.low, new.high))
    mean = trend.predict(targets["GPT-3 XL"])
    assert new.estimate == pytest.approx(mean.estimate) and new.high - new.low > mean.high - mean.low
    assert frame[frame["target"] == "inside"]["kind"].eq("interpolation").all()


def test_extrapolations_without_a_trend_are_nan_with_the_reason():
    gaps = scaling.gap_frame(synthetic_runs(sizes={"a": 10 ** 5, "b": 10 ** 6}), PARAMS)
    frame = scaling.extrapolations(gaps, scaling.paper_targets())
    assert frame["predicted gap"].isna().all() and frame["interval"].str.contains("at least 3").all()
    assert frame["kind"].eq("extrapolation").all()


# ------------------------------------------------------------------------------ pooled contrast

def test_pooled_contrast_matches_the_formula():
    a, b, ref = [1.0], [2.0, 4.0], [10.0, 11.0, 12.0]
    ci = scaling.pooled_contrast([(1, a), (-1, b)], [a, b, ref])
    sp2 = ((2 - 3) ** 2 + (4 - 3) ** 2 + 1 + 0 + 1) / (1 + 2)
    se = math.sqrt(sp2 * (1 / 1 + 1 / 2))
    assert ci.estimate == pytest.approx(-2.0) and ci.se == pytest.approx(se) and ci.df == 3
    assert ci.units == (1, 2)
    # only the groups in the pool count: without b the variance is ref's alone
    alone = scaling.pooled_contrast([(1, a), (-1, b)], [ref])
    assert alone.df == 2 and alone.se == pytest.approx(math.sqrt(1.0 * (1 / 1 + 1 / 2)))


def test_pooled_contrast_is_not_computable_without_a_group_of_two_or_without_spread():
    with pytest.raises(stats.NotComputable, match="2 or more"):
        scaling.pooled_contrast([(1, [1.0]), (-1, [2.0])], [[1.0], [2.0], [3.0]])
    with pytest.raises(stats.NotComputable, match="0"):
        scaling.pooled_contrast([(1, [1.0]), (-1, [2.0, 2.0])], [[1.0], [2.0, 2.0]])


def test_pooled_contrast_covers_the_true_difference_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    sigma, truth, hits, draws = 0.3, 0.5, 0, 2000
    for _ in range(draws):
        one = list(rng.normal(truth, sigma, 1))  # a group with a single pre-training seed
        dense = list(rng.normal(0.0, sigma, 3))
        others = [list(rng.normal(mu, sigma, 2)) for mu in (1.0, -2.0)]
        ci = scaling.pooled_contrast([(1, one), (-1, dense)], [dense, *others])
        hits += ci.low <= truth <= ci.high
    assert 0.93 <= hits / draws <= 0.97


# ------------------------------------------------------------------------------- variant frame

def _variant_set():
    pre = [pretrain("a", 0.0, 0, 3.0, tokens=100, flops=4e15, wall=10), pretrain("a", 0.0, 1, 3.2, tokens=100,
                                                                                 flops=4e15, wall=12),
           pretrain("a", 0.75, 0, 3.5, tokens=100, flops=1e15), pretrain("a", 0.75, 1, 3.7, tokens=100, flops=1e15),
           pretrain("a", 0.75, 0, 3.3, variant="isoflop", tokens=400, flops=4e15),
           pretrain("a", 0.75, 0, 3.4, variant="rigl", tokens=100, flops=1.5e15),
           pretrain("a", 0.75, 0, 3.45, variant="set", tokens=100, flops=1e15),
           pretrain("b", 0.0, 0, 1.0)]
    ev = []
    for pseed, bleus in ((0, [60.0, 62.0]), (1, [64.0, 66.0])):
        ev += [{"size": "a", "sparsity": 0.0, "pretrain_seed": pseed, "seed": k, "task": "e2e", "value": v,
                "test_loss": 2.0 + pseed, "keep_masks": False} for k, v in enumerate(bleus)]
    ev += [{"size": "a", "sparsity": 0.75, "pretrain_seed": 0, "seed": 0, "task": "e2e", "value": 58.0,
            "test_loss": 2.6, "keep_masks": False},
           {"size": "a", "sparsity": 0.75, "pretrain_seed": 1, "seed": 0, "task": "e2e", "value": 60.0,
            "test_loss": 2.8, "keep_masks": False},
           {"size": "a", "sparsity": 0.75, "pretrain_seed": 0, "seed": 0, "task": "e2e", "value": 0.0,
            "test_loss": 9.0, "keep_masks": True},  # kept masks: ignored
           {"size": "a", "sparsity": 0.75, "pretrain_seed": 0, "seed": 0, "task": "e2e", "value": 61.0,
            "test_loss": 2.5, "keep_masks": False, "variant": "rigl"},
           {"size": "a", "sparsity": 0.75, "pretrain_seed": 0, "seed": 0, "task": "dart", "value": 1.0,
            "test_loss": 2.5, "keep_masks": False}]  # another task: ignored
    return pre, ev


def test_variant_frame_rows_labels_and_means():
    pre, ev = _variant_set()
    frame = scaling.variant_frame(pre, ev, "a").set_index("run")
    assert list(frame.index) == ["dense", "static 75%", "static 75%, iso-FLOP", "RigL 75%", "SET 75%"]
    dense, static, iso, rigl = (frame.loc[r] for r in ("dense", "static 75%", "static 75%, iso-FLOP", "RigL 75%"))
    assert dense["val loss"] == pytest.approx(3.1) and dense["training PFLOP"] == pytest.approx(4.0)
    assert dense["GPU wall s"] == pytest.approx(11.0) and dense["pre-training seeds"] == 2
    assert iso["tokens"] == 400 and iso["pre-training seeds"] == 1
    assert static["val loss vs dense"] == pytest.approx(0.5) and np.isnan(static["val loss vs static"])
    assert iso["val loss vs static"] == pytest.approx(3.3 - 3.6) and iso["val loss vs dense"] == pytest.approx(0.2)
    assert np.isnan(dense["val loss vs dense"])
    # downstream: mean of per-pre-training means (61 and 65 for dense), masks kept and other tasks left out
    assert dense["E2E BLEU"] == pytest.approx(63.0) and dense["fine-tunes"] == 4
    assert static["E2E BLEU"] == pytest.approx(59.0) and static["BLEU vs dense"] == pytest.approx(-4.0)
    assert static["fine-tunes"] == 2 and static["test loss vs dense"] == pytest.approx(2.7 - 2.5)
    assert rigl["E2E BLEU"] == pytest.approx(61.0) and rigl["fine-tunes"] == 1
    assert np.isnan(frame.loc["SET 75%", "E2E BLEU"]) and frame.loc["SET 75%", "fine-tunes"] == 0


def test_variant_frame_intervals_pool_every_group_of_the_size():
    pre, ev = _variant_set()
    frame = scaling.variant_frame(pre, ev, "a").set_index("run")
    iso = frame.loc["static 75%, iso-FLOP"]
    expected = scaling.pooled_contrast([(1, [3.3]), (-1, [3.0, 3.2])], [[3.0, 3.2], [3.5, 3.7], [3.3], [3.4], [3.45]])
    assert (iso["low"], iso["high"]) == pytest.approx((expected.low, expected.high))
    assert np.isfinite(iso["static low"]) and iso["static low"] < iso["val loss vs static"] < iso["static high"]
    rigl = frame.loc["RigL 75%"]
    bleu = scaling.pooled_contrast([(1, [61.0]), (-1, [61.0, 65.0])], [[61.0, 65.0], [58.0, 60.0], [61.0]])
    assert (rigl["BLEU low"], rigl["BLEU high"]) == pytest.approx((bleu.low, bleu.high))
    # the mean's own interval pools the seed variance too, so a single-seed kind gets one
    own = scaling.pooled_contrast([(1, [3.3])], [[3.0, 3.2], [3.5, 3.7]])
    assert (iso["val loss low"], iso["val loss high"]) == pytest.approx((own.low, own.high))


# -------------------------------------------------------------------------- figures and tables

def _axes_labelled(fig):
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip()


def test_gap_figure_with_and_without_a_trend():
    gaps = scaling.gap_frame(synthetic_runs(), PARAMS)
    fig = beyond.gap_figure(gaps)
    assert isinstance(fig, plt.Figure)
    _axes_labelled(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "non-embedding parameters" in ax.get_xlabel()
    assert "extrapolation" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.get_text().strip() == "GPT-3 XL" for t in ax.texts)
    plt.close(fig)
    few = scaling.gap_frame(synthetic_runs(seeds=(0,), sizes={"a": 10 ** 5, "b": 10 ** 6}), PARAMS)
    fig = beyond.gap_figure(few, {0.5: None, 0.75: None})
    _axes_labelled(fig)
    assert "extrapolation" not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_variant_figure_has_labelled_panels():
    pre, ev = _variant_set()
    fig = beyond.variant_figure(scaling.variant_frame(pre, ev, "a"))
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    _axes_labelled(fig)
    assert fig.axes[0].get_xlabel() == "training FLOPs (PFLOP)"
    plt.close(fig)
    fig = beyond.variant_figure(scaling.variant_frame(pre, [], "a"))  # no downstream results yet
    _axes_labelled(fig)
    plt.close(fig)


def test_tables_show_intervals_as_text():
    gaps = scaling.gap_frame(synthetic_runs(), PARAMS)
    html = beyond.gap_table(gaps).to_html()
    row = gaps.iloc[0]
    assert f"[{row['low']:+.3f}, {row['high']:+.3f}]" in html and "1,000,000" in html
    ext = scaling.extrapolations(gaps, scaling.paper_targets())
    assert "extrapolation" in beyond.extrapolation_table(ext).to_html()
    pre, ev = _variant_set()
    html = beyond.variant_table(scaling.variant_frame(pre, ev, "a")).to_html()
    assert "static 75%, iso-FLOP" in html and "63.00" in html and "4.00" in html
    assert beyond.interval_text(float("nan"), 1.0, reason="one seed") == "one seed"


def test_scaling_sentence_reports_a_shrinking_gap_and_an_inconclusive_one():
    gaps = scaling.gap_frame(synthetic_runs(noise=0.002), PARAMS)
    ext = scaling.extrapolations(gaps, scaling.paper_targets())
    text = beyond.scaling_sentence(gaps, None, ext)
    trend = scaling.fit_gap_trend(gaps, 0.75)
    assert text.startswith("At 75% sparsity") and "shrinks" in text and f"{trend.slope:+.3f}" in text
    assert "extrapolated to GPT-3 XL" in text
    flat = pd.DataFrame({"sparsity": [0.75] * 4, "non-embedding params": [1e5, 1e6, 1e7, 1e8],
                         "gap": [0.30, 0.35, 0.28, 0.33]})
    assert "inconclusive" in beyond.scaling_sentence(flat)
    few = scaling.gap_frame(synthetic_runs(sizes={"a": 10 ** 5}), PARAMS)
    assert "No trend" in beyond.scaling_sentence(few)


def test_the_figures_package_exports_the_chapter():
    assert figures.gap_figure is beyond.gap_figure and "scaling_sentence" in figures.__all__


# ----------------------------------------------------------------- the chapter's answers and costs

def test_variant_frame_gives_the_bleu_change_against_the_static_run():
    pre, ev = _variant_set()
    frame = scaling.variant_frame(pre, ev, "a").set_index("run")
    assert frame.loc["RigL 75%", "BLEU vs static"] == pytest.approx(61.0 - 59.0)
    assert np.isnan(frame.loc["static 75%", "BLEU vs static"]) and np.isnan(frame.loc["dense", "BLEU vs static"])


def _answers(gap_slope_sign=-1.0, static_shift=-0.3):
    runs = synthetic_runs(noise=0.005)
    gaps = scaling.gap_frame(runs, PARAMS)
    if gap_slope_sign > 0:  # mirror the gaps: they now grow with size
        gaps["gap"] = -gaps["gap"]
    variants = pd.DataFrame([
        {"run": "static 75%, iso-FLOP", "variant": "isoflop", "sparsity": 0.75, "val loss vs static": static_shift,
         "static low": static_shift - 0.05, "static high": static_shift + 0.05, "val loss vs dense": 0.2,
         "low": 0.1, "high": 0.3, "BLEU vs dense": -0.5, "BLEU low": -0.8, "BLEU high": -0.2,
         "BLEU vs static": 0.4, "BLEU vs static low": -0.3, "BLEU vs static high": 1.1},
        {"run": "dense", "variant": "", "sparsity": 0.0}])
    variants.attrs["task"] = "e2e"
    return scaling.answers_frame(gaps, variants, margin=1.0).set_index("compared")


def test_answers_follow_the_rules_either_way():
    shrink, grow = _answers(-1.0), _answers(+1.0)
    assert shrink.loc["gap slope per tenfold parameters, 75%", "outcome"] == "shrinks"
    assert grow.loc["gap slope per tenfold parameters, 75%", "outcome"] == "grows"
    a = _answers(static_shift=-0.3)
    assert a.loc["static 75%, iso-FLOP vs static 75%, val loss", "outcome"] == "better"
    assert _answers(static_shift=+0.3).loc["static 75%, iso-FLOP vs static 75%, val loss", "outcome"] == "worse"
    assert _answers(static_shift=0.0).loc["static 75%, iso-FLOP vs static 75%, val loss", "outcome"] == "inconclusive"
    assert a.loc["static 75%, iso-FLOP vs dense, val loss", "outcome"] == "worse"
    assert a.loc["static 75%, iso-FLOP vs dense, BLEU", "outcome"] == "preserved"  # [-0.8, -0.2] above -1
    assert a.loc["static 75%, iso-FLOP vs static 75%, BLEU", "outcome"] == "inconclusive"
    assert "dense" not in " ".join(a.index[a["question"] == "dynamic"])  # no dynamic rows were given


def test_gpu_time_follows_tokens_not_flops_and_adds_the_updates():
    variants = pd.DataFrame([
        {"run": "dense", "variant": "", "sparsity": 0.0, "tokens": 1000.0, "training PFLOP": 4.0},
        {"run": "static 75%, iso-FLOP", "variant": "isoflop", "sparsity": 0.75, "tokens": 2000.0, "training PFLOP": 4.0},
        {"run": "RigL 75%", "variant": "rigl", "sparsity": 0.75, "tokens": 1000.0, "training PFLOP": 2.1}])
    variants["mask updates"] = [0.0, 0.0, 10.0]
    t = scaling.gpu_time_frame(variants, tokens_per_s=100.0, update_cost_steps={"rigl": 5.0},
                               tokens_per_step=10).set_index("run")
    assert t.loc["dense", "GPU s (one run alone)"] == pytest.approx(10.0)
    assert t.loc["static 75%, iso-FLOP", "vs dense"] == pytest.approx(2.0)  # equal FLOPs, twice the time
    assert t.loc["RigL 75%", "GPU s (one run alone)"] == pytest.approx(10.0 * 1.5)  # 100 steps, 10 updates x 5
    assert t.loc["RigL 75%", "FLOPs vs dense"] == pytest.approx(2.1 / 4.0)


def test_dynamic_update_cost_reads_the_benchmark_rows():
    bench = {"rows": [{"preset": "m", "loop": "masked 75%", "tokens_per_s": 2.0e6},
                      {"preset": "m", "loop": "ratios", "rigl_slowdown_vs_masked": 0.25,
                       "set_slowdown_vs_masked": float("nan"), "dynamic_interval": 20}]}
    cost = scaling.dynamic_update_cost(bench)
    assert cost["tokens_per_s"] == 2.0e6 and cost["update_cost_steps"] == {"rigl": pytest.approx(5.0)}


def test_the_chapter_tables_and_notes_render():
    answers = _answers()
    html = beyond.answers_table(answers.reset_index()).to_html()
    assert "shrinks" in html and "[" in html
    note = beyond.answers_note(answers.reset_index())
    assert note.count("- **") == answers["question"].nunique() and "preserved" in note
    assert "missing" in beyond.answers_note(answers.iloc[0:0].reset_index())
    runs = [dict(pretrain("a", 0.75, 0, 3.3, variant="rigl"), run_id="a_rigl", passes=2.0, mask_updates=3,
                 dense_gradient_passes=3, dense_gradient_flops=1e13, mask_moved_fraction=0.4),
            dict(pretrain("a", 0.75, 0, 3.5), run_id="a_static", passes=1.0)]
    html = beyond.dynamic_table(runs).to_html()
    assert "a_rigl" in html and "a_static" not in html and "40.0%" in html
    assert "2.00 times" in beyond.passes_note(runs) and "1.00 times" in beyond.passes_note(runs)


def test_the_size_answer_is_set_against_the_expectation_either_way():
    shrink = beyond.expectation_note(_answers(-1.0).reset_index())
    assert "the expected direction" in shrink and "opposite" not in shrink
    assert "opposite" in beyond.expectation_note(_answers(+1.0).reset_index())


def test_leave_one_out_refits_without_each_size():
    gaps = scaling.gap_frame(synthetic_runs(noise=0.005), PARAMS)
    loo = scaling.leave_one_out(gaps)
    assert len(loo) == 2 * len(PARAMS) and set(loo["left out"]) == set(PARAMS)
    size = next(iter(PARAMS))
    rest = gaps[~((gaps["sparsity"] == 0.75) & (gaps["size"] == size))]
    row = loo[(loo["sparsity"] == 0.75) & (loo["left out"] == size)].iloc[0]
    assert row["slope"] == pytest.approx(scaling.fit_gap_trend(rest, 0.75).slope)
    assert set(loo["outcome"]) <= {"shrinks", "grows", "inconclusive"} or loo["outcome"].str.startswith("not").any()
    note = beyond.expectation_note(_answers(-1.0).reset_index(), loo)
    assert "leaving out any one size" in note or "rests on single sizes" in note


def test_final_evals_keep_only_final_runs_of_every_cell():
    search = [{"size": "a", "sparsity": 0.75, "task": "e2e", "chosen": 1e-3},
              {"size": "a", "sparsity": 0.75, "task": "e2e", "variant": "rigl", "chosen": 2e-3}]
    evals = [{"size": "a", "sparsity": 0.75, "task": "e2e", "lr": 1e-3},
             {"size": "a", "sparsity": 0.75, "task": "e2e", "lr": 2e-3},  # the static cell's runner-up
             {"size": "a", "sparsity": 0.75, "task": "e2e", "lr": 2e-3, "variant": "rigl"},
             {"size": "a", "sparsity": 0.75, "task": "e2e", "lr": 1e-3, "variant": "rigl"}]  # rigl's runner-up
    kept = verdicts.final_evals(evals, search)
    assert kept == [evals[0], evals[2]]


def test_notes_at_a_profile_where_nothing_is_computable_say_so_without_noise():
    answers = pd.DataFrame([{"question": "size", "compared": "gap slope per tenfold parameters, 75%",
                             "estimate": np.nan, "low": np.nan, "high": np.nan,
                             "outcome": "not computable (2 model size(s))"}])
    loo = pd.DataFrame([{"sparsity": 0.75, "left out": "a", "slope": np.nan, "low": np.nan, "high": np.nan,
                         "outcome": "not computable (1 model size(s))"}])
    note = beyond.expectation_note(answers, loo)
    assert "neither confirms nor refutes" in note and "single sizes" not in note and "No single size" not in note
    variants = pd.DataFrame([{"run": "RigL 75%", "variant": "rigl", "sparsity": 0.75, "val loss vs static": 0.02,
                              "val loss vs dense": 0.1, "BLEU vs dense": 1.0, "BLEU low": np.nan,
                              "BLEU high": np.nan}])
    text = beyond.findings_note(variants, None, [], 0.75)
    assert "nan" not in text and "no interval is computable" in text
