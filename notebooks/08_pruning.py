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
# Cerebras text ([Lie, November 2022](#bib-lie-sparsity)) describes the opposite use of sparsity:
# start from a dense model and remove weights to make *inference* cheaper.
#
# > "The iterative pruning process removes the lowest magnitude weights incrementally and retrains
# > the model to accuracy on each iteration [...] The result is a sparse model with 84% sparsity, 3x
# > fewer inference FLOPs, 4.3x fewer parameters in memory, and no loss in accuracy."
# >
# > — [Lie, November 2022](#bib-lie-sparsity); its illustration removes 20% per iteration
#
# The recipe is that of the lottery-ticket experiments ([Frankle and Carbin 2019](#bib-lottery-ticket)):
# prune the smallest weights, retrain, repeat. This chapter:
#
# - computes the pruning schedule from the tensor shapes alone;
# - prunes the dense large model of chapter 04 that way, retraining between steps;
# - sets it against three baselines at the same final sparsity: one-shot pruning with and without
#   retraining, and SPDF's static random mask pre-trained from scratch;
# - compares what pruning saves at this scale with the same arithmetic for GPT-3 XL, at the sparsity
#   this run reached and at the source's, and with the published figures.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import env, figures, pruning, report, scheduler
from spdf_lib import runs as R
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %% [markdown]
# ## The schedule
#
# Each iteration removes a fixed fraction $f$ of the weights still present in the four sparsifiable
# matrices of every block, exactly $\lfloor f \cdot r \rfloor$ of the $r$ remaining entries of each
# tensor, so after $k$ iterations about $1 - (1 - f)^k$ of them are gone. The profile sets $f$, the
# number of iterations and the retraining budget between two steps; the schedule is computed from
# the tensor shapes alone, before any training.

# %%
runs = R.pretraining_runs(P)
dense_large = R.dense_large_run(P, runs)
schedule = pruning.sparsity_schedule(dense_large.model, P.pruning)
lr_ratio = R.pruning_runs(P, runs)[0].lr_ratio
display(Markdown(
    f"{P.pruning.iterations} iterations of {P.pruning.fraction_per_iteration:.0%}; target sparsity after each: "
    + ", ".join(f"{s:.2%}" for s in schedule[1:])
    + f". Between two pruning steps the model retrains on {P.pruning.retrain_tokens:,} tokens of the pre-training "
    f"mixture with its masks held (AdamW at {lr_ratio:g} times the pre-training learning rate)."))

# %% [markdown]
# ## Pruning the dense large model

# %%
out = scheduler.run(P, TABLES, stages=("pretrain", "prune"))
prune_results = {r["method"]: r for r in out["prune"].values()}
static = out["pretrain"].get(R.random_static_run(P, runs).run_id)
iterations = pruning.iterations_frame(prune_results["iterative"])
report.write_table(iterations, TABLES, P.name, "pruning_iterations")
display(Markdown(env.provenance([*out["prune"].values(), static], TABLES, P.name)))
display(figures.pruning_iterations_table(iterations))

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
display(figures.show_table(baselines, {"sparsity": "{:.2%}", "val_ppl": "{:.2f}", "extra training tokens": "{:,}"})
        .set_caption("Validation perplexity of each sparse model against the dense one it started from. Each row is "
                     f"one run from pre-training seed {dense_large.seed}, so no row has an interval: a difference "
                     "between rows is one measurement, and chapter 04 gives the spread between pre-training seeds."))

# %%
figures.pruning_figure(iterations, baselines);

# %% [markdown]
# Figure 8.1: Left, what pruning saves, as dense over pruned (times) against the sparsity of the
# pruned matrices: measured on this chapter's model after every iteration (solid, with markers),
# computed for GPT-3 XL under chapter 02's convention (dashed), the bound for a model whose every
# weight could be pruned (dotted), and the source's published figures (stars). Right, validation
# perplexity of the pre-training mixture on a log axis: the iterative path, and each baseline at
# the final sparsity with its value. All values are single runs; there are no error bars.

# %%
display(Markdown(figures.pruning_findings(iterations, baselines, dense_large.model,
                                          P.pruning.retrain_tokens / dense_large.tokens)))

# %% [markdown]
# ## The full-scale arithmetic, like with like
#
# The run stops at the last sparsity of its schedule, not at the source's. The table sets this
# model's measured reductions beside those of GPT-3 XL computed at the *same* sparsity (the FLOP
# convention of chapter 02: embeddings, LM head and attention scores stay dense), and the same
# arithmetic at the source's sparsity beside the published figures.

# %%
display(figures.show_table(figures.full_scale_comparison(iterations)))

# %% [markdown]
# ## Summary
#
# - Iterative magnitude pruning follows a schedule that is a pure function of the tensor shapes;
#   the run reaches exactly the planned sparsity in every group of matrices.
# - At this scale and retraining budget, the figure and the findings above say how much validation
#   perplexity each method gives up at that sparsity, and which of the four sparse models keeps the
#   most quality.
# - What pruning saves depends on the share of the model that is never pruned: the arithmetic for
#   GPT-3 XL at the same sparsity shows how far a small model is from the published figures for
#   that reason alone.
#
# ## Exercises
#
# **Exercise 8.1.** Predict how many iterations of a quarter each it takes to pass the source's
# sparsity, then check, after `import dataclasses`, with `pruning.sparsity_schedule(dense_large.model,
# dataclasses.replace(P.pruning, fraction_per_iteration=0.25, iterations=10))`.
#
# **Exercise 8.2.** Predict the dense / pruned inference-FLOP ratio of GPT-2 Small at the sparsity this
# run reached, then compute it with `flops.inference_flops_per_token` from `spdf_lib.flops` and
# `get_config("gpt2-small")` from `spdf_lib.model`. Is it nearer this model's or GPT-3 XL's?
#
# **Exercise 8.3.** Prune a freshly initialised small model once with
# `sparsity.magnitude_prune_(model, P.pruning.fraction_per_iteration)` and read
# `sparsity.sparsity_report(model)`: every tensor loses exactly its share.
