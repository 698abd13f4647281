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
# SPDF pre-trains on a large web corpus and then fine-tunes on four downstream tasks. This chapter
# loads every data set the book uses, shows what an input and its references look like, states
# where our data differs from the paper's, and builds the two things the training chapters consume:
# a tokenizer, and the token streams and batches cut from the data.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from spdf_lib import data, report
from spdf_lib.env import chapter_header
from spdf_lib.model import get_config, num_params
from spdf_lib.tokenizer import BYTE_ALPHABET_SIZE, SPECIAL_TOKENS, get_tokenizer

P = chapter_header(profile)
TABLES = Path(tables_dir)
LIMIT_DOCS = P.pretrain.corpus_docs

# %% [markdown]
# ## Where the data comes from
#
# No data is stored in the repository. The library looks for it in the directory named by the
# `SPDF_DATA` environment variable, else in `data/` inside the repository, else in `../shared/data`
# next to it, and prints the directory it chose. If none exists, the error lists the paths it tried
# and the public sources of every data set. All files are read locally through Hugging Face
# `datasets` (CSV and JSON Lines directly, the XML files after parsing them), so nothing is fetched
# from the network. Each data set's files are hashed; the hash (its *fingerprint*) is part of the
# key of every cached result derived from it, so changing a file recomputes exactly what depends on it.

# %%
root = data.data_root()
fingerprints = pd.DataFrame(
    [{"data set": name, "fingerprint": data.task_fingerprint(name), "files": ", ".join(data.task_files(name))}
     for name in data.TASKS]
    + [{"data set": f"pre-training ({split})", "fingerprint": data.pretraining_fingerprint(split),
        "files": ", ".join(data.pretraining_files(split))} for split in data.PRETRAIN_SPLITS])
fingerprints

# %% [markdown]
# ## The four fine-tuning tasks
#
# The paper fine-tunes on three data-to-text tasks and one summarisation task:
#
# > "We evaluate fine-tuning GPT models across structured data-to-text natural language generation
# > (E2E [15], WebNLG [16], and DART [17]) and text summarization (Curation Corpus [18]) tasks."
# >
# > — Cerebras blog post, March 2023 version (`paper/002_a78003f1f46f7a7e.txt`)
#
# Each task is turned into pairs of a *source* (the input, as one line of text) and a *target*
# (a reference text). The sources are built as follows:
#
# - **E2E**: the meaning representation (MR) exactly as written in the official CSV, for example
#   `name[The Eagle], eatType[coffee shop], ...`.
# - **WebNLG 2017** and **DART**: every RDF triple written as `subject | property | object`, with
#   underscores turned into spaces and surrounding quotes dropped, the triples joined by ` ; ` in the
#   order of the XML file.
# - **Summarisation**: the news article (its first line is the headline); the target is its summary.
#
# Training and validation splits have one row per (source, reference) pair. Test splits have one
# row per distinct input with *all* its references, because BLEU and the other generation metrics
# compare one output against every reference of its input.

# %%
overview = pd.DataFrame([row for name in data.TASKS for row in data.split_statistics(name)])
report.write_table(overview, TABLES, P.name, "data_tasks")
overview.style.format(precision=2).hide(axis="index")

# %%
by = overview.set_index(["task", "split"])
e2e_test, web_test, dart_test = by.loc[("e2e", "test")], by.loc[("webnlg", "test")], by.loc[("dart", "test")]
display(Markdown(
    f"E2E's test set has {int(e2e_test.inputs):,} meaning representations with {int(e2e_test.references):,} "
    f"references ({e2e_test['refs per input (mean)']:.2f} per input on average, up to "
    f"{int(e2e_test['refs per input (max)'])}); WebNLG's has {int(web_test.inputs):,} triple sets with "
    f"{int(web_test.references):,} references and DART's {int(dart_test.inputs):,} triple sets with "
    f"{int(dart_test.references):,}. A summarisation article has a single reference summary."))

# %% [markdown]
# ### An E2E example
#
# The blog's Figure 3 shows an E2E meaning representation next to a sentence that describes it.
# Here is one test input of the same kind, with its attributes as a table and all its references.

# %%
e2e = data.load_task("e2e", "test")
sources, references = data.column(e2e, "source"), data.column(e2e, "references")
n_attributes = [s.count("[") for s in sources]
pick = next(i for i, s in enumerate(sources) if n_attributes[i] == max(n_attributes) and len(references[i]) >= 3)
attributes = [part.strip().rstrip("]").split("[", 1) for part in sources[pick].split("],")]
display(pd.DataFrame(attributes, columns=["attribute", "value"]).style.hide(axis="index"))
display(Markdown(f"**Input {pick}:** `{sources[pick]}`\n\n**Its {len(references[pick])} references:**\n\n"
                 + "\n".join(f"{k}. {ref}" for k, ref in enumerate(references[pick], start=1))))

# %% [markdown]
# ### WebNLG, DART and summarisation examples

# %%
def show_example(name: str, index: int, n_refs: int = 3, max_chars: int = 600) -> None:
    test = data.load_task(name, "test")
    row = test[index]
    clip = (lambda s: s if len(s) <= max_chars else s[:max_chars] + " …")
    extra = {k: row[k] for k in ("category", "n_triples", "seen", "origin") if k in row}
    lines = [f"**{name}, test input {index}** {extra}", "", "Source:", "", f"> {clip(row['source'])}".replace("\n", " "),
             "", f"References (first {min(n_refs, len(row['references']))} of {len(row['references'])}):", ""]
    lines += [f"- {clip(ref)}" for ref in row["references"][:n_refs]]
    display(Markdown("\n".join(lines)))


web_sizes = data.column(data.load_task("webnlg", "test"), "n_triples")
show_example("webnlg", web_sizes.index(3))
show_example("dart", 0)
show_example("summarization", 0, max_chars=500)

# %% [markdown]
# ### References per input and lengths
#
# The left panel counts, for every test input, how many references it has: the data-to-text tasks
# are multi-reference, E2E strongly so. The right panel shows how long sources and targets are
# in words (training split): E2E and WebNLG inputs are a line; BBC articles run to hundreds of words.

# %%
fig, (ax_refs, ax_len) = plt.subplots(1, 2, figsize=(12, 4))
for name in data.TASKS[:3]:
    counts = Counter(len(r) for r in data.column(data.load_task(name, "test"), "references"))
    xs = sorted(counts)
    ax_refs.plot(xs, [counts[x] for x in xs], marker="o", label=name)
ax_refs.set(xscale="log", yscale="log", xlabel="references per test input", ylabel="test inputs",
            title="References per test input")
ax_refs.legend()
lengths, labels = [], []
for name in data.TASKS:
    train = data.load_task(name, "train")
    lengths += [[len(s.split()) for s in data.column(train, "source")],
                [len(t.split()) for t in data.column(train, "target")]]
    labels += [f"{name}\nsource", f"{name}\ntarget"]
ax_len.boxplot(lengths, showfliers=False)
ax_len.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
ax_len.set(yscale="log", ylabel="length (words)", title="Source and target lengths, training split (no outliers)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Where our data differs from the paper
#
# The paper states its pre-training corpus in one sentence:
#
# > "All models are trained on the Pile dataset [14]."
# >
# > — Cerebras blog post, March 2023 version (`paper/002_a78003f1f46f7a7e.txt`)
#
# Three of our data sets are substitutes, chosen because the originals cannot be obtained here:

# %%
dart_train_idx, dart_val_idx = data.dart_dev_partition()
bbc = by.xs("summarization", level="task")
recorded = {c: data.corpus_sources(c)["splits"]["train"] for c in data.PRETRAIN_CORPORA}
mix_chars = {c: r["text_chars"] for c, r in recorded.items()}
mix = {"characters": sum(mix_chars.values()), "documents": sum(r["documents"] for r in recorded.values())}
display(Markdown("\n".join([
    f"- **The Pile → our mixture.** Instead of the Pile, a very large mixture of web, academic, book and "
    f"code text, we pre-train on "
    f"{mix['characters'] / 1e6:,.0f} million characters ({mix['documents']:,} documents) of English Wikipedia "
    f"({mix_chars['wikipedia_en'] / mix['characters']:.0%} of the characters), Project Gutenberg books "
    f"({mix_chars['gutenberg'] / mix['characters']:.0%}) and blog posts ({mix_chars['blog_authorship'] / mix['characters']:.0%}). "
    f"It has no code, no scientific papers and no general web crawl, and it is small: the table at the end "
    f"of this chapter estimates how many passes over it each run of this profile makes.",
    f"- **Curation Corpus → BBC News Summary.** Curation Corpus publishes only summaries and links; its "
    f"articles must be scraped and may not be redistributed. We use BBC News Summary instead: "
    f"{int(bbc['rows']['train']):,} training, {int(bbc['rows']['validation']):,} validation and "
    f"{int(bbc['inputs']['test']):,} test articles, each with one summary. Its summaries are **extractive** "
    f"(sentences copied from the article, {bbc['target words (mean)']['train'] / bbc['source words (mean)']['train']:.0%} "
    f"of its length on average), whereas Curation Corpus summaries are written by people in their own words. "
    f"Like the paper, we report perplexity on this task.",
    f"- **DART train → DART dev.** The DART training split could not be obtained. We train on the official "
    f"dev split instead: its {len(dart_train_idx) + len(dart_val_idx):,} triple sets are shuffled with a fixed "
    f"seed, {len(dart_val_idx):,} of them ({data.DART_VALIDATION_FRACTION:.0%}) are held out as our validation split "
    f"and the other {len(dart_train_idx):,} ({int(by.loc[('dart', 'train')].rows):,} pairs) are our training split. "
    f"The split is by triple set, so no input is on both sides. Testing uses the official multi-reference "
    f"test split, so DART scores are comparable in kind, not in level: we train on far fewer pairs than "
    f"the paper.",
])))

# %% [markdown]
# ## Skips and repairs
#
# A malformed CSV row, XML entry or JSON line stops loading with an error that names the file and the
# row or entry. Two known defects of the official data are handled instead, and counted here:
# one DART test reference is empty (skipped; its input keeps its other references), and the BBC
# summaries join sentences without a space ("stabilise.China's"), which we repair when a lower-case
# letter or digit precedes the full stop, so that abbreviations such as "U.S." stay intact.
# Gutenberg books carry the Project Gutenberg licence before and after the text; we keep only what
# lies between the `*** START OF` and `*** END OF` markers (older files mark the end of their header
# with "END THE SMALL PRINT"), and also drop the closing "End of the Project Gutenberg EBook" line.

# %%
quality = pd.DataFrame([{"task": name, "split": split, "what": what, "count": count}
                        for name in data.TASKS for split, notes in data.data_quality(name).items()
                        for what, count in notes.items() if count])
gutenberg = data.pretraining_summary("train", LIMIT_DOCS)["corpora"]["gutenberg"]
quality = pd.concat([quality, pd.DataFrame([
    {"task": "pre-training", "split": "train", "what": "Gutenberg headers removed (*** START marker)",
     "count": gutenberg["header_marker_stripped"]},
    {"task": "pre-training", "split": "train", "what": "Gutenberg headers removed (older 'small print' form)",
     "count": gutenberg["header_small_print_stripped"]},
    {"task": "pre-training", "split": "train", "what": "Gutenberg footers removed", "count": gutenberg["footer_stripped"]},
])], ignore_index=True)
report.write_table(quality, TABLES, P.name, "data_quality")
display(quality.style.hide(axis="index"))
display(Markdown(
    f"The licence text removed from the {gutenberg['documents']} training books used at profile `{P.name}` amounts to "
    f"{gutenberg['licence_chars_removed'] / gutenberg['characters_raw']:.1%} of their characters."))

# %% [markdown]
# ## The pre-training mixture
#
# The three corpora are interleaved document by document in proportion to their size in characters,
# so that every prefix of the training stream (such as the part the tokenizer learns from) mixes
# them in about the same shares as the whole. Validation documents come from source files that
# share nothing with the training files. The small profiles use only the first documents of each
# corpus; the table shows both the whole files and what this profile uses.

# %%
rows = []
for split in data.PRETRAIN_SPLITS:
    used = data.pretraining_summary(split, LIMIT_DOCS)
    for corpus in data.PRETRAIN_CORPORA:
        recorded = data.corpus_sources(corpus)["splits"]["train" if split == "train" else "valid"]
        rows.append({"split": split, "corpus": corpus, "documents in file": recorded["documents"],
                     "characters in file (M)": recorded["text_chars"] / 1e6,
                     "documents used": used["corpora"][corpus]["documents"],
                     "characters used (M)": used["corpora"][corpus]["characters"] / 1e6})
mixture = pd.DataFrame(rows)
report.write_table(mixture, TABLES, P.name, "data_pretraining_mixture")
display(mixture.style.format(precision=2).hide(axis="index"))
display(Markdown(
    f"At profile `{P.name}` pre-training uses "
    + ("every document" if LIMIT_DOCS is None else f"the first {LIMIT_DOCS:,} documents of each corpus")
    + f" ({mixture[mixture.split == 'train']['characters used (M)'].sum():,.1f} million training characters)."))

# %% [markdown]
# ## The tokenizer
#
# The paper uses GPT-2's vocabulary. Our models are orders of magnitude smaller, and an embedding
# table of that size would hold most of their parameters, so every profile trains its
# own byte-level BPE (Hugging Face `tokenizers`) on the start of the pre-training stream. Byte-level
# means any text can be encoded and decoded back exactly. Three special tokens are added: a
# separator between source and target, an end-of-text token that also separates documents in
# the pre-training stream, and a padding token. The tokenizer is cached under a key made of its
# settings and the data fingerprint.

# %%
tok = get_tokenizer(P.vocab_size, P.tokenizer_train_chars, limit_docs=LIMIT_DOCS)
gpt2_vocab = get_config("gpt2-small").vocab_size
n_fixed = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)
display(Markdown(
    f"GPT-2's vocabulary has {gpt2_vocab:,} tokens; with the small model's width, its embedding table alone "
    f"would have {gpt2_vocab * get_config(P.sizes[0]).n_embd:,} parameters. "
    f"Our vocabulary: {tok.vocab_size:,} tokens ({BYTE_ALPHABET_SIZE} bytes, {len(SPECIAL_TOKENS)} special tokens, "
    f"{tok.vocab_size - n_fixed:,} learned merges), "
    f"trained on {P.tokenizer_train_chars:,} characters; separator id {tok.sep_id}, end-of-text id {tok.eos_id}, "
    f"padding id {tok.pad_id}; fingerprint `{tok.fingerprint}`."))

# %% [markdown]
# ### The fine-tuning format
#
# Following the LoRA NLG setup that the paper's fine-tuning builds on, an example is the source, the
# separator, the target and the end-of-text token, and the loss is computed only on predicting the
# target and its end-of-text token: the model is never trained to reproduce the input. At test time
# the model receives the source and the separator and generates until end-of-text.

# %%
train_e2e = data.load_task("e2e", "train", limit=1)
source, target = data.column(train_e2e, "source")[0], data.column(train_e2e, "target")[0]
(example,) = data.encode_finetune(tok, train_e2e, max_len=10**6)  # no truncation, to show the round trip
assert tok.decode(example.input_ids) == data.format_example(source, target)  # exact round trip
pieces = tok.token_strings(example.input_ids)
shown = pd.DataFrame({"token": pieces, "id": example.input_ids,
                      "in loss": ["yes" if m else "" for m in example.loss_mask]})
display(Markdown(f"Text: `{data.format_example(source, target)}` → {len(example)} tokens, "
                 f"{sum(example.loss_mask)} of them in the loss. The tokens around the separator "
                 "(`Ġ` marks a leading space):"))
shown.iloc[max(0, example.n_source - 6): example.n_source + 8].T

# %% [markdown]
# ### Lengths in tokens and truncation
#
# An example may hold at most the profile's `max_len` tokens. When source, separator and target do
# not fit, the target keeps what the source leaves but at least half of the budget, and each is cut
# at its end (the target then loses its end-of-text token). Only the long BBC articles are ever cut.
# The figure uses a fixed random sample of training pairs per task.

# %%
SAMPLE = 400
fig, ax = plt.subplots(figsize=(8, 4))
trunc_rows = []
for name in data.TASKS:
    sample = data.load_task(name, "train", limit=SAMPLE)
    full = data.encode_finetune(tok, sample, max_len=10**9)  # untruncated lengths
    ax.hist([len(e) for e in full], bins=np.logspace(0.5, 4.5, 60), histtype="step", label=name)
    # What truncation to max_len keeps of each pair (target length includes its end-of-text token).
    kept = [data.truncation_lengths(e.n_source, len(e) - e.n_source - 1, P.finetune.max_len) for e in full]
    trunc_rows.append({"task": name, "pairs": len(full),
                       "median tokens": float(np.median([len(e) for e in full])),
                       "source cut": float(np.mean([k[0] < e.n_source for k, e in zip(kept, full)])),
                       "target cut": float(np.mean([k[1] < len(e) - e.n_source - 1 for k, e in zip(kept, full)]))})
ax.axvline(P.finetune.max_len, color="k", linestyle="--", label=f"max_len = {P.finetune.max_len}")
ax.set(xscale="log", xlabel="tokens per example (source + separator + target + end)", ylabel="training pairs",
       title=f"Fine-tuning example lengths ({SAMPLE} pairs per task, vocabulary {tok.vocab_size:,})")
ax.legend()
plt.show()
truncation = pd.DataFrame(trunc_rows)
report.write_table(truncation, TABLES, P.name, "data_truncation")
truncation.style.format({"median tokens": "{:.0f}", "source cut": "{:.1%}", "target cut": "{:.1%}"}).hide(axis="index")

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
lengths = np.array([len(e) for e in examples])


def padding_share(batches) -> float:
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1 - lengths.sum() / padded


bs = P.finetune.batch_size
bucketed = data.batch_order(lengths.tolist(), bs, seed=0, epoch=0)
order = np.random.default_rng(0).permutation(len(lengths))
plain = [order[i:i + bs] for i in range(0, len(order), bs)]
display(Markdown(
    f"On {len(examples):,} WebNLG training pairs with batches of {bs}, padding takes "
    f"{padding_share(plain):.0%} of the batch with plain shuffling and {padding_share(bucketed):.0%} "
    f"with length bucketing."))

# %% [markdown]
# ## The pre-training token stream
#
# For pre-training, the documents are tokenized once, each followed by the end-of-text token, into a
# single stream of 16-bit token ids, cached on disk. The stream is cut into non-overlapping windows
# of `seq_len + 1` tokens; a training sequence is a window without its last token and its target
# the window shifted by one. Each pass over the corpus visits the windows in a new order drawn from
# the run's seed and the pass number, and batch number *k* is a fixed function of *k*: a run that
# stops and resumes sees exactly the batches it would have seen. Here is the validation stream of
# this profile (the training stream is built in chapter 04, where its size and the number of passes
# each run makes are reported).

# %%
valid = data.pretraining_tokens(tok, "validation", limit_docs=LIMIT_DOCS)
valid_summary = data.pretraining_summary("validation", LIMIT_DOCS)
chars_per_token = valid_summary["characters"] / len(valid)
s = P.pretrain
x, y = data.packed_batch(valid, step=0, batch_size=2, seq_len=s.seq_len, seed=0)
assert (x[:, 1:] == y[:, :-1]).all()
display(Markdown(
    f"Validation stream: {len(valid):,} tokens from {valid_summary['documents']:,} documents, "
    f"{chars_per_token:.2f} characters per token; it holds {data.n_windows(valid, s.seq_len):,} windows of "
    f"{s.seq_len + 1} tokens. A batch is a pair of tensors of shape {tuple(x.shape)}. "
    f"The start of the first sequence of batch 0:\n\n> {tok.decode(x[0, :40].tolist())!r}"))

# %%
train_chars = mixture[mixture.split == "train"]["characters used (M)"].sum() * 1e6
estimated_train_tokens = train_chars / chars_per_token
budget_rows = []
for size in P.sizes:
    config = get_config(size, tok.vocab_size)
    tokens = s.tokens_per_param * num_params(config)
    if s.max_tokens is not None:
        tokens = min(tokens, s.max_tokens)
    tokens = int(tokens // (s.batch_size * s.seq_len)) * s.batch_size * s.seq_len
    budget_rows.append({"model": size, "parameters": num_params(config), "token budget": tokens,
                        "passes over the training stream (estimate)": tokens / estimated_train_tokens})
budgets = pd.DataFrame(budget_rows)
display(budgets.style.format({"passes over the training stream (estimate)": "{:.3g}"}).hide(axis="index"))
display(Markdown(
    f"The training stream of this profile should hold about {estimated_train_tokens / 1e6:,.1f} million tokens "
    f"(its {train_chars / 1e6:,.1f} million characters at the validation split's {chars_per_token:.2f} "
    f"characters per token). Passes above 1 mean a run sees documents more than once; chapter 04 "
    f"counts the exact number."))

# %% [markdown]
# How fast this is on two CPU cores (loading and tokenizing the whole training split the first time,
# and reading it back from the cache) is measured by `benchmarks/bench_data.py`.
