"""Chapter 01 (weight sparsity): a masked network drawn, a model's parameters and what became of the
entries a mask zeroed after training."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["level_label", "network_figure", "parameter_table", "upkeep_table"]


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

    from ..sparsity import random_mask

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

    from ..sparsity import masks as attached

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
