"""Chapter 09's runs (spdf_lib.runs, the ``beyond`` stage of spdf_lib.scheduler): what is planned,
what is scheduled, the bad inputs that stop it, and one real dynamic-sparsity pre-training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from spdf_lib import dynamic, flops, results, runners, runs as R, scheduler, sparsity, store
from spdf_lib.profiles import DynamicSettings, LRSearch, get_profile

from conftest import install_fake_runners, needs_data  # noqa: E402

pytestmark = needs_data


@pytest.fixture(scope="module")
def smoke():
    profile = get_profile("smoke")
    return profile, R.tokenizer_spec(profile)


def test_the_size_study_covers_the_family_and_reuses_the_grid_runs(smoke):
    profile, spec = smoke
    b = profile.beyond
    scaling = R.scaling_runs(profile, spec)
    assert {(r.size, r.sparsity, r.seed) for r in scaling} == {
        (s, lv, seed) for s in b.family for lv in b.levels for seed in b.scaling_seeds}
    assert all(r.variant == "" and r.dynamic is None for r in scaling)
    grid = {R.run_key(r) for r in R.pretraining_runs(profile, spec)}
    own = [r for r in scaling if r.size in profile.sizes]
    assert own and all(R.run_key(r) in grid for r in own)  # the same runs, not recomputed


def test_a_new_optional_field_at_its_default_leaves_the_key_unchanged():
    @dataclasses.dataclass(frozen=True)
    class Old:
        a: int

    @dataclasses.dataclass(frozen=True)
    class New:
        a: int
        b: str = dataclasses.field(default="", metadata={store.OMIT_AT_DEFAULT: True})

    Old.__name__ = New.__name__ = "Run"
    assert store.stable_hash(New(1)) == store.stable_hash(Old(1))
    assert store.stable_hash(New(1, "x")) != store.stable_hash(Old(1))


def test_isoflop_runs_spend_the_dense_runs_flops(smoke):
    profile, spec = smoke
    b = profile.beyond
    dense = next(r for r in R.pretraining_runs(profile, spec) if r.size == b.size and r.sparsity == 0.0)
    seq = profile.pretrain.seq_len
    target = flops.training_flops(dense.model, dense.tokens, 0.0, seq_len=seq)
    iso = R.isoflop_runs(profile, spec)
    assert {(r.sparsity, r.seed) for r in iso} == {(lv, s) for lv in b.isoflop_levels for s in b.isoflop_seeds}
    for r in iso:
        assert r.variant == "isoflop" and r.run_id.endswith("_isoflop") and r.tokens > dense.tokens
        step = flops.training_flops(r.model, r.tokens_per_step, r.sparsity, seq_len=seq)
        assert abs(flops.training_flops(r.model, r.tokens, r.sparsity, seq_len=seq) - target) <= step / 2 + 1
    higher = max(iso, key=lambda r: r.sparsity)
    assert higher.tokens == max(r.tokens for r in iso)  # sparser: cheaper per token, so more tokens


def test_dynamic_runs_take_the_static_runs_tokens_and_their_own_schedule(smoke):
    profile, spec = smoke
    d = profile.beyond.dynamic
    for r in R.dynamic_runs(profile, spec):
        static = next(s for s in R.pretraining_runs(profile, spec)
                      if (s.size, s.sparsity, s.seed) == (r.size, d.level, r.seed))
        assert r.tokens == static.tokens and r.sparsity == d.level
        assert r.dynamic.method == r.variant and r.dynamic.interval == d.interval and r.dynamic.seed == r.seed
        assert r.dynamic.end_step == int(d.end_frac * r.steps)
        assert R.run_key(r) != R.run_key(static)


def test_bad_inputs_are_refused_naming_the_parameter(smoke):
    profile, spec = smoke
    base = R.pretraining_runs(profile, spec)[-1]
    with pytest.raises(ValueError, match="variant='magnitude'"):
        dataclasses.replace(base, variant="magnitude")
    with pytest.raises(ValueError, match="needs dynamic=DynamicSpec"):
        dataclasses.replace(base, variant="rigl")
    with pytest.raises(ValueError, match="methods must be among"):
        DynamicSettings(methods=("magnitude",))
    with pytest.raises(ValueError, match="interval"):
        R.dynamic_spec(dataclasses.replace(profile, beyond=dataclasses.replace(
            profile.beyond, dynamic=dataclasses.replace(profile.beyond.dynamic, interval=0))), "rigl", 0, 100)
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            R.dynamic_spec(dataclasses.replace(profile, beyond=dataclasses.replace(
                profile.beyond, dynamic=dataclasses.replace(profile.beyond.dynamic, fraction=fraction))),
                "set", 0, 100)
    own = flops.training_flops(base.model, base.tokens, 0.75, seq_len=64)
    with pytest.raises(ValueError, match="target_flops=.* below the run's own"):
        flops.isoflop_tokens(base.model, 0.75, base.tokens, own * 0.9, base.tokens_per_step, seq_len=64)
    with pytest.raises(ValueError, match="no chapter 09 settings"):
        R.scaling_runs(dataclasses.replace(profile, beyond=None), spec)
    with pytest.raises(ValueError, match="beyond.family must contain"):
        dataclasses.replace(profile, beyond=dataclasses.replace(profile.beyond, family=("smoke-small",),
                                                                 size="smoke-small"))


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Instant runners; the dev loss of a fine-tuning run is lowest at 3e-3."""
    return install_fake_runners(monkeypatch, tmp_path, lambda run: 1.0 + (math.log(run.lr) - math.log(3e-3)) ** 2)


def test_the_beyond_stage_alone_runs_chapter_09_and_nothing_of_the_grid(fake, tmp_path, smoke):
    profile, spec = smoke
    profile = dataclasses.replace(profile, beyond=dataclasses.replace(
        profile.beyond, finetune_seeds=(0, 1), lr_search=LRSearch(grid=(1e-3, 3e-3, 9e-3), factor=3.0)))
    out = scheduler.run(profile, tmp_path / "tables", stages=("beyond",), progress=False)
    tuned = R.isoflop_runs(profile, spec) + R.dynamic_runs(profile, spec)
    expected = {r.run_id for r in R.scaling_runs(profile, spec) + tuned}
    assert {r.run_id for r in fake if r.stage == "pretrain"} == expected
    finetunes = [r for r in fake if r.stage == "finetune"]
    assert {r.base.run_id for r in finetunes} == {r.run_id for r in tuned}  # none of the grid's models
    assert {r.task for r in finetunes} == {profile.beyond.task} and not any(r.keep_masks for r in finetunes)
    cells = out["lr_search"]
    assert len(cells) == len({(r.sparsity, r.variant) for r in tuned})
    assert all(c["chosen"] == 3e-3 and c["status"] == "interior" and c["variant"] for c in cells)
    finals = {(r.base.variant, r.base.sparsity, r.base.seed, r.seed) for r in finetunes if r.lr == 3e-3}
    first = R.beyond_plan(profile).first_seed
    assert finals == {(r.variant, r.sparsity, r.seed, f) for r in tuned
                      for f in ((0, 1) if r.seed == first else (0,))}
    evaluated = {r.run_id for r in fake if r.stage == "eval"}
    assert {r.run_id for r in finetunes if r.lr == 3e-3} <= evaluated
    assert not any(r.stage == "prune" for r in fake)


def test_a_rigl_pretraining_moves_its_masks_and_keeps_their_zero_counts(tmp_path, monkeypatch, smoke):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    profile, spec = smoke
    run = next(r for r in R.dynamic_runs(profile, spec) if r.variant == "rigl")
    result = runners.do_pretrain(run, torch.device("cpu"), progress=False)
    updates = dynamic.update_steps(run.dynamic, run.steps)
    assert updates and result["mask_updates"] == len(updates) == result["dense_gradient_passes"]
    assert result["variant"] == "rigl" and result["dynamic"] == run.dynamic.as_dict()
    static = flops.training_flops(run.model, result["tokens"], run.sparsity, seq_len=run.settings.seq_len)
    assert result["training_flops"] == pytest.approx(static + result["dense_gradient_flops"])
    assert result["dense_gradient_flops"] > 0 and math.isfinite(result["val_loss"])
    from spdf_lib.checkpoint import load_model
    from spdf_lib.model import GPT

    trained = load_model(results.run_dir(run) / "model.pt")
    torch.manual_seed(run.seed)
    initial = GPT(run.model)
    first = sparsity.sparsify(initial, sparsity.SparsitySpec(level=run.sparsity, seed=run.seed))
    moved = 0
    for name, mask in sparsity.masks(trained).items():
        assert int((mask == 0).sum()) == sparsity.n_masked(run.sparsity, mask.numel())
        weight = trained.get_submodule(name.rpartition(".")[0]).weight
        assert torch.all(weight[mask == 0] == 0)
        moved += int((mask.bool() != first[name].bool()).sum())
    assert moved > 0  # the topology changed during training
    kept = sum(int(m.sum()) for m in sparsity.masks(trained).values())
    assert result["mask_moved_fraction"] == pytest.approx(moved / 2 / kept)  # each move: one out, one in
    again = runners.do_pretrain(run, torch.device("cpu"), progress=False)
    assert again["key"] == result["key"]  # cached: not trained twice


def test_dynamic_sparsity_is_refused_data_parallel(smoke):
    from spdf_lib import distributed

    profile, spec = smoke
    run = R.dynamic_runs(profile, spec)[0]
    with pytest.raises(ValueError, match="not data-parallel"):
        distributed.pretrain(run, world=None)
