"""The replication forecast of chapter 06 (spdf_lib.replication) on synthetic runs with known spread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from spdf_lib import replication as R
from spdf_lib import stats
from spdf_lib import verdicts as V

TASKS = ("e2e", "webnlg", "dart", "summarization")


def _cells(spec: dict) -> dict:
    """spec: {(size, task, sparsity): [(value, loss) per pre-trained model]} -> cells of verdicts.collect,
    each model fine-tuned twice with the same result (so its mean is the given value)."""
    return {key: V.Cell(*key, {p: (v, v) for p, (v, _) in enumerate(models)},
                        {p: (l, l) for p, (_, l) in enumerate(models)})
            for key, models in spec.items()}


def _h1(cells):
    return [V.verdict_h1(cells, ["s"], [0.0, 0.5])]


def test_a_fresh_model_has_the_observed_mean_and_covariance_tasks_kept_together():
    dense = [(60.0, 1.00), (61.0, 1.10), (62.5, 1.05)]
    cells = _cells({("s", "e2e", 0.0): dense, ("s", "webnlg", 0.0): [(v / 2, l + 0.5) for v, l in dense]})
    group = R.fit(cells)[("s", 0.0)]
    assert group.columns == (("e2e", "value"), ("e2e", "loss"), ("webnlg", "value"), ("webnlg", "loss"))
    observed = np.array([[v, l, v / 2, l + 0.5] for v, l in dense])
    np.testing.assert_allclose(group.mean, observed.mean(axis=0))
    np.testing.assert_allclose(group.covariance, np.cov(observed, rowvar=False), atol=1e-12)
    fresh = R.draw(R.fit(cells), np.random.default_rng(1), n_models=40000)
    e2e, webnlg = fresh[("s", "e2e", 0.0)], fresh[("s", "webnlg", 0.0)]
    drawn = np.array([[e2e.values[k][0], e2e.losses[k][0], webnlg.values[k][0], webnlg.losses[k][0]]
                      for k in range(40000)])
    np.testing.assert_allclose(drawn.mean(axis=0), observed.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(observed, rowvar=False), rtol=0.05, atol=1e-4)
    # a model's two tasks move together exactly as the observed models did (WebNLG = E2E / 2 here)
    np.testing.assert_allclose(drawn[:, 2], drawn[:, 0] / 2)


def _welch_outcomes(dense, sparse, draws, rng):
    """A direct simulation of H1's rule for one cell, independent of the library: new groups of unit means
    from normals with the observed mean and sd, a Welch t interval, the margin."""
    n = len(dense)
    d = rng.normal(np.mean(dense), np.std(dense, ddof=1), (draws, n))
    s = rng.normal(np.mean(sparse), np.std(sparse, ddof=1), (draws, n))
    vd, vs = d.var(axis=1, ddof=1) / n, s.var(axis=1, ddof=1) / n
    df = (vd + vs) ** 2 / (vd ** 2 / (n - 1) + vs ** 2 / (n - 1))
    half = student_t.ppf(0.975, df) * np.sqrt(vd + vs)
    est = s.mean(axis=1) - d.mean(axis=1)
    return {"preserved": np.mean(est - half > -V.BLEU_MARGIN), "degraded": np.mean(est + half < -V.BLEU_MARGIN)}


def test_h1_outcome_probabilities_match_a_direct_simulation_of_the_rule():
    dense, sparse = [60.0, 61.0, 62.5], [57.6, 58.1, 58.8]  # a change of -3.0 BLEU: two outcomes are likely
    cells = _cells({("s", "e2e", 0.0): [(v, 1.0 + v / 100) for v in dense],
                    ("s", "e2e", 0.5): [(v, 1.0 + v / 100) for v in sparse]})
    draws = 4000
    forecast = R.forecast(cells, _h1, draws=draws, seed=3)
    row = forecast.cells.iloc[0]
    direct = _welch_outcomes(dense, sparse, 200000, np.random.default_rng(4))
    for column, outcome in (("P(for)", "preserved"), ("P(against)", "degraded")):
        p = direct[outcome]
        tolerance = 4 * math.sqrt(p * (1 - p) / draws) + 1e-3
        assert abs(row[column] - p) < tolerance, (outcome, row[column], p)
    assert 0.1 < row["P(against)"] < 0.9 and 0.1 < row["P(inconclusive)"] < 0.9  # not trivially decided
    assert row["P(for)"] + row["P(inconclusive)"] + row["P(against)"] == pytest.approx(1.0)


def _h2_spec() -> dict:
    """Four tasks, dense and 50% sparse: every model's losses share a large model effect (0.9 nats from the
    first model to the last); summarization loses 0.05 nats more than the data-to-text tasks under
    sparsity, with little other noise."""
    shift = (-0.5, 0.1, 0.4)
    noise = {"e2e": (0.002, -0.001, 0.0), "webnlg": (0.0, 0.002, -0.002), "dart": (-0.001, 0.0, 0.001),
             "summarization": (0.001, -0.002, 0.001)}
    spec = {}
    for level in (0.0, 0.5):
        for task in TASKS:
            extra = 0.05 if (task == "summarization" and level) else 0.0
            losses = [2.0 + shift[k] + noise[task][k] + extra + 0.1 * level for k in range(3)]
            spec[("s", task, level)] = [(50.0 + 10 * x, x) for x in losses]
    return spec


def test_h2_keeps_each_model_s_tasks_together():
    def h2(cells):
        return [V.verdict_h2(cells, ["s"], [0.0, 0.5])]

    observed = _cells(_h2_spec())
    paired = R.forecast(observed, h2, draws=400, seed=0).verdicts.iloc[0]
    assert paired["observed verdict"] == "supported" and paired["fresh run gives it"] > 0.99
    # H2's per-model contrast (summarization minus the data-to-text mean, one model) has the same spread
    # in drawn models as in the observed ones: the large model effect cancels within a drawn model too.
    fresh = R.draw(R.fit(observed), np.random.default_rng(3), n_models=20000)
    for level in (0.0, 0.5):
        seen = V._per_model_contrast(observed, "s", level)
        drawn = V._per_model_contrast(fresh, "s", level)
        assert np.std(drawn, ddof=1) == pytest.approx(np.std(seen, ddof=1), rel=0.05)
        assert np.std(drawn, ddof=1) < 0.01 < np.std([fresh[("s", "e2e", level)].losses[k][0] for k in range(2000)])


def test_more_pre_trained_models_make_a_cell_away_from_the_line_more_reproducible():
    dense, sparse = [60.0, 61.0, 62.5], [57.6, 58.1, 58.8]  # -3.0 BLEU, two BLEU past the margin
    cells = _cells({("s", "e2e", 0.0): [(v, 1.0) for v in dense], ("s", "e2e", 0.5): [(v, 1.0) for v in sparse]})
    few = R.forecast(cells, _h1, draws=1000, seed=0).cells.iloc[0]
    many = R.forecast(cells, _h1, n_models=12, draws=1000, seed=0).cells.iloc[0]
    assert many["P(against)"] > few["P(against)"] + 0.2
    assert many["P(against)"] > 0.95


def test_forecast_is_reproducible_agreement_is_the_sum_of_squares_and_kept_counts_cells():
    cells = _cells({("s", "e2e", 0.0): [(60.0, 1.0), (61.0, 1.1), (62.5, 1.05)],
                    ("s", "e2e", 0.5): [(59.4, 1.2), (59.9, 1.1), (60.6, 1.3)]})
    a, b = R.forecast(cells, _h1, draws=300, seed=7), R.forecast(cells, _h1, draws=300, seed=7)
    assert a.verdict_draws.equals(b.verdict_draws) and a.outcome_draws.equals(b.outcome_draws)
    assert not a.outcome_draws.equals(R.forecast(cells, _h1, draws=300, seed=8).outcome_draws)
    p = a.verdict_draws["H1"].value_counts(normalize=True)
    assert a.verdicts.iloc[0]["two fresh runs agree"] == pytest.approx(float((p ** 2).sum()))
    assert a.verdicts.iloc[0]["fresh run gives it"] == pytest.approx(float(p.get(a.observed[0].verdict, 0.0)))
    key = R.cell_key(a.observed[0].cells.iloc[0])
    kept = a.kept([key])
    assert set(np.unique(kept)) <= {0, 1}
    assert kept.mean() == pytest.approx(a.cells.iloc[0]["fresh run gives it"])
    assert a.draws == 300 and a.mc_error == pytest.approx(0.5 / math.sqrt(300))


def test_a_design_that_cannot_be_forecast_says_why():
    one_model = _cells({("s", "e2e", 0.0): [(60.0, 1.0), (61.0, 1.1)], ("s", "e2e", 0.5): [(59.0, 1.2)]})
    with pytest.raises(stats.NotComputable, match=r"s, 50% sparse: 1 pre-trained model\(s\).*at least 2"):
        R.forecast(one_model, _h1)
    cells = _cells({("s", "e2e", 0.0): [(60.0, 1.0), (61.0, 1.1)], ("s", "e2e", 0.5): [(59.0, 1.2), (58.0, 1.0)]})
    with pytest.raises(ValueError, match="draws=0"):
        R.forecast(cells, _h1, draws=0)
    with pytest.raises(ValueError, match="n_models=1"):
        R.forecast(cells, _h1, n_models=1)
    with pytest.raises(ValueError, match="n_models=2.5"):
        R.forecast(cells, _h1, n_models=2.5)
    partial = {**cells, ("s", "dart", 0.5): V.Cell("s", "dart", 0.5, {0: (40.0,), 1: (41.0,), 2: (40.5,)},
                                                   {0: (1.0,), 1: (1.1,), 2: (1.2,)})}
    with pytest.raises(stats.NotComputable, match=r"s, 50% sparse: pre-trained model\(s\) 2 lack a result"):
        R.fit(partial)


def test_the_comparison_refuses_a_re_run_check_that_judged_other_runs():
    import pandas as pd

    f = _two_cell_forecast()
    observed = f.cells.set_index("task")["observed outcome"]
    other = {"inconclusive": "degraded"}.get(observed["e2e"], "inconclusive")
    rerun = pd.DataFrame([{"hypothesis": "H1", "task": "E2E", "sparsity": 0.5, "published outcome": other,
                           "same outcome": True}])
    with pytest.raises(ValueError, match="judged different runs or rates"):
        R.compare_with_run(f, rerun, "s")
    assert list(f.kept([])) == [0] * f.draws


def test_with_the_truth_uncertain_many_models_give_the_chance_that_the_truth_is_past_the_line():
    """With many models per cell a fresh run's interval is narrow, so its outcome says which side of the
    margin its drawn truth lies on. The dense group is given almost no spread, so the change's truth is
    the estimate plus ``se * T``, T Student's t with n - 1 degrees of freedom (``se`` the observed
    standard error, as in the published interval); a fresh run of ``k`` models adds normal noise of
    ``se_k`` and its interval reaches ``z * se_k`` further. So P(degraded) =
    E_T[Phi((-margin - estimate - se T - z se_k) / se_k)], computed here by quadrature."""
    from scipy.integrate import quad
    from scipy.stats import norm

    dense, sparse = [60.0, 60.001, 60.002], [57.3, 58.2, 58.7]  # -2.6 BLEU: past the margin, by about 2 se
    cells = _cells({("s", "e2e", 0.0): [(v, 1.0) for v in dense], ("s", "e2e", 0.5): [(v, 1.0) for v in sparse]})
    k, draws = 800, 3000
    var_sum = np.var(dense, ddof=1) + np.var(sparse, ddof=1)
    se, se_k = math.sqrt(var_sum / 3), math.sqrt(var_sum / k)
    estimate = np.mean(sparse) - np.mean(dense)
    expected, _ = quad(lambda x: student_t.pdf(x, 2) * norm.cdf(
        (-V.BLEU_MARGIN - estimate - se * x - norm.ppf(0.975) * se_k) / se_k), -np.inf, np.inf)
    uncertain = R.forecast(cells, _h1, n_models=k, draws=draws, seed=5, truth_uncertain=True).cells.iloc[0]
    assert abs(uncertain["P(against)"] - expected) < 4 * math.sqrt(expected * (1 - expected) / draws) + 0.005
    normal_truth = norm.cdf((-V.BLEU_MARGIN - estimate) / se)
    assert expected < normal_truth - 0.02  # the t truth leaves more room on the other side than a normal one
    fixed = R.forecast(cells, _h1, n_models=k, draws=100, seed=5).cells.iloc[0]
    assert fixed["P(against)"] == 1.0  # with the truth fixed at the estimate, many models always find it
    assert np.isnan(R.forecast(cells, _h1, draws=50, truth_uncertain=True).verdicts.iloc[0]["two fresh runs agree"])


def test_a_forecast_pair_is_the_fixed_then_the_uncertain_forecast_of_one_design():
    dense, sparse = [60.0, 60.5, 59.5], [58.0, 59.0, 57.5]
    cells = _cells({("s", "e2e", 0.0): [(v, 1.0) for v in dense], ("s", "e2e", 0.5): [(v, 1.0) for v in sparse]})
    fixed, uncertain = R.forecast_pair(cells, _h1, n_models=4, draws=200, seed=3)
    assert (fixed.truth_uncertain, uncertain.truth_uncertain) == (False, True)
    assert fixed.n_models == uncertain.n_models == 4
    alone = R.forecast(cells, _h1, n_models=4, draws=200, seed=3, truth_uncertain=True)
    assert uncertain.cells.equals(alone.cells)  # the same draws as the forecast made by itself


def test_the_re_run_reading_allows_for_the_simulation_s_own_error():
    assert R.tail_reading(0.01, 2000) == "below"
    assert R.tail_reading(0.20, 2000) == "above"
    assert R.tail_reading(0.052, 2000) == "at" and R.tail_reading(0.052, 10 ** 7) == "above"


def _two_cell_cells():
    return _cells({("s", "e2e", 0.0): [(60.0, 1.0), (61.0, 1.1), (62.5, 1.05)],
                   ("s", "e2e", 0.5): [(57.6, 1.2), (58.1, 1.1), (58.8, 1.3)],
                   ("s", "dart", 0.0): [(40.0, 1.0), (40.5, 1.1), (41.0, 1.05)],
                   ("s", "dart", 0.5): [(39.9, 1.2), (40.4, 1.1), (41.1, 1.3)]})


def _two_cell_forecast():
    return R.forecast(_two_cell_cells(), _h1, draws=500, seed=2)


def test_the_comparison_with_a_second_run_counts_what_it_kept():
    import pandas as pd

    f = _two_cell_forecast()
    observed = f.cells.set_index("task")["observed outcome"]
    rerun = pd.DataFrame([{"hypothesis": "H1", "task": "E2E", "sparsity": 0.5, "published outcome": observed["e2e"],
                           "same outcome": False},
                          {"hypothesis": "H1", "task": "DART", "sparsity": 0.5, "published outcome": observed["dart"],
                           "same outcome": True}])
    c = R.compare_with_run(f, rerun, "s")
    kept = f.kept([("H1", "s", "e2e", 0.5), ("H1", "s", "dart", 0.5)])
    assert c["cells"] == 2 and c["observed kept"] == 1
    assert c["expected kept"] == pytest.approx(f.cells["fresh run gives it"].sum())
    assert c["p at most observed"] == pytest.approx(float((kept <= 1).mean()))
    assert "the second run kept the earlier outcome in 1;" in R.comparison_sentence([c])
    named = R.comparison_sentence([c], run="published run")
    assert "the published run kept the earlier outcome in 1;" in named and "second run" not in named
    none = R.compare_with_run(f, rerun.iloc[:0], "s", "no cells")
    assert none["cells"] == 0 and "none to compare" in R.comparison_sentence([none])
    with pytest.raises(KeyError, match="WebNLG"):
        R.compare_with_run(f, rerun.assign(task="WebNLG"), "s")


def test_the_cell_figure_has_a_bar_per_outcome_and_cell_and_labelled_axes():
    import matplotlib

    matplotlib.use("Agg")
    f = _two_cell_forecast()
    fig = R.cell_figure(f)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(f.cells)
    assert "fresh runs" in ax.get_xlabel() and len(ax.get_yticklabels()) == len(f.cells)
    widths = np.array([p.get_width() for p in ax.patches]).reshape(3, len(f.cells))
    np.testing.assert_allclose(widths.sum(axis=0), 1.0)  # every cell's shares add up to all fresh runs


def test_the_verdict_table_has_a_column_per_design():
    f = _two_cell_forecast()
    table = R.verdict_table([f, R.forecast(_two_cell_cells(), _h1, n_models=6, draws=50,
                                           truth_uncertain=True)])
    assert list(table.columns) == ["hypothesis", "observed verdict", "fresh run gives it: 3 models, truth = this run",
                                   "fresh run gives it: 6 models, truth uncertain"]
    assert table.iloc[0, 2] == pytest.approx(f.verdicts.iloc[0]["fresh run gives it"])
    sentence = R.summary_sentence([f])
    assert sentence.startswith("Under a model of the published run") and "H1's verdict in" in sentence
    with pytest.raises(ValueError):
        R.verdict_table([])


def test_a_design_can_have_its_own_number_of_models_per_size():
    cells = {**_two_cell_cells(), **{("t", k[1], k[2]): V.Cell("t", k[1], k[2], c.values, c.losses)
                                     for k, c in _two_cell_cells().items()}}

    def h1(c):
        return [V.verdict_h1(c, ["s", "t"], [0.0, 0.5])]
    fresh = R.draw(R.fit(cells), np.random.default_rng(0), {"s": 6, "t": 3})
    assert fresh[("s", "e2e", 0.5)].n_pretrained == 6 and fresh[("t", "e2e", 0.5)].n_pretrained == 3
    f = R.forecast(cells, h1, n_models={"s": 6, "t": 3}, draws=20)
    assert R.design_label(f) == "6 s / 3 t models, truth = this run"
    with pytest.raises(ValueError, match="no number for size 't'"):
        R.forecast(cells, h1, n_models={"s": 6}, draws=20)


def test_the_design_table_has_a_row_per_design_and_a_column_per_hypothesis_and_truth():
    cells = _two_cell_cells()
    forecasts = [R.forecast(cells, _h1, n_models=n, draws=40, truth_uncertain=u) for n in (4, 5) for u in (False, True)]
    table = R.design_table(forecasts)
    assert list(table["pre-trained models per cell"]) == ["4", "5"]
    observed = forecasts[0].observed[0].verdict
    assert set(table.columns) == {"pre-trained models per cell", f"H1 ({observed}), truth = this run",
                                  f"H1 ({observed}), truth uncertain"}
    assert table.iloc[1][f"H1 ({observed}), truth uncertain"] == forecasts[3].verdicts.iloc[0]["fresh run gives it"]


def test_the_record_reads_every_comparison_and_counts_those_beyond_the_model_per_reading_of_the_truth():
    def comparison(uncertain, kept, p, cells=4):
        return {"label": "cells", "size": "s", "design": "", "n models": 3, "truth uncertain": uncertain,
                "cells": cells, "expected kept": 3.5, "observed kept": kept, "p at most observed": p, "draws": 2000}

    entries = [R.RecordEntry("a", "first run", "second run", True, [comparison(False, 1, 0.004),
                                                                     comparison(True, 1, 0.2)]),
               R.RecordEntry("b", "first run", "third run", True, [comparison(False, 3, 0.4),
                                                                    comparison(False, 0, 0.0, cells=0)]),
               R.RecordEntry("rate changed", "first run", "third run", False, [comparison(False, 0, 0.001)])]
    record = R.record_table(entries)
    assert list(record["test"]) == ["a", "a", "b", "rate changed"]  # the comparison with no cells is left out
    assert list(record["reading"]) == ["beyond the model", "within", "within", "beyond the model"]
    assert list(record["truth"]) == ["fixed", "uncertain", "fixed", "fixed"]
    assert list(record["counts as a test"]) == [True, True, True, False]
    text = R.record_sentence(record)
    assert "truth fixed, 1 of 2 fell beyond the model (the first run's model against the second run, s)" in text
    assert "truth uncertain, 0 of 1 fell beyond the model" in text
    assert "Of the 1 that do not" in text and "1 fell beyond it." in text
    assert R.record_sentence(R.record_table([])) == "No forecast has been compared with a later run."
