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
# # 05 Dense fine-tuning
#
# SPDF's second phase removes the mask: every pre-trained model of chapter 04 is fine-tuned with all
# its weights trainable, the formerly zero ones starting at zero. This chapter fine-tunes each model
# on the three data-to-text tasks and the summarization stand-in, picks the learning rate on the
# validation split, repeats the chosen setting over several seeds, and runs a control that keeps
# the masks during fine-tuning.

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
# ## Set-up
#
# The paper follows the natural-language-generation set-up of LoRA: each example is the linearised
# input, a separator, the target text and an end-of-text token, and the loss covers only the target
# (chapter 03). We keep that format and scale the budgets down; the table lists what this profile
# uses. Fine-tuning uses AdamW (betas 0.9 and 0.999) with weight decay, a linear warm-up and a cosine
# decay to zero. The learning rate is chosen per pre-trained model and task from a small grid, by the
# loss on a fixed slice of the validation split with seed 0; the other seeds then reuse that rate.
# The spread reported in chapter 06 is over fine-tuning seeds: each (size, sparsity) is pre-trained
# once.

# %%
settings = report.finetune_settings(P)
settings

# %% [markdown]
# ## Learning-rate grid

# %%
out = experiments.run_all(P, TABLES, stages=("pretrain", "finetune"))
runs = report.finetune_frame(out["finetune"].values())
report.write_table(runs, TABLES, P.name, "finetune_runs")
grid = report.lr_grid_table(runs, P)
grid

# %%
display(Markdown(report.grid_edge_note(grid, P)))

# %% [markdown]
# ## Fine-tuning curves
#
# Training loss of the chosen runs (seed 0) of the large model, one line per pre-training sparsity.
# Sparse pre-trained models start from a higher loss; how much of that gap dense fine-tuning closes
# is the question of chapter 06.

# %%
report.finetune_curves(out["finetune"].values(), P.sizes[-1], P.task_names, grid);

# %% [markdown]
# ## What densifying buys: the masks-kept control
#
# At the highest pre-training sparsity, the same model is also fine-tuned with its masks kept, at
# the same learning rate. The validation loss of the two modes, averaged over seeds:

# %%
control = report.control_table(runs)
control

# %%
display(Markdown(report.control_findings(control)))
