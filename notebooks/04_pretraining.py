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
# One loop trains every model of the book. Its inner step is where the mask lives: after the
# backward pass the gradients of masked weights are multiplied by their mask, so AdamW never moves
# them (a zero gradient keeps both moment estimates at zero, and decoupled weight decay of a zero
# weight is zero). This is the code that runs, read from the library:

# %%
import inspect

from spdf_lib import sparsity, training

print(inspect.getsource(sparsity.mask_grads_))
step = inspect.getsource(training.train)
print(step[step.index("    for step in range(start"):step.index("        losses.add(loss)")])

# %% [markdown]
# The optimiser is AdamW with a short linear warm-up and a cosine decay to a tenth of the peak rate
# (the settings are in the profile table of chapter 00). The schedule is a pure function of the
# step, so an interrupted run resumes exactly where it stopped.

# %%
from spdf_lib.runners import pretrain_optim

report.lr_schedule_figure(pretrain_optim(planned[-1]));

# %% [markdown]
# Figure 4.1: The learning rate of every optimizer step of the last planned run: linear warm-up,
# then cosine decay.
#
# ## Training
#
# Every run is cached under a hash of its configuration, the library version and the data; on a
# GPU several runs share the device. For the `gpu` profile the results committed under
# `tables/gpu/runs/` are reused, so a laptop can render the published numbers without recomputing
# them. The table lists every run, including chapter 08's baseline (a static random mask at the
# sparsity iterative pruning reaches); `wall s` sums every resumed segment of a run.

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
# Figure 4.2: Pre-training loss against training tokens. Markers: validation loss of every run (one
# line per pre-training seed, one colour per sparsity); faint line: training loss of the first seed.
#
# ## What sparsity costs in pre-training
#
# The validation perplexity is $\exp$ of the mean cross-entropy per token on the held-out split of
# the mixture, measured on the same sequences for every run (lower is better). The table gives, per
# (size, sparsity), the mean over pre-training seeds, its sample standard deviation, the $95\%$ Student
# t interval of the mean, and the change against dense with its Welch interval.

# %%
cells = report.pretrain_cells(summary, P.sparsity_levels)
report.write_table(cells, TABLES, P.name, "pretrain_cells")
report.show(cells, digits=2)

# %%
display(Markdown(report.pretrain_findings(summary, cells, P.sizes)))

# %% [markdown]
# ## Summary
#
# Static random sparsity costs validation perplexity at both sizes, more at the higher level, and the
# seeds show how much of a difference is noise. The FLOP saving is real in the counting of chapter 02
# but invisible in wall time on a GPU, whose dense kernels multiply the zeros (chapter 07). Whether
# the perplexity gap survives dense fine-tuning is the question of chapters 05 and 06.
#
# ## Exercises
#
# - Run this chapter at the smoke profile (`make book PROFILE=smoke CHAPTER=04`) and compare its
#   table with the one above: which conclusions survive a model this tiny?
# - Before looking, predict the ratio of training FLOPs between the dense and the most sparse run
#   from the formula of chapter 02; then check it against the `training PFLOP` column.
# - Change `mask_grads_` in your copy to skip the multiply and re-run the smoke profile: what
#   happens to the sparsity that chapter 01's mask report shows after training?
