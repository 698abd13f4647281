"""Chapter 03 (data): examples, fingerprints, the substitutions and data quality, the mixture, the
tokenizer, token budgets, the loss mask, example lengths, truncation and padding."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["example_markdown", "references_and_lengths_figure", "fingerprint_table", "data_differences_table",
           "data_quality_table", "mixture_table", "tokenizer_table", "budget_table", "loss_mask_table",
           "example_lengths_figure", "truncation_table", "padding_share"]


def example_markdown(name: str, index: int) -> str:
    """One test input of task ``name`` with its source and every reference, in full (chapter 03)."""
    from .. import data

    row = data.load_task(name, "test")[index]
    extra = ", ".join(f"{k} {row[k]}" for k in ("category", "n_triples", "seen", "origin") if k in row)
    source = row["source"].replace("\n", " ")
    lines = [f"**{name}, test input {index}**" + (f" ({extra})" if extra else ""), "", "Source:", "",
             f"> {source}", "", f"Its {len(row['references'])} reference(s):", ""]
    lines += [f"- {ref}" for ref in row["references"]]
    return "\n".join(lines)


def references_and_lengths_figure(tasks: Sequence[str], multi_reference: Sequence[str]):
    """Figure (chapter 03): references per test input (left) and source and target lengths in
    words on the training split (right), sources and targets side by side per task."""
    import matplotlib.pyplot as plt
    from collections import Counter

    from .. import data

    fig, (ax_refs, ax_len) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name in multi_reference:
        counts = Counter(len(r) for r in data.column(data.load_task(name, "test"), "references"))
        xs = sorted(counts)
        ax_refs.plot(xs, [counts[x] for x in xs], marker="o", label=name)
    ax_refs.set(xscale="log", yscale="log", xlabel="references per test input (count, log scale)",
                ylabel="test inputs (count, log scale)", title="References per test input")
    ax_refs.legend()
    positions = np.arange(len(tasks))
    for offset, column, color in ((-0.2, "source", "tab:blue"), (0.2, "target", "tab:orange")):
        values = [[len(s.split()) for s in data.column(data.load_task(t, "train"), column)] for t in tasks]
        parts = ax_len.boxplot(values, positions=positions + offset, widths=0.35, showfliers=False,
                               patch_artist=True, manage_ticks=False)
        for box in parts["boxes"]:
            box.set(facecolor=color, alpha=0.6)
        ax_len.plot([], [], color=color, lw=8, alpha=0.6, label=column)
    ax_len.set_xticks(positions, tasks)
    ax_len.set(yscale="log", xlabel="task", ylabel="length (words, log scale)",
               title="Source and target lengths, training split")
    ax_len.legend()
    fig.tight_layout()
    return fig


def fingerprint_table() -> pd.DataFrame:
    """Every data set, its fingerprint and its files (chapter 03)."""
    from .. import data

    rows = [{"data set": name, "fingerprint": data.task_fingerprint(name), "files": ", ".join(data.task_files(name))}
            for name in data.TASKS]
    rows += [{"data set": f"pre-training ({split})", "fingerprint": data.pretraining_fingerprint(split),
              "files": ", ".join(data.pretraining_files(split))} for split in data.PRETRAIN_SPLITS]
    return pd.DataFrame(rows)


def data_differences_table(overview: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the three substitutions of chapter 03 (the Pile, Curation Corpus, DART
    train), computed from the data files; ``overview`` is the frame of ``data.split_statistics``."""
    from .. import data

    recorded = {c: data.corpus_sources(c)["splits"]["train"] for c in data.PRETRAIN_CORPORA}
    chars = {c: r["text_chars"] for c, r in recorded.items()}
    total = sum(chars.values())
    by = overview.set_index(["task", "split"])
    bbc = by.loc["summarization"]
    dart_train, dart_val = data.dart_dev_partition()
    rows = [
        ("the Pile → our mixture", "training characters", f"{total / 1e6:,.0f} million"),
        ("the Pile → our mixture", "training documents", f"{sum(r['documents'] for r in recorded.values()):,}"),
        *[("the Pile → our mixture", f"share of the characters: {c}", f"{n / total:.0%}") for c, n in chars.items()],
        ("Curation Corpus → BBC News Summary", "articles: training, validation, test",
         f"{int(bbc.loc['train', 'rows']):,}, {int(bbc.loc['validation', 'rows']):,}, {int(bbc.loc['test', 'inputs']):,}"),
        ("Curation Corpus → BBC News Summary", "summary length / article length (training, mean words)",
         f"{bbc.loc['train', 'target words (mean)'] / bbc.loc['train', 'source words (mean)']:.0%}"),
        ("DART train → DART dev", "dev triple sets: our training, our validation",
         f"{len(dart_train):,}, {len(dart_val):,} ({data.DART_VALIDATION_FRACTION:.0%} held out)"),
        ("DART train → DART dev", "our training pairs", f"{int(by.loc[('dart', 'train'), 'rows']):,}"),
    ]
    return pd.DataFrame(rows, columns=["substitution", "quantity", "value"])


def data_quality_table(limit_docs: int | None) -> pd.DataFrame:
    """Counted skips and repairs of every task, and the Gutenberg licence text removed (chapter 03)."""
    from .. import data

    rows = [{"data set": name, "split": split, "what": what, "count": count}
            for name in data.TASKS for split, notes in data.data_quality(name).items()
            for what, count in notes.items() if count]
    gutenberg = data.pretraining_summary("train", limit_docs)["corpora"]["gutenberg"]
    rows += [{"data set": "pre-training", "split": "train", "what": what, "count": gutenberg[key]} for what, key in (
        ("Gutenberg headers removed (*** START marker)", "header_marker_stripped"),
        ("Gutenberg headers removed (older 'small print' form)", "header_small_print_stripped"),
        ("Gutenberg footers removed", "footer_stripped"))]
    return pd.DataFrame(rows)


def mixture_table(limit_docs: int | None) -> pd.DataFrame:
    """Documents and characters per corpus and split: in the files, and used at ``limit_docs`` (chapter 03)."""
    from .. import data

    rows = []
    for split in data.PRETRAIN_SPLITS:
        used = data.pretraining_summary(split, limit_docs)
        for corpus in data.PRETRAIN_CORPORA:
            recorded = data.corpus_sources(corpus)["splits"]["train" if split == "train" else "valid"]
            rows.append({"split": split, "corpus": corpus, "documents in file": recorded["documents"],
                         "characters in file (M)": recorded["text_chars"] / 1e6,
                         "documents used": used["corpora"][corpus]["documents"],
                         "characters used (M)": used["corpora"][corpus]["characters"] / 1e6})
    return pd.DataFrame(rows)


def tokenizer_table(tok, small_width: int, train_chars: int) -> pd.DataFrame:
    """The tokenizer's vocabulary and special ids beside GPT-2's vocabulary (chapter 03)."""
    from ..data import BYTE_ALPHABET_SIZE, SPECIAL_TOKENS
    from ..model import get_config

    gpt2_vocab = get_config("gpt2-small").vocab_size
    rows = [("GPT-2 vocabulary", f"{gpt2_vocab:,} tokens"),
            ("GPT-2's embedding table at the small model's width", f"{gpt2_vocab * small_width:,} parameters"),
            ("our vocabulary", f"{tok.vocab_size:,} tokens"),
            ("of which bytes", f"{BYTE_ALPHABET_SIZE}"),
            ("of which special tokens", f"{len(SPECIAL_TOKENS)}: " + ", ".join(SPECIAL_TOKENS)),
            ("of which learned merges", f"{tok.vocab_size - BYTE_ALPHABET_SIZE - len(SPECIAL_TOKENS):,}"),
            ("trained on", f"{train_chars:,} characters"),
            ("separator, end-of-text and padding ids", f"{tok.sep_id}, {tok.eos_id}, {tok.pad_id}"),
            ("fingerprint", tok.fingerprint)]
    return pd.DataFrame(rows, columns=["", "value"])


def budget_table(plan: Iterable[object], train_tokens_estimate: float) -> pd.DataFrame:
    """Per model size: parameters, the planned pre-training tokens (``runs.planned_tokens``) and the
    passes over the training stream they make, estimated from its size (chapter 03)."""
    from ..model import num_params
    from ..runs import planned_tokens

    rows = []
    for run in plan:
        tokens = planned_tokens(run.model, run.settings)
        rows.append({"model": run.size, "parameters": num_params(run.model), "token budget": tokens,
                     "passes over the training stream (estimate)": tokens / train_tokens_estimate})
    return pd.DataFrame(rows)


def loss_mask_table(tok, example, window: tuple[int, int]) -> pd.DataFrame:
    """Positions ``window`` of one fine-tuning example as the model is trained on it (chapter 03):
    the input token, and the token it must predict or "ignored" where the target is -100."""
    from ..data import collate_finetune

    idx, targets = collate_finetune([example], tok.pad_id)
    lo, hi = max(0, window[0]), min(idx.shape[1], window[1])
    inputs, labels = idx[0, lo:hi].tolist(), targets[0, lo:hi].tolist()
    return pd.DataFrame({"position": range(lo, hi), "input token": tok.token_strings(inputs),
                         "predicts": [tok.token_strings([t])[0] if t != -100 else "ignored (-100)" for t in labels],
                         "in the loss": ["yes" if t != -100 else "no" for t in labels]})


def example_lengths_figure(lengths: Mapping[str, Sequence[int]], max_len: int, vocab_size: int):
    """Figure (chapter 03): the distribution of fine-tuning example lengths in tokens per task."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, values in lengths.items():
        ax.hist(values, bins=np.logspace(0.5, 4.5, 60), histtype="step", label=f"{name} ({len(values)} pairs)")
    ax.axvline(max_len, color="k", linestyle="--", label=f"max_len = {max_len}")
    ax.set(xscale="log", xlabel="tokens per example (source + separator + target + end; log scale)",
           ylabel="training pairs (count)", title=f"Fine-tuning example lengths (vocabulary {vocab_size:,})")
    ax.legend()
    fig.tight_layout()
    return fig


def truncation_table(examples: Mapping[str, Sequence[object]], max_len: int) -> pd.DataFrame:
    """Per task, what truncation to ``max_len`` would cut from untruncated examples (chapter 03)."""
    from ..data import truncation_lengths

    rows = []
    for name, full in examples.items():
        kept = [truncation_lengths(e.n_source, len(e) - e.n_source - 1, max_len) for e in full]
        rows.append({"task": name, "pairs": len(full), "median tokens": float(np.median([len(e) for e in full])),
                     "source cut": float(np.mean([k[0] < e.n_source for k, e in zip(kept, full)])),
                     "target cut": float(np.mean([k[1] < len(e) - e.n_source - 1 for k, e in zip(kept, full)]))})
    return pd.DataFrame(rows)


def padding_share(lengths: Sequence[int], batches: Iterable[Sequence[int]]) -> float:
    """Share of a padded batch's token slots that are padding, over ``batches`` of example indices."""
    lengths = np.asarray(lengths)
    padded = sum(len(b) * lengths[list(b)].max() for b in batches)
    return 1 - lengths.sum() / padded
