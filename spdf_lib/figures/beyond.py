"""Chapter 09 (beyond the paper): the sparse-dense gap against model size with its fitted trend and
extrapolation, the iso-FLOP and dynamic-sparsity comparison, their display tables and the chapter's
computed sentence. The numbers come from :mod:`spdf_lib.scaling`."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from .display import show_table

__all__ = ["gap_figure", "variant_figure", "gap_table", "extrapolation_table", "variant_table", "scaling_sentence",
           "interval_text", "family_table", "dynamic_table", "answers_table", "gpu_time_table", "answers_note",
           "passes_note", "expectation_note", "leave_one_out_table", "findings_note",
           "size_downstream_table"]


def interval_text(low: float, high: float, digits: int = 3, reason: str = "") -> str:
    """``"[low, high]"`` with signs, or ``reason`` (``"not computable"`` if none) when a bound is NaN."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return reason or "not computable"
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def _trends(gaps: pd.DataFrame, trends) -> dict:
    """``trends`` as given, or every sparsity's fit (``None`` where not computable)."""
    from .. import scaling, stats

    if trends is not None:
        return dict(trends)
    out = {}
    for sparsity in sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0):
        try:
            out[sparsity] = scaling.fit_gap_trend(gaps, sparsity)
        except stats.NotComputable:
            out[sparsity] = None
    return out


def _trend_at(trends: Mapping, sparsity: float):
    return next((t for s, t in trends.items() if math.isclose(float(s), float(sparsity))), None)


# ------------------------------------------------------------------------------------- figures

def gap_figure(gaps: pd.DataFrame, trends: Mapping | None = None, targets: Mapping[str, int] | None = None):
    """Figure (chapter 09): validation-loss gap (sparse minus dense, nats) against non-embedding
    parameters, one colour per sparsity, with 95% intervals; each sparsity's fitted trend solid over
    the sizes fitted and dashed out to the ``targets`` (default: the paper's sizes), its 95%
    confidence band shaded. ``trends`` maps sparsity to a ``GapTrend`` or ``None`` (points only);
    when omitted every sparsity is fitted where it can be."""
    import matplotlib.pyplot as plt

    from .. import scaling

    targets = scaling.paper_targets() if targets is None else dict(targets)
    trends = _trends(gaps, trends)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = plt.get_cmap("tab10")
    levels = sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0)
    extrapolation_labelled = False
    for k, sparsity in enumerate(levels):
        colour = colours(k % 10)
        rows = gaps[np.isclose(gaps["sparsity"].astype(float), sparsity)]
        n = rows["non-embedding params"].to_numpy(dtype=float)
        gap = rows["gap"].to_numpy(dtype=float)
        low, high = rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float)
        has = np.isfinite(low) & np.isfinite(high)
        ax.errorbar(n[has], gap[has], yerr=[gap[has] - low[has], high[has] - gap[has]], fmt="o", color=colour,
                    capsize=4, label=f"{100 * sparsity:g}% sparse, 95% interval")
        if (~has).any():
            ax.plot(n[~has], gap[~has], "o", mfc="none", color=colour,
                    label=f"{100 * sparsity:g}% sparse, no interval")
        trend = _trend_at(trends, sparsity)
        if trend is None:
            continue
        lo_fit, hi_fit = trend.fitted_range
        grid = np.logspace(math.log10(lo_fit), math.log10(hi_fit), 50)
        wide = np.logspace(math.log10(min([lo_fit, *targets.values()])),
                           math.log10(max([hi_fit, *targets.values()])), 200)
        band = [trend.predict(v) for v in wide]
        ax.fill_between(wide, [b.low for b in band], [b.high for b in band], color=colour, alpha=0.15, lw=0,
                        label=f"{100 * sparsity:g}%: 95% confidence band of the fit")
        ax.plot(grid, [trend.predict(v).estimate for v in grid], "-", color=colour,
                label=f"{100 * sparsity:g}%: fit, {trend.slope:+.3f} nats per tenfold N")
        for part in (wide[wide <= lo_fit], wide[wide >= hi_fit]):
            if len(part) > 1:
                ax.plot(part, [trend.predict(v).estimate for v in part], "--", color=colour,
                        label=None if extrapolation_labelled else "extrapolation")
                extrapolation_labelled = True
    ax.axhline(0, color="black", lw=0.8)
    for name, n_params in targets.items():
        ax.axvline(n_params, color="grey", ls=":", lw=1)
        ax.text(n_params, 0.98, f" {name}", transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="right",
                fontsize=9, color="dimgrey")
    ax.set_xscale("log")
    ax.set(xlabel="non-embedding parameters (count, log scale)",
           ylabel="validation-loss gap, sparse minus dense (nats)",
           title="Sparse-dense gap against model size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    return fig


def variant_figure(frame: pd.DataFrame, margin: float | None = None):
    """Figure (chapter 09) of ``scaling.variant_frame``. Left: validation loss against training
    PFLOP per run, with the 95% interval of the mean (pooled seed variance). Right: the change of the
    downstream score (E2E BLEU) against the dense run, with its 95% interval, a zero line and, when
    ``margin`` is given, the line at minus the margin (chapter 06's H1 rule)."""
    import matplotlib.pyplot as plt

    from .. import scaling

    names = scaling.score_columns(frame.attrs.get("task", "e2e"))
    change = names["vs dense"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colours = plt.get_cmap("tab10")
    for k, row in enumerate(frame.itertuples(index=False)):
        r = dict(zip(frame.columns, row))
        has = np.isfinite(r["val loss low"]) and np.isfinite(r["val loss high"])
        yerr = [[r["val loss"] - r["val loss low"]], [r["val loss high"] - r["val loss"]]] if has else None
        left.errorbar([r["training PFLOP"]], [r["val loss"]], yerr=yerr, fmt="o" if has else "s",
                      color=colours(k % 10), capsize=4,
                      label=f"{r['run']} ({r['pre-training seeds']} seed{'s' if r['pre-training seeds'] != 1 else ''})")
    left.set(xlabel="training FLOPs (PFLOP)", ylabel="validation loss (nats per token)",
             title="Validation loss against training compute")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    shown = frame[np.isfinite(frame[change].astype(float))] if change in frame else frame.iloc[:0]
    if len(shown):
        y = np.arange(len(shown))
        value = shown[change].to_numpy(dtype=float)
        lo, hi = shown[names["low"]].to_numpy(dtype=float), shown[names["high"]].to_numpy(dtype=float)
        has = np.isfinite(lo) & np.isfinite(hi)
        for j, (yy, v, run) in enumerate(zip(y, value, shown["run"])):
            colour = colours(list(frame["run"]).index(run) % 10)
            if has[j]:
                right.errorbar([v], [yy], xerr=[[v - lo[j]], [hi[j] - v]], fmt="o", color=colour, capsize=4)
            else:
                right.plot([v], [yy], "s", color=colour)
        right.set_yticks(y, shown["run"])
        right.invert_yaxis()
        right.axvline(0.0, color="black", lw=1, label="dense")
        if margin is not None:
            right.axvline(-margin, color="red", ls="--", lw=1, label=f"minus the margin ({margin:g})")
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no downstream results", transform=right.transAxes, ha="center", va="center")
    right.set(xlabel=f"{names['score']} change against dense (points)", ylabel="run",
              title=f"{names['score']} after dense fine-tuning, change against dense")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- tables

def gap_table(gaps: pd.DataFrame):
    """``scaling.gap_frame`` for display: the gap with its 95% interval as text (or why there is none)."""
    shown = gaps[["size", "non-embedding params", "sparsity", "dense seeds", "sparse seeds", "dense val loss",
                  "sparse val loss", "gap"]].copy()
    shown["95% interval"] = [interval_text(lo, hi, 3, why) for lo, hi, why in
                             zip(gaps["low"], gaps["high"], gaps["interval"])]
    shown = shown.rename(columns={"gap": "gap (nats)", "dense val loss": "dense val loss (nats)",
                                  "sparse val loss": "sparse val loss (nats)"})
    return show_table(shown, {"non-embedding params": "{:,}", "sparsity": "{:.0%}", "dense val loss (nats)": "{:.3f}",
                              "sparse val loss (nats)": "{:.3f}", "gap (nats)": "{:+.3f}"}, na_rep="–")


def extrapolation_table(frame: pd.DataFrame):
    """``scaling.extrapolations`` for display: the predicted gap with its 95% interval as text."""
    shown = frame[["target", "non-embedding params", "sparsity", "predicted gap"]].copy()
    shown["95% interval"] = [interval_text(lo, hi, 3, why) for lo, hi, why in
                             zip(frame["low"], frame["high"], frame["interval"])]
    shown[["fitted range", "kind", "factor beyond largest fitted"]] = \
        frame[["fitted range", "kind", "factor beyond largest fitted"]]
    shown = shown.rename(columns={"predicted gap": "predicted gap (nats)"})
    return show_table(shown, {"non-embedding params": "{:,}", "sparsity": "{:.0%}", "predicted gap (nats)": "{:+.3f}",
                              "factor beyond largest fitted": "{:,.1f}x"}, na_rep="–")


def variant_table(frame: pd.DataFrame):
    """``scaling.variant_frame`` for display: cost, validation loss and downstream score of each run,
    the differences with their 95% intervals as text."""
    from .. import scaling

    names = scaling.score_columns(frame.attrs.get("task", "e2e"))
    shown = frame[["run", "pre-training seeds", "tokens", "training PFLOP", "GPU wall s", "val loss",
                   "val loss vs dense"]].copy().rename(columns={"GPU wall s": "wall s, device shared"})
    shown["val loss vs dense, 95%"] = [interval_text(lo, hi) for lo, hi in zip(frame["low"], frame["high"])]
    shown["val loss vs static"] = frame["val loss vs static"]
    shown["val loss vs static, 95%"] = [interval_text(lo, hi) if np.isfinite(v) else "" for v, lo, hi in
                                        zip(frame["val loss vs static"], frame["static low"], frame["static high"])]
    shown[names["score"]] = frame[names["score"]]
    shown[names["vs dense"]] = frame[names["vs dense"]]
    shown[f"{names['vs dense']}, 95%"] = [interval_text(lo, hi, 2) if np.isfinite(v) else "" for v, lo, hi in
                                          zip(frame[names["vs dense"]], frame[names["low"]], frame[names["high"]])]
    shown[names["vs static"]] = frame[names["vs static"]]
    shown[f"{names['vs static']}, 95%"] = [interval_text(lo, hi, 2) if np.isfinite(v) else "" for v, lo, hi in
                                           zip(frame[names["vs static"]], frame[names["static low"]],
                                               frame[names["static high"]])]
    shown["test loss vs dense"] = frame["test loss vs dense"]
    shown["test loss vs dense, 95%"] = [
        interval_text(lo, hi) if np.isfinite(v) else ""
        for v, lo, hi in zip(frame["test loss vs dense"], frame["test loss low"], frame["test loss high"])]
    shown["fine-tunes"] = frame["fine-tunes"]
    for column in ("val loss vs dense", "val loss vs dense, 95%"):  # the dense row is the reference
        shown.loc[frame["run"] == "dense", column] = np.nan if column == "val loss vs dense" else ""
    return show_table(shown.rename(columns={"val loss": "val loss (nats)"}), {
        "tokens": "{:,.0f}", "training PFLOP": "{:.2f}", "wall s, device shared": "{:,.0f}", "val loss (nats)": "{:.3f}",
        "val loss vs dense": "{:+.3f}", "val loss vs static": "{:+.3f}", names["score"]: "{:.2f}",
        names["vs dense"]: "{:+.2f}", names["vs static"]: "{:+.2f}", "test loss vs dense": "{:+.3f}"}, na_rep="–")


# ------------------------------------------------------------------------------------- sentence

def scaling_sentence(gaps: pd.DataFrame, trends: Mapping | None = None, extrapolations: pd.DataFrame | None = None,
                     level: float = 0.95) -> str:
    """One computed sentence for chapter 09: at the highest sparsity with a fitted trend, the gap at
    the smallest and largest size measured, the slope per tenfold increase of parameters with its
    interval, whether the gap shrinks, grows or that is inconclusive (the interval includes 0), and
    the fitted gap at the largest target of ``extrapolations``."""
    from .. import scaling

    trends = _trends(gaps, trends)
    fitted = [(float(s), t) for s, t in trends.items() if t is not None]
    if not fitted:
        levels = sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0)
        counts = ", ".join(f"{len(gaps[np.isclose(gaps['sparsity'], s) & np.isfinite(gaps['gap'])])} at "
                           f"{100 * s:g}%" for s in levels) or "none"
        return ("No trend of the sparse-dense gap with model size is computable: it needs gaps at 3 or more model "
                f"sizes with some residual spread, and the sizes measured are {counts}.")
    sparsity, trend = max(fitted, key=lambda st: st[0])
    rows = gaps[np.isclose(gaps["sparsity"].astype(float), sparsity) & np.isfinite(gaps["gap"].astype(float))]
    rows = rows.sort_values("non-embedding params")
    first, last = rows.iloc[0], rows.iloc[-1]
    ci = trend.slope_interval(level)
    verdict = {"grows": "so the gap grows with model size", "shrinks": "so the gap shrinks with model size"}.get(
        scaling.size_outcome(ci), "so whether the gap changes with model size is inconclusive")
    text = (f"At {100 * sparsity:g}% sparsity the validation-loss gap to the dense model is "
            f"{_with_interval(first, 'gap', 'low', 'high')} nats at {first['non-embedding params']:.2g} non-embedding "
            f"parameters and {_with_interval(last, 'gap', 'low', 'high')} nats at "
            f"{last['non-embedding params']:.2g} (95% intervals over pre-training seeds); the fitted slope over these {trend.n} sizes is {ci.estimate:+.3f} "
            f"nats per tenfold increase in parameters ({level:.0%} interval [{ci.low:+.3f}, {ci.high:+.3f}]), "
            f"{verdict}")
    if extrapolations is not None and len(extrapolations):
        at = extrapolations[np.isclose(extrapolations["sparsity"].astype(float), sparsity)
                            & np.isfinite(extrapolations["predicted gap"].astype(float))]
        if len(at):
            target = at.sort_values("non-embedding params").iloc[-1]
            how = "extrapolated" if target["kind"] == "extrapolation" else "interpolated"
            text += (f"; {how} to {target['target']} ({target['non-embedding params']:.2g} parameters, "
                     f"{target['factor beyond largest fitted']:,.3g}x the largest size fitted), the fit predicts "
                     f"{target['predicted gap']:+.3f} nats [{target['low']:+.3f}, {target['high']:+.3f}]")
    return text + "."


# ------------------------------------------------------------------ the runs, the answers, the notes

def family_table(profile):
    """The size study's model family (chapter 09): shape, non-embedding and total parameters and the
    Chinchilla-length tokens of each size, with the profile's own two sizes marked."""
    from ..flops import sparsifiable_weights
    from ..model import get_config, num_params
    from ..runs import planned_tokens

    rows = []
    for size in profile.beyond.family:
        c = get_config(size, vocab_size=profile.vocab_size,
                       block_size=max(get_config(size).block_size, profile.pretrain.seq_len))
        tokens = planned_tokens(c, profile.pretrain)
        rows.append({"size": size, "in chapters 04-06": "yes" if size in profile.sizes else "",
                     "layers": c.n_layer, "width": c.n_embd, "heads": c.n_head, "head width": c.n_embd // c.n_head,
                     "non-embedding params": sparsifiable_weights(c), "all params": num_params(c),
                     "embedding share": 1 - sparsifiable_weights(c) / num_params(c),
                     "pre-training tokens": tokens,
                     "tokens per non-embedding param": tokens / sparsifiable_weights(c)})
    frame = pd.DataFrame(rows)
    return show_table(frame, {"non-embedding params": "{:,}", "all params": "{:,}", "pre-training tokens": "{:,}",
                              "embedding share": "{:.0%}", "tokens per non-embedding param": "{:.0f}"}, na_rep="–")


def dynamic_table(pretrain_results):
    """Chapter 09's longer and dynamic runs one by one: tokens, passes over the corpus, mask updates,
    RigL's dense-gradient passes and their share of the run's FLOPs, the share of kept connections
    that the initial mask did not keep at the end, and the validation loss."""
    rows = []
    for r in sorted(pretrain_results, key=lambda r: (r.get("variant") or "", r["sparsity"], r["seed"])):
        if not r.get("variant"):
            continue
        rows.append({"run": r["run_id"], "seed": r["seed"], "tokens": r["tokens"], "passes over the corpus": r["passes"],
                     "mask updates": r.get("mask_updates", 0), "dense-gradient passes": r.get("dense_gradient_passes", 0),
                     "their share of the FLOPs": r.get("dense_gradient_flops", 0.0) / r["training_flops"],
                     "connections not in the initial mask": r.get("mask_moved_fraction", 0.0),
                     "val loss (nats)": r["val_loss"]})
    frame = pd.DataFrame(rows)
    return show_table(frame, {"tokens": "{:,}", "passes over the corpus": "{:.2f}",
                              "their share of the FLOPs": "{:.2%}", "connections not in the initial mask": "{:.1%}",
                              "val loss (nats)": "{:.3f}"}, na_rep="–")


def answers_table(answers: pd.DataFrame):
    """:func:`spdf_lib.scaling.answers_frame` for display, the interval as text."""
    shown = answers[["question", "compared", "estimate"]].copy()
    shown["95% interval"] = [interval_text(lo, hi) for lo, hi in zip(answers["low"], answers["high"])]
    shown["outcome"] = answers["outcome"]
    return show_table(shown, {"estimate": "{:+.3f}"}, na_rep="–")


def gpu_time_table(frame: pd.DataFrame):
    """:func:`spdf_lib.scaling.gpu_time_frame` for display."""
    return show_table(frame, {"tokens": "{:,.0f}", "training PFLOP": "{:.2f}", "GPU s (one run alone)": "{:,.0f}",
                              "vs dense": "{:.2f}x", "FLOPs vs dense": "{:.2f}x"}, na_rep="–")


def answers_note(answers: pd.DataFrame) -> str:
    """The chapter's answers in words, one sentence per question, computed from :func:`answers_frame`."""
    if answers.empty:
        return "Nothing was judged: the runs of this chapter are missing at this profile."
    parts = []
    for question, group in answers.groupby("question", sort=False):
        items = "; ".join(f"{c}: {o}" for c, o in zip(group["compared"], group["outcome"]))
        parts.append(f"- **{question}**: {items}.")
    return "\n".join(parts)


def passes_note(pretrain_results) -> str:
    """How often the longest runs of chapter 09 saw each pre-training token (data repetition)."""
    runs = [r for r in pretrain_results if r.get("passes") is not None]
    if not runs:
        return ""
    longest = max(runs, key=lambda r: r["passes"])
    shortest = min(runs, key=lambda r: r["passes"])
    return (f"The corpus is finite: the Chinchilla-length runs of this size see it {shortest['passes']:.2f} times, the "
            f"longest run ({longest['run_id']}) {longest['passes']:.2f} times, so part of what a longer run gains or "
            f"loses is repetition of the same text.")


def expectation_note(answers: pd.DataFrame, loo: pd.DataFrame | None = None) -> str:
    """The size answers set against the sources' expectation (a gap that shrinks as models grow), and,
    with ``loo`` (:func:`spdf_lib.scaling.leave_one_out`), whether any single size carries them."""
    size = answers[answers["question"] == "size"]
    if size.empty:
        return ""
    fragile = ""
    if loo is not None and len(loo):
        flips = []
        for _, row in size.iterrows():
            if str(row["outcome"]).startswith("not computable"):
                continue  # nothing to carry
            sparsity = float(row["compared"].rsplit(", ", 1)[-1].rstrip("%")) / 100
            changed = loo[np.isclose(loo["sparsity"], sparsity) & (loo["outcome"] != row["outcome"])]
            flips += [f"without {r['left out']} at {sparsity:.0%} it is {r['outcome']}" for _, r in changed.iterrows()]
        computable = not size["outcome"].astype(str).str.startswith("not computable").all()
        fragile = (f" The answer rests on single sizes: {'; '.join(flips)}." if flips else
                   " No single size carries it: leaving out any one size gives the same outcome." if computable
                   else "")
    found = "; ".join(f"{c.split(', ')[-1]}: {o}" for c, o in zip(size["compared"], size["outcome"]))
    agree = (size["outcome"] == "shrinks").all()
    against = (size["outcome"] == "grows").any()
    verdict = ("which is the expected direction" if agree else
               "the opposite of the expected direction over the sizes trained here" if against else
               "which neither confirms nor refutes the expectation at this scale")
    return (f"The sources expect the gap of random static sparsity to shrink as networks grow wider and deeper. "
            f"By the rule above the slope of the gap is, per sparsity, {found}: {verdict}.{fragile}")


def leave_one_out_table(frame: pd.DataFrame):
    """:func:`spdf_lib.scaling.leave_one_out` for display."""
    shown = frame[["sparsity", "left out", "slope"]].copy()
    shown["95% interval"] = [interval_text(lo, hi) for lo, hi in zip(frame["low"], frame["high"])]
    shown["outcome"] = frame["outcome"]
    return show_table(shown.rename(columns={"slope": "slope without it (nats per tenfold)"}),
                      {"sparsity": "{:.0%}", "slope without it (nats per tenfold)": "{:+.3f}"}, na_rep="–")


def _with_interval(row, estimate: str, low: str, high: str, digits: int = 3) -> str:
    """'+0.048 [+0.01, +0.09]' from a row's estimate and interval columns; the estimate alone where the
    interval is missing."""
    lo, hi = float(row.get(low, float("nan"))), float(row.get(high, float("nan")))
    text = f"{float(row[estimate]):+.{digits}f}"
    return text + (f" {interval_text(lo, hi, digits)}" if np.isfinite(lo) and np.isfinite(hi) else "")


def findings_note(variants: pd.DataFrame, gpu_time: pd.DataFrame | None, pretrain_results, level: float) -> str:
    """What the longer and the dynamic runs found, in sentences computed from
    :func:`spdf_lib.scaling.variant_frame`, :func:`~spdf_lib.scaling.gpu_time_frame` and the runs."""
    from .. import scaling

    names = scaling.score_columns(variants.attrs.get("task", "e2e"))
    parts = []
    iso = variants[variants["variant"] == "isoflop"]
    if len(iso):
        times = {} if gpu_time is None else dict(zip(gpu_time["run"], gpu_time["vs dense"]))
        each = "; ".join(
            f"{r['run']}: {_with_interval(r, 'val loss vs static', 'static low', 'static high')} nats against the "
            f"Chinchilla-length static run and {_with_interval(r, 'val loss vs dense', 'low', 'high')} against dense"
            + (f", at {times[r['run']]:.2f}x the dense run's GPU time (one benchmark, no interval)"
               if r["run"] in times else "")
            for _, r in iso.iterrows())
        parts.append(f"Trained to the dense run's FLOPs, the sparse runs change their validation loss by (95% "
                     f"intervals over pre-training seeds, pooled variance, in brackets): {each}.")
    dyn = variants[variants["variant"].isin(["rigl", "set"])]
    if len(dyn):
        moved = {}
        for r in pretrain_results:
            if r.get("variant") in ("rigl", "set") and r.get("mask_moved_fraction") is not None:
                moved.setdefault(scaling.run_label(r["variant"], r["sparsity"]), []).append(r["mask_moved_fraction"])
        each = "; ".join(
            f"{r['run']}: {_with_interval(r, 'val loss vs static', 'static low', 'static high')} nats against the "
            f"static mask"
            + (f", with {np.mean(moved[r['run']]):.0%} of its kept connections new at the end" if r["run"] in moved
               else "")
            for _, r in dyn.iterrows())
        brackets = "the same intervals" if len(iso) else "95% intervals over pre-training seeds, pooled variance, in brackets"
        parts.append(f"The moving masks change the validation loss by ({brackets}): {each}. For scale: a mask drawn afresh at "
                     f"random would have about {level:.0%} of its kept connections new, since at this sparsity the "
                     f"first mask keeps a random connection with probability {1 - level:.0%}.")
    down = variants[np.isfinite(variants[names["vs dense"]].astype(float))] if names["vs dense"] in variants else []
    if len(down):
        widths = down.assign(width=down[names["high"]] - down[names["low"]])
        widths = widths[np.isfinite(widths["width"].astype(float))]
        text = (f"After dense fine-tuning the {names['score']} changes against dense run from "
                f"{down[names['vs dense']].min():+.2f} to {down[names['vs dense']].max():+.2f} points")
        if len(widths):
            widest = widths.sort_values("width").iloc[-1]
            text += f", with intervals up to {widest['width']:.2f} points wide ({widest['run']})."
        else:
            text += "; no interval is computable at this profile."
        parts.append(text)
    return " ".join(parts) or "No longer or dynamic runs at this profile."


def size_downstream_table(cells: dict, profile) -> pd.DataFrame:
    """The E2E rows of chapter 06's comparison with the paper (ours with its interval beside the
    published change, at both sizes): what the paper reports at its sizes, for the size question."""
    from .. import findings

    frame = findings.paper_comparison(cells, profile)
    return frame[frame["task"] == "E2E"].reset_index(drop=True) if len(frame) else frame
