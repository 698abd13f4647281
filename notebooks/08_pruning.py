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
# # 08 Beyond the paper: iterative pruning for inference
#
# SPDF makes *training* cheaper; the sparsity it uses is gone after dense fine-tuning. A second
# Cerebras text (source `001`) describes the opposite use of sparsity: start from a dense model and
# remove weights to make *inference* cheaper:
#
# > "The iterative pruning process removes the lowest magnitude weights incrementally and retrains
# > the model to accuracy on each iteration [...] The result is a sparse model with 84% sparsity, 3x
# > fewer inference FLOPs, 4.3x fewer parameters in memory, and no loss in accuracy."
# > (Cerebras blog, source `001_dd0400cd47305eae.txt`; its illustration removes 20% per iteration)
#
# This chapter repeats the recipe on the
# dense large model of chapter 04 and sets it against three baselines at the same final sparsity.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import experiments, pruning, report
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %% [markdown]
# ## The schedule
#
# Each iteration removes 20% of the weights that are still present in the four sparsifiable
# matrices of every block, exactly `floor(0.2 x remaining)` per tensor, so after `k` iterations about
# `1 - 0.8^k` of them are gone: 8 iterations reach about 83%. The schedule below is computed from the
# tensor shapes alone, before any training.

# %%
runs = experiments.pretraining_runs(P)
dense_large = experiments.dense_large_run(P, runs)
schedule = pruning.sparsity_schedule(dense_large.model, P.pruning)
display(Markdown(f"Target sparsity after each iteration: "
                 + ", ".join(f"{s:.2%}" for s in schedule[1:])
                 + f". Between two pruning steps the model retrains on {P.pruning.retrain_tokens:,} tokens of "
                 f"the pre-training mixture with its masks held (AdamW, a tenth of the pre-training learning rate)."))

# %% [markdown]
# ## Pruning the dense large model

# %%
out = experiments.run_all(P, TABLES, stages=("pretrain", "prune"))
prune_results = {r["method"]: r for r in out.get("prune", {}).values()}
static = out["pretrain"].get(experiments.random_static_run(P, runs).run_id)
iterations = pruning.iterations_frame(prune_results["iterative"])
report.write_table(iterations, TABLES, P.name, "pruning_iterations")
iterations

# %%
pruning.pruning_figure(iterations, P.pruning, dense_large.model);

# %% [markdown]
# ## Against the baselines
#
# All four sparse models have the same sparsity in the same tensors. The one-shot baselines use the
# magnitudes of the dense model once; the retrained one then gets the whole token budget the
# iterative method spent. The last row is SPDF's own kind of model: a static random mask at that
# sparsity, pre-trained from scratch on the full pre-training budget (chapter 04's recipe).

# %%
baselines = pruning.baselines_frame(prune_results, static)
report.write_table(baselines, TABLES, P.name, "pruning_baselines")
baselines

# %%
display(Markdown(pruning.findings(iterations, baselines)))

# %% [markdown]
# ## The full-scale arithmetic
#
# What 84% sparsity in the four sparsifiable matrices means for GPT-3 XL under the FLOP convention of
# chapter 02 (embeddings, LM head and attention scores stay dense), next to the published figures:

# %%
pruning.full_scale_arithmetic(0.84)
