"""Chapter 08 (pruning): the iterations table, the figure of savings and quality against sparsity, the
computed statements, and this run beside GPT-3 XL and the published result."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from .display import grouped_columns, show_table

__all__ = ["SOURCE_PRUNED_SPARSITY", "pruning_iterations_table", "pruning_figure", "pruning_findings",
           "full_scale_comparison"]

# The iterative-pruning result of the Cerebras blog "Harnessing the Power of Sparsity for Large GPT
# AI Models" (Sean Lie, 28 November 2022): GPT-3 XL pruned to 84% sparsity (chapter 08).
SOURCE_PRUNED_SPARSITY = 0.84


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

    from ..flops import inference_flops_per_token, param_memory
    from ..model import get_config
    from ..pruning import full_scale_arithmetic

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
    from ..flops import sparsifiable_weights
    from ..model import get_config, num_params

    first, last = iterations.iloc[0], iterations.iloc[-1]
    by_method = baselines.set_index("method")["val_ppl"]
    best = by_method.iloc[1:].idxmin()
    dense_share = 1 - sparsifiable_weights(config) / num_params(config)
    xl = get_config("gpt3-xl")
    dense_share_xl = 1 - sparsifiable_weights(xl) / num_params(xl)
    return "\n\n".join([
        f"Iterative pruning reaches {last['sparsity']:.1%} sparsity with validation perplexity "
        f"{last['val_ppl']:.2f}, against {first['val_ppl']:.2f} for the dense model "
        f"({last['val_ppl'] / first['val_ppl'] - 1:+.1%}; one run of each, so no interval). Each retraining phase "
        f"is {retrain_share:.1%} of the "
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
    from ..pruning import full_scale_arithmetic

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
