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
# SPDF pre-trains a GPT whose large weight matrices are mostly zeros, then lets every weight learn
# again for fine-tuning. This chapter shows what that means in code:
#
# - what a **mask** is, and how the library draws one with an exact number of zeros;
# - which tensors of a GPT carry a mask, and why the others stay dense;
# - the **mask report**: target and actual sparsity per tensor and per group of tensors;
# - the **training step** that keeps masked weights at zero, in the library's own code;
# - what **densify** does before fine-tuning, and how the formerly masked weights then learn.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %%
import copy
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from spdf_lib import figures, store, training
from spdf_lib.checkpoint import load_model, save_model
from spdf_lib.flops import sparsifiable_weights
from spdf_lib.model import GPT, get_config, num_params
from spdf_lib.sparsity import (DEFAULT_PARAM_FILTER, SparsitySpec, densify, mask_grads_, masks, n_masked,
                               random_mask, resolve_filter, sparsify, sparsity_report)

TABLES = Path(tables_dir) / P.name
LEVEL = max(P.sparsity_levels)  # the highest pre-training sparsity of the profile

# %% [markdown]
# ## A mask
#
# Unstructured weight sparsity sets individual entries of a weight matrix to zero. The blog's
# Figure 1 draws it as a small network whose connections have been removed. A removed connection
# is a multiplication that hardware able to skip zeros never performs, in the forward pass and in
# both matrix products of the backward pass. Such work is counted in **FLOPs**, floating-point
# operations: one multiplication or one addition each, so a multiply-add is two. Chapter 02 fixes
# the counting convention. The drawing below removes connections at the profile's highest
# pre-training sparsity, with the rule the library applies to a whole model.

# %%
figures.network_figure([4, 6, 6, 3], levels=(0.0, LEVEL), seed=0);

# %% [markdown]
# Figure 1.1: A small fully connected network, dense (left) and at the profile's highest
# pre-training sparsity (right). Each line is a weight that is kept; the titles count them. Every
# layer keeps an exact number of weights, drawn by `random_mask` from one seeded generator.
#
# In code a mask is a boolean tensor with the shape of the weight, `True` where the weight is kept.
# The weight a layer uses is the element-wise product `weight * mask`. `random_mask` zeroes exactly
# `floor(level x numel)` entries, chosen by a random permutation from the generator it is given, so
# the same seed gives the same mask and the count never varies (a Bernoulli draw per entry would
# give a different count every time):

# %%
display(Markdown(figures.source_excerpt(random_mask, "")))

# %%
torch.manual_seed(0)
layer = torch.nn.Linear(6, 4, bias=False)
mask = random_mask(tuple(layer.weight.shape), LEVEL, torch.Generator().manual_seed(0))
with np.printoptions(precision=2, suppress=True):
    print("weight (4 x 6):\n", layer.weight.detach().numpy())
    print("mask (1 = kept):\n", mask.int().numpy())
    print("weight * mask:\n", (layer.weight * mask + 0.0).detach().numpy())  # + 0.0 prints -0.0 as 0.0
print(f"{int((~mask).sum())} of {mask.numel()} entries are zero: "
      f"floor({LEVEL} x {mask.numel()}) = {n_masked(LEVEL, mask.numel())}")

# %% [markdown]
# ## Which tensors are sparse
#
# The paper says which weights it sparsifies and which it leaves alone:
#
# > "We only sparsify weights in projection layers (QKV projections, output attention projections)
# > and feed forward network layers and do not sparsify other variables such as embeddings or
# > biases."
# >
# > — [SPDF blog, November 2022](#bib-spdf-blog-first) (the same sentence in the March 2023 update)
#
# In our GPT these are the fused QKV matrix `attn.c_attn`, the attention output `attn.c_proj` and
# the two FFN matrices `mlp.c_fc` and `mlp.c_proj` of every block. The library declares them as
# data, with glob patterns over parameter names (the form of the Cerebras configurations the SPDF
# runs used), and resolves the patterns once into an explicit list:

# %%
size = P.sizes[-1]  # the larger model of this profile
config = get_config(size, vocab_size=P.vocab_size)
print(f"model preset {size!r}: {config}")
print("param_filter:", *DEFAULT_PARAM_FILTER, sep="\n    ")
torch.manual_seed(0)
model = GPT(config)
selected = resolve_filter(model)
print(f"resolves to {len(selected)} tensors:")
for name in selected:
    print("   ", name, tuple(model.get_parameter(name).shape))

# %% [markdown]
# Every other parameter stays dense; the table gives each one's reason. The token embedding is a
# look-up, not a matrix product, so a zero in it saves no multiplication. The LM head is the same
# matrix as the token embedding (the weights are tied). Biases and LayerNorm gains are vectors:
# they hold few parameters and almost no FLOPs.

# %%
params = figures.parameter_table(model, selected)
display(figures.show_table(params, {"entries": "{:,}"}))
sparse_share = params[params.role == "sparsified"].entries.sum() / params.entries.sum()
xl = get_config("gpt3-xl")
display(Markdown(f"The sparsified tensors hold {sparse_share:.1%} of the parameters of `{size}`, against "
                 f"{sparsifiable_weights(xl) / num_params(xl):.1%} in GPT-3 XL: in a small model the "
                 "embeddings take a larger share. Chapter 02 turns these counts into FLOPs."))

# %% [markdown]
# A filter that reaches a tensor SPDF keeps dense is an error, and so is a pattern that matches
# nothing. The message names the tensor or the pattern:

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
# `sparsify` applies a `SparsitySpec` (level, initialisation method, filter, seed) to a model: one
# generator seeded by the spec draws the masks of the selected tensors in model order, and the
# weights are multiplied by them. The mask is kept beside its weight as a buffer called
# `weight_mask` on the `nn.Linear`, so it is saved in the `state_dict`, copied by `deepcopy` and
# moved by `model.to(device)` together with the weight. The report compares the target with what
# the model holds: `masked` counts the mask's zeros, `zeros` the weight entries that are exactly
# zero, and `actual` is `zeros / numel`. SPDF's mask is *static*: drawn once, at initialisation, and
# never changed; dynamic sparse training such as RigL ([Evci et al. 2020](#bib-rigl)) moves the
# zeros during training instead.

# %%
spec = SparsitySpec(level=LEVEL, seed=0)
print(spec)
mask_dict = sparsify(model, spec)
report = sparsity_report(model)
shown = figures.grouped_columns(report, {"sparsity": ["target", "actual"],
                                         "zero entries": ["target_zeros", "masked", "zeros"]})
display(figures.show_table(shown, {("", "numel"): "{:,}", ("sparsity", "target"): "{:.0%}",
                                   ("sparsity", "actual"): "{:.4%}"}
                           | {c: "{:,}" for c in shown.columns if c[0] == "zero entries"}))

# %%
groups = report[report.kind == "group"].set_index("name")
assert (report.masked == report.target_zeros).all()
display(Markdown(
    f"All {len(mask_dict)} masks have exactly their target count of zeros: {groups.loc['all', 'masked']:,} of "
    f"{groups.loc['all', 'numel']:,} weights, an actual sparsity of {groups.loc['all', 'actual']:.4%} against a "
    f"target of {spec.level:.0%}."))

# %% tags=["hide-input"]
store.atomic_write_text(TABLES / "01_mask_report.csv", report.to_csv(index=False))

# %% [markdown]
# A checkpoint written by `save_model` stores the spec and the masks as booleans beside the weights.
# `load_model` rebuilds the same sparse model from the file alone, and it refuses a sparse
# checkpoint that has lost its masks.

# %%
print([k for k in model.state_dict() if k.endswith("weight_mask")][:4], "...")
with tempfile.TemporaryDirectory() as tmp:
    loaded = load_model(save_model(Path(tmp) / "sparse.pt", model))
same = all(torch.equal(masks(loaded)[n], m) for n, m in mask_dict.items())
print(f"reloaded: spec {loaded.sparsity_spec == model.sparsity_spec}, masks identical {same}")

# %% [markdown]
# ## The training step keeps masked weights at zero
#
# During pre-training the masked weights must stay at zero. This is the step of the one training
# loop of the library (`spdf_lib.training.train`), which pre-training (chapter 04) and fine-tuning
# (chapter 05) both use, as it stands in the code:

# %%
display(Markdown(figures.source_excerpt(training.train, "for step in range(start, optim.total_steps):",
                                        "optimizer.zero_grad(set_to_none=True)")))

# %% [markdown]
# The mask upkeep is the one line after `loss.backward()`: `mask_grads_` multiplies the gradient of
# every masked weight by its mask, so masked entries get a zero gradient before gradient clipping
# and the optimizer see them. AdamW then leaves those entries at zero by itself: a zero gradient
# keeps both moment estimates at zero, so the update is zero, and decoupled weight decay multiplies
# a weight that is zero. `mask_weights_` multiplies the weights themselves by their masks; the loop
# calls it only at checkpoints and at the end, as a guard against anything else writing to them.
# Both are one fused multiply over all masked tensors:

# %%
display(Markdown(figures.source_excerpt(mask_grads_, "")))

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
before = sparsity_report(model).set_index("name").loc["all"]
densify(model)
after_logits, _ = model(x)
after = sparsity_report(model).set_index("name").loc["all"]
display(figures.show_table(pd.DataFrame({
    "": ["masks attached", "sparsity spec", "masked entries (all groups)", "zero weights (all groups)",
         "largest change of a logit"],
    "before densify": [len(mask_dict), f"level {spec.level}", f"{before.masked:,}", f"{before.zeros:,}", "-"],
    "after densify": [len(masks(model)), str(model.sparsity_spec), f"{after.masked:,}", f"{after.zeros:,}",
                      f"{(after_logits - before_logits).abs().max().item():.1e}"],
})))

# %% [markdown]
# ## Masks kept, masks removed: the same training, side by side
#
# Two copies of the profile's smaller model start from the same weights and the same masks. One
# keeps its masks and trains with `training.train`, the loop shown above, as in sparse pre-training.
# The other is densified first, as before fine-tuning: nothing zeroes its gradients any more, which is
# also what a training loop without mask upkeep would do. Both take the same AdamW steps, with
# weight decay, on the same batches of random tokens. The table counts the entries the masks had
# zeroed that are no longer zero, and compares their size with that of the kept entries.

# %%
small = get_config(P.sizes[0], vocab_size=min(P.vocab_size, 512))
torch.manual_seed(0)
kept_model = GPT(small)
start_masks = sparsify(kept_model, SparsitySpec(level=LEVEL, seed=0))
dense_model = densify(copy.deepcopy(kept_model))
STEPS = 20
tokens = torch.randint(0, small.vocab_size, (STEPS, 8, 33), generator=torch.Generator().manual_seed(0))
batches = [(t[:, :-1], t[:, 1:]) for t in tokens]
optim = training.OptimConfig(lr=1e-3, total_steps=STEPS, warmup_steps=1, weight_decay=0.1)
for net in (kept_model, dense_model):
    training.train(net, batch_at=batches.__getitem__, optim=optim, device=torch.device("cpu"), progress=False)
upkeep = figures.upkeep_table({"masks kept (sparse pre-training)": kept_model,
                               "densified (dense fine-tuning)": dense_model}, start_masks)
display(figures.show_table(upkeep, {"masked entries": "{:,}", "of them nonzero": "{:,}", "share nonzero": "{:.1%}",
                                    "RMS masked / RMS kept": "{:.3f}"}))
kept_row, dense_row = upkeep.iloc[0], upkeep.iloc[1]
display(Markdown(f"After {STEPS} AdamW steps, {kept_row['of them nonzero']:,} of the {kept_row['masked entries']:,} "
                 f"masked weights of the model that kept its masks are nonzero; in the densified model "
                 f"{dense_row['of them nonzero']:,} ({dense_row['share nonzero']:.1%}) are. Chapter 05 fine-tunes this way."))

# %% [markdown]
# ## Summary
#
# - A mask is a boolean tensor beside its weight; `random_mask` zeroes an exact count of entries,
#   drawn from a seeded generator, so every tensor has the same sparsity and a run is repeatable.
# - SPDF masks the four weight matrices of every block (QKV, attention output, the two FFN
#   matrices); embeddings, the tied LM head, biases and LayerNorms stay dense, and the filter
#   refuses them.
# - The mask report shows, per tensor and per group, that the model holds exactly the zeros its
#   spec asks for; checkpoints keep the masks.
# - In the training step, `mask_grads_` after `backward` is all it takes: with a zero gradient AdamW
#   never moves a masked weight.
# - `densify` removes the masks without changing the model's function; the formerly masked weights
#   then start at zero and learn.
#
# ## Exercises
#
# Run the chapter at the smoke profile (chapter 00 says how) or open it in Jupyter and set
# `profile = "smoke"` in its first cell; each exercise takes seconds.
#
# **Exercise 1.1.** Set `LEVEL` to another value in the imports cell, say a half or nine tenths, and
# re-run the mask report. Before reading it, predict `target_zeros` of the first QKV matrix from its
# shape with the rule `floor(level x numel)`.
#
# **Exercise 1.2.** Draw `random_mask((4, 6), LEVEL, torch.Generator().manual_seed(seed))` for a few
# seeds: the positions of the zeros change, their count does not. Then count the zeros of Bernoulli
# masks `torch.rand(4, 6) >= LEVEL` for the same number of draws, and see the count vary.
#
# **Exercise 1.3.** Take one step by hand on a freshly sparsified model: `loss.backward()`,
# `mask_grads_(model)`, then `optimizer.step()` with `training.make_optimizer`. Count the masked
# entries that are nonzero, without calling `mask_weights_`. Repeat without `mask_grads_`.
