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
# # 03 Data
#
# SPDF pre-trains on a large web corpus and then fine-tunes on four downstream tasks. This chapter:
#
# - loads every data set the book uses and says where each comes from;
# - introduces the four fine-tuning tasks and their metrics, **BLEU** and **perplexity**, with an
#   example of each task;
# - states where our data differs from the paper's, with the numbers of each substitution;
# - builds the tokenizer, and the fine-tuning format with its **loss mask**, shown in the library's code;
# - cuts the examples into batches and the pre-training text into a token stream, and sets the
#   pre-training budgets against the size of that stream.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from spdf_lib import data, figures, report, runs
from spdf_lib.data import get_tokenizer
from spdf_lib.env import chapter_header
from spdf_lib.model import get_config

P = chapter_header(profile)
TABLES = Path(tables_dir)
LIMIT_DOCS = P.pretrain.corpus_docs

# %% [markdown]
# ## Where the data comes from
#
# No data is stored in the repository. The library looks for it in the directory named by the
# `SPDF_DATA` environment variable, else in `data/` inside the repository, else in `../shared/data`
# next to it, and prints the directory it chose. If none exists, the error lists the paths it tried
# and the public sources of every data set (the [bibliography](bibliography.md) lists them too). All files
# are read locally through Hugging Face `datasets` (CSV and JSON Lines directly, the XML files after
# parsing them), so nothing is fetched from the network. Each data set's files are hashed; the hash
# (its *fingerprint*) is part of the key of every cached result derived from it, so changing a file
# recomputes exactly what depends on it.

# %%
root = data.data_root()
display(figures.show_table(figures.fingerprint_table()))

# %% [markdown]
# ## The four fine-tuning tasks
#
# The paper fine-tunes on three data-to-text tasks and one summarisation task:
#
# > "We evaluate fine-tuning GPT models across structured data-to-text natural language generation
# > (E2E [15], WebNLG [16], and DART [17]) and text summarization (Curation Corpus [18]) tasks."
# >
# > — [SPDF blog, March 2023 update](#bib-spdf-blog-update)
#
# Each task is turned into pairs of a *source* (the input, as one line of text) and a *target*
# (a reference text). The sources are built as follows:
#
# - **[E2E](#bib-e2e)**: the restaurant description's meaning representation (MR) exactly as written
#   in the official CSV, for example `name[The Eagle], eatType[coffee shop], ...`.
# - **[WebNLG 2017](#bib-webnlg)** and **[DART](#bib-dart)**: every RDF triple written as
#   `subject | property | object`, with underscores turned into spaces and surrounding quotes
#   dropped, the triples joined by ` ; ` in the order of the XML file.
# - **Summarisation**: a news article of [BBC News Summary](#bib-bbc) (its first line is the
#   headline); the target is its summary.
#
# Training and validation splits have one row per (source, reference) pair. Test splits have one
# row per distinct input with *all* its references, because the metrics compare one output with
# every reference of its input.
#
# The data-to-text tasks are scored with **BLEU** ([Papineni et al. 2002](#bib-bleu)): the model
# generates a text for every test input, and BLEU counts how many of its word sequences of one to
# four words also occur in that input's references (clipped, so that repeating a matching word earns
# nothing), combines the four precisions by a geometric mean, and penalises outputs shorter than
# the references. It is computed over the whole test set and reported from zero to a hundred; higher
# is better. Summarisation, as in the paper, is scored by the **perplexity** of the reference
# summaries: the exponential of the model's mean loss per target token, in nats,
# $\mathrm{PPL} = \exp\big(-\frac{1}{N}\sum_{i} \log p(x_i \mid x_{<i})\big)$. A perplexity of $k$
# means the model is on average as uncertain as a uniform choice among $k$ tokens; lower is better.
# Chapter 06 computes both.

# %%
overview = pd.DataFrame([row for name in data.TASKS for row in data.split_statistics(name)])
report.write_table(overview, TABLES, P.name, "data_tasks")
display(figures.show_table(figures.grouped_columns(
    overview, {"references per input": ["refs per input (mean)", "refs per input (max)"],
               "mean length (words)": ["source words (mean)", "target words (mean)"]},
    names={"refs per input (mean)": "mean", "refs per input (max)": "max", "source words (mean)": "source",
           "target words (mean)": "target"}),
    {("", "rows"): "{:,}", ("", "inputs"): "{:,}", ("", "references"): "{:,}"}, precision=2))

# %%
by = overview.set_index(["task", "split"])
display(Markdown("Test sets: " + "; ".join(
    f"{name} has {int(by.loc[(name, 'test'), 'inputs']):,} inputs with {int(by.loc[(name, 'test'), 'references']):,} "
    f"references (up to {int(by.loc[(name, 'test'), 'refs per input (max)'])} per input)" for name in data.TASKS) + "."))

# %% [markdown]
# ### An E2E example
#
# The blog's Figure 3 shows an E2E meaning representation next to a sentence that describes it.
# Here is the test input with the most attributes (among those with several references), its
# attributes as a table and all its references.

# %%
e2e = data.load_task("e2e", "test")
sources, references = data.column(e2e, "source"), data.column(e2e, "references")
n_attributes = [s.count("[") for s in sources]
pick = next(i for i, s in enumerate(sources) if n_attributes[i] == max(n_attributes) and len(references[i]) >= 3)
attributes = [part.strip().rstrip("]").split("[", 1) for part in sources[pick].split("],")]
display(figures.show_table(pd.DataFrame(attributes, columns=["attribute", "value"])))
display(Markdown(f"**Input {pick}:** `{sources[pick]}`\n\n**Its {len(references[pick])} references:**\n\n"
                 + "\n".join(f"- {ref}" for ref in references[pick])))

# %% [markdown]
# ### WebNLG, DART and summarisation examples
#
# One test input of each other task, with its source and every reference in full.

# %%
web_sizes = data.column(data.load_task("webnlg", "test"), "n_triples")
display(Markdown(figures.example_markdown("webnlg", web_sizes.index(3))))
display(Markdown(figures.example_markdown("dart", 0)))
display(Markdown(figures.example_markdown("summarization", 0)))

# %% [markdown]
# ### References per input and lengths

# %%
figures.references_and_lengths_figure(data.TASKS, multi_reference=data.TASKS[:3]);

# %% [markdown]
# Figure 3.1: Left, for every test input of the data-to-text tasks, how many references it has
# (both axes count inputs and references, on log scales): all three are multi-reference, E2E
# strongly so. Right, the lengths in words of sources (blue) and targets (orange) on the training
# split; boxes span the middle half, whiskers the rest without outliers. E2E and WebNLG inputs are
# a line; BBC articles and their summaries run to hundreds of words.

# %% [markdown]
# ## Where our data differs from the paper
#
# The paper states its pre-training corpus in one sentence:
#
# > "All models are trained on the Pile dataset [14]."
# >
# > — [SPDF blog, March 2023 update](#bib-spdf-blog-update)
#
# Three of our data sets are substitutes, chosen because the originals cannot be obtained here.
# The table after the list gives the numbers of each.
#
# - **[The Pile](#bib-pile) → our mixture.** Instead of the Pile, a very large mixture of web,
#   academic, book and code text, we pre-train on English [Wikipedia](#bib-wikipedia),
#   [Project Gutenberg](#bib-gutenberg) books and posts of the [Blog Authorship Corpus](#bib-blogs).
#   It has no code, no scientific papers and no general web crawl, and it is small: the last table
#   of this chapter estimates how many passes over it each run makes.
# - **[Curation Corpus](#bib-curation) → BBC News Summary.** Curation Corpus publishes only summaries
#   and links; its articles must be scraped and may not be redistributed. BBC News Summary has one
#   summary per article, and its summaries are **extractive** (sentences copied from the article),
#   whereas Curation Corpus summaries are written by people in their own words. Like the paper, we
#   report perplexity on this task.
# - **DART train → DART dev.** The DART training split could not be obtained. We train on the
#   official dev split instead: its triple sets are shuffled with a fixed seed and a fraction is held
#   out as our validation split. The split is by triple set, so no input is on both sides. Testing
#   uses the official multi-reference test split, so DART scores are comparable in kind, not in
#   level: we train on far fewer pairs than the paper.

# %%
display(figures.show_table(figures.data_differences_table(overview)))

# %% [markdown]
# ## Skips and repairs
#
# A malformed CSV row, XML entry or JSON line stops loading with an error that names the file and the
# row or entry. Known defects of the official data are handled instead, and counted in the table:
# an empty DART test reference is skipped (its input keeps its other references), and the BBC
# summaries join sentences without a space ("stabilise.China's"), which we repair when a lower-case
# letter or digit precedes the full stop, so that abbreviations such as "U.S." stay intact.
# Gutenberg books carry the Project Gutenberg licence before and after the text; we keep only what
# lies between the `*** START OF` and `*** END OF` markers (older files mark the end of their header
# with "END THE SMALL PRINT"), and also drop the closing "End of the Project Gutenberg EBook" line.

# %%
quality = figures.data_quality_table(LIMIT_DOCS)
report.write_table(quality, TABLES, P.name, "data_quality")
display(figures.show_table(quality, {"count": "{:,}"}))
gutenberg = data.pretraining_summary("train", LIMIT_DOCS)["corpora"]["gutenberg"]
display(Markdown(f"The licence text removed from the {gutenberg['documents']} training books used at profile "
                 f"`{P.name}` is {gutenberg['licence_chars_removed'] / gutenberg['characters_raw']:.1%} of their characters."))

# %% [markdown]
# ## The pre-training mixture
#
# The three corpora are interleaved document by document in proportion to their size in characters,
# so that every prefix of the training stream (such as the part the tokenizer learns from) mixes
# them in about the same shares as the whole. Validation documents come from source files that
# share nothing with the training files. The small profiles use only the first documents of each
# corpus; the table shows both the whole files and what this profile uses.

# %%
mixture = figures.mixture_table(LIMIT_DOCS)
report.write_table(mixture, TABLES, P.name, "data_pretraining_mixture")
display(figures.show_table(figures.grouped_columns(
    mixture, {"in the files": ["documents in file", "characters in file (M)"],
              "used at this profile": ["documents used", "characters used (M)"]},
    names={"documents in file": "documents", "characters in file (M)": "characters (millions)",
           "documents used": "documents", "characters used (M)": "characters (millions)"}), precision=2))

# %% [markdown]
# ## The tokenizer
#
# The paper uses GPT-2's vocabulary. Our models are orders of magnitude smaller, and an embedding
# table of that size would hold most of their parameters, so every profile trains its own
# byte-level BPE (Hugging Face `tokenizers`) on the start of the pre-training stream. Byte-level
# means any text can be encoded and decoded back exactly. Three special tokens are added: a
# separator between source and target, an end-of-text token that also separates documents in the
# pre-training stream, and a padding token. The tokenizer is cached under a key made of its
# settings and the data fingerprint.

# %%
tok = get_tokenizer(P.vocab_size, P.tokenizer_train_chars, limit_docs=LIMIT_DOCS)
display(figures.show_table(figures.tokenizer_table(tok, get_config(P.sizes[0]).n_embd, P.tokenizer_train_chars)))

# %% [markdown]
# ### The fine-tuning format and its loss mask
#
# Following the fine-tuning setup of [LoRA, Hu et al. 2021](#bib-lora), which the paper's
# fine-tuning builds on, an example is the source, the separator, the target and the end-of-text
# token. The loss is computed only on predicting the target and its end-of-text token: the model
# is never trained to reproduce the input, and at test time it receives the source and the separator
# and generates until end-of-text. Two pieces of `spdf_lib.data` do this. `encode_finetune` marks
# which tokens are target tokens:

# %%
display(Markdown(figures.source_excerpt(data.encode_finetune, "t = t + [eos]", "examples.append(")))

# %% [markdown]
# and `collate_finetune` turns the marks into the targets the loss sees: position $t$ is trained to
# predict token $t + 1$, and where that token is not a target token the target is `-100`, the value
# PyTorch's cross-entropy ignores. Source tokens therefore contribute nothing to the loss.

# %%
display(Markdown(figures.source_excerpt(data.collate_finetune, "targets = torch.full(", "targets[row, :n] =")))

# %%
train_e2e = data.load_task("e2e", "train", limit=1)
source, target = data.column(train_e2e, "source")[0], data.column(train_e2e, "target")[0]
(example,) = data.encode_finetune(tok, train_e2e, max_len=10**6)  # no truncation, to show the round trip
assert tok.decode(example.input_ids) == data.format_example(source, target)  # exact round trip
display(Markdown(f"Text: `{data.format_example(source, target)}`, {len(example)} tokens, of which "
                 f"{sum(example.loss_mask)} are predicted in the loss. The positions around the separator "
                 "(`Ġ` marks a leading space):"))
display(figures.show_table(figures.loss_mask_table(tok, example, (example.n_source - 4, example.n_source + 6))))

# %% [markdown]
# ### Lengths in tokens and truncation
#
# An example may hold at most the profile's `max_len` tokens. When source, separator and target do
# not fit, the target keeps what the source leaves but at least half of the budget, and each is cut
# at its end (the target then loses its end-of-text token). Figure 3.2 uses a fixed sample of
# training pairs per task, encoded without truncation.

# %%
SAMPLE = 400
untruncated = {name: data.encode_finetune(tok, data.load_task(name, "train", limit=SAMPLE), max_len=10**9)
               for name in data.TASKS}
figures.example_lengths_figure({name: [len(e) for e in full] for name, full in untruncated.items()},
                               P.finetune.max_len, tok.vocab_size);

# %% [markdown]
# Figure 3.2: Lengths in tokens of fine-tuning examples (source, separator, target and end-of-text)
# for a sample of training pairs per task (the legend gives its size), on a log axis; the dashed
# line is the profile's `max_len`. The table gives, per task, the share of pairs whose source or
# target truncation to `max_len` would cut.

# %%
truncation = figures.truncation_table(untruncated, P.finetune.max_len)
report.write_table(truncation, TABLES, P.name, "data_truncation")
display(figures.show_table(truncation, {"median tokens": "{:.0f}", "source cut": "{:.1%}", "target cut": "{:.1%}"}))

# %% [markdown]
# ### Length-bucketed batches
#
# A batch is padded to its longest example, so mixing short and long examples wastes computation.
# Each epoch shuffles the examples with a seed, sorts windows of a few dozen batches by length
# (`data.LENGTH_BUCKET_BATCHES`), cuts them into batches and shuffles the batch order: batches hold
# examples of similar length, yet the order changes every epoch and depends only on the seed and the
# epoch number.

# %%
examples = data.encode_finetune(tok, data.load_task("webnlg", "train", limit=2000), P.finetune.max_len)
lengths = [len(e) for e in examples]
bs = P.finetune.batch_size
order = np.random.default_rng(0).permutation(len(lengths))
plain = [order[i:i + bs] for i in range(0, len(order), bs)]
bucketed = data.batch_order(lengths, bs, seed=0, epoch=0)
display(Markdown(f"On {len(examples):,} WebNLG training pairs in batches of {bs}, padding takes "
                 f"{figures.padding_share(lengths, plain):.0%} of the batch with plain shuffling and "
                 f"{figures.padding_share(lengths, bucketed):.0%} with length bucketing."))

# %% [markdown]
# ## The pre-training token stream
#
# For pre-training, the documents are tokenized once, each followed by the end-of-text token, into a
# single stream of token ids (`data.token_dtype` picks the smallest unsigned integer type that holds
# the vocabulary), cached on disk. The stream is cut into non-overlapping windows of `seq_len + 1`
# tokens; a training sequence is a window without its last token and its target the window shifted
# by one. Each pass over the corpus visits the windows in a new order drawn from the run's seed and
# the pass number, and batch number $k$ is a fixed function of $k$: a run that stops and resumes sees
# exactly the batches it would have seen. Here is the validation stream of this profile (the
# training stream is built in chapter 04, where its size and the passes each run makes are counted).

# %%
valid = data.pretraining_tokens(tok, "validation", limit_docs=LIMIT_DOCS)
valid_summary = data.pretraining_summary("validation", LIMIT_DOCS)
chars_per_token = valid_summary["characters"] / len(valid)
s = P.pretrain
x, y = data.packed_batch(valid, step=0, batch_size=2, seq_len=s.seq_len, seed=0)
assert (x[:, 1:] == y[:, :-1]).all()
display(Markdown(
    f"Validation stream: {len(valid):,} tokens ({valid.dtype}) from {valid_summary['documents']:,} documents, "
    f"{chars_per_token:.2f} characters per token, {data.n_windows(valid, s.seq_len):,} windows of {s.seq_len + 1} "
    f"tokens. A batch is a pair of tensors of shape {tuple(x.shape)}; the start of its first sequence:"
    f"\n\n> {tok.decode(x[0, :40].tolist())!r}"))

# %% [markdown]
# ### Token budgets against the size of the corpus
#
# Each pre-training run gets the token budget of the run plan, `runs.planned_tokens`: the
# profile's tokens per parameter times the model's parameters, capped where the profile sets a cap,
# in whole optimizer steps. Dividing it by the size of the training stream, estimated from its
# characters at the validation split's characters per token, tells how often a run sees each
# document.

# %%
train_chars = mixture[mixture.split == "train"]["characters used (M)"].sum() * 1e6
estimated_train_tokens = train_chars / chars_per_token
plan = [r for r in runs.pretraining_runs(P) if r.sparsity == 0.0 and r.seed == P.pretrain_seeds[0]]
budgets = figures.budget_table(plan, estimated_train_tokens)
display(figures.show_table(budgets, {"parameters": "{:,}", "token budget": "{:,}",
                                     "passes over the training stream (estimate)": "{:.3g}"}))
display(Markdown(f"The training stream of this profile should hold about {estimated_train_tokens / 1e6:,.1f} million "
                 f"tokens ({train_chars / 1e6:,.1f} million characters). A value above one means a run sees "
                 "documents more than once; chapter 04 counts the exact number."))

# %% [markdown]
# How fast this is on two CPU cores (loading and tokenizing the whole training split the first time,
# and reading it back from the cache) is measured by `benchmarks/bench_data.py`.
#
# ## Summary
#
# - The four tasks are built from their official files (DART's training data replaced by its dev
#   split), summarisation from BBC News Summary instead of Curation Corpus, and pre-training from a
#   mixture of Wikipedia, books and blogs instead of the Pile; the tables give the sizes.
# - Data-to-text outputs are scored by BLEU against all references of an input; summarisation by
#   the perplexity of the reference summary.
# - Each profile trains its own small byte-level BPE; a fine-tuning example is
#   `source <|sep|> target <|eos|>`, and only the target tokens are in the loss (the `-100` targets).
# - Length bucketing cuts the padding of fine-tuning batches; the pre-training stream is cut into
#   fixed windows whose order is a pure function of seed, pass and step.
#
# ## Exercises
#
# **Exercise 3.1.** Encode another E2E pair with `data.encode_finetune(tok, data.load_task("e2e",
# "train", limit=2), P.finetune.max_len)` and show it with `figures.loss_mask_table`: how many of its
# positions are in the loss, and is the first target token predicted from the separator?
#
# **Exercise 3.2.** Set `max_len` to a quarter of the profile's in the truncation cell and predict,
# before running it, which tasks start losing their end-of-text token.
#
# **Exercise 3.3.** Recompute the padding share with `data.batch_order(lengths, bs, seed=0, epoch=1)`
# and with a larger batch size: does bucketing still help, and does the order change between epochs?
