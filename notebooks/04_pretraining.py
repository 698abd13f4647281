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
# # 04 Sparse pre-training
#
# SPDF's first phase trains a GPT from scratch with a static random mask on every attention and
# feed-forward weight. This chapter pre-trains two model sizes, each at 0%, 50% and 75% sparsity,
# on the pre-training mixture of chapter 03, and compares how well they model held-out text.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import experiments, report
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %% [markdown]
# ## The runs
#
# The two sizes keep the shape relation of the paper's pair (GPT-2 Small and GPT-3 XL): the large
# model has twice the layers and a wider residual stream. Each run's token budget follows the
# Chinchilla rule the paper uses, about 20 tokens per parameter (embeddings included), unless the
# profile caps it to fit a laptop. The mask is drawn once, before the first step, with the same
# level in every sparsified tensor (chapter 01), and is never changed.

# %%
runs = experiments.pretraining_runs(P)
plan = report.pretrain_plan(runs)
plan

# %%
small, large = (plan[plan.run.str.startswith(size)].iloc[0] for size in P.sizes)
display(Markdown(
    f"The large model has {large.non_embedding_params / small.non_embedding_params:.1f}x the non-embedding "
    f"parameters of the small one ({large.non_embedding_params:,} vs {small.non_embedding_params:,}); "
    f"the paper's pair differs by about 14x. At this profile each run sees "
    f"{plan.tokens_per_param.min():.1f} to {plan.tokens_per_param.max():.1f} tokens per parameter."))

# %% [markdown]
# The optimiser is AdamW (betas 0.9 and 0.95, weight decay 0.1, gradient clipping at 1.0) with a
# short linear warm-up and a cosine decay to a tenth of the peak rate. The schedule is a pure
# function of the step, so an interrupted run resumes exactly where it stopped.

# %%
from spdf_lib.training import OptimConfig

s = P.pretrain
example = OptimConfig(lr=s.lr, total_steps=runs[-1].steps, warmup_steps=max(1, int(s.warmup_frac * runs[-1].steps)),
                      min_lr_ratio=s.min_lr_ratio)
report.lr_schedule_figure(example);

# %% [markdown]
# ## Training
#
# Every run is cached under a hash of its configuration, the library version and the data; on a
# GPU several runs share the device (small models leave most of an H100 idle). For the `gpu`
# profile the results committed under `tables/gpu/runs/` are reused, so a laptop can render the
# published numbers without recomputing them.

# %%
results = experiments.run_all(P, TABLES, stages=("pretrain",))["pretrain"]
pre = report.pretrain_summary(results.values())
report.write_table(pre, TABLES, P.name, "pretrain_runs")
pre

# %%
report.loss_curves(results.values(), P.sizes);

# %% [markdown]
# ## What sparsity costs in pre-training
#
# The validation perplexity below is measured on the held-out split of the mixture, with the same
# sequences for every run.

# %%
display(Markdown(report.pretrain_findings(pre, P.sizes)))
