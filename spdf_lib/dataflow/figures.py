"""The figures of chapter 07, one function each.

Every function returns a matplotlib ``Figure`` with labelled axes and units and its legend inside
the figure's width; the chapter numbers and captions each one in the markdown cell that follows.
Results measured or modelled at different token counts are drawn in separate panels.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .bandwidth import MemorySystem
from .findings import SpeedupCurves
from .simulator import LayerReport

IDEAL, SIMULATED, ROOFLINE = "black", "tab:blue", "tab:red"
KERNEL_STYLE = {"csr": ("tab:green", "s"), "2:4": ("tab:purple", "^")}  # measured kernel -> colour, marker
SYSTEM_COLOURS = ("tab:red", "tab:blue")


def pe_work_figure(layer: LayerReport, sparsity: float):
    """Busy cycles of every PE for one simulated layer: the slowest PE sets the layer's time."""
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    image = ax.imshow(layer.cycles_per_pe.numpy(), cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="busy cycles of the PE (cycles)")
    ax.set_xlabel("PE column (index of the input-feature block)")
    ax.set_ylabel("PE row (index of the output-feature block)")
    ax.set_title(f"{layer.name} at {sparsity:.0%} sparsity, {layer.tokens} tokens: work per PE\n"
                 f"slowest PE {layer.max_pe_cycles:,} cycles, mean {layer.mean_pe_cycles:,.0f}")
    return fig


def bandwidth_figure(bandwidth: pd.DataFrame, systems: Sequence[MemorySystem], n: int, bytes_per_value: int):
    """Bandwidth each BLAS level needs at a system's peak (bars) against what its memory gives (dashed)."""
    levels = list(dict.fromkeys(bandwidth["level"]))
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    width = 0.38
    for j, (system, colour) in enumerate(zip(systems, SYSTEM_COLOURS)):
        rows = bandwidth[bandwidth["system"] == system.name].set_index("level").loc[levels]
        xs = np.arange(len(levels)) + (j - 0.5) * width
        ax.bar(xs, rows["required_tb_s"], width, color=colour, alpha=0.8,
               label=f"{system.name}: needed at {system.peak_flops / 1e12:.0f} TFLOP/s")
        ax.axhline(system.bandwidth / 1e12, color=colour, linestyle="--",
                   label=f"{system.name}: available, {system.memory} ({system.bandwidth / 1e12:.3g} TB/s)")
    intensity = bandwidth.drop_duplicates("level").set_index("level")["intensity_flop_per_byte"]
    ax.set_xticks(np.arange(len(levels)), [f"{lv}\n({intensity[lv]:.3g} FLOP/B)" for lv in levels])
    ax.set_yscale("log")
    ax.set_xlabel(f"operation (BLAS level) and its arithmetic intensity in FLOP per byte, "
                  f"{8 * bytes_per_value}-bit operands, n = {n}")
    ax.set_ylabel("memory bandwidth to run at full compute (TB/s, log scale)")
    ax.set_title("Bandwidth each BLAS level needs (bars) and what the memory gives (dashed)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    return fig


def _ideal(ax, curves: SpeedupCurves) -> None:
    ax.plot([100 * s for s in curves.sparsities], curves.ideal, "-", color=IDEAL, lw=1.2, label="ideal 1/(1-s)")
    ax.axhline(1.0, color="grey", lw=0.8)


def _roofline_band(ax, curves: SpeedupCurves, with_2_4: bool = True) -> None:
    xs = [100 * s for s in curves.sparsities]
    ax.fill_between(xs, curves.roofline_axpy, curves.roofline_one_pass, color=ROOFLINE, alpha=0.15,
                    label=f"GPU roofline, unstructured ({curves.roofline_tokens:,} tokens):\n"
                          f"one-pass traffic (top) to one AXPY per nonzero (bottom)")
    ax.plot(xs, curves.roofline_one_pass, "-", color=ROOFLINE, lw=1)
    ax.plot(xs, curves.roofline_axpy, "-", color=ROOFLINE, lw=1)
    if with_2_4:
        ax.plot([50], [curves.roofline_2_4], "D", color=ROOFLINE, ms=7, label="GPU roofline, 2:4 sparse tensor cores")


def speedup_figure(curves: SpeedupCurves, measured: pd.DataFrame):
    """Speed-up of one GPT block over dense: the models in one panel, then one panel per measured
    device (each at its own token count; the GPU's panel repeats the roofline band at the same count)."""
    devices = list(measured.groupby(["device_name", "device", "tokens"], sort=False)) if len(measured) else []
    fig, axes = plt.subplots(1, 1 + len(devices), figsize=(4.8 * (1 + len(devices)), 5.6), sharey=True,
                             squeeze=False, layout="constrained")
    axes = axes[0]
    xs = [100 * s for s in curves.sparsities]
    model = axes[0]
    _ideal(model, curves)
    model.plot(xs, curves.simulated, "o-", color=SIMULATED, ms=3,
               label=f"simulated dataflow machine ({curves.machine.pe_rows}x{curves.machine.pe_cols} PEs)")
    _roofline_band(model, curves)
    model.set_title("(a) models of one GPT block\n(dataflow machine, GPU roofline)", fontsize=10)
    for letter, ax, ((device_name, device, tokens), group) in zip("bcdefgh", axes[1:], devices):
        _ideal(ax, curves)
        if device == "cuda" and tokens == curves.roofline_tokens:
            _roofline_band(ax, curves, with_2_4=False)
        for kernel, k in group.groupby("kernel", sort=True):
            colour, marker = KERNEL_STYLE.get(kernel, ("tab:brown", "x"))
            ax.plot(100 * k["sparsity"], k["speedup"], marker, ls="--", ms=8, mfc="none", mew=1.5, color=colour,
                    label=f"measured {kernel}")
        ax.set_title(f"({letter}) measured: {device_name}\n({device}, {tokens:,} tokens per matmul)", fontsize=10)
    top = max([*curves.ideal, *curves.simulated, *(measured["speedup"] if len(measured) else [])]) * 8
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(top=top)
        ax.set_xlabel("weight sparsity of the block's linears (%)")
        ax.legend(fontsize=7.5, loc="upper left")
    axes[0].set_ylabel("speed-up over dense (times, log scale)")
    return fig


def grid_figure(grid_speedups: Mapping[int, Sequence[float]], grid_sparsities: Sequence[float], config,
                curves: SpeedupCurves):
    """Simulated whole-block speed-up for several grid sizes: the smaller each PE's share of the
    weights, the larger the load imbalance."""
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    for g, speedups in grid_speedups.items():
        ax.plot([100 * s for s in grid_sparsities], speedups, "o-", ms=3,
                label=f"{g}x{g} PEs ({config.d_ff * config.n_embd // (g * g):,} FFN weights per PE)")
    _ideal(ax, curves)
    ax.set_yscale("log")
    ax.set_xlabel("weight sparsity (%)")
    ax.set_ylabel("simulated speed-up over dense (times, log scale)")
    ax.set_title("Simulated dataflow machine, one GPT block, by grid size")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    return fig


__all__ = ["pe_work_figure", "bandwidth_figure", "speedup_figure", "grid_figure"]
