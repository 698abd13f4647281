"""Dynamic sparsity (RigL, SET): one behaviour per test, each able to fail."""

import copy
import math

import pytest
import torch

from spdf_lib import dynamic
from spdf_lib.dynamic import (DynamicSpec, drop_grow_indices, is_update_step, n_swapped, update_fraction,
                              update_masks_, update_steps)
from spdf_lib.model import GPT, GPTConfig
from spdf_lib.sparsity import SparsitySpec, mask_grads_, masks, n_masked, sparsify, sparsity_report
from spdf_lib.training import OptimConfig, make_optimizer

CFG = GPTConfig(n_layer=2, n_head=2, n_embd=24, d_ff=40, block_size=16, vocab_size=50)
LEVEL = 0.75
METHODS = ("rigl", "set")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Models this small run fastest on one thread, and the machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(seed: int = 0, level: float = LEVEL):
    torch.manual_seed(seed)
    model = GPT(CFG)
    sparsify(model, SparsitySpec(level=level, seed=seed))
    optimizer = make_optimizer(model, OptimConfig(lr=1e-2, total_steps=100, warmup_steps=0))
    return model, optimizer


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, CFG.vocab_size, (4, CFG.block_size), generator=g)
    return x, torch.roll(x, -1, dims=1)


def train_step(model, optimizer, step: int):
    """One step of the book's loop: backward, mask the gradients, clip, AdamW."""
    x, y = batch(step)
    _, loss = model(x, y)
    loss.backward()
    mask_grads_(model)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return (x, y), float(loss.detach())


def spec(method: str = "rigl", **kw) -> DynamicSpec:
    return DynamicSpec(**{"method": method, "interval": 3, "fraction": 0.3, "end_step": 30, "seed": 0, **kw})


def weight(model, name):
    return model.get_parameter(name)


# ------------------------------------------------------------------------------ the schedule

def test_update_fraction_decays_along_a_half_cosine_to_zero_at_end_step():
    s = spec(fraction=0.4, end_step=20)
    assert update_fraction(0, s) == pytest.approx(0.4)
    assert update_fraction(5, s) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert update_fraction(10, s) == pytest.approx(0.2)  # cos(pi / 2) = 0: half of alpha at T_end / 2
    assert update_fraction(19, s) == pytest.approx(0.2 * (1 + math.cos(math.pi * 19 / 20)))
    values = [update_fraction(t, s) for t in range(0, 20)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert [update_fraction(t, s) for t in (20, 21, 1000)] == [0.0, 0.0, 0.0]


def test_updates_happen_at_multiples_of_the_interval_below_end_step():
    s = spec(interval=4, end_step=14)
    assert [t for t in range(0, 40) if is_update_step(t, s)] == [4, 8, 12]
    assert update_steps(s, 40) == [4, 8, 12]
    assert update_steps(s, 9) == [4, 8]
    assert update_steps(spec(interval=4, end_step=16), 40) == [4, 8, 12]  # 16 is end_step: no update


# ------------------------------------------------------------------------------ one tensor

def test_n_swapped_is_the_floor_of_fraction_times_active_capped_by_inactive():
    assert n_swapped(0.3, 10, 30) == 3
    assert n_swapped(0.29, 100, 300) == 29
    assert n_swapped(0.9, 75, 25) == 25
    assert n_swapped(0.0, 75, 25) == 0


def test_drop_smallest_active_magnitudes_and_grow_largest_scores_among_the_previously_inactive():
    w = torch.tensor([0.0, -0.05, 0.9, 0.0, 0.01, -0.7, 0.0, 0.3])
    mask = torch.tensor([False, True, True, False, True, True, False, True])
    # the dropped entry 4 (|w| = 0.01) has the largest score: growing after the drop would revive it
    score = torch.tensor([0.2, 5.0, 9.0, 0.5, 10.0, 7.0, 0.1, 8.0])
    drop, grow = drop_grow_indices(w, mask, score, 2)
    assert sorted(drop.tolist()) == [1, 4]
    assert sorted(grow.tolist()) == [0, 3]
    assert not set(drop.tolist()) & set(grow.tolist())


def test_drop_grow_rejects_more_than_can_move_and_mismatched_shapes():
    mask = torch.tensor([True, False, False, False])
    with pytest.raises(ValueError, match="k must be"):
        drop_grow_indices(torch.ones(4), mask, torch.ones(4), 2)
    with pytest.raises(ValueError, match="shape"):
        drop_grow_indices(torch.ones(4), mask, torch.ones(5), 1)


# ------------------------------------------------------------------------------ one update of a model

def _updated(method: str):
    """A model after one training step, with garbage planted where an update must write zeros (its
    inactive weights and all its AdamW moments), then one update: (before, after, model, optimizer,
    planted moments, update)."""
    model, optimizer = make()
    xy, _ = train_step(model, optimizer, 0)
    before = masks(model)
    with torch.no_grad():
        for name, m in before.items():
            weight(model, name)[~m] = 7.0
            for key in ("exp_avg", "exp_avg_sq"):
                optimizer.state[weight(model, name)][key].fill_(1.0)
    s = spec(method)
    update = update_masks_(model, optimizer, s, s.interval, xy)
    return before, masks(model), model, optimizer, update


@pytest.mark.parametrize("method", METHODS)
def test_an_update_moves_exactly_k_weights_out_and_k_in_per_tensor(method):
    before, after, _, _, update = _updated(method)
    s = spec(method)
    assert update.step == s.interval and update.fraction == update_fraction(s.interval, s)
    for name, m in before.items():
        n_active = int(m.sum())
        k = n_swapped(update.fraction, n_active, m.numel() - n_active)
        assert k > 0
        dropped, grown = m & ~after[name], ~m & after[name]
        assert int(dropped.sum()) == int(grown.sum()) == k == update.swapped[name]
        assert int((~after[name]).sum()) == int((~m).sum()) == n_masked(LEVEL, m.numel())


@pytest.mark.parametrize("method", METHODS)
def test_grown_weights_start_at_exactly_zero(method):
    before, after, model, _, _ = _updated(method)
    for name, m in before.items():
        grown = ~m & after[name]
        assert torch.equal(weight(model, name)[grown], torch.zeros(int(grown.sum())))


@pytest.mark.parametrize("method", METHODS)
def test_dropped_weights_become_exactly_zero_and_masked(method):
    before, after, model, _, _ = _updated(method)
    for name, m in before.items():
        dropped = m & ~after[name]
        assert int(dropped.sum()) > 0
        assert torch.equal(weight(model, name)[dropped], torch.zeros(int(dropped.sum())))
        assert torch.equal(weight(model, name)[~after[name]], torch.zeros(int((~after[name]).sum())))
        buffer = model.get_submodule(name.rpartition(".")[0]).weight_mask
        assert torch.equal(buffer.bool(), after[name]) and not buffer[dropped].any()


@pytest.mark.parametrize("method", METHODS)
def test_optimizer_state_of_grown_and_dropped_weights_is_reset_and_kept_elsewhere(method):
    before, after, model, optimizer, _ = _updated(method)
    for name, m in before.items():
        state = optimizer.state[weight(model, name)]
        grown, kept = ~m & after[name], m & after[name]
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[key][grown], torch.zeros(int(grown.sum())))
            assert torch.equal(state[key][~after[name]], torch.zeros(int((~after[name]).sum())))
            assert torch.equal(state[key][kept], torch.ones(int(kept.sum())))  # untouched


def test_rigl_drops_smallest_magnitudes_and_grows_where_the_dense_gradient_is_largest():
    model, optimizer = make()
    xy, _ = train_step(model, optimizer, 0)
    before = masks(model)
    w_before = {n: weight(model, n).detach().clone() for n in before}
    _, loss = model(*xy)
    grads = dict(zip(before, torch.autograd.grad(loss, [weight(model, n) for n in before])))
    s = spec("rigl")
    update = update_masks_(model, optimizer, s, s.interval, xy)
    after = masks(model)
    for name, m in before.items():
        k = update.swapped[name]
        magnitude = w_before[name].abs().masked_fill(~m, float("inf")).flatten()
        gradient = grads[name].abs().masked_fill(m, float("-inf")).flatten()
        expect_drop = set(torch.topk(magnitude, k, largest=False).indices.tolist())
        expect_grow = set(torch.topk(gradient, k).indices.tolist())
        assert set(torch.nonzero((m & ~after[name]).flatten()).flatten().tolist()) == expect_drop
        assert set(torch.nonzero((~m & after[name]).flatten()).flatten().tolist()) == expect_grow


@pytest.mark.parametrize("method", METHODS)
def test_dense_gradient_passes_happen_only_on_update_steps(method):
    model, optimizer = make()
    forwards = []
    model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    s = spec(method)
    after_step = dynamic.hook(s)
    extra = {}
    for step in range(12):
        xy, _ = train_step(model, optimizer, step)
        n = len(forwards)
        update = after_step(model, optimizer, step + 1, xy)
        extra[step + 1] = len(forwards) - n
        assert (update is not None) == is_update_step(step + 1, s)
        assert all(p.grad is None for p in model.parameters())  # the pass leaves .grad alone
    expected = {t: int(method == "rigl" and is_update_step(t, s)) for t in extra}
    assert extra == expected
    assert sum(extra.values()) == (len(update_steps(s, 12)) if method == "rigl" else 0)


def test_no_update_and_nothing_computed_after_end_step_or_between_intervals():
    model, optimizer = make()
    xy, _ = train_step(model, optimizer, 0)
    before = masks(model)
    s = spec(interval=3, end_step=9)
    for step in (1, 2, 4, 9, 12):
        assert update_masks_(model, optimizer, s, step, xy) is None
    assert all(torch.equal(before[n], m) for n, m in masks(model).items())


def test_k_is_capped_by_the_inactive_positions_at_low_sparsity():
    model, optimizer = make(level=0.25)
    xy, _ = train_step(model, optimizer, 0)
    before = masks(model)
    update = update_masks_(model, optimizer, spec(fraction=0.9), 3, xy)
    for name, m in masks(model).items():
        assert update.swapped[name] == int((~before[name]).sum())
        assert int((~m).sum()) == n_masked(0.25, m.numel())


# ------------------------------------------------------------------------------ SET's randomness

def _set_run(seed: int):
    model, optimizer = make()
    s = spec("set", seed=seed)
    for step in range(9):
        xy, _ = train_step(model, optimizer, step)
        update_masks_(model, optimizer, s, step + 1, xy)
    return masks(model)


def test_set_with_a_fixed_seed_is_reproducible_and_the_seed_matters():
    a, b, c = _set_run(0), _set_run(0), _set_run(1)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_set_draw_depends_only_on_seed_and_step_not_on_the_global_rng():
    model, optimizer = make()
    xy, _ = train_step(model, optimizer, 0)
    twin = copy.deepcopy(model)
    twin_opt = make_optimizer(twin, OptimConfig(lr=1e-2, total_steps=100, warmup_steps=0))
    torch.manual_seed(123)
    update_masks_(model, optimizer, spec("set"), 3, xy)
    torch.manual_seed(456)
    state = torch.get_rng_state()
    update_masks_(twin, twin_opt, spec("set"), 3, None)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(m, masks(twin)[n]) for n, m in masks(model).items())


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kw,culprit", [
    ({"method": "magnitude"}, "method"),
    ({"method": "RigL"}, "method"),
    ({"interval": 0}, "interval"),
    ({"interval": -5}, "interval"),
    ({"interval": 2.5}, "interval"),
    ({"fraction": 0.0}, "fraction"),
    ({"fraction": 1.0}, "fraction"),
    ({"fraction": -0.1}, "fraction"),
    ({"fraction": 1.5}, "fraction"),
    ({"fraction": float("nan")}, "fraction"),
    ({"end_step": 0}, "end_step"),
    ({"end_step": -1}, "end_step"),
    ({"end_step": 3}, "end_step"),  # equal to the interval: no update would ever happen
    ({"seed": -1}, "seed"),
])
def test_bad_spec_names_the_parameter(kw, culprit):
    with pytest.raises(ValueError, match=f"DynamicSpec.{culprit}"):
        spec(**kw)


def test_spec_round_trips_through_a_dict():
    s = spec("set", seed=4)
    assert DynamicSpec.from_dict(s.as_dict()) == s


def test_update_refuses_a_dense_model_and_rigl_without_a_batch():
    torch.manual_seed(0)
    dense = GPT(CFG)
    with pytest.raises(ValueError, match="no sparsity masks"):
        update_masks_(dense, torch.optim.AdamW(dense.parameters()), spec(), 3, batch(0))
    model, optimizer = make()
    with pytest.raises(ValueError, match="batch"):
        update_masks_(model, optimizer, spec("rigl"), 3, None)
    with pytest.raises(ValueError, match="optimizer does not hold"):
        update_masks_(model, torch.optim.AdamW(GPT(CFG).parameters()), spec(), 3, batch(0))


# ------------------------------------------------------------------------------ a short training run

def test_a_tiny_model_trained_with_rigl_keeps_its_sparsity_exactly():
    model, optimizer = make()
    s = DynamicSpec(method="rigl", interval=4, fraction=0.3, end_step=36)
    initial = masks(model)
    updates, losses = [], []
    for step in range(48):
        xy, loss = train_step(model, optimizer, step)
        losses.append(loss)
        update = update_masks_(model, optimizer, s, step + 1, xy)
        if update is not None:
            updates.append(update.step)
        for name, m in masks(model).items():
            assert int((~m).sum()) == n_masked(LEVEL, m.numel())
            assert not weight(model, name).detach()[~m].any()
    assert updates == update_steps(s, 48)
    assert any(not torch.equal(initial[n], m) for n, m in masks(model).items())  # the topology moved
    report = sparsity_report(model)
    tensors = report[report["kind"] == "tensor"]
    assert (tensors["zeros"] == tensors["target_zeros"]).all() and (tensors["masked"] == tensors["target_zeros"]).all()
    assert all(math.isfinite(v) for v in losses)
