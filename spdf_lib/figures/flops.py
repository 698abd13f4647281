"""Chapter 02 (counting FLOPs): training FLOPs as stacked bars, the reduction against the size of the
fine-tuning phase, and the sparsifiable share of the forward pass."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from .weight_sparsity import level_label

__all__ = ["flop_unit", "paper_flops_figure", "finetune_share_figure", "runs_flops_figure", "forward_share_table",
           "size_trend_sentence"]


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

    from ..flops import flop_reduction

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
    from ..flops import forward_flops_per_token

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
