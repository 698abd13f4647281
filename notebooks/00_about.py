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

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %% [markdown]
# This book re-runs, at a scale that fits on a laptop or a single GPU, the experiments behind
# *SPDF: Sparse Pre-training and Dense Fine-tuning for Large Language Models* (Thangarasa et al.,
# Cerebras, 2022–2023). Every chapter is a Python file in `notebooks/` that is executed from top
# to bottom each time the book is built, so every table, figure and number you read here was
# produced by the code shown next to it, with the profile printed in the cell above.
#
# ## What SPDF claims
#
# Pre-training a GPT model costs far more compute than fine-tuning it for a downstream task, yet
# both phases normally use the same dense network. SPDF gives the two phases different capacity:
#
# 1. **Sparse pre-training.** Before pre-training starts, a fixed random mask sets a fraction of the
#    weights of every attention projection (query, key, value and output) and every feed-forward
#    layer to zero, the same fraction in every layer. Embeddings, biases and layer norms stay dense.
#    The zeroed weights stay at zero for the whole of pre-training, so hardware that can skip
#    multiplications by zero does proportionally less work.
# 2. **Dense fine-tuning.** For each downstream task the mask is removed: the formerly zeroed weights
#    start at zero but now receive gradients, and the whole network adapts to the task.
#
# The authors summarise their headline result as follows.
#
# > "Our initial results show we can pre-train GPT-3 XL with up to 75% unstructured sparsity and 60%
# > fewer training FLOPS on Cerebras CS-2, while using dense fine-tuning to preserve the evaluation
# > metrics on many downstream tasks."
# >
# > — Cerebras blog post, March 2023 version (`paper/002_a78003f1f46f7a7e.txt`)
#
# Their results are read against three hypotheses, which this book tests at its own scale:
#
# - **H1** — a model pre-trained with half to three quarters of its weights masked, then fine-tuned
#   densely, keeps most of the downstream quality of a densely pre-trained model;
# - **H2** — structured-data-to-text tasks (E2E, WebNLG, DART) tolerate more pre-training sparsity than
#   summarisation, which needs a better grasp of long inputs;
# - **H3** — a larger model loses less from the same pre-training sparsity than a smaller one.
#
# The saving in compute is real only on hardware that skips the zeros; the FLOP counts in this book
# are counts of useful multiply-adds, not measured speed-ups. Chapter 07 simulates why a dataflow
# machine can turn those counts into time while a GPU's dense matrix units cannot.
#
# ## The chapters

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from spdf_lib.book import discover_chapters

chapters = discover_chapters()
display(Markdown("\n".join(
    ["| Chapter | Title | Source file |", "|---|---|---|"]
    + [f"| {c.number} | {c.title.split(' ', 1)[-1]} | `notebooks/{c.path.name}` |" for c in chapters]
)))

# %% [markdown]
# ## How to read a chapter
#
# - The first output of every chapter names the **profile** it was executed at, the `spdf_lib` and
#   `torch` versions and the device. Numbers from different profiles are not comparable: the `smoke`
#   profile only proves that the code runs, the `cpu` profile shows trends, and the `gpu` profile is
#   the closest this book gets to the paper.
# - What the paper says appears as a marked quotation or as a column labelled *published*; what this
#   book measured is printed by code. No result in the prose is typed by hand.
# - The reusable code lives in the `spdf_lib` package; a chapter calls it and explains it. Each
#   function's docstring names the chapter that explains it.
# - Expensive steps (tokenizer training, pre-training, fine-tuning) are cached on disk, keyed by their
#   configuration, the library version and a fingerprint of the data, so a re-run recomputes only what
#   changed.
#
# ## How to re-run the book
#
# From the repository root, on a machine with Python 3.10 or newer:
#
# ```bash
# make book    # install, execute every chapter, render the HTML
# make test    # unit tests, all chapters at smoke, browser check
# ```
#
# | Variable | Effect |
# |---|---|
# | `PROFILE=smoke\|cpu\|gpu` | size of every experiment (default: `gpu` when CUDA is available, else `cpu`) |
# | `CHAPTER=NN` | execute only chapter `NN`, then render the book again |
# | `FORCE=1` | recompute cached results instead of reusing them |
# | `SPDF_CACHE=/path` | where cached results are kept (default `.cache/spdf`) |
# | `SPDF_DATA=/path` | where the data sets are read from |
#
# Executed notebooks are written to `book/`, tables to `tables/<profile>/`, and the HTML to
# `_build/html/`. A chapter that fails stops the run with the chapter, the failing cell and the error;
# the notebook already in `book/` is left as it was and no HTML is rendered. The
# [execution status](status) page lists the profile, wall time and outcome of each chapter's last run.
#
# ## Profiles
#
# A profile fixes the size of every experiment. The wall times are those measured for a complete
# `make book` run; they are read from `tables/<profile>/wall_times.json`.

# %% tags=["hide-input"]
import json
from pathlib import Path

from spdf_lib.profiles import PROFILES


def measured_wall_time(tables_root: Path, name: str) -> str:
    """The measured wall time of a full run at profile ``name``, as text (explained in chapter 00)."""
    path = tables_root / name / "wall_times.json"
    if not path.exists():
        return "not yet measured"
    record = json.loads(path.read_text(encoding="utf-8"))
    seconds = float(record["total_s"])
    text = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
    machine = record.get("machine")
    return f"{text} ({machine})" if machine else text


def profile_column(p, tables_root: Path) -> dict[str, str]:
    """What profile ``p`` runs, one table cell per setting (explained in chapter 00)."""
    tokens = f"{p.pretrain.tokens_per_param:g} per parameter"
    if p.pretrain.max_tokens:
        tokens += f", at most {p.pretrain.max_tokens:,}"
    return {
        "Purpose": p.description,
        "Models": ", ".join(p.sizes),
        "Pre-training sparsity": ", ".join(f"{s:.0%}" for s in p.sparsity_levels),
        "Seeds": str(len(p.seeds)),
        "Vocabulary": f"{p.vocab_size:,} tokens",
        "Pre-training tokens per run": tokens,
        "Tasks": ", ".join(p.task_names),
        "Wall time of a complete run": measured_wall_time(tables_root, p.name),
    }


tables_root = Path(tables_dir)
columns = {name: profile_column(p, tables_root) for name, p in PROFILES.items()}
settings = list(next(iter(columns.values())))
display(Markdown("\n".join(
    ["| | " + " | ".join(f"`{name}`" for name in columns) + " |",
     "|---|" + "---|" * len(columns)]
    + [f"| {row} | " + " | ".join(col[row] for col in columns.values()) + " |" for row in settings]
)))
print(f"This copy of the book was executed at profile {P.name!r}.")
