"""Chapter 06's re-run check: the learning-rate search rebuilt from fine-tuning results, and the H1/H2
cells of one size judged on two runs, on synthetic results whose answer is known; then on the
committed published run and its second run of the gpu-small grid."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from spdf_lib import manifest, rate_picks, reruns
from spdf_lib import verdicts as V
from spdf_lib.profiles import LRSearch

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "tables"

SIZE = "s"
LRS = (1e-3, 2e-3)
SEARCH = LRSearch(grid=LRS, factor=2.0, max_extensions=0)
TASKS = ("e2e", "webnlg", "dart", "summarization")
LEVELS = (0.0, 0.5)
SPREAD = {0: 0.0, 1: 0.3, 2: -0.3}  # per pre-trained model, so that every interval has a width


def _ft(level, task, lr, dev_loss, pretrain_seed=0, seed=0, keep_masks=False, variant=None):
    r = {"size": SIZE, "sparsity": level, "pretrain_seed": pretrain_seed, "task": task, "lr": lr, "seed": seed,
         "keep_masks": keep_masks, "dev_loss": dev_loss}
    if variant is not None:
        r["variant"] = variant
    return r


def _ev(level, task, lr, p, value, loss, variant=None):
    r = {"size": SIZE, "sparsity": level, "pretrain_seed": p, "task": task, "seed": 0, "lr": lr, "keep_masks": False,
         "metric": "PPL" if task == "summarization" else "BLEU", "value": value, "test_loss": loss,
         "run_id": f"{SIZE}_s{round(level * 100):02d}_p{p}_{task}_denseft_lr{lr:g}_f0"}
    if variant is not None:
        r["variant"] = variant
        r["run_id"] += f"_{variant}"
    return r


def _grid(value_shift=None, chosen=None, ppl_scale=1.0):
    """One run of a small grid: every (sparsity, task) searched over ``LRS`` on the first model (the
    ``chosen`` rate, 2e-3 unless given, has the lowest validation loss), three pre-trained models
    evaluated at it, the first also at the other rate (0.3 nats worse). H1 cells: sparse and dense
    score the same BLEU (preserved); H2 cells: summarization's loss rises by 0.2 nats more at 50%
    (supported). ``value_shift`` adds to the test metric of a (task, sparsity) cell."""
    value_shift, chosen = value_shift or {}, chosen or {}
    out = {"pretrain": [], "finetune": [], "eval": []}
    for level in LEVELS:
        for p in SPREAD:
            out["pretrain"].append({"size": SIZE, "sparsity": level, "seed": p, "val_loss": 4.0,
                                    "val_ppl": ppl_scale * (100.0 + 10 * level + p)})
        for task in TASKS:
            best = chosen.get((task, level), 2e-3)
            for lr in LRS:
                out["finetune"].append(_ft(level, task, lr, 1.0 if lr == best else 1.1))
            for p, s in SPREAD.items():
                if task == "summarization":
                    value, loss = 20.0 + s, 3.0 + (0.2 if level else 0.0) + s / 50
                else:
                    value, loss = 30.0 + s, 2.0 + s / 100
                value += value_shift.get((task, level), 0.0)
                out["eval"].append(_ev(level, task, best, p, value, loss))
                if p == 0:
                    other = next(lr for lr in LRS if lr != best)
                    out["eval"].append(_ev(level, task, other, p, value - 1.0, loss + 0.3))
    return out


def _check(published, rerun):
    return reruns.rerun_check(published, rerun, size=SIZE, levels=LEVELS, search=SEARCH)


# ------------------------------------------------------------------------------ the search, rebuilt

def test_the_rebuilt_search_picks_the_lowest_validation_loss_and_ignores_the_other_runs():
    runs = [_ft(0.0, "e2e", 1e-3, 1.2), _ft(0.0, "e2e", 2e-3, 1.0), _ft(0.0, "e2e", 4e-3, 1.1),
            # none of these is a search run: another pre-trained model, another fine-tuning seed, the
            # masks-kept control, chapter 09's variant; each would win if it counted
            _ft(0.0, "e2e", 4e-3, 0.1, pretrain_seed=1), _ft(0.0, "e2e", 1e-3, 0.1, seed=1),
            _ft(0.0, "e2e", 1e-3, 0.1, keep_masks=True), _ft(0.0, "e2e", 4e-3, 0.1, variant="rigl")]
    search = LRSearch(grid=(1e-3, 2e-3, 4e-3), factor=2.0, max_extensions=0)
    (cell,) = reruns.lr_search_from_finetunes(runs, search)
    assert (cell["size"], cell["sparsity"], cell["task"]) == (SIZE, 0.0, "e2e")
    assert cell["losses"] == {1e-3: 1.2, 2e-3: 1.0, 4e-3: 1.1}
    assert (cell["chosen"], cell["runner_up"], cell["status"]) == (2e-3, 4e-3, "interior")


def test_the_rebuilt_search_reports_a_cell_that_ends_at_an_edge():
    search = LRSearch(grid=(1e-3, 2e-3), factor=2.0, max_extensions=0)
    low = reruns.lr_search_from_finetunes([_ft(0.5, "dart", 1e-3, 0.9), _ft(0.5, "dart", 2e-3, 1.0)], search)
    high = reruns.lr_search_from_finetunes([_ft(0.5, "dart", 1e-3, 1.0), _ft(0.5, "dart", 2e-3, 0.9)], search)
    assert (low[0]["chosen"], low[0]["status"]) == (1e-3, "bound hit (lowest rate)")
    assert (high[0]["chosen"], high[0]["status"]) == (2e-3, "bound hit (highest rate)")
    # with extensions left, a cell at an edge is still incomplete, not a bound
    assert reruns.lr_search_from_finetunes([_ft(0.5, "dart", 1e-3, 1.0), _ft(0.5, "dart", 2e-3, 0.9)],
                                             LRSearch(grid=(1e-3, 2e-3)))[0]["status"] == "incomplete"


def test_the_rebuilt_search_uses_the_first_seeds_it_is_given():
    runs = [_ft(0.0, "e2e", 1e-3, 1.0), _ft(0.0, "e2e", 2e-3, 1.1),
            _ft(0.0, "e2e", 1e-3, 1.1, pretrain_seed=3, seed=5), _ft(0.0, "e2e", 2e-3, 1.0, pretrain_seed=3, seed=5)]
    assert reruns.lr_search_from_finetunes(runs, SEARCH)[0]["chosen"] == 1e-3
    assert reruns.lr_search_from_finetunes(runs, SEARCH, first_seed=3, first_ft_seed=5)[0]["chosen"] == 2e-3


# ------------------------------------------------------------------------------ the check

def test_an_identical_rerun_keeps_every_outcome_and_ignores_chapter_09_runs():
    published, rerun = _grid(), _grid()
    # a chapter 09 run in the same cell, at the chosen rate, that would sink the cell if it counted
    rerun["eval"].append(_ev(0.5, "e2e", 2e-3, 0, -100.0, 9.0, variant="isoflop"))
    rerun["finetune"].append(_ft(0.5, "e2e", 1e-3, 0.01, variant="isoflop"))
    check = _check(published, rerun)
    assert list(check.cells["hypothesis"]) == ["H1", "H1", "H1", "H2"]
    assert set(check.cells["published outcome"][:3]) == {"preserved"}
    assert check.cells["published outcome"][3] == "supported"
    assert check.cells["same outcome"].all() and check.changed.empty
    assert check.cells["change in estimate"].abs().max() == pytest.approx(0.0, abs=1e-12)
    assert check.survives("H1") and check.survives("H2")
    assert (check.n_same_rate, check.n_rate_cells) == (len(TASKS) * len(LEVELS),) * 2
    assert "4 kept their outcome in the re-run" in check.sentence()


def test_a_cell_moved_across_the_margin_changes_outcome_and_a_small_move_does_not():
    flipped = _check(_grid(), _grid(value_shift={("e2e", 0.5): -5.0}))
    row = flipped.cells.set_index(["hypothesis", "task"]).loc[("H1", "E2E")]
    assert (row["published outcome"], row["re-run outcome"], bool(row["same outcome"])) == \
        ("preserved", "degraded", False)
    assert row["change in estimate"] == pytest.approx(-5.0)
    assert int(flipped.cells["same outcome"].sum()) == 3 and len(flipped.changed) == 1
    assert flipped.survives("H1") is False and flipped.survives("H2") is True
    text = flipped.sentence()
    assert "3 kept their outcome" in text and "from *preserved* to *degraded*" in text
    assert "H1 does not survive" in text and "H2 survives" in text
    assert flipped.n_outside_interval == 1  # the moved estimate left the published interval
    assert "In 1 of the 4 cells the later run's estimate lies outside" in flipped.measured()

    nudged = _check(_grid(), _grid(value_shift={("e2e", 0.5): -0.1}))
    assert nudged.cells["same outcome"].all()
    assert nudged.n_outside_interval == 0
    assert nudged.cells.set_index("task").loc["E2E", "change in estimate"] == pytest.approx(-0.1)


def test_a_flipped_h2_cell_is_reported():
    # summarization's perplexity is not what H2 reads; its test loss is: lower the sparse one's
    rerun = _grid()
    for r in rerun["eval"]:
        if r["task"] == "summarization" and r["sparsity"] == 0.5:
            r["test_loss"] -= 0.4
    check = _check(_grid(), rerun)
    h2 = check.cells[check.cells["hypothesis"] == "H2"].iloc[0]
    assert (h2["published outcome"], h2["re-run outcome"]) == ("supported", "contradicted")
    assert check.survives("H2") is False and check.survives("H1") is True


def test_a_different_rate_choice_is_counted_and_its_test_loss_gap_measured():
    check = _check(_grid(), _grid(chosen={("webnlg", 0.0): 1e-3}))
    assert (check.n_same_rate, check.n_rate_cells) == (len(TASKS) * len(LEVELS) - 1, len(TASKS) * len(LEVELS))
    (row,) = [r for _, r in check.differing_rates.iterrows()]
    assert (row["task"], row["sparsity"], row["published chosen"], row["re-run chosen"]) == ("WebNLG", 0.0, 2e-3, 1e-3)
    assert row["published margin (val loss)"] == pytest.approx(0.1)
    # the re-run's first model: its own rate scores the base loss, the published rate 0.3 nats more
    assert row["test loss, re-run's rate minus published rate (nats)"] == pytest.approx(-0.3)
    assert "same rate in 7 of 8 cells" in check.sentence()
    # The dense WebNLG cell's rate moved: the H1 WebNLG cell reads it, and so does every H2 cell.
    same = dict(zip(zip(check.cells["hypothesis"], check.cells["task"]), check.same_rates))
    assert same == {("H1", "E2E"): True, ("H1", "WebNLG"): False, ("H1", "DART"): True,
                    ("H2", "summarization vs data-to-text"): False}
    assert _check(_grid(), _grid()).same_rates.all()


def test_a_judged_cell_reads_the_cells_its_rule_compares():
    assert V.cell_inputs("H1", "s", "dart", 0.75) == [("s", "dart", 0.75), ("s", "dart", 0.0)]
    assert len(V.cell_inputs("H2", "s", "summarization vs data-to-text", 0.5)) == 8
    assert set(V.cell_inputs("H3", "l vs s", "e2e", 0.5, sizes=("s", "l"))) == {
        ("s", "e2e", 0.5), ("s", "e2e", 0.0), ("l", "e2e", 0.5), ("l", "e2e", 0.0)}
    with pytest.raises(ValueError, match="pass sizes"):
        V.cell_inputs("H3", "l vs s", "e2e", 0.5)


def test_pretraining_and_same_run_differences():
    rerun = _grid(value_shift={("dart", 0.0): 0.5}, ppl_scale=1.02)
    check = _check(_grid(), rerun)
    assert len(check.pretraining) == len(LEVELS) * len(SPREAD)
    assert check.pretraining["relative change (%)"].to_numpy() == pytest.approx([2.0] * len(check.pretraining))
    runs = check.runs.set_index("task")
    assert runs.loc["DART", "mean difference"] == pytest.approx(0.5 * 4 / 8)  # dense runs moved, sparse did not
    assert runs.loc["DART", "max |difference|"] == pytest.approx(0.5)
    assert runs.loc["E2E", "max |difference|"] == pytest.approx(0.0)
    assert runs.loc["DART", "runs"] == len(LEVELS) * (len(SPREAD) + 1)
    assert "by at most 2.00%" in check.sentence()


def test_a_cell_judged_in_one_run_only_does_not_count_as_the_same():
    rerun = _grid()
    rerun["eval"] = [r for r in rerun["eval"] if not (r["task"] == "dart" and r["sparsity"] == 0.5)]
    check = _check(_grid(), rerun)
    dart = check.cells.set_index("task").loc["DART"]
    assert dart["re-run outcome"] == "not judged" and not dart["same outcome"]
    assert math.isnan(dart["change in estimate"])


# ------------------------------------------------------------------------------ committed files

def test_load_committed_raises_naming_a_changed_file(tmp_path):
    folder = tmp_path / "p" / "runs" / "eval"
    folder.mkdir(parents=True)
    path = folder / "x.json"
    path.write_text(json.dumps({"value": 1.0}))
    manifest.record(tmp_path, "p", [path])
    assert reruns.load_committed(tmp_path, "p")["eval"] == [{"value": 1.0}]
    path.write_text(json.dumps({"value": 2.0}))
    with pytest.raises(manifest.CommittedResultError, match="x.json"):
        reruns.load_committed(tmp_path, "p")
    path.write_text(json.dumps({"value": 1.0}))
    (folder / "y.json").write_text("{}")  # never recorded
    with pytest.raises(manifest.CommittedResultError, match="y.json"):
        reruns.load_committed(tmp_path, "p")


def test_rerun_provenance_reads_the_gpu_and_the_command_times(tmp_path):
    logs = tmp_path / "gpu" / "rerun" / "logs"
    logs.mkdir(parents=True)
    (logs / "gpu_env.txt").write_text("Some GPU, 1.2.3\ntorch x\n")
    (logs / "command_times.txt").write_text("100 start setup\n110 end setup\n120 start grid\n420 end grid\n")
    text = reruns.rerun_provenance(tmp_path)
    # the set-up step runs no part of the grid and is left out
    assert "`Some GPU, 1.2.3`" in text and "1 grid command" in text and "300 s of wall time" in text
    assert "'grid'" in text and "setup" not in text
    assert "no log" in reruns.rerun_provenance(tmp_path / "elsewhere")


def test_the_provenance_table_has_a_row_per_run_with_its_gpu_and_grid_commands(tmp_path):
    logs = tmp_path / "gpu" / "rerun" / "logs"
    logs.mkdir(parents=True)
    (logs / "gpu_env.txt").write_text("Some GPU, 1.2.3\ntorch x\n")
    (logs / "command_times.txt").write_text("100 start setup\n110 end setup\n120 start 8.4\n420 end 8.4\n"
                                            "430 start 8.5\n530 end 8.5\n")
    table = reruns.provenance_table(tmp_path, "gpu", {"second": "rerun", "missing": "nowhere"})
    row, gone = table.iloc[0], table.iloc[1]
    assert (row["GPU"], row["grid commands"], row["wall time (s)"]) == ("Some GPU, 1.2.3", 2, 400)
    assert row["longest command"] == "8.4 min limit: 300 s" and row["first started (UTC)"] == "1970-01-01 00:02"
    assert row["logs"] == f"{tmp_path.name}/gpu/rerun/logs/"
    assert (gone["GPU"], gone["grid commands"]) == ("not recorded", 0) and math.isnan(gone["wall time (s)"])


@pytest.mark.skipif(not (TABLES / "gpu" / "rerun" / "gpu" / "runs").is_dir(), reason="no committed re-run")
def test_the_committed_check_covers_every_small_h1_and_h2_cell():
    from spdf_lib.profiles import get_profile

    gpu = get_profile("gpu")
    first = reruns.load_committed(TABLES / "gpu" / "percell_run", "gpu")
    check = reruns.rerun_check(first, reruns.load_committed(TABLES / "gpu" / "rerun", "gpu"),
                               size=gpu.sizes[0], levels=gpu.sparsity_levels,
                               search=reruns.percell(gpu).finetune.lr_search)
    counts = check.cells["hypothesis"].value_counts().to_dict()
    assert counts == {"H1": 6, "H2": 2}
    assert not (check.cells[["published outcome", "re-run outcome"]] == "not judged").any().any()
    assert check.n_rate_cells == len(gpu.sparsity_levels) * len(gpu.task_names)
    assert len(check.pretraining) == len(gpu.sparsity_levels) * len(gpu.pretrain_seeds)  # the 83% model is left out
    assert check.pretraining.notna().all().all()
    assert check.sentence().startswith(f"**Re-run check, {gpu.sizes[0]}.** Of the 8 judged cells")

    # the published run's cells, rebuilt from the per-run files with its shared rule, are what chapter 06
    # published from the scheduler's own records
    published = reruns.load_committed(TABLES, "gpu")
    own = reruns.rerun_check(published, published, size=gpu.sizes[0], levels=gpu.sparsity_levels,
                             search=gpu.finetune.lr_search)
    committed = pd.read_csv(TABLES / "gpu" / "verdict_cells.csv")
    committed = committed[(committed["size"] == gpu.sizes[0]) & committed["hypothesis"].isin(["H1", "H2"])]
    assert list(committed["outcome"]) == list(own.cells["published outcome"])
    searches = pd.read_csv(TABLES / "gpu" / "lr_search.csv")
    searches = searches[searches["size"] == gpu.sizes[0]]
    rebuilt = {(r["task"], reruns.level_label(r["sparsity"])): r["published chosen"]
               for _, r in own.rates.iterrows()}
    assert {(r["task"], r["sparsity"]): r["chosen"] for _, r in searches.iterrows()} == rebuilt


def test_the_summary_line_says_which_verdicts_kept_every_cell():
    same = reruns.rerun_summary(_check(_grid(), _grid()))
    assert "H1 kept every cell, H2 kept every cell" in same and "4 of 4 judged cells" in same
    flipped = reruns.rerun_summary(_check(_grid(), _grid(value_shift={("e2e", 0.5): -5.0})))
    assert "H1 did not keep every cell, H2 kept every cell" in flipped and "3 of 4" in flipped


def test_the_summary_line_only_warns_when_something_changed():
    same = reruns.rerun_summary(_check(_grid(), _grid()))
    assert "more than their intervals alone suggest" not in same
    assert "more than their intervals alone suggest" in reruns.rerun_summary(_check(_grid(), _grid(value_shift={("e2e", 0.5): -5.0})))


def test_run_commits_lists_the_commits_of_one_size():
    stages = {"eval": [{"size": "a", "environment": {"commit": "abc"}}, {"size": "b", "environment": {"commit": "def"}},
                       {"size": "a", "environment": {}}]}
    assert reruns.run_commits(stages) == ["abc", "def"] and reruns.run_commits(stages, "a") == ["abc"]


@pytest.mark.skipif(not (REPO / "tables" / "gpu" / "rerun").is_dir(), reason="no committed re-run")
def test_substituting_the_second_runs_small_cells_rejudges_every_headline_verdict():
    import csv

    from spdf_lib.profiles import get_profile

    tables = REPO / "tables"
    per_cell = reruns.percell(get_profile("gpu"))
    first = reruns.load_committed(tables / "gpu" / "percell_run", "gpu")
    frame = reruns.substituted_verdicts(first, reruns.load_committed(tables / "gpu" / "rerun", "gpu"), per_cell)
    assert list(frame["hypothesis"]) == ["H1", "H2", "H3"]
    own = reruns.judge_profile(reruns.grid_cells(first, per_cell), per_cell)
    assert dict(zip(frame["hypothesis"], frame["published verdict"])) == {v.hypothesis: v.verdict for v in own}
    assert "not computable" not in set(frame["published verdict"])  # every cell of the first run has its runs
    with open(tables / "gpu" / "rerun_verdicts.csv", newline="") as handle:  # what chapter 06 wrote
        assert [r["published verdict"] for r in csv.DictReader(handle)] == list(frame["published verdict"])
    assert set(frame.columns[3:4]) == {"with the second run's gpu-small cells"}


def test_the_rerun_figure_draws_both_runs_of_every_cell_and_marks_the_changed_ones():
    import matplotlib

    matplotlib.use("Agg")
    from spdf_lib import verdicts

    check = _check(_grid(), _grid(value_shift={("e2e", 0.5): -5.0}))
    fig = reruns.rerun_figure(check)
    h1, h2 = fig.axes
    names = [t.get_text() for t in h1.get_yticklabels()]
    assert len(names) == int((check.cells["hypothesis"] == "H1").sum())
    bold = [t.get_text() for t in h1.get_yticklabels() if t.get_fontweight() == "bold"]
    assert bold == ["E2E, 50% sparse"]  # the one cell that changed outcome
    assert not [t for t in h2.get_yticklabels() if t.get_fontweight() == "bold"]
    lines = {tuple(line.get_xdata()) for line in h1.get_lines() if line.get_linestyle() == "--"}
    assert (-verdicts.BLEU_MARGIN, -verdicts.BLEU_MARGIN) in lines
    named = reruns.rerun_figure(check, names=("run A", "run B"))
    for ax in named.axes:  # every panel's legend names the two runs, not its cells
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "run A (95% CI)" in legend and "run B (95% CI)" in legend, legend
    # the shown table keeps the intervals as text and leaves their numeric bounds to the figure
    assert "published low" in check.cells.columns and "published low" not in check.table.columns
    empty = reruns.rerun_figure(dataclasses.replace(check, cells=check.cells.iloc[0:0]))
    assert empty.axes[0].texts[0].get_text() == "no judged cell in both runs"


def test_a_re_run_moves_the_margin_between_neighbouring_rates_by_the_measured_change():
    same = rate_picks.margin_changes(_grid(), _grid(), SEARCH, LEVELS)
    assert len(same[same["rule"] == "per cell"]) == len(TASKS) * len(LEVELS) and (same["change"] == 0).all()
    assert len(same[same["rule"] == "shared"]) == len(TASKS)
    moved = rate_picks.margin_changes(_grid(), _grid(chosen={("webnlg", 0.0): 1e-3}), SEARCH, LEVELS)
    changed = moved[moved["change"] != 0].set_index("rule")
    # per cell: loss(2e-3) - loss(1e-3) goes from -0.1 to +0.1; shared (averaged over both sparsities): -0.1 to 0
    assert changed.loc["per cell", "change"] == pytest.approx(0.2) and changed.loc["per cell", "task"] == "WebNLG"
    assert changed.loc["shared", "change"] == pytest.approx(0.1)


def test_the_swap_forecast_is_the_normal_chance_of_reversing_each_rule_s_margin():
    from scipy.stats import norm

    f = rate_picks.swap_forecast(_grid(), SEARCH, LEVELS, {"per cell": 0.1, "shared": 0.05}, [SIZE])
    per_cell, shared = f[f["rule"] == "per cell"], f[f["rule"] == "shared"]
    assert len(per_cell) == len(TASKS) * len(LEVELS) and len(shared) == len(TASKS)
    assert (per_cell["margin (nats)"].round(9) == 0.1).all() and not f["provisional"].any()
    assert per_cell["P(re-run picks another)"].to_numpy() == pytest.approx(norm.cdf(-1.0))
    assert shared["P(re-run picks another)"].to_numpy() == pytest.approx(norm.cdf(-2.0))
    # a search that would still extend past its pick gets no chance: its margin is not known yet
    wider = LRSearch(grid=LRS, factor=2.0, max_extensions=1)
    assert rate_picks.swap_forecast(_grid(), wider, LEVELS, {"per cell": 0.1, "shared": 0.05}, [SIZE])[
        "P(re-run picks another)"].isna().all()
    text = rate_picks.swap_sentence(rate_picks.margin_changes(_grid(), _grid(), SEARCH, LEVELS), f, 1, 8, SIZE)
    assert f"expects {len(TASKS) * len(LEVELS) * norm.cdf(-1.0):.1f} changed picks" in text
    assert "the second run changed 1 of 8" in text


def test_the_poisson_binomial_tail_matches_the_binomial_and_its_edges():
    from scipy.stats import binom

    assert rate_picks._at_least([0.3] * 6, 2) == pytest.approx(binom.sf(1, 6, 0.3))
    assert rate_picks._at_least([0.2, 0.5], 0) == 1.0 and rate_picks._at_least([], 1) == 0.0
    assert rate_picks._at_least([0.2, 0.5], 2) == pytest.approx(0.1)


def test_the_swap_check_counts_the_picks_a_later_run_changed_against_the_forecast():
    f = rate_picks.swap_forecast(_grid(), SEARCH, LEVELS, {"per cell": 0.1, "shared": 0.05}, [SIZE])
    same = rate_picks.swap_check(f, _grid(), SEARCH, LEVELS).set_index("rule")
    assert list(same["observed changes"]) == [0, 0] and (same["P(at least observed)"] == 1.0).all()
    assert same.loc["per cell", "final picks"] == len(TASKS) * len(LEVELS)
    assert same.loc["per cell", "expected changes"] == pytest.approx(len(TASKS) * len(LEVELS) * f.iloc[0][
        "P(re-run picks another)"])
    # one cell flips to the other rate: per cell one change; shared, the average over the sparsities ties
    # (1.05 at both rates) and the lower rate wins the tie, so the shared pick changes too
    moved = rate_picks.swap_check(f, _grid(chosen={("webnlg", 0.0): 1e-3}), SEARCH, LEVELS).set_index("rule")
    assert moved.loc["per cell", "observed changes"] == 1 and moved.loc["shared", "observed changes"] == 1
    p = f[f["rule"] == "per cell"]["P(re-run picks another)"].to_numpy()
    assert moved.loc["per cell", "P(at least observed)"] == pytest.approx(1 - (1 - p).prod())
    # a later run that did not search a cell leaves its pick out, counted
    partial = _grid()
    partial["finetune"] = [r for r in partial["finetune"] if r["task"] != "dart"]
    gone = rate_picks.swap_check(f, partial, SEARCH, LEVELS).set_index("rule")
    assert gone.loc["per cell", "not searched"] == len(LEVELS) and gone.loc["shared", "not searched"] == 1
    text = rate_picks.swap_check_sentence(moved.reset_index(), "later run")
    assert "the later run changed 1" in text and "within what the forecast allows" in text


def test_a_re_run_searched_by_another_rule_is_judged_at_its_own_rule_s_rates():
    # the 50% E2E cell's own best rate is 1e-3 in the re-run; the shared rule keeps 2e-3 for both sparsities
    rerun = _grid(chosen={("e2e", 0.5): 1e-3})
    shared = dataclasses.replace(SEARCH, shared=True)
    own = reruns.rerun_check(_grid(), rerun, size=SIZE, levels=LEVELS, search=SEARCH)
    pooled = reruns.rerun_check(_grid(), rerun, size=SIZE, levels=LEVELS, search=SEARCH, rerun_search=shared)
    key = (pooled.rates["task"] == "E2E") & (pooled.rates["sparsity"] == 0.5)
    assert own.rates.loc[key, "re-run chosen"].item() == 1e-3
    # averaged over the sparsities 2e-3 is (1.0 + 1.1) / 2 = 1.05 and 1e-3 is (1.1 + 1.0) / 2: a tie, and the
    # lower rate wins ties, so the shared re-run reads its E2E cells at 1e-3 too, both of them
    assert pooled.rates.loc[pooled.rates["task"] == "E2E", "re-run chosen"].tolist() == [1e-3, 1e-3]
    assert not pooled.same_rates.all()


def test_relabel_names_both_runs_in_one_pass():
    frame = pd.DataFrame(columns=["published estimate", "re-run outcome", "task"])
    out = reruns.relabel(frame, first="first", second="published run's")
    assert list(out.columns) == ["first estimate", "published run's outcome", "task"]


def test_the_verdicts_sentence_names_what_moved():
    a = [V.Verdict("H1", "supported", pd.DataFrame()), V.Verdict("H2", "supported", pd.DataFrame())]
    b = [V.Verdict("H1", "supported", pd.DataFrame()), V.Verdict("H2", "not supported", pd.DataFrame())]
    text = reruns.verdicts_sentence(a, b, "first run", "second run")
    assert "H1 is *supported* in both" in text
    assert "H2 goes from *supported* in the first run to *not supported* in the second run" in text
    assert "(1 of 2 verdicts moved)" in text


def test_the_runs_overview_counts_grid_results_only():
    run = _grid()
    run["pretrain"].append({"size": SIZE, "sparsity": 0.83, "seed": 0})  # the pruning stage's model
    run["eval"].append(_ev(0.0, "e2e", 1e-3, 0, 1.0, 1.0, variant="rigl"))  # chapter 09's
    frame = reruns.runs_overview({"a": ("tables/a/", run, "per cell")}, [SIZE], LEVELS)
    row = frame.iloc[0]
    assert row["pre-trainings"] == len(LEVELS) * len(SPREAD) and row["learning-rate rule"] == "per cell"
    assert row["evaluations"] == len(LEVELS) * len(TASKS) * (len(SPREAD) + 1) and row["sizes"] == SIZE


def _profile():
    from types import SimpleNamespace

    return SimpleNamespace(sizes=(SIZE,), sparsity_levels=LEVELS, task_names=TASKS, pretrain_seeds=(0, 1, 2),
                           finetune_seeds=(0,), finetune=SimpleNamespace(lr_search=SEARCH))


def test_the_next_re_run_is_judged_by_the_rule_fixed_in_advance():
    from spdf_lib import replication

    profile = _profile()
    cells = reruns.grid_cells(_grid(), profile)
    forecasts = [replication.forecast(cells, lambda c: reruns.judge_profile(c, profile), n_models=3, draws=300,
                                      seed=0, truth_uncertain=u) for u in (False, True)]
    same = reruns.rerun_test(_grid(), _grid(), profile, forecasts)
    assert list(same.verdicts["hypothesis"]) == ["H1", "H2"] and same.verdicts["survives"].all()  # one size: no H3
    assert len(same.comparisons) == 2
    assert all(c["holds"] and c["observed kept"] == c["cells"] for c in same.comparisons)
    assert [c.size for c in same.checks] == [SIZE] and same.model_holds == {SIZE: True}
    text = same.sentence()
    assert "2 of the 2 headline verdicts survive" in text
    n = len(same.checks[0].cells)
    assert f"{n} of the {n} H1 and H2 cells kept" in text and f"model holds at {SIZE} (2 of its 2" in text
    # a re-run whose E2E cell at 50% falls far below the margin: H1 changes, and every other cell is kept
    moved = reruns.rerun_test(_grid(), _grid(value_shift={("e2e", 0.5): -5.0}), profile, forecasts)
    h1 = moved.verdicts.set_index("hypothesis").loc["H1"]
    assert not h1["survives"] and h1["published verdict"] == "supported" and h1["re-run verdict"] == "not supported"
    assert all(c["observed kept"] == c["cells"] - 1 for c in moved.comparisons)
    text = moved.sentence()
    assert "1 of the 2 headline verdicts survive" in text and "H1 goes from *supported* to *not supported*" in text
    assert f"{n - 1} of the {n} H1 and H2 cells kept" in text
    assert "the re-run kept the earlier outcome" in text
    assert "fixed before it exists" in reruns.RERUN_TEST_RULE


def test_the_fresh_run_model_holds_at_a_size_only_when_every_forecast_there_holds():
    comparisons = [{"size": "small", "holds": True}, {"size": "small", "holds": True},
                   {"size": "large", "holds": False}, {"size": "large", "holds": True}]
    holds = reruns.RerunTest(pd.DataFrame(), comparisons, ()).model_holds
    assert holds == {"small": True, "large": False}
    assert reruns.RerunTest(pd.DataFrame(), comparisons[2:][::-1], ()).model_holds == {"large": False}


def test_grid_only_keeps_the_grid_and_drops_variants_other_sizes_and_other_sparsities():
    rows = [{"size": "s", "sparsity": 0.5}, {"size": "s", "sparsity": 0.5, "variant": "rigl"},
            {"size": "other", "sparsity": 0.5}, {"size": "s", "sparsity": 0.9}, {"size": "s", "sparsity": 0.0}]
    grid = reruns.grid_only({"eval": rows, "pretrain": []}, ["s"], (0.0, 0.5))
    assert grid == {"eval": [rows[0], rows[4]], "pretrain": []}
