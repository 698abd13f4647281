"""Chapter 06's views of the published run: Figure 4, the verdict tables, the noise floor, the
comparison with the paper, the set-up beside the paper's, the control on the test sets and decoded
examples, as figures, captions and computed sentences.

The numbers come from ``spdf_lib.verdicts`` (the rules, Tables 1 and 2, the noise floor) and
``spdf_lib.stats`` (the intervals); nothing is typed by hand. Chapter 06's other modules:
``spdf_lib.reruns`` compares several runs of the grid, ``spdf_lib.replication`` estimates how often
a fresh run would reach the same verdicts."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from . import report, stats, verdicts as V
from .verdicts import level_label

__all__ = [
    "PAPER_MODEL", "STATEMENTS", "paper_models", "table_caption", "results_table_caption", "figure4", "delta_figure",
    "verdict_summary",
    "verdict_cells", "verdict_tables", "noise_tables", "noise_floor_note", "paper_comparison", "comparison_note",
    "sources_note", "setup_vs_paper", "control_test_table", "control_test_note", "example_outputs",
    "published_beside", "summary_note", "official_vs_sacrebleu_note", "VERDICT_VIEW", "plural",
]

PAPER_MODEL = ("gpt2-small", "gpt3-xl")  # the paper's model each of our two sizes stands for
PAPER_STATED_SIZE = {"gpt2-small": "117M", "gpt3-xl": "1.3B"}  # as the sources write them
STATEMENTS = {"H1": "50-75% sparse pre-training, then dense fine-tuning, preserves data-to-text BLEU",
              "H2": "summarization suffers more from sparse pre-training than the data-to-text tasks",
              "H3": "the larger model suffers less from sparse pre-training than the smaller one"}
SIZE_COLOURS = ("tab:blue", "tab:orange")


def paper_models(profile) -> dict[str, str]:
    return dict(zip(profile.sizes, PAPER_MODEL))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _design(cells: dict) -> str:
    """How many fine-tuning runs each pre-trained model has in a cell, e.g. 'pre-training seed 0: 2
    fine-tuning runs; seeds 1, 2: 1 each' (computed over every cell; a range where cells differ)."""
    per_seed: dict = {}
    for c in cells.values():
        for seed, values in c.values.items():
            per_seed.setdefault(seed, set()).add(len(values))
    by_count: dict = {}
    for seed, counts in sorted(per_seed.items()):
        key = "-".join(map(str, sorted({min(counts), max(counts)})))
        by_count.setdefault(key, []).append(seed)
    parts = []
    for count, seeds in by_count.items():
        label = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        each = " each" if len(seeds) > 1 else ""
        parts.append(f"{label}: {count} fine-tuning run{'' if count == '1' else 's'}{each}")
    return "pre-training " + "; ".join(parts)


def table_caption(cells: dict, profile) -> str:
    """What a table cell, its ± and its interval are, computed from the cells shown."""
    if not cells:
        return "No results."
    pre = sorted({c.n_pretrained for c in cells.values()})
    runs = sorted({c.n_runs for c in cells.values()})
    return (f"**How to read Tables 1 and 2.** *ours*: the mean of a cell's per-pre-training means (each the mean "
            f"of that model's fine-tuning runs at the rate its search chose); a cell holds {'/'.join(map(str, runs))} "
            f"final runs from {'/'.join(map(str, pre))} pre-trained models ({_design(cells)}). "
            f"*±*: the sample standard deviation (n − 1) of those per-pre-training means, n being the number of "
            f"pre-trained models, not of runs; '(n=k)' marks a cell with fewer models than the others. "
            f"*Δ ours [95% CI]*: sparse minus dense of the same size, with its {stats.METHOD}. "
            f"*paper* and *Δ paper*: the published values; the paper's ± is its 'variation' over several "
            f"fine-tuning runs, with no estimator stated. '–': the sources publish no value.")


def results_table_caption(cells: dict, size: str, title: str) -> str:
    """The caption of Table 1 or 2 (``title``) for ``size``: what ± and the interval are, with n and the
    seeds they span, computed from that size's cells."""
    own = [c for c in cells.values() if c.size == size]
    if not own:
        return f"{title}: no results for {size}."
    seeds = sorted({s for c in own for s in c.values}, key=str)
    pre = sorted({c.n_pretrained for c in own})
    return (f"{title}: {size} after dense fine-tuning. ±: sample standard deviation (n − 1) of the per-pre-training "
            f"means, n = {'/'.join(map(str, pre))} pre-trained models (pre-training seeds "
            f"{', '.join(map(str, seeds))}), each the mean of its fine-tuning runs. Δ ours [95% CI]: sparse minus "
            f"dense, Welch t interval over the same models. Δ paper: as published, with no interval (the sources "
            f"give none); the paper scored with the tasks' official scripts, this table with sacreBLEU, and the "
            f"section on the official metric suites gives the offset between the two.")


def _mean_and_error(cell) -> tuple[float, float]:
    """A cell's mean and the half-width of its 95% t interval over pre-trained models (NaN: one model)."""
    try:
        iv = stats.mean_interval(cell.unit_means())
        return cell.mean, iv.high - iv.estimate
    except stats.NotComputable:
        return cell.mean, math.nan


def figure4(cells: dict, sizes: Sequence[str], levels: Sequence[float], size_labels: dict[str, str]):
    """Figure 4 rebuilt: test E2E BLEU of both sizes (with the paper's published GPT-3 XL points), and
    test summarization perplexity, one panel per size (their scales differ too much for one axis), all
    against pre-training sparsity on linear axes. Error bars: 95% t intervals of the cell mean over
    pre-trained models; none where a cell has one model."""
    import matplotlib.pyplot as plt

    sizes = list(sizes)
    colours = dict(zip(sizes, SIZE_COLOURS))
    fig, axes = plt.subplots(1, 1 + len(sizes), figsize=(4.6 * (1 + len(sizes)), 4))
    panels = [("e2e", sizes, axes[0])] + [("summarization", [size], ax) for size, ax in zip(sizes, axes[1:])]
    for task, panel_sizes, ax in panels:
        for k, size in enumerate(panel_sizes):
            points = [(100 * lv, *_mean_and_error(cells[(size, task, lv)]))
                      for lv in levels if (size, task, lv) in cells]
            if not points:
                continue
            shift = (k - (len(panel_sizes) - 1) / 2) * 1.5 - (0.75 if task == "e2e" else 0)
            ax.errorbar([x + shift for x, _, _ in points], [y for _, y, _ in points],
                        yerr=[0 if math.isnan(e) else e for _, _, e in points], marker="o", capsize=4,
                        color=colours[size], label=f"{size_labels.get(size, size)}, ours")
        metric, direction = V.METRIC[task]
        if task == "e2e":
            pub = [(100 * lv, V.PUBLISHED_VALUE[("gpt3-xl", "e2e", lv)]) for lv in levels
                   if ("gpt3-xl", "e2e", lv) in V.PUBLISHED_VALUE]
            if pub:
                ax.errorbar([x + 1.5 for x, _ in pub], [v[0] for _, v in pub], yerr=[v[1] for _, v in pub], fmt="s",
                            color="black", capsize=4, label="GPT-3 XL, paper (± its published variation)")
            ax.set_title("E2E: test BLEU after dense fine-tuning", fontsize=10)
            ax.set_ylabel(f"test BLEU (points, {direction} is better)")
        else:
            ax.set_title(f"Summarization, {panel_sizes[0]}: test perplexity", fontsize=10)
            ax.set_ylabel(f"test perplexity ({direction} is better)")
        ax.set_xlabel("pre-training sparsity (%)")
        ax.set_xticks([100 * lv for lv in levels])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    return fig


def delta_figure(cells: dict, profile):
    """Figure: every H1 cell's change in test BLEU against dense with its 95% interval, the H1 margin,
    zero, and the paper's published change where there is one."""
    import matplotlib.pyplot as plt

    models = paper_models(profile)
    colours = dict(zip(profile.sizes, SIZE_COLOURS))
    rows = []
    for size in profile.sizes:
        for task in V.DATA_TO_TEXT:
            for level in profile.sparsity_levels:
                if level == 0 or (size, task, level) not in cells or (size, task, 0.0) not in cells:
                    continue
                try:
                    iv = V.delta(cells, size, task, level)
                    est, err = iv.estimate, iv.high - iv.estimate
                except stats.NotComputable:
                    est, err = cells[(size, task, level)].mean - cells[(size, task, 0.0)].mean, math.nan
                rows.append((f"{size}, {V.TASK_LABEL[task]}, {level:.0%}", size, est, err,
                             V.PUBLISHED_DELTA.get((models[size], task, level))))
    fig, ax = plt.subplots(figsize=(7, 0.42 * len(rows) + 1.4))
    ys = list(range(len(rows)))[::-1]
    labelled = set()
    for y, (name, size, est, err, published) in zip(ys, rows):
        ax.errorbar([est], [y], xerr=[[0 if math.isnan(err) else err]] * 2, fmt="o", capsize=3, color=colours[size],
                    label=None if size in labelled else f"{size}, ours (95% CI)")
        labelled.add(size)
        if published is not None:
            ax.plot([published], [y], "D", color="black", markersize=5,
                    label=None if "paper" in labelled else "the paper's published change")
            labelled.add("paper")
    ax.axvline(0, color="gray", linewidth=1)
    ax.axvline(-V.BLEU_MARGIN, color="tab:red", linestyle="--", linewidth=1,
               label=f"H1 margin (-{V.BLEU_MARGIN:g} BLEU)")
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("change in test BLEU, sparse minus dense (points)")
    ax.set_title("H1 cells: BLEU change against dense of the same size", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def verdict_summary(results: Sequence[V.Verdict]) -> pd.DataFrame:
    """One row per hypothesis: the statement, the verdict and how many cells had each outcome."""
    rows = []
    for v in results:
        counts = v.cells["outcome"].value_counts().to_dict() if not v.cells.empty else {}
        rows.append({"hypothesis": v.hypothesis, "statement": STATEMENTS[v.hypothesis], "verdict": v.verdict,
                     "cells judged": len(v.cells),
                     "outcomes": ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none"})
    return pd.DataFrame(rows)


def verdict_cells(results: Sequence[V.Verdict]) -> pd.DataFrame:
    """Every judged cell: what was compared, the estimate with its 95% interval, and the outcome."""
    frames = []
    for v in results:
        f = v.cells.copy()
        if f.empty:
            continue
        f["sparsity"] = f["sparsity"].map(level_label)
        f["task"] = f["task"].map(lambda t: V.TASK_LABEL.get(t, t))
        f["estimate [95% CI]"] = [("n/a" if math.isnan(e) else f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                                  for e, lo, hi in zip(f["estimate"], f["low"], f["high"])]
        frames.append(f[["hypothesis", "size", "task", "sparsity", "quantity", "estimate [95% CI]", "outcome"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


VERDICT_VIEW = {  # hypothesis -> (columns that name a cell, digits, what is compared, the rule)
    "H1": (("size", "task"), 2, "the change in test BLEU, sparse minus dense of the same size (BLEU points)",
           "preserved if the whole interval lies above -{m:g}, degraded if below -{m:g}"),
    "H2": (("size",), 3, "summarization's change of the test-reference loss minus the mean change of the three "
           "data-to-text tasks, sparse minus dense (nats per token)",
           "supported if the whole interval lies above 0 (summarization loses more), contradicted if below 0"),
    "H3": (("task",), 3, "the large model's change of the test-reference loss minus the small model's, sparse minus "
           "dense (nats per token)",
           "supported if the whole interval lies below 0 (the large model loses less), contradicted if above 0"),
}


def verdict_tables(results: Sequence[V.Verdict], cells: dict | None = None) -> list[tuple[str, pd.DataFrame]]:
    """One (caption, table) per hypothesis: each judged cell's estimate, 95% interval and outcome,
    the caption saying what is compared, in which unit, by which rule and, with ``cells``, over how
    many pre-trained models per cell."""
    out = []
    counts = sorted({c.n_pretrained for c in (cells or {}).values()})
    over = (f" Intervals: 95% Welch t over per-pre-training means, {'/'.join(map(str, counts))} pre-trained "
            f"models per cell." if counts else "")
    for v in results:
        names, digits, what, rule = VERDICT_VIEW[v.hypothesis]
        caption = f"{v.hypothesis}: {v.verdict}. Each row: {what}; {rule.format(m=V.BLEU_MARGIN)}.{over}"
        if v.cells.empty:
            out.append((caption, pd.DataFrame({"note": ["no cell could be judged at this profile"]})))
            continue
        f = v.cells
        frame = pd.DataFrame({
            **{n: (f[n].map(lambda t: V.TASK_LABEL.get(t, t)) if n == "task" else f[n]) for n in names},
            "sparsity": f["sparsity"].map(level_label),
            "estimate": ["n/a" if math.isnan(e) else f"{e:+.{digits}f}" for e in f["estimate"]],
            "95% CI": ["n/a" if math.isnan(lo) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"
                       for lo, hi in zip(f["low"], f["high"])],
            "outcome": f["outcome"]})
        out.append((caption, frame))
    return out


def noise_tables(noise: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The noise floor as two tables for reading: the sources of spread of every cell, and, for the
    sparse cells, the smallest detectable change beside the published one."""
    if noise.empty:
        empty = pd.DataFrame({"note": ["no cell has enough runs to split its spread"]})
        return empty, empty
    keys = ["size", "task", "sparsity", "metric"]
    spread = noise[keys].copy()
    spread["between pre-trained models (sd)"] = noise["pre-training seed sd"]
    spread["between fine-tuning seeds (sd)"] = noise["fine-tuning seed sd"]
    spread["chosen vs runner-up rate (|difference|)"] = noise["learning-rate choice"]
    if "smallest detectable Δ" not in noise:
        return spread, pd.DataFrame({"note": ["no sparse cell with a dense partner"]})
    sparse = noise[noise["sparsity"] != "dense"]
    detect = sparse[keys].copy()
    detect["smallest detectable change"] = sparse["smallest detectable Δ"]
    detect["paper's change"] = ["–" if math.isnan(x) else f"{x:+.2f}" for x in sparse["paper Δ"]]
    detect["paper's change detectable here"] = [
        "–" if math.isnan(pub) or math.isnan(mde) else "– (another perplexity scale)" if metric != "BLEU"
        else "– (no spread: every run scored the same)" if mde == 0 else "yes" if mde <= abs(pub) else "no"
        for mde, pub, metric in zip(sparse["smallest detectable Δ"], sparse["paper Δ"], sparse["metric"])]
    return spread, detect


def noise_floor_note(noise: pd.DataFrame, cells: dict) -> str:
    """Computed sentences: what each source of spread rests on, its typical size, and whether this
    setup resolves the paper's published changes (the smallest detectable change against them)."""
    if noise.empty:
        return "No cell has enough runs to split its spread."
    models = sorted({c.n_pretrained for c in cells.values()})
    repeated = sorted({sum(len(v) > 1 for v in c.values.values()) for c in cells.values()})
    within_df = sorted({sum(len(v) - 1 for v in c.values.values()) for c in cells.values()})
    join = lambda xs: "/".join(map(str, xs))  # noqa: E731
    text = f"**What the spread rests on.** Per cell, the between-model standard deviation comes from {join(models)} " \
           f"pre-trained models"
    if max(within_df) > 0:
        text += (f"; the between-seed one from the {join(repeated)} model(s) fine-tuned with more than one seed "
                 f"({join(within_df)} degree(s) of freedom), so it is itself uncertain. A between-model value of zero "
                 f"means the estimate (method of moments) came out negative and was clipped: the fine-tuning seeds "
                 f"explain all the spread between models. ")
    else:
        text += (". No model is fine-tuned with more than one seed, so the two parts cannot be told apart and "
                 "neither is computable. ")
    text += ("The learning-rate column is the difference of one run (first pre-trained model, first fine-tuning "
             "seed) at the chosen and at the runner-up rate, so it includes that run's fine-tuning noise. ")
    bleu = noise[noise["metric"] == "BLEU"]
    lines = []
    for col in ("pre-training seed sd", "fine-tuning seed sd", "learning-rate choice"):
        vals = bleu[col].dropna()
        lines.append(f"{col}: median {vals.median():.2f} BLEU (range {vals.min():.2f} to {vals.max():.2f}, "
                     f"{len(vals)} cells)" if len(vals) else f"{col}: not computable at this profile")
    text += "Over the BLEU cells, " + "; ".join(lines) + "."
    if "smallest detectable Δ" not in bleu:
        return text
    paired = bleu.dropna(subset=["smallest detectable Δ", "paper Δ"])
    flat = int((paired["smallest detectable Δ"] == 0).sum())
    paired = paired[paired["smallest detectable Δ"] > 0]
    if flat:
        text += (f" {flat} cell(s) with a published change have no spread at all (every run scored the same), so "
                 f"nothing can be said about what they detect; they are left out below.")
    if paired.empty:
        mde = bleu["smallest detectable Δ"].dropna()
        if mde.empty:
            return text + " The smallest detectable change is not computable (fewer than two pre-trained models)."
        return text + f" The smallest detectable change is {mde.min():.2f} to {mde.max():.2f} BLEU."
    resolved = int((paired["smallest detectable Δ"] <= paired["paper Δ"].abs()).sum())
    text += (f"\n\n**What this setup can detect.** In the {len(paired)} BLEU cells where the paper publishes a "
             f"change, the smallest change this design detects (two-sided 5% test, 80% power, from the standard "
             f"error of the cell's Δ) is {paired['smallest detectable Δ'].min():.2f} to "
             f"{paired['smallest detectable Δ'].max():.2f} BLEU, against published changes of "
             f"{paired['paper Δ'].abs().min():.2f} to {paired['paper Δ'].abs().max():.2f} BLEU in size; it could "
             f"resolve the published change in {resolved} of them.")
    if resolved == 0:
        text += (" **This setup cannot resolve the paper's effects**: every published change is smaller than what "
                 "these seeds can tell apart from zero, so a verdict of 'preserved' or 'degraded' here rests on the "
                 "margin, not on detecting the paper's differences.")
    elif resolved < len(paired):
        text += " Where it cannot, agreement or disagreement with the paper's sign is not evidence either way."
    return text


def _published_pairs(cells: dict, profile) -> list[dict]:
    """Every cell with a published change: ours (estimate and interval, NaN without one) and the paper's."""
    pairs = []
    for size, model in paper_models(profile).items():
        for (m, task, level), published in V.PUBLISHED_DELTA.items():
            if m != model or (size, task, level) not in cells or (size, task, 0.0) not in cells:
                continue
            try:
                iv = V.delta(cells, size, task, level)
                ours, lo, hi = iv.estimate, iv.low, iv.high
            except stats.NotComputable:
                ours = cells[(size, task, level)].mean - cells[(size, task, 0.0)].mean
                lo = hi = math.nan
            pairs.append({"size": size, "model": model, "task": task, "level": level, "metric": V.METRIC[task][0],
                          "ours": ours, "low": lo, "high": hi, "paper": published})
    return pairs


def paper_comparison(cells: dict, profile) -> pd.DataFrame:
    """Every cell with a published change: ours with its interval, the paper's, the ratio of sizes,
    whether the signs agree, and whether the published value and zero lie inside our interval. The
    perplexity rows compare sign only (another data set, tokenizer and model scale)."""
    rows = []
    for p in _published_pairs(cells, profile):
        sign_only, has_ci = p["metric"] != "BLEU", not math.isnan(p["low"])
        lo, hi = p["low"], p["high"]
        rows.append({"size": f"{p['size']} ({p['model']})", "task": V.TASK_LABEL[p["task"]],
                     "sparsity": level_label(p["level"]), "metric": p["metric"], "Δ ours": f"{p['ours']:+.2f}",
                     "95% CI": f"[{lo:+.2f}, {hi:+.2f}]" if has_ci else "n/a", "Δ paper": f"{p['paper']:+.2f}",
                     "ours / paper": "– (sign only)" if sign_only else f"{p['ours'] / p['paper']:.1f}x",
                     "same sign": "yes" if (p["ours"] >= 0) == (p["paper"] >= 0) else "no",
                     "paper inside our CI": ("– (sign only)" if sign_only else "n/a" if not has_ci
                                             else "yes" if lo <= p["paper"] <= hi else "no"),
                     "zero inside our CI": "n/a" if not has_ci else "yes" if lo <= 0 <= hi else "no"})
    return pd.DataFrame(rows)


def comparison_note(cells: dict, profile) -> str:
    """Sign and size of our changes against the published ones, computed (BLEU only for size: our
    summarization data, tokenizer and perplexity scale are not the paper's)."""
    pairs = _published_pairs(cells, profile)
    if not pairs:
        return "No cell with a published change has results here."
    same = lambda ps: sum((p["ours"] >= 0) == (p["paper"] >= 0) for p in ps)  # noqa: E731
    parts = []
    bleu = [p for p in pairs if p["metric"] == "BLEU"]
    if bleu:
        ratio = pd.Series([abs(p["ours"] / p["paper"]) for p in bleu])
        with_ci = [p for p in bleu if not math.isnan(p["low"])]
        inside = [p["low"] <= p["paper"] <= p["high"] for p in with_ci]
        zero = [p["low"] <= 0 <= p["high"] for p in with_ci]
        parts.append(f"**BLEU**: {same(bleu)} of {len(bleu)} cells move in the paper's direction. In size, our "
                     f"changes are {ratio.min():.1f}x to {ratio.max():.1f}x the published ones (median "
                     f"{ratio.median():.1f}x). The published change lies inside our 95% interval in {sum(inside)} of "
                     f"{len(with_ci)} cells and zero does in {sum(zero)}; in "
                     f"{sum(a and b for a, b in zip(inside, zero))} of them the interval holds both, so there our "
                     f"result agrees with the paper and with no effect at all alike, and agreement in sign is no "
                     f"evidence for the paper.")
    ppl = [p for p in pairs if p["metric"] != "BLEU"]
    if ppl:
        parts.append(f"**Perplexity**: {same(ppl)} of {len(ppl)} cells move in the paper's direction. Their sizes "
                     f"are not compared: another summarization data set, tokenizer and model scale set a different "
                     f"perplexity scale.")
    return "\n\n".join(parts)


def _size_gap(cells: dict, small: str, large: str, task: str, level: float, field: str = "value"):
    """The large model's change against dense minus the small model's, with its interval, or None."""
    keys = [(s, task, lv) for s in (small, large) for lv in (0.0, level)]
    if not all(k in cells for k in keys):
        return None
    try:
        return stats.contrast([(1.0, cells[(large, task, level)].unit_means(field)),
                               (-1.0, cells[(large, task, 0.0)].unit_means(field)),
                               (-1.0, cells[(small, task, level)].unit_means(field)),
                               (1.0, cells[(small, task, 0.0)].unit_means(field))])
    except stats.NotComputable:
        return None


def _bleu_change(cells: dict, size: str, task: str, level: float) -> str:
    try:
        return V.delta(cells, size, task, level).text() + " BLEU"
    except (KeyError, stats.NotComputable):
        if (size, task, level) in cells and (size, task, 0.0) in cells:
            return f"{cells[(size, task, level)].mean - cells[(size, task, 0.0)].mean:+.2f} BLEU (no interval)"
        return "not measured"


def _outcome(verdict: V.Verdict, task: str, level: float, size: str | None = None):
    """The judged row of ``verdict`` for (task, level[, size]), or None."""
    f = verdict.cells
    if f.empty:
        return None
    rows = f[(f["task"] == task) & (f["sparsity"] == level) & ((f["size"] == size) if size else True)]
    return None if rows.empty else rows.iloc[0]


def _h3_row(h3: V.Verdict, task: str, level: float, paper_says_less: bool, claim: str) -> str:
    """H3's cell for (task, level) in words, and whether it agrees with ``claim`` of the paper
    (``paper_says_less``: the claim has the large model losing less)."""
    r = _outcome(h3, task, level)
    if r is None:
        return "not judged"
    if math.isnan(r["estimate"]):
        return f"*{r['outcome']}*"
    agrees = {"supported": paper_says_less, "contradicted": not paper_says_less}.get(r["outcome"])
    words = (f"which neither confirms nor reverses {claim}" if agrees is None
             else f"which agrees with {claim}" if agrees else f"which reverses {claim}")
    return f"*{r['outcome']}* ({r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] nats per token), {words}"


def _gap_words(iv) -> str:
    if iv is None:
        return "no interval"
    side = ("the large model loses less" if iv.low > 0 else "the large model loses more" if iv.high < 0
            else "no difference resolved")
    return f"{iv.text()} BLEU, {side}"


def sources_note(cells: dict, profile, results: Sequence[V.Verdict]) -> str:
    """Our numbers for each point the sources make, computed: the WebNLG 50% statement, the paper's
    E2E evidence for H3 and its WebNLG and DART exception."""
    by_name = {v.hypothesis: v for v in results}
    h1, h3 = by_name["H1"], by_name["H3"]
    small, large = profile.sizes
    top = max(profile.sparsity_levels)
    half = [lv for lv in profile.sparsity_levels if 0 < lv < top]
    lines = []
    for lv in half:
        r = _outcome(h1, "webnlg", lv, large)
        lines.append(f"- **WebNLG at {lv:.0%}, {large}** (the first version's 'same trend'): our change is "
                     f"{_bleu_change(cells, large, 'webnlg', lv)}"
                     + (f"; its H1 cell is *{r['outcome']}*." if r is not None else "."))
    pub_l, pub_s = V.PUBLISHED_DELTA.get(("gpt3-xl", "e2e", top)), V.PUBLISHED_DELTA.get(("gpt2-small", "e2e", top))
    for task in ("e2e", "webnlg", "dart"):
        if task == "e2e":
            what, claim = "the paper's evidence for H3", "the paper's evidence"
            paper = (f" (the paper: {pub_l:+.2f} against {pub_s:+.2f})"
                     if pub_l is not None and pub_s is not None else "")
        else:
            what, claim = "the first version's exception", "the exception"
            paper = " (the paper: the large model degrades more)"
        lines.append(f"- **{V.TASK_LABEL[task]} at {top:.0%}**, {what}{paper}: our BLEU change is "
                     f"{_bleu_change(cells, large, task, top)} for {large} and {_bleu_change(cells, small, task, top)} "
                     f"for {small}; large minus small: {_gap_words(_size_gap(cells, small, large, task, top))}. On the "
                     f"loss scale of the rules, H3's cell is {_h3_row(h3, task, top, task == 'e2e', claim)}.")
    return "\n".join(lines)


def _count(n: float) -> str:
    """A count for reading: exact below a million, else in millions or billions."""
    return f"{n:,.0f}" if n < 1e6 else f"{n / 1e6:,.1f} M" if n < 1e9 else f"{n / 1e9:,.1f} B"


def setup_vs_paper(profile, pretrain_results: Iterable[dict], eval_results: Iterable[dict],
                   cells: dict) -> pd.DataFrame:
    """This setup beside the paper's, one row per aspect, computed from the runs (the paper's column
    from its sources and from chapter 02's parameter count of its models)."""
    from .flops import CHINCHILLA_TOKENS_PER_PARAM
    from .model import get_config, num_params

    pre = [r for r in pretrain_results if r["sparsity"] in profile.sparsity_levels]
    evals = list(eval_results)
    rows = []

    def add(aspect, ours, paper):
        rows.append({"": aspect, f"this book ({profile.name})": ours, "the paper": paper})

    for size, model in paper_models(profile).items():
        cfg, paper = get_config(size, vocab_size=profile.vocab_size), get_config(model)
        add(f"model ({size} / {model})", f"{plural(cfg.n_layer, 'layer')} x {cfg.n_embd} wide, "
            f"{_count(num_params(cfg))} parameters", f"{paper.n_layer} layers x {paper.n_embd} wide, "
            f"{_count(num_params(paper))} parameters counted as in chapter 02 (the sources write "
            f"{PAPER_STATED_SIZE[model]})")
        runs = [r for r in pre if r["size"] == size]
        if runs:
            r = runs[0]
            add(f"pre-training tokens ({size} / {model})",
                f"{_count(r['tokens'])} ({r['tokens'] / num_params(cfg):.2g} per parameter), "
                f"{r['passes']:.2g} passes over the corpus",
                f"about {CHINCHILLA_TOKENS_PER_PARAM} per parameter (the Chinchilla schedule): about "
                f"{_count(CHINCHILLA_TOKENS_PER_PARAM * num_params(paper))} tokens")
    add("pre-training corpus", "English Wikipedia, Project Gutenberg books and blog posts (chapter 03)", "the Pile")
    add("tokenizer", f"byte-level BPE trained on the corpus, {profile.vocab_size:,} tokens",
        f"GPT-2's byte-level BPE, {get_config(PAPER_MODEL[0]).vocab_size:,} tokens")
    add("sparsity", "static random mask at initialisation, the same level in every attention and feed-forward "
        "weight; levels " + ", ".join(f"{lv:.0%}" for lv in profile.sparsity_levels if lv),
        "the same (levels 50% and 75% in its tables)")
    seeds = sorted({r["seed"] for r in pre})
    add("runs per table cell", f"{len(seeds)} pre-trained model(s) per cell; {_design(cells)}",
        "'multiple training runs for each model', their number not stated; the wording suggests one pre-trained "
        "model per cell")
    add("hyper-parameter search", "the peak learning rate only, log-spaced and extended until the best is interior or "
        "a bound is reached (chapter 05), chosen on validation loss",
        "a grid over learning rate, epochs and weight decay; the selection criterion is not stated")
    inputs = {t: max(e["test_inputs"] for e in evals if e["task"] == t) for t in {e["task"] for e in evals}}
    add("data-to-text tasks (test inputs)", ", ".join(f"{V.TASK_LABEL[t]} {inputs[t]:,}" for t in V.DATA_TO_TEXT
                                                      if t in inputs), "E2E, WebNLG, DART")
    add("summarization", "BBC News summaries" + (f", {inputs['summarization']:,} test inputs"
                                                  if "summarization" in inputs else ""), "Curation Corpus")
    add("scorer", "corpus BLEU by sacreBLEU (13a tokenization, mixed case) against all references; perplexity of "
        "the reference summaries", "the official scripts of each task; perplexity")
    add("splits", "train: fine-tuning; validation: learning-rate choice; test: every score in the tables",
        "scores on the test set")
    return pd.DataFrame(rows)


def control_test_table(eval_results: Iterable[dict], lr_search: Iterable[dict], sizes: Sequence[str]) -> pd.DataFrame:
    """Test metric of dense fine-tuning vs masks-kept fine-tuning of the same pre-trained models (first
    fine-tuning seed): the mean paired difference, its 95% t interval over pre-trained models, and
    what it says about densifying (signs turned so that 'helps' means a better test metric)."""
    evals = list(eval_results)
    chosen = V.chosen_rates(lr_search)
    kept = [r for r in evals if r["keep_masks"]]
    order = {s: i for i, s in enumerate(sizes)}
    rows = []
    keys = sorted({(r["size"], r["task"], float(r["sparsity"])) for r in kept},
                  key=lambda k: (order.get(k[0], len(order)), list(V.METRIC).index(k[1]), k[2]))
    for key in keys:
        diffs = []
        for r in kept:
            if (r["size"], r["task"], float(r["sparsity"])) != key or r["lr"] != chosen.get(key):
                continue
            dense_id = r["run_id"].replace("sparseft", "denseft")
            twin = [d for d in evals if not d["keep_masks"] and d["run_id"] == dense_id]
            if twin:
                diffs.append(twin[0]["value"] - r["value"])
        metric, direction = V.METRIC[key[1]]
        better = 1.0 if direction == "higher" else -1.0
        row = {"size": key[0], "task": V.TASK_LABEL[key[1]], "sparsity": level_label(key[2]),
               "metric": f"{metric} ({direction} is better)", "pre-trained models": len(diffs)}
        try:
            iv = stats.mean_interval(diffs)
            row["dense minus masks kept [95% CI]"] = iv.text()
            low, high = sorted((better * iv.low, better * iv.high))
            row["densifying"] = "helps" if low > 0 else "hurts" if high < 0 else "unclear (interval contains 0)"
        except stats.NotComputable:
            row["dense minus masks kept [95% CI]"] = (f"{sum(diffs) / len(diffs):+.2f} [n/a]" if diffs else "n/a")
            row["densifying"] = "no interval (one model)"
        rows.append(row)
    return pd.DataFrame(rows)


def control_test_note(control: pd.DataFrame) -> str:
    """``report.control_findings`` for the test-set control table."""
    return report.control_findings(control, helps="gives a better test score", hurts="a worse one")


def example_outputs(tables_dir: Path, profile, eval_results: Iterable[dict], lr_search: Iterable[dict],
                    task: str = "e2e", n: int = 3) -> list[dict]:
    """The ``n`` test inputs where the large dense and most sparse models (first pre-training and
    fine-tuning seeds, chosen rates) differ most (lowest character-level similarity), in full."""
    from .data import load_task
    from .outputs import read_outputs
    from .results import OUTPUTS_NAME

    large, top = profile.sizes[-1], max(profile.sparsity_levels)
    chosen = V.chosen_rates(lr_search)
    picked = {}
    for r in eval_results:
        level = float(r["sparsity"])
        if (r["size"], r["task"], r["pretrain_seed"], r["seed"], r["keep_masks"]) == \
                (large, task, profile.pretrain_seeds[0], profile.finetune_seeds[0], False) \
                and level in (0.0, top) and r["lr"] == chosen.get((large, task, level)):
            picked[level] = r
    if set(picked) != {0.0, top}:
        return []
    test = load_task(task, "test", limit=profile.task(task).max_test_inputs)
    folder = Path(tables_dir) / profile.name / "runs" / "eval"
    outs = {lv: read_outputs(folder / f"{r['run_id']}.{OUTPUTS_NAME}", len(test)) for lv, r in picked.items()}
    order = sorted(range(len(test)), key=lambda i: difflib.SequenceMatcher(None, outs[0.0][i], outs[top][i]).ratio())
    return [{"input": test[i]["source"], f"reference (first of {len(test[i]['references'])})": test[i]["references"][0],
             f"{large} dense": outs[0.0][i], f"{large} {level_label(top)}": outs[top][i]} for i in order[:n]]


def published_beside(tables_dir: Path, profile: str, repo_tables: Path) -> pd.DataFrame:
    """Table 2's values of this run beside the committed ``gpu`` Table 2 (the published run)."""
    ours_path = Path(tables_dir) / profile / "table2.csv"
    published_path = Path(repo_tables) / "gpu" / "table2.csv"
    if profile == "gpu":
        return pd.DataFrame({"note": ["this page is the published gpu run itself; render another profile to see it "
                                      "beside this one"]})
    if not published_path.exists() or not ours_path.exists():
        return pd.DataFrame({"note": ["no committed gpu-profile Table 2 in this checkout"]})
    ours, published = pd.read_csv(ours_path), pd.read_csv(published_path)
    if "Task" not in published.columns:
        return pd.DataFrame({"note": [f"the committed {published_path.name} has another layout (an older version of "
                                      f"the book); re-render the gpu profile to compare"]})
    ours, published = ours.set_index("Task"), published.set_index("Task")
    cols = [c for c in ours.columns if c.endswith("ours") or "Δ ours" in c]
    both = pd.concat({f"this run ({profile})": ours[cols], "published run (gpu)": published.reindex(columns=cols)},
                     axis=1)
    return both.reset_index()


def summary_note(results: Sequence[V.Verdict], noise: pd.DataFrame, cells: dict, profile) -> str:
    """The chapter's findings in a few computed lines: each verdict with its outcomes, and whether the
    setup resolves the paper's published BLEU changes."""
    lines = [f"- **{v.hypothesis}** ({STATEMENTS[v.hypothesis]}): *{v.verdict}*; "
             + (", ".join(f"{n} {o}" for o, n in sorted(v.cells["outcome"].value_counts().items()))
                if not v.cells.empty else "no cell judged") + f" of {len(v.cells)} cells." for v in results]
    if not noise.empty and "smallest detectable Δ" in noise:
        bleu = noise[(noise["metric"] == "BLEU")].dropna(subset=["smallest detectable Δ", "paper Δ"])
        bleu = bleu[bleu["smallest detectable Δ"] > 0]
        if not bleu.empty:
            resolved = int((bleu["smallest detectable Δ"] <= bleu["paper Δ"].abs()).sum())
            lines.append(f"- The design resolves the paper's published BLEU change in {resolved} of the {len(bleu)} "
                         f"cells where there is one.")
    bleu = [p for p in _published_pairs(cells, profile) if p["metric"] == "BLEU"]
    if bleu:
        ratio = pd.Series([abs(p["ours"] / p["paper"]) for p in bleu])
        lines.append(f"- Our BLEU changes are a median {ratio.median():.1f}x the size of the published ones.")
    return "\n".join(lines)


def official_vs_sacrebleu_note(scores: pd.DataFrame, eval_results: Iterable[dict]) -> str:
    """By task, how far the official scorer's BLEU lies from the book's sacreBLEU on the same outputs."""
    if scores.empty:
        return "No decoded outputs to score at this profile."
    results = {r["run_id"]: r for r in eval_results}
    parts = []
    for task, group in scores.groupby("task", sort=False):
        diff = pd.Series([row["BLEU"] - results[row["run_id"]]["value"] for _, row in group.iterrows()])
        kept = sum(bool(results[row["run_id"]].get("keep_masks")) for _, row in group.iterrows())
        which = f"{len(diff) - kept} fine-tuned dense" + (f", {kept} with the masks kept" if kept else "")
        parts.append(f"{V.TASK_LABEL[task]} {diff.mean():+.2f} (from {diff.min():+.2f} to {diff.max():+.2f} over "
                     f"{len(diff)} final runs: {which})")
    return ("Official BLEU minus the sacreBLEU of Tables 1 and 2, on the same decoded outputs, mean and range over "
            "the runs scored (every size, sparsity and seed; a range, not an interval: it says how far the two "
            "scorers part on one run's outputs): " + "; ".join(parts)
            + ". The official scorers lower-case and tokenize differently, so the two are not interchangeable: "
              "compare a number with the paper's only when it comes from the same scorer.")
