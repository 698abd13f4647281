# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 Weight sparsity
#
# SPDF trains a GPT whose large weight matrices are mostly zeros, then lets every weight learn
# again for fine-tuning. This chapter shows what that means in code: what a mask is, which tensors
# carry one, how exactly the zeros are counted, how the masks survive an optimizer step and a
# checkpoint, and what "densify" does before fine-tuning.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %%
import dataclasses
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from spdf_lib import store
from spdf_lib.checkpoint import load_model, save_model
from spdf_lib.flops import sparsifiable_weights
from spdf_lib.model import GPT, PRESETS, num_params
from spdf_lib.sparsity import (DEFAULT_PARAM_FILTER, SparsitySpec, densify, mask_grads_, mask_weights_, masks,
                               n_masked, resolve_filter, sparsify, sparsity_report)

TABLES = Path(tables_dir) / P.name

# %% [markdown]
# ## A mask
#
# Unstructured weight sparsity sets individual entries of a weight matrix to zero. The paper's
# Figure 1 draws it as a small network whose connections have been removed. A removed connection
# is a multiplication that hardware able to skip zeros never performs, in the forward pass and in
# both matrix products of the backward pass. The drawing below removes 75% of the connections of
# each layer, with the same rule the library applies to the model: an exact count of zeros per
# layer, drawn from a seeded random permutation.

# %%
def draw_network(ax, widths, level, seed=0):
    """Nodes in columns, one line per nonzero weight; returns (kept, total) connections."""
    gen = torch.Generator().manual_seed(seed)
    xs = np.arange(len(widths))
    ys = [np.linspace(-(w - 1) / 2, (w - 1) / 2, w) for w in widths]
    kept = total = 0
    for layer, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mask = torch.ones(a * b, dtype=torch.bool)
        mask[torch.randperm(a * b, generator=gen)[:n_masked(level, a * b)]] = False
        for k in mask.nonzero().flatten().tolist():
            i, j = divmod(k, b)
            ax.plot([xs[layer], xs[layer + 1]], [ys[layer][i], ys[layer + 1][j]], color="tab:blue", lw=0.8)
        kept += int(mask.sum())
        total += a * b
    for x, y in zip(xs, ys):
        ax.scatter(np.full_like(y, x), y, s=140, color="white", edgecolors="black", zorder=3)
    ax.set_xticks(xs, ["input"] + [f"hidden {i}" for i in range(1, len(widths) - 1)] + ["output"])
    ax.set_yticks([])
    ax.set_xlabel("layer")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return kept, total


widths = [4, 6, 6, 3]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, level in zip(axes, (0.0, 0.75)):
    kept, total = draw_network(ax, widths, level)
    name = "dense" if level == 0 else f"{level:.0%} sparse"
    ax.set_title(f"{name}: {kept} of {total} connections")
fig.suptitle("A dense and a sparse network (after Figure 1 of the SPDF blog)")
fig.tight_layout()

# %% [markdown]
# In code a mask is a tensor of ones and zeros with the shape of the weight. The weight the layer
# uses is the element-wise product `weight * mask`. The library stores the weight already
# multiplied, and keeps the mask beside it as a buffer called `weight_mask` on the `nn.Linear`.
# A buffer is saved in the `state_dict`, copied by `deepcopy` and moved by `model.to(device)`
# together with the weight.

# %%
torch.manual_seed(0)
layer = torch.nn.Linear(6, 4, bias=False)
mask = torch.ones(24, dtype=torch.bool)
mask[torch.randperm(24, generator=torch.Generator().manual_seed(0))[:n_masked(0.75, 24)]] = False
mask = mask.view(4, 6)
with np.printoptions(precision=2, suppress=True):
    print("weight (4 x 6):\n", layer.weight.detach().numpy())
    print("mask (1 = kept):\n", mask.int().numpy())
    print("weight * mask:\n", (layer.weight * mask + 0.0).detach().numpy())  # + 0.0 prints -0.0 as 0.0
print(f"{int((~mask).sum())} of {mask.numel()} entries are zero: floor(0.75 x {mask.numel()}) = {n_masked(0.75, 24)}")

# %% [markdown]
# ## Which tensors are sparse
#
# The paper sparsifies "projection layers (QKV projections, output attention projections) and feed
# forward network layers" and leaves "other variables such as embeddings or biases" dense
# (quoted from `paper/000_7680f71302de7826.txt`). In our GPT these are the fused QKV matrix
# `attn.c_attn`, the attention output `attn.c_proj` and the two FFN matrices `mlp.c_fc` and
# `mlp.c_proj` of every block. The library declares them as data, with glob patterns over
# parameter names (the form of the Cerebras configurations the SPDF runs used):

# %%
size = P.sizes[-1]  # the larger model of this profile
config = dataclasses.replace(PRESETS[size], vocab_size=P.vocab_size)
print(f"model preset {size!r}: {config}")
print("param_filter:")
for pattern in DEFAULT_PARAM_FILTER:
    print("   ", pattern)
torch.manual_seed(0)
model = GPT(config)
selected = resolve_filter(model)
print(f"resolves to {len(selected)} tensors:")
for name in selected:
    print("   ", name, tuple(model.get_parameter(name).shape))

# %% [markdown]
# Every other parameter stays dense. The table lists them all with the reason. The token embedding
# is a look-up, not a matrix product, so a zero in it saves no multiplication. The LM head is the
# same matrix as the token embedding (the weights are tied). Biases and LayerNorm gains are
# vectors: they hold few parameters and almost no FLOPs.

# %%
def dense_reason(name: str) -> str:
    if name in selected:
        return "sparsified"
    if "wte" in name:
        return "dense: token embedding (and the tied LM head)"
    if "wpe" in name:
        return "dense: position embedding"
    if "ln_" in name:
        return "dense: LayerNorm"
    if name.endswith("bias"):
        return "dense: bias"
    return "dense"


params = pd.DataFrame([{"parameter": n, "shape": tuple(p.shape), "numel": p.numel(), "role": dense_reason(n)}
                       for n, p in model.named_parameters()])
params

# %%
share_here = params[params.role == "sparsified"].numel.sum() / params.numel.sum()
xl = PRESETS["gpt3-xl"]
share_xl = sparsifiable_weights(xl) / num_params(xl)
display(Markdown(
    f"The sparsified tensors hold {share_here:.1%} of the parameters of `{size}` "
    f"({params[params.role == 'sparsified'].numel.sum():,} of {params.numel.sum():,}). In GPT-3 XL they hold "
    f"{share_xl:.1%}: at full scale the embeddings are a small part of the model, while in our small models "
    f"the vocabulary takes a larger share. Chapter 02 turns these counts into FLOPs."))

# %% [markdown]
# A filter that reaches a tensor SPDF keeps dense is an error. The message names the tensor:

# %%
for bad in ("transformer.wte.weight", "transformer.h.*.attn.c_attn.bias", "transformer.h.*.ln_1.weight",
            "transformer.h.*.attn.c_atn.weight"):
    try:
        resolve_filter(model, (bad,))
    except ValueError as err:
        print(f"{bad!r}: ValueError: {err}")

# %% [markdown]
# ## The masks of a model
#
# `sparsify` draws one mask per selected tensor from a `torch.Generator` seeded by the spec. Each
# mask zeroes exactly `floor(level x numel)` entries, so every tensor has the same sparsity. The
# masks are not Bernoulli draws, whose counts would vary. The report compares the target with
# what the model holds: `masked` counts the mask's zeros, `zeros` the weight entries that are
# exactly zero.

# %%
spec = SparsitySpec(level=max(P.sparsity_levels), seed=0)
print(spec)
mask_dict = sparsify(model, spec)
report = sparsity_report(model)
report

# %%
groups = report[report.kind == "group"].set_index("name")
assert (report.masked == report.target_zeros).all()
display(Markdown(
    f"All {len(mask_dict)} masks have exactly their target count of zeros. Over the sparsified tensors, "
    f"{groups.loc['all', 'masked']:,} of {groups.loc['all', 'numel']:,} weights are masked, "
    f"an actual sparsity of {groups.loc['all', 'actual']:.4%} against a target of {spec.level:.0%}. Per group: "
    + ", ".join(f"{g} {groups.loc[g, 'actual']:.4%}" for g in ("QKV", "attention output", "FFN")) + "."))
store.atomic_write_text(TABLES / "01_mask_report.csv", report.to_csv(index=False))

# %% [markdown]
# The masks are part of the model's state: the `state_dict` has a `weight_mask` entry next to each
# sparse weight. A checkpoint written by `save_model` also stores the spec and the masks as
# booleans. `load_model` rebuilds the same sparse model from the file alone, and it refuses a
# sparse checkpoint that has lost its masks.

# %%
print([k for k in model.state_dict() if k.endswith("weight_mask")][:4], "...")
with tempfile.TemporaryDirectory() as tmp:
    path = save_model(Path(tmp) / "sparse.pt", model)
    loaded = load_model(path)
same = all(torch.equal(masks(loaded)[n], m) for n, m in mask_dict.items())
print(f"reloaded: spec {loaded.sparsity_spec == model.sparsity_spec}, masks identical {same}")

# %% [markdown]
# ## Masks hold during training
#
# During pre-training the masked weights must stay at zero. The training loop does two things
# each step. After `backward`, `mask_grads_` zeroes the gradients of masked entries. AdamW then
# leaves those entries at zero: a zero gradient keeps both moment estimates at zero, so the update
# is zero, and weight decay of a zero weight is zero. After the step, `mask_weights_` multiplies
# the weights by their masks once more, which guards against anything else writing to them. Both
# calls are a single fused multiply over all masked tensors.
#
# The experiment trains the smaller model for a few AdamW steps (weight decay 0.1) on random
# tokens, once with this upkeep and once without it. We count the masked entries that are no
# longer zero.

# %%
def masked_nonzero_trace(upkeep: bool, steps: int = 20, level: float = 0.75):
    cfg = dataclasses.replace(PRESETS[P.sizes[0]], vocab_size=min(P.vocab_size, 512))
    torch.manual_seed(0)
    net = GPT(cfg)
    m = sparsify(net, SparsitySpec(level=level, seed=0))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    trace = []
    for step in range(steps):
        x = torch.randint(0, cfg.vocab_size, (8, 32), generator=gen)
        _, loss = net(x, torch.roll(x, -1, dims=1))
        loss.backward()
        if upkeep:
            mask_grads_(net)
        opt.step()
        if upkeep:
            mask_weights_(net)
        opt.zero_grad(set_to_none=True)
        nonzero = sum(int((net.get_parameter(n).detach()[~k] != 0).sum()) for n, k in m.items())
        moments = sum(int((opt.state[net.get_parameter(n)]["exp_avg"][~k] != 0).sum()) for n, k in m.items())
        trace.append((step + 1, nonzero, moments))
    total = sum(int((~k).sum()) for k in m.values())
    return pd.DataFrame(trace, columns=["step", "masked_nonzero", "masked_nonzero_moments"]), total


with_upkeep, n_total = masked_nonzero_trace(True)
without_upkeep, _ = masked_nonzero_trace(False)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(without_upkeep.step, 100 * without_upkeep.masked_nonzero / n_total, label="no mask upkeep")
ax.plot(with_upkeep.step, 100 * with_upkeep.masked_nonzero / n_total, label="mask_grads_ + mask_weights_")
ax.set_xlabel("AdamW step")
ax.set_ylabel("masked entries that are nonzero (%)")
ax.set_title(f"Masked weights under AdamW with weight decay ({n_total:,} masked entries)")
ax.legend()
fig.tight_layout()

# %%
display(Markdown(
    f"With upkeep, after {int(with_upkeep.step.iloc[-1])} steps {int(with_upkeep.masked_nonzero.max())} masked "
    f"weights and {int(with_upkeep.masked_nonzero_moments.max())} of their first-moment entries are nonzero. "
    f"Without it, {int(without_upkeep.masked_nonzero.iloc[0]):,} of the {n_total:,} masked weights "
    f"({without_upkeep.masked_nonzero.iloc[0] / n_total:.1%}) are nonzero after the first step and "
    f"{int(without_upkeep.masked_nonzero.iloc[-1]):,} after the last: the model is no longer sparse."))

# %% [markdown]
# ## Densify: the switch to dense fine-tuning
#
# Before fine-tuning, SPDF makes the model dense. `densify` removes the masks and nothing else. The
# weights keep their values, so the previously masked entries start at exactly zero and the
# function the model computes does not change. From then on nothing zeroes their gradients, and
# they learn like every other weight.

# %%
x = torch.randint(0, config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
model.eval()
before_logits, _ = model(x)
before = sparsity_report(model)
densify(model)
after_logits, _ = model(x)
after = sparsity_report(model)
compare = pd.DataFrame({
    "": ["masks attached", "sparsity spec", "masked entries (all groups)", "zero weights (all groups)",
         "max |logit change|"],
    "before densify": [len(mask_dict), str(spec.level), int(before[before.name == "all"].masked.iloc[0]),
                       int(before[before.name == "all"].zeros.iloc[0]), "-"],
    "after densify": [len(masks(model)), str(model.sparsity_spec), int(after[after.name == "all"].masked.iloc[0]),
                      int(after[after.name == "all"].zeros.iloc[0]),
                      f"{(after_logits - before_logits).abs().max().item():.1e}"],
})
compare

# %%
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
for step in range(3):
    xb = torch.randint(0, config.vocab_size, (4, 32), generator=torch.Generator().manual_seed(10 + step))
    _, loss = model(xb, torch.roll(xb, -1, dims=1))
    loss.backward()
    mask_grads_(model)  # a no-op now: the model has no masks
    opt.step()
    opt.zero_grad(set_to_none=True)
revived = sum(int((model.get_parameter(n).detach()[~k] != 0).sum()) for n, k in mask_dict.items())
n_masked_total = sum(int((~k).sum()) for k in mask_dict.values())
display(Markdown(
    f"After 3 dense AdamW steps, {revived:,} of the {n_masked_total:,} formerly masked weights "
    f"({revived / n_masked_total:.1%}) are nonzero: densified weights learn from zero. Chapter 05 "
    "fine-tunes the pre-trained models this way."))
