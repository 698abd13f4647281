# ---
# jupyter:
#   jupytext:
#    text_representation:
#      extension: .py
#      format_name: percent
#   kernelspec:
#    display_name: Python 3
#    language: python
#    name: python3
# ---

# %% [markdown]
# # 04 Sparse pre-training
#
# SPDF's first phase trains a GPT from scratch with a static random mask on every attention and
# feed-forward weight. This chapter pre-trains two model sizes, each dense and at the profile's
# sparsity levels, several times with different seeds, on the pre-training mixture of chapter 03,
# and compares how well they model held-out text.
#
# **What this chapter shows**: the runs and their token budgets; the training step with its mask
# upkeep; the loss curves; the validation perplexity of every (size, sparsity) with its spread over
# pre-training seeds; and what the sparsity saves in FLOPs but not in time on a GPU.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %% tags=["remove-input"]
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import env, report, runs, scheduler
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %% [markdown]
# ## The runs
#
# The two sizes keep the shape relation of the paper's pair (GPT-2 Small and GPT-3 XL): the large
# model has twice the layers and a wider residual stream. Each run's token budget follows the
# Chinchilla rule the paper uses, about twenty tokens per parameter (embeddings included), unless the
# profile caps it to fit a laptop. The mask is drawn once, before the first step, with the same
# level in every sparsified tensor (chapter 01), and is never changed. Every (size, sparsity) is
# pre-trained once per pre-training seed; the seed sets the initial weights, the mask and the order
# of the training sequences, so the runs of one cell differ in all three.

# %%
planned = runs.pretraining_runs(P)
report.show(report.pretrain_plan(planned), digits=2)

# %% [markdown]
# ## The training step
#
# One loop trains every model of the book; chapter 01 shows it whole. Its inner step is where the
# mask lives: after the backward pass the gradients of masked weights are multiplied by their mask,
# so AdamW never moves them (a zero gradient keeps both moment estimates at zero, and decoupled
# weight decay of a zero weight is zero). These are the lines that run, read from the library:

# %%
from spdf_lib import figures, training

display(Markdown(figures.source_excerpt(training.train, "loss.backward()", "optimizer.step()")))

# %% [markdown]
# The optimiser is AdamW with a short linear warm-up and a cosine decay to a tenth of the peak rate
# (the settings are in the profile table of chapter 00). The schedule is a pure function of the
# step, so an interrupted run resumes exactly where it stopped.

# %%
report.lr_schedule_figure(planned);

# %% [markdown]
# Figure 4.1: The learning rate (dimensionless) of every optimizer step of pre-training, one line
# per model size (all runs of a size share it): a linear warm-up, then a cosine decay to a tenth of
# the peak.
#
# ## Training
#
# Every run is cached under a hash of its configuration, the library version and the data; on a
# GPU several runs share the device. For the `gpu` profile the results committed under
# `tables/gpu/runs/` are reused, so a laptop can render the published numbers without recomputing
# them. The table lists every run, including chapter 08's baseline (a static random mask at the
# sparsity iterative pruning reaches): validation loss (nats per token) and perplexity, passes over
# the corpus, training FLOPs, and `wall s`, the seconds of every resumed segment of the run summed.

# %%
out = scheduler.run(P, TABLES, stages=("pretrain",))
results = out["pretrain"]
summary = report.pretrain_summary(results.values())
report.write_table(summary, TABLES, P.name, "pretrain_runs")
display(Markdown(env.provenance(results.values(), TABLES, P.name)))
report.show(summary, digits=3)

# %%
report.loss_curves(results.values(), P.sizes);

# %% [markdown]
# Figure 4.2: Pre-training loss (cross-entropy, nats per token) against training tokens (millions),
# one panel per size. Lines with markers: validation loss on the held-out split, one line per
# pre-training seed, one colour per sparsity; faint lines: training loss of the first seed. Chapter
# 08's baseline is not drawn.
#
# ## What sparsity costs in pre-training
#
# The validation perplexity is $\exp$ of the mean cross-entropy per token on the held-out split of
# the mixture, measured on the same sequences for every run (lower is better). The table gives, per
# (size, sparsity), the mean over pre-training seeds, its sample standard deviation, the $95\%$ Student
# t interval of the mean, and the change against dense with its Welch interval.

# %%
cells = report.pretrain_cells(summary, P.sparsity_levels, P.sizes)
report.write_table(cells, TABLES, P.name, "pretrain_cells")
report.show(cells, digits=2)

# %%
display(Markdown(report.pretrain_findings(summary, cells, P.sizes)))

# %% [markdown]
# ## Summary
#
# This chapter pre-trained every (size, sparsity) cell with several seeds and measured what static
# random sparsity costs in validation perplexity, with an interval that includes the spread between
# seeds; the list above says in how many cells that cost lies beyond the spread. The FLOP saving is
# exact in the counting of chapter 02; whether it becomes time depends on the hardware: the
# benchmark quoted above times masked and dense steps on a GPU whose dense kernels multiply the
# zeros too (chapter 07). Whether the perplexity gap survives dense fine-tuning is the question of
# chapters 05 and 06.
#
# ## Exercises
#
# Run the chapter at the smoke profile (`make book PROFILE=smoke CHAPTER=04`, or open it in Jupyter
# and set `profile = "smoke"` in its parameters cell); each exercise takes seconds.
#
# **Exercise 4.1.** Compare the smoke profile's cells table with the one above: which statements of
# the list above still hold for a model this tiny, and which intervals are now too wide to say?
#
# **Exercise 4.2.** Before looking, predict the ratio of training FLOPs between the dense and the most
# sparse run of each size from the formula of chapter 02 (which weights are sparsified, and which
# are not); then check it against the `training PFLOP` column. Which size has the ratio closer to
# one, and why?
#
# **Exercise 4.3.** Compare the two sizes by the change in validation loss (the `val loss` column,
# nats per token) instead of perplexity. Why is a ratio of perplexities the exponential of a
# difference of losses, and does the order of the sizes change when you read losses?
