"""Chapter 06's views: Figure 4, the verdict tables, the noise floor, the comparison with the paper,
the set-up beside the paper's, the control on the test sets and decoded examples. Every number is
computed here from per-run results; the rules themselves live in ``spdf_lib.verdicts``."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from . import stats, verdicts as V
from .verdicts import level_label

__all__ = [
    "PAPER_MODEL", "STATEMENTS", "paper_models", "table_caption", "figure4", "verdict_summary", "verdict_cells",
    "noise_floor_note", "paper_comparison", "comparison_note", "setup_vs_paper", "control_test_table",
    "example_outputs", "published_beside",
]

PAPER_MODEL = ("gpt2-small", "gpt3-xl")  # the paper's model each of our two sizes stands for
STATEMENTS = {"H1": "50-75% sparse pre-training, then dense fine-tuning, preserves data-to-text BLEU",
              "H2": "summarization suffers more from sparse pre-training than the data-to-text tasks",
              "H3": "the larger model suffers less from sparse pre-training than the smaller one"}


def paper_models(profile) -> dict[str, str]:
    return dict(zip(profile.sizes, PAPER_MODEL))


def table_caption(cells: dict, profile) -> str:
    """What a table cell and its ± are, computed from the cells shown."""
    if not cells:
        return "No results."
    pre = sorted({c.n_pretrained for c in cells.values()})
    runs = sorted({c.n_runs for c in cells.values()})
    ft = len(profile.finetune_seeds)
    return (f"Each value is the mean over the final runs of a cell: {'/'.join(map(str, runs))} runs, from "
            f"{'/'.join(map(str, pre))} pre-trained models (pre-training seeds {', '.join(map(str, profile.pretrain_seeds))}) "
            f"x {ft} fine-tuning seed(s). ± is the sample standard deviation (n-1) of the per-pre-training means. "
            f"Δ is sparse minus dense of the same size, with its {stats.METHOD}. '–': the sources publish no value.")


def figure4(cells: dict, sizes: Sequence[str], levels: Sequence[float], size_labels: dict[str, str]):
    """Figure 4 rebuilt: test E2E BLEU and summarization perplexity against pre-training sparsity, one
    line per model size; error bars are 95% t intervals of the cell mean over pre-trained models. The
    paper's published GPT-3 XL E2E points (mean ± its published spread) are drawn where they exist."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task in zip(axes, ("e2e", "summarization")):
        for k, size in enumerate(sizes):
            xs, ys, errs = [], [], []
            for level in levels:
                cell = cells.get((size, task, level))
                if cell is None:
                    continue
                means = cell.unit_means()
                xs.append(100 * level + (k - 0.5) * 1.5)
                ys.append(cell.mean)
                try:
                    iv = stats.mean_interval(means)
                    errs.append(iv.high - iv.estimate)
                except stats.NotComputable:
                    errs.append(0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label=size_labels.get(size, size))
        if task == "e2e":
            pub = [(100 * lv, V.PUBLISHED_VALUE[("gpt3-xl", "e2e", lv)]) for lv in (0.0, 0.75)
                   if ("gpt3-xl", "e2e", lv) in V.PUBLISHED_VALUE]
            ax.errorbar([x for x, _ in pub], [v[0] for _, v in pub], yerr=[v[1] for _, v in pub], fmt="s--",
                        color="black", capsize=4, label="paper, GPT-3 XL (published ± spread)")
        metric, direction = V.METRIC[task]
        ax.set_xlabel("pre-training sparsity (%)")
        ax.set_ylabel(f"test {metric} ({direction} is better)")
        ax.set_title(f"{V.TASK_LABEL[task]}: {metric} after dense fine-tuning")
        ax.set_xticks([100 * lv for lv in levels])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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


def noise_floor_note(noise: pd.DataFrame) -> str:
    """Computed sentences: the typical spread by source, and whether this setup resolves the paper's
    published changes (the smallest detectable change against the published ones)."""
    if noise.empty:
        return "No cell has enough runs to split its spread."
    bleu = noise[noise["metric"] == "BLEU"]
    lines = []
    for col in ("pre-training seed sd", "fine-tuning seed sd", "learning-rate choice"):
        vals = bleu[col].dropna()
        lines.append(f"{col}: median {vals.median():.2f} BLEU (range {vals.min():.2f} to {vals.max():.2f}, "
                     f"{len(vals)} cells)" if len(vals) else f"{col}: not computable at this profile")
    text = "Over the BLEU cells, " + "; ".join(lines) + "."
    paired = bleu.dropna(subset=["smallest detectable Δ", "paper Δ"])
    if paired.empty:
        mde = bleu["smallest detectable Δ"].dropna()
        if mde.empty:
            return text + " The smallest detectable change is not computable (fewer than two pre-trained models)."
        return text + f" The smallest detectable change is {mde.min():.2f} to {mde.max():.2f} BLEU."
    resolved = int((paired["smallest detectable Δ"] <= paired["paper Δ"].abs()).sum())
    text += (f" In the {len(paired)} BLEU cells where the paper publishes a change, the smallest change this design "
             f"detects (two-sided 5% test, 80% power) is {paired['smallest detectable Δ'].min():.2f} to "
             f"{paired['smallest detectable Δ'].max():.2f} BLEU, against published changes of "
             f"{paired['paper Δ'].abs().min():.2f} to {paired['paper Δ'].abs().max():.2f} BLEU in size; "
             f"it could resolve the published change in {resolved} of them.")
    if resolved == 0:
        text += (" **This setup cannot resolve the paper's effects**: every published change is smaller than what "
                 "these seeds can tell apart from zero, so a verdict of 'preserved' or 'degraded' here rests on the "
                 "margin, not on detecting the paper's differences.")
    elif resolved < len(paired):
        text += " Where it cannot, agreement or disagreement with the paper's sign is not evidence either way."
    return text


def paper_comparison(cells: dict, profile) -> pd.DataFrame:
    """Every cell with a published change: ours with its interval, the paper's, the ratio of sizes,
    whether the signs agree and whether the published value lies inside our interval."""
    rows = []
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
            rows.append({"size": f"{size} ({model})", "task": V.TASK_LABEL[task], "sparsity": level_label(level),
                         "metric": V.METRIC[task][0], "ours Δ": ours,
                         "ours 95% CI": "n/a" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]",
                         "paper Δ": published, "ours / paper": ours / published if published else math.nan,
                         "same sign": (ours >= 0) == (published >= 0),
                         "paper inside our CI": (lo <= published <= hi) if not math.isnan(lo) else None})
    return pd.DataFrame(rows)


def comparison_note(comparison: pd.DataFrame) -> str:
    """Sign and size of our changes against the published ones, computed (BLEU and perplexity apart:
    our summarization data, tokenizer and perplexity scale are not the paper's)."""
    if comparison.empty:
        return "No cell with a published change has results here."
    parts = []
    for metric, group in comparison.groupby("metric"):
        same = int(group["same sign"].sum())
        inside = group["paper inside our CI"].dropna()
        ratio = group["ours / paper"].abs()
        parts.append(f"{metric}: {same} of {len(group)} cells move in the paper's direction; our changes are "
                     f"{ratio.min():.1f}x to {ratio.max():.1f}x the published size (median {ratio.median():.1f}x); "
                     f"the published value lies inside our 95% interval in {int(inside.sum())} of {len(inside)}")
    return ("; ".join(parts) + ". The perplexity changes are not comparable in size: a different summarization "
            "data set, tokenizer and model scale set the perplexity scale, so only their sign is read.")


def setup_vs_paper(profile, pretrain_results: Iterable[dict], eval_results: Iterable[dict]) -> pd.DataFrame:
    """This setup beside the paper's, computed from the runs (the paper's column from its sources)."""
    from .model import get_config, num_params

    pre = {(r["size"], r["sparsity"]): r for r in pretrain_results}
    evals = list(eval_results)
    rows = []
    for size, model in paper_models(profile).items():
        r = pre.get((size, 0.0))
        if r is None:
            continue
        cfg = get_config(size)
        paper = get_config(model)
        rows.append({"": f"{size} vs {model}", "layers x width": f"{cfg.n_layer} x {cfg.n_embd} "
                     f"(paper {paper.n_layer} x {paper.n_embd})",
                     "parameters": f"{num_params(get_config(size, vocab_size=profile.vocab_size)) / 1e6:.1f} M "
                                   f"(paper {num_params(paper) / 1e6:.0f} M)",
                     "pre-training tokens": f"{r['tokens'] / 1e6:.0f} M, {r['passes']:.2f} passes over the corpus "
                                            f"(paper about 20 per parameter of the Pile, under one pass)"})
    inputs = {t: max(e["test_inputs"] for e in evals if e["task"] == t) for t in {e["task"] for e in evals}}
    common = {"": "all", "layers x width": "-",
              "parameters": f"tokenizer: byte-level BPE, {profile.vocab_size} tokens (paper: GPT-2's, 50,257)",
              "pre-training tokens": "corpus: English Wikipedia, Project Gutenberg and blog posts (paper: the Pile)"}
    tasks = {"": "tasks", "layers x width": "-",
             "parameters": "test inputs: " + ", ".join(f"{V.TASK_LABEL[t]} {n:,}" for t, n in sorted(inputs.items())),
             "pre-training tokens": ("summarization: BBC News summaries (paper: Curation Corpus); BLEU: sacreBLEU "
                                     "13a, mixed case, beside the official scorers (paper: official scripts); the "
                                     "rate is chosen on validation loss, scores are on the test split")}
    return pd.DataFrame([*rows, common, tasks])


def control_test_table(eval_results: Iterable[dict], lr_search: Iterable[dict]) -> pd.DataFrame:
    """Test metric of dense fine-tuning vs masks-kept fine-tuning of the same pre-trained models (first
    fine-tuning seed): the mean difference and its 95% t interval over pre-trained models (paired)."""
    evals = [r for r in eval_results]
    chosen = {(c["size"], c["task"], float(c["sparsity"])): c["chosen"] for c in lr_search}
    kept = [r for r in evals if r["keep_masks"]]
    rows = []
    for key in sorted({(r["size"], r["task"], float(r["sparsity"])) for r in kept}):
        diffs = []
        for r in kept:
            if (r["size"], r["task"], float(r["sparsity"])) != key or r["lr"] != chosen.get(key):
                continue
            twin = [d for d in evals if not d["keep_masks"] and d["run_id"] == r["run_id"].replace("sparseft", "denseft")]
            if twin:
                diffs.append(twin[0]["value"] - r["value"])
        metric, direction = V.METRIC[key[1]]
        row = {"size": key[0], "task": V.TASK_LABEL[key[1]], "sparsity": level_label(key[2]),
               "metric": f"{metric} ({direction} is better)", "pre-trained models": len(diffs),
               "dense minus masks kept": sum(diffs) / len(diffs) if diffs else math.nan}
        try:
            row["95% CI"] = stats.mean_interval(diffs).text()
        except stats.NotComputable:
            row["95% CI"] = "n/a (one model)"
        rows.append(row)
    return pd.DataFrame(rows)


def example_outputs(tables_dir: Path, profile, eval_results: Iterable[dict], lr_search: Iterable[dict],
                    task: str = "e2e", n: int = 3) -> list[dict]:
    """The ``n`` test inputs where the large dense and most sparse models (first pre-training and
    fine-tuning seeds, chosen rates) differ most (lowest character-level similarity), in full."""
    from .data import load_task
    from .outputs import read_outputs
    from .results import OUTPUTS_NAME

    large, top = profile.sizes[-1], max(profile.sparsity_levels)
    chosen = {(c["size"], c["task"], float(c["sparsity"])): c["chosen"] for c in lr_search}
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
    return [{"input": test[i]["source"], "reference": test[i]["references"][0], "dense": outs[0.0][i],
             level_label(top): outs[top][i]} for i in order[:n]]


def published_beside(tables_dir: Path, profile: str, repo_tables: Path) -> pd.DataFrame:
    """Table 2's values of this run beside the committed ``gpu`` Table 2 (the published run)."""
    ours_path = Path(tables_dir) / profile / "table2.csv"
    published_path = Path(repo_tables) / "gpu" / "table2.csv"
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
