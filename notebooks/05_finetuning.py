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
# on the three data-to-text tasks and the summarization stand-in, searches the learning rate on the
# validation split until the best rate is not at an edge of what was tried, repeats the chosen
# setting over every pre-trained model and several fine-tuning seeds, and runs a control that keeps
# the masks during fine-tuning.
#
# **What this chapter shows**: the fine-tuning set-up; the learning-rate search of every cell with
# its validation-loss curve; fine-tuning curves; and what densifying buys over keeping the masks.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %% tags=["remove-input"]
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import env, report, scheduler
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %% [markdown]
# ## Set-up
#
# The paper follows the natural-language-generation set-up of LoRA: each example is the linearised
# input, a separator, the target text and an end-of-text token, and the loss covers only the target
# (chapter 03 shows the loss mask). We keep that format and scale the budgets down; the table lists
# what this profile uses. Fine-tuning uses AdamW with weight decay, a linear warm-up and a cosine
# decay to zero. Densifying is one call: the masks and their hooks go, the zeroed weights stay zero
# until their first gradient arrives.

# %%
report.show(report.finetune_settings(P))

# %%
import inspect

from spdf_lib import sparsity

print(inspect.getsource(sparsity.densify))

# %% [markdown]
# ## The learning-rate search
#
# For every (size, sparsity, task) the first pre-training seed's model is fine-tuned with the first
# fine-tuning seed at every rate of a log-spaced grid. When the lowest validation loss sits at an end
# of what was tried, the search adds the next rate beyond that end, up to a bound; selection uses the
# validation loss only, never a test score. Every pre-trained model of the cell and every
# fine-tuning seed then use the chosen rate. The rule is a pure function of the losses so far:

# %%
from spdf_lib import runs

print(inspect.getsource(runs.next_rates))

# %%
out = scheduler.run(P, TABLES, stages=("pretrain", "finetune"))
frame = report.finetune_frame(out["finetune"].values())
report.write_table(frame, TABLES, P.name, "finetune_runs")
search = report.lr_search_table(out["lr_search"])
report.write_table(search, TABLES, P.name, "lr_search")
display(Markdown(env.provenance(out["finetune"].values(), TABLES, P.name)))
report.show(search)

# %%
display(Markdown(report.lr_search_note(out["lr_search"], P)))

# %%
report.lr_search_figure(out["lr_search"], P.sizes, P.task_names);

# %% [markdown]
# Figure 5.1: Validation loss (nats per target token) against the peak learning rate, for every
# (size, task); one line per pre-training sparsity, the chosen rate ringed. A rate whose run diverged
# is left out of its line.
#
# ## Fine-tuning curves
#
# Training loss of the chosen runs of the large model (first pre-training and fine-tuning seed), one
# line per pre-training sparsity. Sparse pre-trained models start from a higher loss; how much of
# that gap dense fine-tuning closes is the question of chapter 06.

# %%
report.finetune_curves(out["finetune"].values(), P.sizes[-1], P.task_names, out["lr_search"],
                       P.pretrain_seeds[0], P.finetune_seeds[0]);

# %% [markdown]
# Figure 5.2: Training loss (nats per target token, mean over each logging window) against the
# optimizer step of the chosen fine-tuning runs of the large model.
#
# ## What densifying buys: the masks-kept control
#
# At the highest pre-training sparsity, each pre-trained model is also fine-tuned with its masks
# kept, at the rate chosen for dense fine-tuning and with the first fine-tuning seed. The table
# pairs the two modes on the same model and gives the mean difference with its $95\%$ t interval
# over pre-trained models.

# %%
control = report.control_table(frame)
report.show(control)

# %%
display(Markdown(report.control_findings(control)))

# %% [markdown]
# ## Summary
#
# Every cell's learning rate comes from a search that stops only when its best rate is interior or
# a stated bound is reached, so the comparison in chapter 06 does not hinge on a grid that was too
# narrow for one of the models. The control isolates what densifying adds on top of the sparse
# pre-trained weights.
#
# ## Exercises
#
# - At the smoke profile, narrow the grid in `spdf_lib/profiles.py` to a single rate and re-run this
#   chapter: what does the search note say, and what does chapter 06 then refuse to conclude?
# - Read `runs.next_rates` above and work out by hand which rates it asks for when the losses are
#   lowest at the smallest rate twice in a row.
# - Compare the control table with the one of chapter 06 (test scores): does the validation loss
#   order the two modes the same way as the test metric?
