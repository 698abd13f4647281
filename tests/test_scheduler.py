"""The one scheduler (spdf_lib.scheduler): which runs it starts, in which order, and what it reuses.

The runners are replaced by instant fakes whose validation loss is a known function of the learning
rate, so the dependency logic is checked without training anything."""

from __future__ import annotations

import dataclasses
import math

import pytest

from spdf_lib import results, scheduler
from spdf_lib.profiles import LRSearch, get_profile

from conftest import install_fake_runners, needs_data  # noqa: E402

pytestmark = needs_data


def _profile(**kw):
    smoke = get_profile("smoke")
    finetune = dataclasses.replace(smoke.finetune, tasks=(smoke.task("e2e"),),
                                   lr_search=LRSearch(grid=(1e-3, 2e-3, 4e-3), factor=2.0, max_extensions=1))
    return dataclasses.replace(smoke, sizes=("smoke-small",), sparsity_levels=(0.0, 0.75), pretrain_seeds=(0, 1),
                               finetune_seeds=(0, 1), finetune=finetune, **kw)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Instant runners; the dev loss is lowest at 8e-3 for dense and at 2e-3 for sparse models."""
    def dev_loss(run):
        best = 8e-3 if run.base.sparsity == 0 else 2e-3
        return 1.0 + (math.log(run.lr) - math.log(best)) ** 2

    return install_fake_runners(monkeypatch, tmp_path, dev_loss)


def test_search_extends_then_finals_and_evaluations_follow(fake, tmp_path):
    profile = _profile()
    out = scheduler.run(profile, tmp_path / "tables", stages=("pretrain", "finetune", "eval"), progress=False)
    cells = {c["sparsity"]: c for c in out["lr_search"]}
    assert cells[0.75]["chosen"] == 2e-3 and cells[0.75]["status"] == "interior"
    assert cells[0.0]["chosen"] == 8e-3 and sorted(cells[0.0]["losses"]) == [1e-3, 2e-3, 4e-3, 8e-3]
    assert cells[0.0]["status"] == "bound hit (highest rate)"  # one extension allowed, still at the edge
    finals = [r for r in fake if r.stage == "finetune" and r.lr == cells[r.base.sparsity]["chosen"]]
    dense_finals = {(r.base.sparsity, r.base.seed, r.seed) for r in finals if not r.keep_masks}
    assert dense_finals == {(lv, p, f) for lv in (0.0, 0.75) for p, f in ((0, 0), (0, 1), (1, 0))}
    assert {(r.base.seed, r.seed) for r in finals if r.keep_masks} == {(0, 0), (1, 0)}
    evaluated = {r.run_id for r in fake if r.stage == "eval"}
    runner_ups = {f"smoke-small_s00_p0_e2e_denseft_lr{cells[0.0]['runner_up']:g}_f0",
                  f"smoke-small_s75_p0_e2e_denseft_lr{cells[0.75]['runner_up']:g}_f0"}
    assert runner_ups <= evaluated
    assert {r.run_id for r in finals} <= evaluated
    assert len(evaluated) == len(finals) + 2
    # every run was computed once: a second call reuses what was exported
    before = len(fake)
    again = scheduler.run(profile, tmp_path / "tables", stages=("pretrain", "finetune", "eval"), progress=False)
    assert len(fake) == before
    assert again["eval"].keys() == out["eval"].keys()


def test_searches_start_before_later_pretraining_seeds(fake, tmp_path):
    scheduler.run(_profile(), tmp_path / "tables", stages=("pretrain", "finetune"), progress=False)
    stages = [(r.stage, getattr(r, "seed", None)) for r in fake]
    first_finetune = next(i for i, (s, _) in enumerate(stages) if s == "finetune")
    assert ("pretrain", 0) in stages[:first_finetune]
    pretrain_order = [seed for s, seed in stages if s == "pretrain"]
    assert pretrain_order.index(1) > pretrain_order.index(0)


def test_a_published_profile_with_missing_results_stops_with_their_names(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(scheduler, "needs_gpu", lambda profile: True)
    with pytest.raises(results.MissingResultsError, match="neither committed .* nor cached"):
        scheduler.run(_profile(), tmp_path / "tables", stages=("pretrain",), progress=False)
    assert not fake


def test_unknown_stage_is_refused(fake, tmp_path):
    with pytest.raises(ValueError, match="unknown stages"):
        scheduler.run(_profile(), tmp_path / "tables", stages=("pretrain", "evaluate"), progress=False)


def test_a_shared_search_gives_every_sparsity_of_a_size_the_rate_of_their_pooled_loss(fake, tmp_path):
    # dense is best at 8e-3 and sparse at 2e-3: their mean loss is lowest at the geometric middle, 4e-3,
    # the top of the grid, so the shared search extends once to 8e-3 (in every cell) and picks 4e-3
    base = _profile()
    search = dataclasses.replace(base.finetune.lr_search, shared=True)
    profile = dataclasses.replace(base, finetune=dataclasses.replace(base.finetune, lr_search=search))
    out = scheduler.run(profile, tmp_path / "tables", stages=("pretrain", "finetune", "eval"), progress=False)
    cells = {c["sparsity"]: c for c in out["lr_search"]}
    assert {c["chosen"] for c in cells.values()} == {4e-3} and {c["status"] for c in cells.values()} == {"interior"}
    assert all(sorted(c["losses"]) == [1e-3, 2e-3, 4e-3, 8e-3] for c in cells.values())
    assert {c["runner_up"] for c in cells.values()} == {2e-3}  # 2e-3 and 8e-3: mean losses 0.96 and 0.96; ties: smaller
    finals = {r.base.sparsity for r in fake if r.stage == "finetune" and r.lr == 4e-3 and r.base.seed == 1}
    assert finals == {0.0, 0.75}  # the other seeds' final runs at the shared rate
    assert all(c["pooled"][4e-3] == min(c["pooled"].values()) for c in cells.values())
    # chapter 06 rebuilds the same decisions from the fine-tuning results alone
    from spdf_lib import reruns

    rows = [{"size": r.base.size, "sparsity": r.base.sparsity, "pretrain_seed": r.base.seed, "task": r.task,
             "lr": r.lr, "seed": r.seed, "keep_masks": r.keep_masks, "dev_loss": out["finetune"][r.run_id]["dev_loss"]}
            for r in fake if r.stage == "finetune"]
    rebuilt = {c["sparsity"]: c for c in reruns.lr_search_from_finetunes(rows, search)}
    for level, cell in cells.items():
        assert {k: rebuilt[level][k] for k in ("chosen", "runner_up", "status", "losses", "pooled")} == \
            {k: cell[k] for k in ("chosen", "runner_up", "status", "losses", "pooled")}
    # per cell, the same losses choose differently: dense alone would take 8e-3, at the edge
    per_cell = {c["sparsity"]: c for c in reruns.lr_search_from_finetunes(rows, base.finetune.lr_search)}
    assert per_cell[0.0]["chosen"] == 8e-3 and per_cell[0.75]["chosen"] == 2e-3 and "pooled" not in per_cell[0.0]


def test_pooled_losses_average_the_rates_every_cell_tried():
    from spdf_lib import runs as R

    assert R.pooled_losses([{1e-3: 1.0, 2e-3: 3.0}, {1e-3: 2.0, 2e-3: 1.0, 4e-3: 0.0}]) == {1e-3: 1.5, 2e-3: 2.0}
    assert R.pooled_losses([{1e-3: float("nan")}, {1e-3: 1.0}])[1e-3] == float("inf")
    assert R.pooled_losses([]) == {}


def test_side_workers_reach_the_placement_rule_and_the_grid_still_completes(fake, tmp_path, monkeypatch):
    from spdf_lib import placement

    calls = []
    original = placement.pick_group

    def recording(running, pretraining, **kw):
        calls.append(kw)
        return original(running, pretraining, **kw)

    monkeypatch.setattr(placement, "pick_group", recording)
    capped = scheduler.run(_profile(side_workers=0), tmp_path / "tables", stages=("pretrain", "finetune", "eval"),
                           progress=False)
    side = [kw for kw in calls if not kw["is_pretraining"]]
    assert side and all(kw["side_slots"] == 0 for kw in side)
    calls.clear()
    free = scheduler.run(_profile(), tmp_path / "other", stages=("pretrain", "finetune", "eval"), progress=False)
    assert calls and all(kw["side_slots"] is None for kw in calls)
    # the cap changes when runs start, never which runs there are
    for stage in ("pretrain", "finetune", "eval"):
        assert capped[stage].keys() == free[stage].keys()
