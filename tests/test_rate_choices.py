"""Chapter 06's third run: the learning rate each rule (one per cell, one shared by a size and task's
sparsities) picks in each of several runs, the pre-training perplexities and same-key evaluations
across runs, and how far a run had got after each command; on synthetic results with a known answer,
then on the committed runs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from spdf_lib import manifest, rate_picks, reruns
from spdf_lib.profiles import GPU, LRSearch

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "tables"
SEARCH = LRSearch(grid=(1e-3, 2e-3, 4e-3), factor=2.0, max_extensions=1)
LEVELS = (0.0, 0.5)


def _ft(size, level, task, lr, dev_loss, pretrain_seed=0, seed=0, keep_masks=False):
    return {"size": size, "sparsity": level, "pretrain_seed": pretrain_seed, "task": task, "lr": lr, "seed": seed,
            "keep_masks": keep_masks, "dev_loss": dev_loss}


def _run(losses: dict, size="s") -> dict:
    """One run's search: ``losses[(task, level)] = {lr: dev_loss}`` on the first model, plus runs of
    other seeds and a masks-kept control that must be ignored."""
    finetunes = []
    for (task, level), by_lr in losses.items():
        for lr, loss in by_lr.items():
            finetunes.append(_ft(size, level, task, lr, loss))
            finetunes.append(_ft(size, level, task, lr, loss - 5.0, pretrain_seed=1))  # not a search run
            finetunes.append(_ft(size, level, task, lr, loss - 5.0, keep_masks=True))  # not a search run
    return {"pretrain": [], "finetune": finetunes, "eval": []}


# a near-tie in the 50% cell: each run's per-cell choice there follows the noise, the average does not
# (8e-3, tried past the grid's end, makes 4e-3 interior)
FIRST = {("e2e", 0.0): {1e-3: 1.30, 2e-3: 1.00, 4e-3: 1.20, 8e-3: 1.4},
         ("e2e", 0.5): {1e-3: 1.30, 2e-3: 1.100, 4e-3: 1.101, 8e-3: 1.4}}
SECOND = {("e2e", 0.0): {1e-3: 1.30, 2e-3: 1.00, 4e-3: 1.20, 8e-3: 1.4},
          ("e2e", 0.5): {1e-3: 1.30, 2e-3: 1.101, 4e-3: 1.100, 8e-3: 1.4}}


def test_a_near_tie_moves_the_per_cell_rate_but_not_the_shared_one():
    frame = rate_picks.rate_choices({"a": _run(FIRST), "b": _run(SECOND)}, SEARCH, ["s"], LEVELS)
    row = frame.iloc[0]
    assert (row["size"], row["task"]) == ("s", "E2E")
    assert row["a: per cell"] == "0.002 / 0.002" and row["b: per cell"] == "0.002 / 0.004"
    assert row["a: shared"] == row["b: shared"] == "0.002"
    assert not row["same per cell"] and row["cells that moved"] == 1 and row["same shared"] and row["runs"] == 2
    # the averaged losses at 2e-3 and 4e-3 are 1.05 / 1.1505 (a) and 1.0505 / 1.15 (b): the closest margin
    assert row["smallest shared margin"] == pytest.approx(1.15 - 1.0505) and row["provisional shared picks"] == 0
    text = rate_picks.rate_choices_sentence(frame, LEVELS)
    assert "in 1 of the 2 cells (1 of the 1 searches)" in text and "same rate in every run in 1 of the 1" in text


def test_a_shared_optimum_at_the_edge_is_marked_as_needing_the_next_rate():
    edge = {("e2e", 0.0): {1e-3: 1.3, 2e-3: 1.2, 4e-3: 1.0}, ("e2e", 0.5): {1e-3: 1.3, 2e-3: 1.0, 4e-3: 1.05}}
    row = rate_picks.rate_choices({"a": _run(edge)}, SEARCH, ["s"], LEVELS).iloc[0]
    # the averages are 1.30, 1.10, 1.025: the best is the grid's top end, so the rule would try 0.008
    assert row["a: shared"] == "0.004 (needs 0.008)" and row["provisional shared picks"] == 1
    assert row["same shared"] is None and row["same per cell"] is None  # one run: nothing compared
    # per cell the dense model's own best is at the edge too; the 50% model's is interior
    assert row["a: per cell"] == "0.004 (needs 0.008) / 0.002"


def test_a_size_a_run_did_not_compute_reads_not_run_and_counts_no_run():
    frame = rate_picks.rate_choices({"a": _run(FIRST), "b": _run(SECOND, size="other")}, SEARCH, ["s", "other"], LEVELS)
    s, other = frame.iloc[0], frame.iloc[1]
    assert s["b: per cell"] == "not run" and s["runs"] == 1
    assert other["a: shared"] == "not run" and other["runs"] == 1
    assert "nothing to compare" in rate_picks.rate_choices_sentence(frame, LEVELS)


def test_a_cell_with_one_sparsity_missing_is_not_compared():
    partial = {k: v for k, v in FIRST.items() if k[1] == 0.0}
    frame = rate_picks.rate_choices({"a": _run(partial), "b": _run(SECOND)}, SEARCH, ["s"], LEVELS)
    row = frame.iloc[0]
    assert row["a: per cell"] == "incomplete" and row["runs"] == 1 and row["same shared"] is None


def test_a_shared_pick_without_a_rate_every_cell_tried_is_named():
    apart = {("e2e", 0.0): {1e-3: 1.0, 2e-3: 1.1}, ("e2e", 0.5): {4e-3: 1.0, 8e-3: 1.2}}
    row = rate_picks.rate_choices({"a": _run(apart)}, SEARCH, ["s"], LEVELS).iloc[0]
    assert row["a: shared"] == "no common rate" and math.isnan(row["smallest shared margin"])


def test_pretraining_across_runs_lines_up_the_same_keys_and_the_largest_change():
    def pre(ppl):
        return {"pretrain": [{"size": "s", "sparsity": lv, "seed": seed, "val_ppl": v}
                             for (lv, seed), v in ppl.items()], "finetune": [], "eval": []}

    runs = {"p": pre({(0.0, 0): 100.0, (0.0, 1): 110.0}), "q": pre({(0.0, 0): 101.0}),
            "r": pre({(0.0, 0): 97.0, (0.0, 1): 110.0, (0.9, 0): 5.0})}  # 90%: not a level of the table
    frame = reruns.pretraining_across_runs(runs, ["s"], LEVELS)
    assert list(frame["seed"]) == [0, 1]
    first = frame.iloc[0]
    assert first["largest change from p (%)"] == pytest.approx(-3.0)  # r moved more than q's +1%
    assert math.isnan(frame.iloc[1]["q val PPL"]) and frame.iloc[1]["largest change from p (%)"] == 0.0


def test_same_key_evaluations_leave_chapter_09_runs_out():
    def ev(run_id, value, variant=None):
        r = {"run_id": run_id, "task": "e2e", "metric": "BLEU", "value": value, "test_loss": 2.0, "key": run_id}
        if variant:
            r["variant"] = variant
        return r

    published = {"eval": [ev("a", 60.0), ev("b", 61.0), ev("c", 50.0, variant="rigl")]}
    other = {"eval": [ev("a", 62.0), ev("c", 90.0, variant="rigl")]}
    frame = reruns.same_key_evaluations(published, other)
    assert list(frame["runs"]) == [1] and frame.iloc[0]["max |difference|"] == pytest.approx(2.0)
    assert "E2E by up to 2.00 BLEU (1 runs" in reruns.same_key_sentence(frame, "third run")
    assert "share no evaluation" in reruns.same_key_sentence(frame.iloc[0:0], "third run")


def test_command_progress_reads_each_commands_summary_line(tmp_path):
    (tmp_path / "gpu_run.log").write_text("\n".join([
        "[10:00:00] done pretrain x",
        '{"profile": "gpu", "done": {"pretrain": 2, "finetune": 5, "eval": 1, "prune": 0}, "wall_s": 100.0}',
        "{not json",
        '{"something": "else"}',
        '{"profile": "gpu", "done": {"pretrain": 3, "finetune": 9}, "wall_s": 50.5, "workers": 5}',
    ]))
    frame = reruns.command_progress(tmp_path)
    assert list(frame["command"]) == [1, 2]
    assert list(frame["pre-trainings"]) == [2, 3] and list(frame["evaluations"]) == [1, 0]
    assert list(frame["wall s, cumulative"]) == [100.0, 150.5]
    assert pd.isna(frame["workers"].iloc[0]) and frame["workers"].iloc[1] == 5  # older logs record none
    both = reruns.progress_table({"x": tmp_path, "y": tmp_path})
    assert list(both["run"]) == ["x", "x", "y", "y"] and both.columns[0] == "run"
    with pytest.raises(FileNotFoundError, match="gpu_run.log"):
        reruns.command_progress(tmp_path / "missing")


def test_provenance_of_another_folder_names_it_and_its_label(tmp_path):
    logs = tmp_path / "gpu" / "third" / "logs"
    logs.mkdir(parents=True)
    (logs / "gpu_env.txt").write_text("NVIDIA X, 1.0\n")
    (logs / "command_times.txt").write_text("100 start a\n160 end a\n")
    text = reruns.rerun_provenance(tmp_path, "gpu", "third", "third run")
    assert text.startswith("The third run's log (") and "gpu/third/logs" in text and "60 s" in text
    assert "1 grid command" in text
    assert "no log of a third run" in reruns.rerun_provenance(tmp_path, "gpu", "elsewhere", "third run")


# ------------------------------------------------------------------------------ the committed runs

THIRD = TABLES / "gpu" / "shared_rates_run"


def test_the_committed_third_run_is_intact_and_was_computed_with_shared_rates():
    assert manifest.problems(THIRD, "gpu") == []
    runs = reruns.load_committed(THIRD, "gpu")
    assert reruns.run_commits(runs) == ["b988134"]
    # it searched every cell of both sizes on the first pre-trained model, with the shared rule's
    # extensions: every sparsity of a (size, task) tried the same rates
    cells = reruns.lr_search_from_finetunes(runs["finetune"], LRSearch(grid=GPU.finetune.lr_search.grid,
                                                                          shared=True))
    assert len(cells) == len(GPU.sizes) * len(GPU.sparsity_levels) * len(GPU.finetune.tasks)
    for size in GPU.sizes:
        for task in GPU.task_names:
            tried = {tuple(sorted(c["losses"])) for c in cells if c["size"] == size and c["task"] == task}
            assert len(tried) == 1, (size, task, tried)
    progress = reruns.command_progress(THIRD / "logs")
    assert len(progress) == 2 and progress["pre-trainings"].iloc[-1] == len(runs["pretrain"])


def test_the_committed_rate_comparison_covers_both_sizes():
    runs = {"first published": reruns.load_committed(TABLES / "gpu" / "percell_run", "gpu"),
            "second": reruns.load_committed(TABLES / "gpu" / "rerun", "gpu"),
            "third": reruns.load_committed(THIRD, "gpu"),
            "published": reruns.load_committed(TABLES, "gpu")}
    frame = rate_picks.rate_choices(runs, GPU.finetune.lr_search, GPU.sizes, GPU.sparsity_levels)
    assert len(frame) == len(GPU.sizes) * len(GPU.finetune.tasks)
    assert set(frame.loc[frame["size"] == GPU.sizes[0], "runs"]) == {4}
    assert set(frame.loc[frame["size"] == GPU.sizes[1], "runs"]) == {3}


def test_the_published_run_searched_with_one_rate_per_size_and_task():
    assert GPU.finetune.lr_search.shared
    runs = reruns.load_committed(TABLES, "gpu")
    assert reruns.run_commits({s: [r for r in v if not r.get("variant") and r["size"] in GPU.sizes
                                   and float(r["sparsity"]) in GPU.sparsity_levels]
                               for s, v in runs.items()}) == ["09b4c7d"]
    cells = reruns.lr_search_from_finetunes(runs["finetune"], GPU.finetune.lr_search)
    cells = [c for c in cells if c["size"] in GPU.sizes and c["sparsity"] in GPU.sparsity_levels]
    assert len(cells) == len(GPU.sizes) * len(GPU.sparsity_levels) * len(GPU.finetune.tasks)
    for size in GPU.sizes:
        for task in GPU.task_names:
            group = [c for c in cells if c["size"] == size and c["task"] == task]
            assert len({tuple(sorted(c["losses"])) for c in group}) == 1, (size, task)  # the same rates tried
            assert len({c["chosen"] for c in group}) == 1 and group[0]["status"] == "interior"


def test_the_comparison_applies_both_rules_whatever_the_search_it_is_given_says():
    import dataclasses

    shared = dataclasses.replace(SEARCH, shared=True)
    runs = {"a": _run(FIRST), "b": _run(SECOND)}
    assert rate_picks.rate_choices(runs, shared, ["s"], LEVELS).equals(rate_picks.rate_choices(runs, SEARCH, ["s"], LEVELS))


def test_pretraining_across_runs_flags_a_model_whose_settings_differ_between_runs():
    def pre(key):
        return {"pretrain": [{"size": "s", "sparsity": 0.0, "seed": 0, "val_ppl": 100.0, "key": key}],
                "finetune": [], "eval": []}

    assert bool(reruns.pretraining_across_runs({"p": pre("k1"), "q": pre("k1")}, ["s"], LEVELS)["same key"].iloc[0])
    assert not reruns.pretraining_across_runs({"p": pre("k1"), "q": pre("k2")}, ["s"], LEVELS)["same key"].iloc[0]
