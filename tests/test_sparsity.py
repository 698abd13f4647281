"""Masks, in the manner of PyTorch's pruning tests: one behaviour per test."""

import copy
import io
import pickle

import pytest
import torch

from spdf_lib.model import GPT, GPTConfig
from spdf_lib.sparsity import (SparsitySpec, apply_masks, densify, magnitude_prune_, mask_grads_, mask_weights_,
                               masks, n_masked, random_mask, random_masks, resolve_filter, sparsify, sparsity_after,
                               sparsity_report)

CFG = GPTConfig(n_layer=2, n_head=2, n_embd=24, d_ff=40, block_size=16, vocab_size=50)
SELECTED = [f"transformer.h.{i}.{m}.weight" for i in range(2)
            for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]


def make(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CFG)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, CFG.vocab_size, (4, CFG.block_size), generator=g)
    return x, torch.roll(x, -1, dims=1)


def train_steps(model, steps: int, lr: float = 1e-2, weight_decay: float = 0.1):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        _, loss = model(*batch(step))
        loss.backward()
        mask_grads_(model)
        opt.step()
        mask_weights_(model)
        opt.zero_grad(set_to_none=True)
    return opt


# ------------------------------------------------------------------------------ spec and filter

def test_default_filter_selects_exactly_the_spdf_weights():
    assert resolve_filter(make()) == SELECTED


@pytest.mark.parametrize("level", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        SparsitySpec(level=level)


@pytest.mark.parametrize("pattern,culprit", [
    ("transformer.wte.weight", "transformer.wte.weight"),
    ("transformer.wpe.weight", "transformer.wpe.weight"),
    ("lm_head.weight", "lm_head.weight"),
    ("transformer.h.*.attn.c_attn.bias", "transformer.h.0.attn.c_attn.bias"),
    ("transformer.h.*.ln_1.weight", "transformer.h.0.ln_1.weight"),
    ("transformer.ln_f.*", "transformer.ln_f.weight"),
    ("*", "transformer.wte.weight"),
])
def test_filter_refuses_dense_only_tensors(pattern, culprit):
    with pytest.raises(ValueError, match=culprit.replace(".", r"\.")):
        sparsify(make(), SparsitySpec(level=0.5, param_filter=(pattern,)))


def test_filter_matching_nothing():
    with pytest.raises(ValueError, match="c_atn"):
        sparsify(make(), SparsitySpec(level=0.5, param_filter=("transformer.h.*.attn.c_atn.weight",)))


# ------------------------------------------------------------------------------ masks

@pytest.mark.parametrize("level", [0.3, 0.5, 0.75, 0.9])
def test_exact_counts_and_weight_equals_orig_times_mask(level):
    model = make()
    orig = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = sparsify(model, SparsitySpec(level=level, seed=3))
    assert list(result) == SELECTED
    for name, mask in result.items():
        assert mask.dtype == torch.bool
        assert int((~mask).sum()) == n_masked(level, mask.numel())
        assert torch.equal(model.get_parameter(name), orig[name] * mask)
    for name, p in model.named_parameters():  # everything else untouched
        if name not in result:
            assert torch.equal(p, orig[name])
    assert n_masked(0.75, 1024) == 768 and n_masked(0.29, 100) == 29


def test_random_mask_is_exact_count():
    gen = torch.Generator().manual_seed(6)
    for s in (0.0, 0.29, 0.5, 0.75, 1.0):
        assert int(random_mask((37, 41), s, gen).sum()) == 37 * 41 - n_masked(s, 37 * 41)


def test_random_masks_from_the_same_generator_state_are_nested_across_levels():
    levels = (0.0, 0.3, 0.6, 0.9)
    drawn = [random_mask((13, 17), s, torch.Generator().manual_seed(2)) for s in levels]
    for looser, tighter in zip(drawn, drawn[1:]):
        assert not (tighter & ~looser).any()  # what a higher level keeps, every lower level keeps
    assert drawn[0].all() and drawn[0].dtype == torch.bool and drawn[0].shape == (13, 17)


def test_model_masks_are_the_random_mask_of_each_tensor_in_model_order():
    model, spec = make(), SparsitySpec(level=0.75, seed=3)
    gen = torch.Generator().manual_seed(spec.seed)
    expected = {n: random_mask(model.get_parameter(n).shape, spec.level, gen) for n in SELECTED}
    got = random_masks(model, spec)
    assert list(got) == SELECTED and all(torch.equal(got[n], expected[n]) for n in SELECTED)


@pytest.mark.parametrize("level, generator, match", [
    (1.5, torch.Generator(), "level must be in"),
    (-0.1, torch.Generator(), "level must be in"),
    (True, torch.Generator(), "level must be in"),
    (0.5, 0, "torch.Generator"),
])
def test_random_mask_rejects_a_bad_level_or_generator(level, generator, match):
    with pytest.raises(ValueError, match=match):
        random_mask((4, 4), level, generator)


def test_masks_are_seeded_and_leave_global_rng_alone():
    model = make()
    before = torch.get_rng_state()
    a = sparsify(model, SparsitySpec(level=0.5, seed=7))
    assert torch.equal(before, torch.get_rng_state())
    b = sparsify(make(1), SparsitySpec(level=0.5, seed=7))
    c = sparsify(make(), SparsitySpec(level=0.5, seed=8))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_mask_buffers_in_state_dict_and_parameters_kept():
    model = make()
    params_before = {n: id(p) for n, p in model.named_parameters()}
    sparsify(model, SparsitySpec(level=0.5))
    assert {n: id(p) for n, p in model.named_parameters()} == params_before  # same Parameter objects
    assert "transformer.h.0.attn.c_attn.weight_mask" in model.state_dict()
    assert set(masks(model)) == set(SELECTED)


def test_masked_gradients_are_zero():
    model = make()
    m = sparsify(model, SparsitySpec(level=0.75))
    _, loss = model(*batch())
    loss.backward()
    mask_grads_(model)
    for name, mask in m.items():
        grad = model.get_parameter(name).grad
        assert torch.all(grad[~mask] == 0) and torch.any(grad[mask] != 0)


def test_all_ones_mask_changes_nothing():
    dense, masked = make(), make()
    apply_masks(masked, {n: torch.ones_like(masked.get_parameter(n), dtype=torch.bool) for n in SELECTED},
                SparsitySpec(level=0.0))
    train_steps(dense, 5)
    train_steps(masked, 5)
    for (n, a), (_, b) in zip(dense.named_parameters(), masked.named_parameters()):
        assert torch.equal(a, b), n


def test_sparsity_zero_is_bit_identical_to_dense():
    dense, zero = make(), make()
    assert sparsify(zero, SparsitySpec(level=0.0)) == {}
    assert masks(zero) == {} and zero.sparsity_spec.level == 0.0
    train_steps(dense, 5)
    train_steps(zero, 5)
    for (n, a), (_, b) in zip(dense.named_parameters(), zero.named_parameters()):
        assert torch.equal(a, b), n


def test_masked_entries_stay_zero_after_100_adamw_steps():
    model = make()
    m = sparsify(model, SparsitySpec(level=0.75))
    opt = train_steps(model, 100, lr=3e-3, weight_decay=0.1)
    for name, mask in m.items():
        p = model.get_parameter(name)
        assert torch.all(p[~mask] == 0)
        state = opt.state[p]
        assert torch.all(state["exp_avg"][~mask] == 0) and torch.all(state["exp_avg_sq"][~mask] == 0)
        assert int((p[mask] == 0).sum()) == 0  # the kept weights did train


def test_mask_upkeep_through_compile_wrapper_and_after_to():
    model = make()
    m = sparsify(model, SparsitySpec(level=0.5))
    wrapper = torch.nn.Module()
    wrapper._orig_mod = model  # what torch.compile's OptimizedModule exposes
    mask_weights_(model)  # fill the cache
    model.to(torch.float64)  # replaces the buffers: the cached lists must be rebuilt
    with torch.no_grad():
        for name in m:
            model.get_parameter(name).add_(1.0)
    mask_weights_(wrapper)
    for name, mask in m.items():
        p = model.get_parameter(name)
        assert p.dtype == torch.float64 and torch.all(p[~mask] == 0) and torch.all(p[mask] != 0)


def test_deepcopy_pickle_and_state_dict_keep_masks():
    model = make()
    m = sparsify(model, SparsitySpec(level=0.5, seed=4))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert set(masks(clone)) == set(m)
        assert all(torch.equal(masks(clone)[n], m[n]) for n in m)
        assert clone.sparsity_spec == model.sparsity_spec
        train_steps(clone, 3)
        assert all(torch.all(clone.get_parameter(n)[~m[n]] == 0) for n in m)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    fresh = make(9)
    sparsify(fresh, SparsitySpec(level=0.5, seed=99))  # different masks, same structure
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert all(torch.equal(masks(fresh)[n], m[n]) for n in m)
    with pytest.raises(RuntimeError, match="weight_mask"):
        make().load_state_dict(model.state_dict())  # a dense model refuses a sparse state_dict


def test_sparsify_twice_is_refused():
    model = make()
    sparsify(model, SparsitySpec(level=0.5))
    with pytest.raises(ValueError, match="densify"):
        sparsify(model, SparsitySpec(level=0.75))


# ------------------------------------------------------------------------------ densify

def test_densify_keeps_forward_and_lets_zeros_learn():
    model = make()
    m = sparsify(model, SparsitySpec(level=0.75))
    x, y = batch()
    before, _ = model(x)
    densify(model)
    after, _ = model(x)
    assert torch.equal(before, after)
    assert masks(model) == {} and model.sparsity_spec is None
    assert not any(k.endswith("weight_mask") for k in model.state_dict())
    for name, mask in m.items():  # formerly masked weights start at exactly zero
        assert torch.all(model.get_parameter(name)[~mask] == 0)
    _, loss = model(x, y)
    loss.backward()
    mask_grads_(model)  # a no-op now
    grad = model.get_parameter(SELECTED[0]).grad
    assert torch.any(grad[~m[SELECTED[0]]] != 0)
    train_steps(model, 3)
    assert torch.any(model.get_parameter(SELECTED[0])[~m[SELECTED[0]]] != 0)


# ------------------------------------------------------------------------------ pruning and report

@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_iterative_magnitude_pruning_masks_only_shrink(scope):
    model = make()
    previous = None
    for it in range(4):
        new = magnitude_prune_(model, 0.2, scope=scope)
        if previous is not None:
            for n in new:
                assert not torch.any(new[n] & ~previous[n])  # nothing comes back
        total = sum(m.numel() for m in new.values())
        kept = sum(int(m.sum()) for m in new.values())
        assert abs((1 - kept / total) - sparsity_after(it + 1, 0.2)) < 0.01
        previous = new
        train_steps(model, 2)
    assert model.sparsity_spec.init_method == "magnitude"


def test_magnitude_pruning_removes_smallest():
    model = make()
    new = magnitude_prune_(model, 0.5)
    for name, mask in new.items():
        assert int((~mask).sum()) == n_masked(0.5, mask.numel())
    model2 = make()
    before = {n: model2.get_parameter(n).detach().abs().clone() for n in SELECTED}
    new2 = magnitude_prune_(model2, 0.5)
    for n in SELECTED:
        assert before[n][~new2[n]].max() <= before[n][new2[n]].min()


def test_sparsity_report():
    model = make()
    sparsify(model, SparsitySpec(level=0.75))
    rep = sparsity_report(model)
    tensors = rep[rep.kind == "tensor"]
    assert list(tensors.name) == SELECTED
    assert (tensors.masked == tensors.target_zeros).all()
    assert (tensors.zeros >= tensors.masked).all()
    groups = rep[rep.kind == "group"].set_index("name")
    assert list(groups.index) == ["QKV", "attention output", "FFN", "all"]
    assert groups.loc["all", "numel"] == tensors.numel.sum()
    assert abs(groups.loc["all", "actual"] - 0.75) < 0.01
    dense = sparsity_report(make())
    assert (dense[dense.kind == "tensor"].masked == 0).all() and (dense.target == 0).all()
