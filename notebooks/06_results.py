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
# # 06 Results: Tables 1 and 2, Figure 4, and the three hypotheses
#
# Every fine-tuned model of chapter 05 is evaluated on its task's test set: beam search and corpus
# BLEU against all references for E2E, WebNLG and DART; perplexity of the reference summaries for
# summarization. The tables are laid out like the paper's: one row per task, one column group per
# pre-training sparsity, the mean and standard deviation over fine-tuning seeds, the change against
# the dense pre-trained model of the same size, and the paper's published change next to it (where
# the sources publish one).

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import experiments, report, tables
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)

# %%
out = experiments.run_all(P, TABLES)
evals = report.eval_frame(out["eval"].values())
report.write_table(evals, TABLES, P.name, "test_results")
cs = tables.cells(out["eval"].values())
small, large = P.sizes
missing = report.missing_note(experiments.MISSING)
if missing:
    display(Markdown(missing))
display(Markdown(f"BLEU is sacrebleu's corpus BLEU (tokenization `{report.BLEU_TOKENIZATION}`, mixed case) "
                 f"over {report.test_sizes(evals)}."))

# %% [markdown]
# ## Table 1: the GPT-2 Small analog

# %%
table1 = tables.results_table(cs, small, "gpt2-small", P.sparsity_levels, P.task_names)
report.write_table(table1, TABLES, P.name, "table1")
table1

# %% [markdown]
# ## Table 2: the GPT-3 XL analog

# %%
table2 = tables.results_table(cs, large, "gpt3-xl", P.sparsity_levels, P.task_names)
report.write_table(table2, TABLES, P.name, "table2")
table2

# %% [markdown]
# ## Figure 4: E2E BLEU and summarization perplexity against pre-training sparsity

# %%
report.figure4(cs, P.sizes, P.sparsity_levels, {small: f"{small} (GPT-2 Small analog)",
                                                large: f"{large} (GPT-3 XL analog)"});

# %% [markdown]
# ## The three hypotheses
#
# The paper reads its results against three hypotheses. Each verdict below is computed from the
# cells above by a rule fixed in `spdf_lib.tables` before any result was read: H1 counts a sparse
# cell as preserving the dense result when it loses at most 1 BLEU point (or 5% perplexity), or
# less than twice the standard error of the difference across seeds; H2 compares the relative loss
# of summarization with the mean relative loss of the data-to-text tasks at the highest sparsity;
# H3 compares the relative loss of the two sizes at the highest sparsity, task by task.

# %%
top = max(P.sparsity_levels)
verdicts = report.verdict_frame([
    tables.verdict_h1(cs, P.sizes, P.sparsity_levels, P.task_names),
    tables.verdict_h2(cs, P.sizes, top, P.task_names),
    tables.verdict_h3(cs, small, large, top, P.task_names),
])
report.write_table(verdicts, TABLES, P.name, "verdicts")
verdicts

# %%
display(Markdown(report.paper_comparison(cs, P, verdicts)))

# %% [markdown]
# ## What densifying buys on the test sets
#
# The masks-kept control of chapter 05, evaluated like the dense fine-tuning runs:

# %%
control = report.control_test_table(out["eval"].values())
control

# %% [markdown]
# ## Examples of decoded outputs
#
# The first test inputs of E2E with the output of the seed-0 large models (all decoded outputs are
# stored next to the per-run results under `tables/<profile>/runs/eval/`).

# %%
report.example_outputs(TABLES, P, task="e2e", n=3)

# %% [markdown]
# ## The published run beside this one
#
# The tables of the `gpu` profile are committed with the book, so a reader who re-runs a smaller
# profile can compare against them. (When this chapter itself runs at the `gpu` profile, the two
# columns are the same run.)

# %%
report.published_beside(TABLES, P.name, report.REPO_TABLES)
