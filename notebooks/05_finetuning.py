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
# its validation-loss curve; fine-tuning curves of both sizes; and what densifying buys over keeping
# the masks.

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
from spdf_lib import figures, sparsity

display(Markdown(figures.source_excerpt(sparsity.densify, "")))

# %% [markdown]
# ## The learning-rate search
#
# For every (size, sparsity, task) the first pre-training seed's model is fine-tuned with the first
# fine-tuning seed at every rate of a log-spaced grid. When the lowest validation loss sits at an end
# of what was tried, the search adds the next rate beyond that end, up to a bound; selection uses the
# validation loss only, never a test score. Every pre-trained model of the cell and every
# fine-tuning seed then use the chosen rate. A profile can instead let the sparsities of a size and
# task share one rate, decided on their validation losses averaged rate by rate
# (`LRSearch(shared=True)`), so that a near-tie in one cell cannot give a sparse model and its dense
# comparison different rates; the `gpu` profile does, for reasons chapter 06 measures, and the note
# under the table says which rule this page used. The rule is a pure function of the losses so far:

# %%
from spdf_lib import runs

display(Markdown(figures.source_excerpt(runs.next_rates, "")))

# %% [markdown]
# The table gives, for every cell, the validation loss (nats per target token) at each peak rate the
# search tried ('–' where it did not try that rate), the rate chosen, the runner-up (the rate with the
# second lowest loss, which chapter 06 uses to measure how much the choice matters) and whether the
# optimum is interior.

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
# Figure 5.1: Validation loss (nats per target token) of the first pre-trained model, fine-tuned with
# the first fine-tuning seed, against the peak learning rate (log axis, the rates tried as ticks),
# for every (size, task); one line per pre-training sparsity, the chosen rate ringed. A rate whose
# run diverged is left out of its line. No error bars: each point is one run.
#
# ## Fine-tuning curves
#
# Training loss of the chosen runs of both sizes, every pre-trained model with the first
# fine-tuning seed, one colour per pre-training sparsity. The curves show whether the sparse
# pre-trained models start from a higher loss and how far apart the sparsity levels still are when
# fine-tuning ends; how the gap shows on the test sets is the question of chapter 06.

# %%
report.finetune_curves(out["finetune"].values(), P.sizes, P.task_names, out["lr_search"], P.finetune_seeds[0]);

# %% [markdown]
# Figure 5.2: Training loss (nats per target token, the mean over each logging window) against the
# optimizer step of the chosen fine-tuning runs; rows: model sizes, columns: tasks, one line per
# pre-trained model, one colour per pre-training sparsity.
#
# ## What densifying buys: the masks-kept control
#
# At the highest pre-training sparsity, each pre-trained model is also fine-tuned with its masks
# kept, at the rate chosen for dense fine-tuning and with the first fine-tuning seed. The table
# pairs the two modes on the same model and gives the mean difference of the validation loss, masks
# kept minus dense (positive: removing the masks helps), with its $95\%$ t interval over pre-trained
# models, and what the interval says about densifying.

# %%
control = report.control_table(frame, P.sizes)
report.show(control)

# %%
display(Markdown(report.control_findings(control)))

# %% [markdown]
# ## Summary
#
# Every cell's learning rate comes from a search that stops only when its best rate is interior or
# a stated bound is reached (the note above says which cells, if any, hit the bound), so the
# comparison in chapter 06 does not hinge on a grid that was too narrow for one of the models. The
# control measures, on the same pre-trained models, what removing the masks adds to fine-tuning.
#
# ## Exercises
#
# Run the chapter at the smoke profile (`make book PROFILE=smoke CHAPTER=05`, or open it in Jupyter
# and set `profile = "smoke"` in its parameters cell); each exercise takes seconds.
#
# **Exercise 5.1.** At the smoke profile, read the search note: in how many cells was the bound hit?
# Raise `max_extensions` of the smoke profile's search in `spdf_lib/profiles.py` by one and re-run
# the chapter: which of those cells become interior, and how many more fine-tuning runs did it cost?
#
# **Exercise 5.2.** Read `runs.next_rates` above and work out by hand which rates it asks for, in
# order, when the validation loss keeps falling towards smaller rates. Then check your answer by
# calling it on a dictionary of made-up losses, `runs.next_rates({...}, P.finetune.lr_search)`.
#
# **Exercise 5.3.** Compare the control table above (validation loss) with the control table of
# chapter 06 (test metric): do the two order dense fine-tuning and masks-kept fine-tuning the same
# way, and where do their intervals disagree?
