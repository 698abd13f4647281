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
# # 00 About this book
#
# This book re-runs, at a scale that fits on a laptop or a single GPU, the experiments behind
# *SPDF: Sparse Pre-training and Dense Fine-tuning for Large Language Models*
# ([Thangarasa et al. 2023](#bib-spdf-arxiv)), first published as a Cerebras blog post
# ([November 2022](#bib-spdf-blog-first), [updated March 2023](#bib-spdf-blog-update)). Every
# chapter is a Python file in `notebooks/` that is executed from top to bottom each time the book is
# built, so every table, figure and number you read here was produced by the code shown next to it,
# at the profile printed in the cell below. This page:
#
# - says what SPDF claims, and the three hypotheses the book tests;
# - lists the chapters;
# - explains how to read a chapter and how to re-run one;
# - describes the three profiles, with their settings read from the library.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %% [markdown]
# ## What SPDF claims
#
# Pre-training a GPT model costs far more compute than fine-tuning it for a downstream task, yet
# both phases normally use the same dense network. SPDF gives the two phases different capacity:
#
# - **Sparse pre-training.** Before pre-training starts, a fixed random mask sets a fraction of the
#   weights of every attention projection (query, key, value and output) and every feed-forward
#   layer to zero, the same fraction in every layer. Embeddings, biases and layer norms stay dense.
#   The zeroed weights stay at zero for the whole of pre-training, so hardware that can skip
#   multiplications by zero does proportionally less work.
# - **Dense fine-tuning.** For each downstream task the mask is removed: the formerly zeroed weights
#   start at zero but now receive gradients, and the whole network adapts to the task.
#
# The authors summarise their headline result as follows.
#
# > "Our initial results show we can pre-train GPT-3 XL with up to 75% unstructured sparsity and 60%
# > fewer training FLOPS on Cerebras CS-2, while using dense fine-tuning to preserve the evaluation
# > metrics on many downstream tasks."
# >
# > — [SPDF blog, March 2023 update](#bib-spdf-blog-update)
#
# Their results are read against three hypotheses, which this book tests at its own scale:
#
# - **H1**: a model pre-trained with half to three quarters of its weights masked, then fine-tuned
#   densely, keeps most of the downstream quality of a densely pre-trained model;
# - **H2**: structured-data-to-text tasks (E2E, WebNLG, DART) tolerate more pre-training sparsity
#   than summarisation, which needs a better grasp of long inputs;
# - **H3**: a larger model loses less from the same pre-training sparsity than a smaller one.
#
# The saving in compute is real only on hardware that skips the zeros; the FLOP counts in this book
# are counts of useful multiply-adds, not measured speed-ups. Chapter 07 simulates why a dataflow
# machine can turn those counts into time while a GPU's dense matrix units cannot.
#
# ## The chapters
#
# The [bibliography](bibliography.md) lists every public source the chapters cite.

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import display

from spdf_lib import figures
from spdf_lib.book import discover_chapters
from spdf_lib.profiles import PROFILES

display(figures.show_table(figures.chapters_table(discover_chapters())))

# %% [markdown]
# ## How to read a chapter
#
# - A chapter opens with what it will show and ends with a summary and a few exercises, each
#   meant to be run at the `smoke` profile in seconds.
# - The first output of every chapter names the **profile** it was executed at, the `spdf_lib` and
#   `torch` versions and the device. Numbers from different profiles are not comparable: the `smoke`
#   profile only proves that the code runs, the `cpu` profile shows trends, and the `gpu` profile is
#   the closest this book gets to the paper.
# - What the paper says appears as a marked quotation with a link to its source, or in a column
#   labelled *published*; what this book measured is printed by code. No result in the prose is
#   typed by hand: the test `tests/test_chapter_prose.py` fails on any digit in a chapter's text
#   that is not in a quotation, a formula, code, or a chapter, figure or table number.
# - Figures are numbered by chapter and captioned underneath; tables show every cell in full.
# - The reusable code lives in the `spdf_lib` package; a chapter calls it and explains it, and
#   where the code *is* the method (the training step with its masks, the fine-tuning loss mask,
#   beam search) the chapter shows the library's own source. Each function's docstring names the
#   chapter that explains it.
# - Expensive steps (tokenizer training, pre-training, fine-tuning) are cached on disk, keyed by their
#   configuration, the library version and a fingerprint of the data, so a re-run recomputes only what
#   changed.
#
# ## How to re-run a chapter
#
# The README says which command builds or renders what. To execute one chapter at the `smoke`
# profile into a scratch folder, leaving the committed book and tables untouched, run from the
# repository root:
#
# ```bash
# .venv/bin/python -m spdf_lib.book run --profile smoke --chapter 01 \
#     --book-dir /tmp/spdf/book --tables-dir /tmp/spdf/tables
# ```
#
# To work through a chapter cell by cell, open its source `notebooks/NN_name.py` in JupyterLab with
# the jupytext extension (the README says how) and set `profile = "smoke"` in its first cell. The
# [execution status](status) page lists the profile, wall time and outcome of each chapter's last
# run.
#
# ## Profiles
#
# A profile fixes the size of every experiment. The table is read from `spdf_lib.profiles`; the wall
# time of a complete run comes from `tables/<profile>/wall_times.json` where one was recorded.

# %% tags=["hide-input"]
display(figures.show_table(figures.profiles_table(PROFILES, Path(tables_dir))))
print(f"This copy of the book was executed at profile {P.name!r}.")

# %% [markdown]
# ## Reading the library
#
# The chapters call `spdf_lib` and explain it; a reader who wants the code itself can follow this
# path through the package (`spdf_lib.guide`, whose test checks that no module is left off it). It
# has four legs. The method comes first: the settings, the model, the masks, the data and the
# training step, in the order the chapters introduce them. Then how the grid of runs is planned,
# scheduled, cached and committed; then how results are judged; last, the analysis and display
# code that serves single chapters, to be read only with the chapter that uses it.

# %% tags=["hide-input"]
from IPython.display import Markdown

from spdf_lib import guide

path = guide.reading_path()
display(figures.show_table(path.assign(leg=path["leg"].where(path["leg"] != path["leg"].shift(), ""))))
display(Markdown(guide.path_sentence(path)))

# %% [markdown]
# A good first hour is the first leg, with chapters 01 and 04 open beside it: `profiles.py` to see
# what a run is made of, then `model.py`, `sparsity.py` and `training.py`, and `runners.py`, where
# the two phases of SPDF meet the one training loop: `initial_model` draws a pre-training run's
# static mask with `sparsify`, and `do_finetune` calls `densify` before fine-tuning. The data
# package can be skimmed at first: its module names say what each step does.
#
# ## Summary
#
# - SPDF pre-trains with a static random mask on the attention and feed-forward weights, then
#   fine-tunes densely; the book tests its three hypotheses at a small scale and counts the FLOPs
#   the sparsity would save.
# - Every number comes from code run at a named profile; what the paper published is quoted and
#   linked to its source.
# - A chapter can be re-run on its own at the `smoke` profile without touching the committed book.
# - The library can be read in the order of its reading path, the method first.
#
# ## Exercises
#
# **Exercise 0.1.** Print `PROFILES["smoke"]` and find, in the table above, the settings that make it
# run in seconds where `gpu` needs a GPU.
#
# **Exercise 0.2.** Execute chapter 01 at the `smoke` profile with the command above and compare the
# header it prints with the one on this page.
#
# **Exercise 0.3.** Type a number into a sentence of a chapter's markdown, run
# `.venv/bin/pytest tests/test_chapter_prose.py -q`, and read how the failure names the chapter and
# the line. Then quote the number as a block quote with its source and run the test again.
