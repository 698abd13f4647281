"""The experiment grid, evaluation metrics and the tables of chapter 06."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spdf_lib import tables
from spdf_lib.evaluation import corpus_bleu
from spdf_lib.training import OptimConfig, lr_at

REPO = Path(__file__).resolve().parent.parent


def test_bleu_uses_every_reference_of_each_input():
    hyps = ["the cat sat on the mat", "a dog barked loudly"]
    one_ref = corpus_bleu(hyps, [["a cat sat on a mat"], ["the dog barked loudly"]])
    more_refs = corpus_bleu(hyps, [["a cat sat on a mat", "the cat sat on the mat"], ["the dog barked loudly"]])
    assert more_refs > one_ref
    assert corpus_bleu(hyps, [[h] for h in hyps]) == pytest.approx(100.0)


def test_bleu_rejects_mismatched_or_empty_references():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_bleu(["a"], [[]])


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(lr=1e-3, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=1e-2)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 99))


def _results(values: dict) -> list[dict]:
    """Synthetic test results: {(size, task, sparsity): [value per seed]}."""
    return [{"size": size, "task": task, "sparsity": level, "keep_masks": False, "value": v, "seed": i}
            for (size, task, level), vs in values.items() for i, v in enumerate(vs)]


def test_cells_and_table_report_mean_std_and_delta():
    cs = tables.cells(_results({("s", "e2e", 0.0): [60.0, 62.0, 61.0], ("s", "e2e", 0.75): [59.0, 60.0, 58.0]}))
    cell = cs[("s", "e2e", 0.75)]
    assert (cell.mean, cell.n) == (59.0, 3) and cell.std == pytest.approx(1.0)
    table = tables.results_table(cs, "s", "gpt2-small", (0.0, 0.75), ("e2e",))
    assert table.loc[0, "75%: ours Δ"] == "-2.00"
    assert table.loc[0, "75%: paper Δ"] == "-0.99"  # published_numbers.md, GPT-2 Small E2E at 75%


def test_h1_rule_counts_cells_within_tolerance_or_noise():
    ok = tables.cells(_results({("s", "e2e", 0.0): [60.0, 60.2, 59.8], ("s", "e2e", 0.5): [59.5, 59.3, 59.7]}))
    assert tables.verdict_h1(ok, ["s"], [0.0, 0.5], ["e2e"]).verdict == "supported"
    bad = tables.cells(_results({("s", "e2e", 0.0): [60.0, 60.2, 59.8], ("s", "e2e", 0.5): [55.0, 55.2, 54.8]}))
    assert tables.verdict_h1(bad, ["s"], [0.0, 0.5], ["e2e"]).verdict == "not supported"


def test_h2_and_h3_compare_relative_losses():
    values = {("s", "e2e", 0.0): [60.0], ("s", "e2e", 0.75): [59.0],
              ("s", "summarization", 0.0): [10.0], ("s", "summarization", 0.75): [12.0],
              ("l", "e2e", 0.0): [65.0], ("l", "e2e", 0.75): [64.9],
              ("l", "summarization", 0.0): [8.0], ("l", "summarization", 0.75): [8.4]}
    cs = tables.cells(_results(values))
    assert tables.verdict_h2(cs, ["s", "l"], 0.75, ["e2e", "summarization"]).verdict == "supported"
    assert tables.verdict_h3(cs, "s", "l", 0.75, ["e2e", "summarization"]).verdict == "supported"


def test_degradation_of_a_zero_baseline_is_undefined():
    zero = tables.Cell(0.0, 0.0, 1)
    assert math.isnan(tables.degradation("e2e", zero, tables.Cell(1.0, 0.0, 1)))


def test_every_published_gpu_run_matches_the_current_configuration():
    """The committed gpu results are found by key: a change to a run's configuration, the library
    version or the data would orphan them, and the book would silently lose its published numbers."""
    from spdf_lib import experiments
    from spdf_lib.profiles import get_profile

    profile = get_profile("gpu")
    tables_dir = REPO / "tables"
    bases = experiments.pretraining_runs(profile)
    grid = {r.run_id: experiments.committed_result(r, tables_dir) for r in experiments.grid_runs(profile, bases)}
    assert all(grid.values()), [k for k, v in grid.items() if v is None][:3]
    finals = experiments.final_runs(profile, bases, grid)
    evals = [experiments.eval_run(profile, r) for r in finals]
    runs = bases + finals + evals + experiments.pruning_runs(profile, bases) + [experiments.random_static_run(profile, bases)]
    orphaned = [r.run_id for r in runs if experiments.committed_result(r, tables_dir) is None]
    assert not orphaned, orphaned[:5]
