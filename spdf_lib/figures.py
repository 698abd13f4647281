"""What the teaching chapters (00-03 and 08) show: figures, display tables, code excerpts.

One function per figure. A figure function returns a matplotlib ``Figure`` with labelled axes and
units; the chapter captions it ("Figure N.M: ...") in the markdown cell that follows. Table
functions return a pandas ``Styler`` without the index (:func:`show_table`) or a ``DataFrame``
that a chapter shows that way. :func:`source_excerpt` shows the library's own code, read from the
function itself, so the code a chapter explains is the code that runs.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "SOURCE_PRUNED_SPARSITY", "show_table", "grouped_columns", "markdown_table", "source_excerpt",
    "chapters_table", "profiles_table", "level_label", "network_figure", "parameter_table", "upkeep_table",
    "flop_unit", "paper_flops_figure", "finetune_share_figure", "runs_flops_figure", "forward_share_table",
    "size_trend_sentence", "example_markdown", "references_and_lengths_figure", "fingerprint_table",
    "data_differences_table", "data_quality_table", "mixture_table", "tokenizer_table", "budget_table",
    "loss_mask_table", "example_lengths_figure", "truncation_table", "padding_share",
    "pruning_iterations_table", "pruning_figure", "pruning_findings", "full_scale_comparison",
]


# The iterative-pruning result of the Cerebras blog "Harnessing the Power of Sparsity for Large GPT
# AI Models" (Sean Lie, 28 November 2022): GPT-3 XL pruned to 84% sparsity (chapter 08).
SOURCE_PRUNED_SPARSITY = 0.84


# ----------------------------------------------------------------------------------------- tables

def show_table(frame: pd.DataFrame, formats: Mapping[str, str] | str | None = None,
               precision: int | None = None):
    """``frame`` for display: no index, every cell in full (long text wraps), numbers formatted.

    ``formats`` maps column names (or, for grouped headers, column tuples) to format strings such
    as ``"{:,}"``; ``precision`` applies to the other float columns.
    """
    styler = frame.style.hide(axis="index").format(precision=precision, thousands=",", escape="html")
    if formats:  # columns not named in ``formats`` keep the default format set here
        styler = styler.format(formats, precision=precision, thousands=",", escape="html")
    return styler.set_properties(**{"white-space": "normal", "text-align": "left"})


def grouped_columns(frame: pd.DataFrame, groups: Mapping[str, Sequence[str]],
                    names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with two header rows: each column under its group (``""`` for ungrouped ones), the
    columns of a group side by side where its first column stands.

    ``groups`` maps a group heading to the columns it spans; ``names`` renames columns within
    their group (e.g. ``"pretrain FLOP"`` shown as ``"pre-training"`` under ``"training FLOPs"``).
    """
    names = dict(names or {})
    owner = {column: group for group, columns in groups.items() for column in columns}
    missing = [c for c in owner if c not in frame.columns]
    if missing:
        raise ValueError(f"grouped_columns: no column {missing} in the frame (it has {list(frame.columns)})")
    order = []  # each group's columns side by side, where the group's first column stands
    for c in frame.columns:
        if c in order:
            continue
        order += list(groups[owner[c]]) if c in owner else [c]
    out = frame[order].copy()
    out.columns = pd.MultiIndex.from_tuples([(owner.get(c, ""), names.get(c, c)) for c in order])
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame`` (no index; ``|`` in cells escaped), for short text tables."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


# ---------------------------------------------------------------------------------- code excerpts

def source_excerpt(obj, first: str, last: str | None = None) -> str:
    """Markdown: the lines of ``obj``'s source from the line containing ``first`` to the one
    containing ``last`` (the whole object when ``first`` is empty), with where they come from.

    A marker that is not found raises ValueError naming the function, so a chapter whose excerpt
    no longer matches the library fails instead of showing stale code.
    """
    lines, start_line = inspect.getsourcelines(obj)
    name = f"{obj.__module__}.{obj.__qualname__}"
    if first:
        begin = next((i for i, line in enumerate(lines) if first in line), None)
        if begin is None:
            raise ValueError(f"source_excerpt: {name} has no line containing {first!r}")
        end = begin if last is None else next((i for i in range(begin, len(lines)) if last in lines[i]), None)
        if end is None:
            raise ValueError(f"source_excerpt: {name} has no line containing {last!r} after {first!r}")
    else:
        begin, end = 0, len(lines) - 1
    code = textwrap.dedent("".join(lines[begin:end + 1])).rstrip()
    path = Path(inspect.getsourcefile(obj)).as_posix()
    where = path[path.rindex("spdf_lib/"):] if "spdf_lib/" in path else Path(path).name
    return (f"From `{name}` (`{where}`, lines {start_line + begin} to {start_line + end}):\n\n"
            f"```python\n{code}\n```")


# -------------------------------------------------------------------------------------- chapter 00

def chapters_table(chapters) -> pd.DataFrame:
    """One row per chapter: number, title, source file (chapter 00)."""
    return pd.DataFrame([{"chapter": c.number, "title": c.short_title, "source": f"notebooks/{c.path.name}"}
                         for c in chapters])


def _wall_time(tables_root: Path, name: str) -> str:
    import json

    path = Path(tables_root) / name / "wall_times.json"
    if not path.exists():
        return "not yet measured"
    record = json.loads(path.read_text(encoding="utf-8"))
    seconds = float(record["total_s"])
    text = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
    machine = record.get("machine")
    return f"{text} ({machine})" if machine else text


def profiles_table(profiles: Mapping[str, object], tables_root: Path) -> pd.DataFrame:
    """The profiles side by side, one row per setting, read from ``spdf_lib.profiles`` (chapter 00).

    The wall time comes from ``tables/<profile>/wall_times.json`` where a complete run recorded it.
    """
    columns = {}
    for name, p in profiles.items():
        pre = p.pretrain
        tokens = f"{pre.tokens_per_param:g} per parameter"
        if pre.max_tokens:
            tokens += f", at most {pre.max_tokens:,}"
        columns[name] = {
            "purpose": p.description,
            "models": ", ".join(p.sizes),
            "pre-training sparsity": ", ".join(f"{s:.0%}" for s in p.sparsity_levels),
            "pre-training seeds per model": str(len(p.pretrain_seeds)),
            "fine-tuning seeds per model": str(len(p.finetune_seeds)),
            "vocabulary": f"{p.vocab_size:,} tokens",
            "pre-training tokens per run": tokens,
            "tasks": ", ".join(p.task_names),
            "wall time of a complete run": _wall_time(tables_root, name),
        }
    settings = list(next(iter(columns.values())))
    return pd.DataFrame([{"setting": s, **{name: col[s] for name, col in columns.items()}} for s in settings])


# -------------------------------------------------------------------------------------- chapter 01

def level_label(level: float) -> str:
    """``dense`` for 0, else e.g. ``75% sparse``."""
    return "dense" if level == 0 else f"{level:.0%} sparse"


def network_figure(widths: Sequence[int], levels: Sequence[float], seed: int = 0):
    """Figure (chapter 01): a small network drawn once per sparsity level, one line per kept weight.

    Each layer's mask is :func:`spdf_lib.sparsity.random_mask` (exact count, True = kept), drawn
    from one generator seeded with ``seed``, as the library masks a model.
    """
    import matplotlib.pyplot as plt
    import torch

    from .sparsity import random_mask

    fig, axes = plt.subplots(1, len(levels), figsize=(5.5 * len(levels), 4), squeeze=False)
    xs = np.arange(len(widths))
    ys = [np.linspace(-(w - 1) / 2, (w - 1) / 2, w) for w in widths]
    for ax, level in zip(axes[0], levels):
        gen = torch.Generator().manual_seed(seed)
        kept = total = 0
        for layer, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            mask = random_mask((a, b), level, gen)
            for i, j in mask.nonzero().tolist():
                ax.plot([xs[layer], xs[layer + 1]], [ys[layer][i], ys[layer + 1][j]], color="tab:blue", lw=0.8)
            kept += int(mask.sum())
            total += mask.numel()
        for x, y in zip(xs, ys):
            ax.scatter(np.full_like(y, x), y, s=140, color="white", edgecolors="black", zorder=3)
        ax.set_xticks(xs, ["input"] + [f"hidden {i}" for i in range(1, len(widths) - 1)] + ["output"])
        ax.set_yticks([])
        ax.set_xlabel("layer")
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"{level_label(level)}: {kept} of {total} weights kept")
    fig.tight_layout()
    return fig


def _dense_role(name: str) -> str:
    if "wte" in name:
        return "dense: token embedding (and the tied LM head)"
    if "wpe" in name:
        return "dense: position embedding"
    if "ln_" in name:
        return "dense: LayerNorm"
    if name.endswith("bias"):
        return "dense: bias"
    return "dense"


def parameter_table(model, selected: Iterable[str]) -> pd.DataFrame:
    """Every parameter of ``model`` with its shape, size and whether SPDF sparsifies it (chapter 01)."""
    chosen = set(selected)
    return pd.DataFrame([{"parameter": n, "shape": " x ".join(map(str, p.shape)), "entries": p.numel(),
                          "role": "sparsified" if n in chosen else _dense_role(n)}
                         for n, p in model.named_parameters()])


def upkeep_table(models: Mapping[str, object], masks: Mapping[str, "torch.Tensor"]) -> pd.DataFrame:
    """After training, what became of the entries ``masks`` zeroed, one row per model (chapter 01).

    Columns: masks still attached, masked entries that are nonzero (count and share), and the root
    mean square of those entries relative to that of the kept entries (0 = still exactly zero).
    """
    import torch

    from .sparsity import masks as attached

    n_masked = sum(int((~k).sum()) for k in masks.values())
    rows = []
    for label, model in models.items():
        dropped = torch.cat([model.get_parameter(n).detach()[~k] for n, k in masks.items()])
        kept = torch.cat([model.get_parameter(n).detach()[k] for n, k in masks.items()])
        nonzero = int((dropped != 0).sum())
        rows.append({"model": label, "masks attached": len(attached(model)),
                     "masked entries": n_masked, "of them nonzero": nonzero,
                     "share nonzero": nonzero / n_masked,
                     "RMS masked / RMS kept": float(dropped.pow(2).mean().sqrt() / kept.pow(2).mean().sqrt())})
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------- chapter 02

def flop_unit(value: float) -> tuple[float, str]:
    """The largest of GFLOP ... EFLOP that keeps ``value`` at or above 1, as (scale, name)."""
    for scale, name in ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP")):
        if value >= scale:
            return scale, name
    return 1.0, "FLOP"


def _stacked_bars(ax, labels, pre, fine, unit: str, title: str) -> None:
    x = np.arange(len(labels))
    ax.bar(x, pre, color="tab:blue", label="pre-training")
    ax.bar(x, fine, bottom=pre, color="tab:orange", label="fine-tuning (dense)")
    for xi, p, f in zip(x, pre, fine):
        ratio = (pre[0] + fine[0]) / (p + f)
        ax.text(xi, p + f, f"{ratio:.2f}x fewer" if ratio > 1.0001 else "baseline", ha="center", va="bottom")
    ax.set_xticks(x, labels)
    ax.set_xlabel("pre-training sparsity")
    ax.set_ylabel(f"training FLOPs ({unit})")
    ax.set_title(title)
    ax.set_ylim(0, max(p + f for p, f in zip(pre, fine)) * 1.2)


def paper_flops_figure(pipelines: Mapping[float, object], published_reduction: float):
    """Figure (chapter 02): the blog's Figure 2 rebuilt, GPT-3 XL pipelines as stacked bars."""
    import matplotlib.pyplot as plt

    levels = list(pipelines)
    dense_total = pipelines[levels[0]].total
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _stacked_bars(ax, [level_label(s) for s in levels], np.array([pipelines[s].pretrain / 1e18 for s in levels]),
                  np.array([pipelines[s].finetune / 1e18 for s in levels]), "EFLOP, 10^18 FLOPs",
                  "GPT-3 XL: sparse pre-training, then dense fine-tuning")
    ax.axhline(dense_total / published_reduction / 1e18, color="black", ls="--", lw=1,
               label=f"published: {published_reduction}x fewer than dense")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def finetune_share_figure(config, pretrain_tokens: float, ours: float, sparsity: float,
                          published_reduction: float, general_ratio: float = 25.0):
    """Figure (chapter 02): the pipeline's FLOP reduction against the size of the fine-tuning phase."""
    import matplotlib.pyplot as plt

    from .flops import flop_reduction

    fractions = np.logspace(-4, -1, 61)
    ratios = [flop_reduction(config, pretrain_tokens, f * pretrain_tokens, sparsity) for f in fractions]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogx(fractions, ratios, color="tab:red", label=f"{sparsity:.0%} sparse pre-training")
    ax.axhline(published_reduction, color="black", ls="--", lw=1, label=f"published {published_reduction}x")
    ax.axvline(ours, color="tab:green", ls=":", label=f"our assumption ({ours:.2%})")
    ax.axvline(1 / general_ratio, color="tab:gray", ls=":", label=f"1/{general_ratio:g} of pre-training")
    ax.set_xlabel("fine-tuning tokens / pre-training tokens (ratio, log scale)")
    ax.set_ylabel("total FLOP reduction vs dense (times)")
    ax.set_title("GPT-3 XL: reduction against the size of the fine-tuning phase")
    ax.legend()
    fig.tight_layout()
    return fig


def runs_flops_figure(table: pd.DataFrame, profile_name: str):
    """Figure (chapter 02): training FLOPs of this book's runs, one panel per model size.

    ``table`` has the columns ``size``, ``pre-training``, ``pretrain FLOP``, ``finetune FLOP``,
    ``total FLOP`` (one row per pre-training sparsity, dense first).
    """
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(table["size"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        part = table[table["size"] == size]
        scale, unit = flop_unit(part["total FLOP"].max())
        _stacked_bars(ax, list(part["pre-training"]), part["pretrain FLOP"].to_numpy() / scale,
                      part["finetune FLOP"].to_numpy() / scale,
                      f"{unit}, 10^{round(math.log10(scale))} FLOPs" if scale > 1 else unit,
                      f"{size} ({profile_name} profile)")
    axes[0][0].legend(loc="upper right")
    fig.tight_layout()
    return fig


def forward_share_table(configs: Mapping[str, object], level: float,
                        seq_lens: Mapping[str, int | None]) -> pd.DataFrame:
    """Per model: the sparsifiable linears' share of the dense forward pass and what ``level`` saves."""
    from .flops import forward_flops_per_token

    rows = []
    for name, config in configs.items():
        dense = forward_flops_per_token(config, 0.0, seq_lens.get(name))
        sparse = forward_flops_per_token(config, level, seq_lens.get(name))
        rows.append({"model": name, "context (tokens)": seq_lens.get(name) or config.block_size,
                     "linears / dense forward": dense.linear / dense.total,
                     "attention / dense forward": dense.attention / dense.total,
                     "LM head / dense forward": dense.lm_head / dense.total,
                     f"forward FLOPs saved at {level:.0%}": 1 - sparse.total / dense.total})
    return pd.DataFrame(rows)


def size_trend_sentence(shares: pd.DataFrame) -> str:
    """Whether the forward saving grows with model size, from :func:`forward_share_table`'s rows
    (ordered from the smallest model to the largest)."""
    saved = shares.iloc[:, -1].tolist()
    if all(a < b for a, b in zip(saved, saved[1:])):
        return ("From the smallest model to GPT-3 XL the saving grows with model size: the parts that sparsity "
                "cannot touch (attention over the sequence, the LM head) shrink relative to the weight matrices "
                "as models get wider.")
    return ("The saving does not grow steadily with model size here: the vocabulary and the context length of "
            "each model shift the balance between the sparse and the dense parts.")


# -------------------------------------------------------------------------------------- chapter 03

def example_markdown(name: str, index: int) -> str:
    """One test input of task ``name`` with its source and every reference, in full (chapter 03)."""
    from . import data

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

    from . import data

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
    from . import data

    rows = [{"data set": name, "fingerprint": data.task_fingerprint(name), "files": ", ".join(data.task_files(name))}
            for name in data.TASKS]
    rows += [{"data set": f"pre-training ({split})", "fingerprint": data.pretraining_fingerprint(split),
              "files": ", ".join(data.pretraining_files(split))} for split in data.PRETRAIN_SPLITS]
    return pd.DataFrame(rows)


def data_differences_table(overview: pd.DataFrame) -> pd.DataFrame:
    """The numbers behind the three substitutions of chapter 03 (the Pile, Curation Corpus, DART
    train), computed from the data files; ``overview`` is the frame of ``data.split_statistics``."""
    from . import data

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
    from . import data

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
    from . import data

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
    from .data import BYTE_ALPHABET_SIZE, SPECIAL_TOKENS
    from .model import get_config

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
    from .model import num_params
    from .runs import planned_tokens

    rows = []
    for run in plan:
        tokens = planned_tokens(run.model, run.settings)
        rows.append({"model": run.size, "parameters": num_params(run.model), "token budget": tokens,
                     "passes over the training stream (estimate)": tokens / train_tokens_estimate})
    return pd.DataFrame(rows)


def loss_mask_table(tok, example, window: tuple[int, int]) -> pd.DataFrame:
    """Positions ``window`` of one fine-tuning example as the model is trained on it (chapter 03):
    the input token, and the token it must predict or "ignored" where the target is -100."""
    from .data import collate_finetune

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
    from .data import truncation_lengths

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


# -------------------------------------------------------------------------------------- chapter 08

def pruning_iterations_table(iterations: pd.DataFrame):
    """``pruning.iterations_frame`` for display (chapter 08): sparsity by group under one heading,
    parameters under another, every cell in full and no index."""
    group_columns = [c for c in iterations.columns if c.startswith("sparsity ")]
    shown = grouped_columns(
        iterations, {"sparsity": ["sparsity", *group_columns], "parameters": ["params (dense)", "params (nonzero)"]},
        names={"sparsity": "all pruned", **{c: c.removeprefix("sparsity ") for c in group_columns},
               "params (dense)": "stored dense", "params (nonzero)": "nonzero", "val_ppl": "validation perplexity",
               "retrain_tokens": "retraining tokens so far"})
    formats = {c: "{:.2%}" for c in shown.columns if c[0] == "sparsity"}
    formats |= {c: "{:,}" for c in shown.columns if c[0] == "parameters" or c[1] == "retraining tokens so far"}
    formats |= {("", "validation perplexity"): "{:.2f}", ("", "inference MFLOP/token"): "{:.2f}"}
    return show_table(shown, formats)


def pruning_figure(iterations: pd.DataFrame, baselines: pd.DataFrame):
    """Figure (chapter 08). Left: what pruning saves, measured on this model at every iteration and
    computed for GPT-3 XL, against the bound ``1 / (1 - s)`` of a model whose every weight is pruned.
    Right: validation perplexity along the iterative path, with every baseline at its sparsity.

    ``iterations`` has the columns of ``pruning.iterations_frame``; ``baselines`` those of
    ``pruning.baselines_frame`` (``method``, ``sparsity``, ``val_ppl``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from .flops import inference_flops_per_token, param_memory
    from .model import get_config
    from .pruning import full_scale_arithmetic

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6))
    s = iterations["sparsity"].to_numpy()
    first = iterations.iloc[0]
    left.plot(100 * s, first["inference MFLOP/token"] / iterations["inference MFLOP/token"], "o-",
              color="tab:blue", label="inference FLOPs, this model (measured)")
    left.plot(100 * s, first["params (nonzero)"] / iterations["params (nonzero)"], "s-",
              color="tab:orange", label="nonzero parameters, this model (measured)")
    grid = np.linspace(0, max(s.max(), SOURCE_PRUNED_SPARSITY), 50)
    xl = get_config("gpt3-xl")
    left.plot(100 * grid, [inference_flops_per_token(xl) / inference_flops_per_token(xl, g) for g in grid], "--",
              color="tab:blue", label="inference FLOPs, GPT-3 XL (computed)")
    left.plot(100 * grid, [param_memory(xl, g).reduction for g in grid], "--", color="tab:orange",
              label="nonzero parameters, GPT-3 XL (computed)")
    left.plot(100 * grid, 1 / (1 - grid), ":", color="black", label="1 / (1 - s): every weight pruned")
    published = full_scale_arithmetic(SOURCE_PRUNED_SPARSITY)["published"].tolist()
    for value, color, what in zip(published, ("tab:blue", "tab:orange"), ("inference FLOPs", "parameters")):
        left.plot(100 * SOURCE_PRUNED_SPARSITY, value, "*", color=color, markersize=13, markeredgecolor="black",
                  linestyle="none", label=f"published, GPT-3 XL: {what}")
    left.set(xlabel="sparsity of the pruned matrices (%)", ylabel="dense / pruned (times)",
             title="What pruning saves")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    path_ppl = iterations["val_ppl"].to_numpy()
    right.plot(100 * s, path_ppl, "o-", color="tab:blue",
               label="iterative magnitude pruning, retrained between steps (dense model at 0%)")
    markers = iter(["^", "v", "P", "X", "D", "*"])
    for row in baselines.itertuples(index=False):
        if np.any(np.isclose(s, row.sparsity) & np.isclose(path_ppl, row.val_ppl)):
            continue  # a point of the iterative path itself (the dense start, the iterative end)
        right.plot(100 * row.sparsity, row.val_ppl, next(markers, "o"), markersize=9, linestyle="none",
                   label=textwrap.fill(str(row.method), 60))
        right.annotate(f"{row.val_ppl:.1f}", (100 * row.sparsity, row.val_ppl), xytext=(8, 0),
                       textcoords="offset points", va="center", fontsize=8)
    right.annotate(f"{path_ppl[-1]:.1f}", (100 * s[-1], path_ppl[-1]), xytext=(-8, 6), textcoords="offset points",
                   ha="right", fontsize=8)
    right.set(yscale="log", xlim=(-3, 100 * s.max() + 12), xlabel="sparsity of the pruned matrices (%)",
              ylabel="validation perplexity (log scale)", title="Quality against sparsity")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    low, high = right.get_ylim()
    right.yaxis.set_major_formatter(plain)
    right.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return fig


def pruning_findings(iterations: pd.DataFrame, baselines: pd.DataFrame, config, retrain_share: float) -> str:
    """Computed statements about the pruning run (chapter 08); ``retrain_share`` is the retraining
    budget of one iteration as a fraction of the dense model's pre-training budget."""
    from .flops import sparsifiable_weights
    from .model import get_config, num_params

    first, last = iterations.iloc[0], iterations.iloc[-1]
    by_method = baselines.set_index("method")["val_ppl"]
    best = by_method.iloc[1:].idxmin()
    dense_share = 1 - sparsifiable_weights(config) / num_params(config)
    xl = get_config("gpt3-xl")
    dense_share_xl = 1 - sparsifiable_weights(xl) / num_params(xl)
    return "\n\n".join([
        f"Iterative pruning reaches {last['sparsity']:.1%} sparsity with validation perplexity "
        f"{last['val_ppl']:.2f}, against {first['val_ppl']:.2f} for the dense model "
        f"({last['val_ppl'] / first['val_ppl'] - 1:+.1%}). Each retraining phase is {retrain_share:.1%} of the "
        f"dense model's pre-training budget.",
        f"Inference FLOPs per token fall {first['inference MFLOP/token'] / last['inference MFLOP/token']:.2f}x and "
        f"nonzero parameters {first['params (nonzero)'] / last['params (nonzero)']:.2f}x. The matrices that are "
        f"never pruned (embeddings, LayerNorms, biases; the LM head is the tied embedding) hold "
        f"{dense_share:.1%} of this model's parameters and {dense_share_xl:.1%} of GPT-3 XL's.",
        f"Among the sparse models the lowest validation perplexity is that of: {best} ({by_method[best]:.2f}).",
    ])


def full_scale_comparison(iterations: pd.DataFrame, source_sparsity: float = SOURCE_PRUNED_SPARSITY) -> pd.DataFrame:
    """This run's measured reductions beside GPT-3 XL's computed ones at the same sparsity, and at
    the source's sparsity beside its published figures (chapter 08)."""
    from .pruning import full_scale_arithmetic

    first, last = iterations.iloc[0], iterations.iloc[-1]
    reached = float(last["sparsity"])
    at_reached = full_scale_arithmetic(reached)
    at_source = full_scale_arithmetic(source_sparsity)
    measured = [first["inference MFLOP/token"] / last["inference MFLOP/token"],
                first["params (nonzero)"] / last["params (nonzero)"]]
    return pd.DataFrame({
        "quantity (dense / pruned)": at_reached["quantity"],
        f"this model at {reached:.1%} (measured)": [round(m, 2) for m in measured],
        f"GPT-3 XL at {reached:.1%} (computed)": at_reached["ours"],
        f"GPT-3 XL at {source_sparsity:.0%} (computed)": at_source["ours"],
        f"published, GPT-3 XL at {source_sparsity:.0%}": at_source["published"],
    })
