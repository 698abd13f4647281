"""Tables 1 and 2, Figure 4 and the verdicts on H1-H3, computed from per-run results (chapter 06).

Nothing here is typed by hand: every cell is a mean and standard deviation over fine-tuning seeds
of the test metric, the delta is taken against the dense pre-trained model of the same size, and the
published values come from ``PUBLISHED`` (transcribed from ``published_numbers.md``; ``None`` where
the sources publish nothing). The verdict rules and their tolerances are fixed here, before any
result is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import pandas as pd

METRIC = {"e2e": ("BLEU", "higher"), "webnlg": ("BLEU", "higher"), "dart": ("BLEU", "higher"),
          "summarization": ("PPL", "lower")}
TASK_LABEL = {"e2e": "E2E", "webnlg": "WebNLG", "dart": "DART",
              "summarization": "Summarization (BBC News; paper: Curation Corpus)"}

# Published deltas vs dense, (paper model, task, sparsity) -> value; None: not published.
# Source: ../shared/paper/published_numbers.md (v1 = Nov 2022 blog, v2 = Mar 2023 update).
PUBLISHED_DELTA = {
    ("gpt3-xl", "e2e", 0.75): -0.44, ("gpt3-xl", "webnlg", 0.75): -0.56, ("gpt3-xl", "dart", 0.75): -0.75,
    ("gpt3-xl", "summarization", 0.50): 0.83, ("gpt3-xl", "summarization", 0.75): 2.75,
    ("gpt2-small", "e2e", 0.50): -0.10, ("gpt2-small", "e2e", 0.75): -0.99,
    ("gpt2-small", "webnlg", 0.50): -0.32, ("gpt2-small", "dart", 0.50): -0.56,
    ("gpt2-small", "summarization", 0.75): 3.76,
}
PUBLISHED_VALUE = {("gpt3-xl", "e2e", 0.0): "68.10 ± 0.46", ("gpt3-xl", "e2e", 0.75): "67.66 ± 0.59"}

# H1 tolerance, fixed before reading results: a sparse cell "preserves" the dense result when its
# loss is within this much, or within twice the standard error of the difference across seeds.
BLEU_TOLERANCE = 1.0  # BLEU points
PPL_TOLERANCE = 0.05  # relative perplexity increase


@dataclass(frozen=True)
class Cell:
    """Mean, standard deviation and count of one (size, task, sparsity) over seeds."""

    mean: float
    std: float
    n: int

    @property
    def sem(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else float("nan")


def cells(results: Iterable[dict], keep_masks: bool = False) -> dict[tuple[str, str, float], Cell]:
    """Group test results by (size, task, sparsity) and summarise over seeds."""
    frame = pd.DataFrame([r for r in results if bool(r["keep_masks"]) == keep_masks])
    out = {}
    if frame.empty:
        return out
    for (size, task, level), group in frame.groupby(["size", "task", "sparsity"]):
        values = group["value"].astype(float)
        out[(size, task, float(level))] = Cell(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1
                                               else 0.0, int(len(values)))
    return out


def degradation(task: str, dense: Cell, sparse: Cell) -> float:
    """Loss of quality relative to dense, positive = worse (BLEU drop or PPL rise, as a fraction);
    NaN when the dense result is 0 (no relative change is defined)."""
    if dense.mean == 0:
        return float("nan")
    if METRIC[task][1] == "higher":
        return (dense.mean - sparse.mean) / dense.mean
    return (sparse.mean - dense.mean) / dense.mean


def preserved(task: str, dense: Cell, sparse: Cell) -> bool:
    """H1's rule for one cell: within the fixed tolerance, or within noise across seeds."""
    diff = sparse.mean - dense.mean
    worse = -diff if METRIC[task][1] == "higher" else diff
    noise = 2 * math.sqrt(dense.sem ** 2 + sparse.sem ** 2) if dense.n > 1 and sparse.n > 1 else 0.0
    tolerance = BLEU_TOLERANCE if METRIC[task][0] == "BLEU" else PPL_TOLERANCE * dense.mean
    return worse <= max(tolerance, noise)


def results_table(cs: dict, size: str, paper_model: str, sparsity_levels: Iterable[float],
                  tasks: Iterable[str]) -> pd.DataFrame:
    """Table 1 (small) or Table 2 (large): rows = tasks, columns = sparsity levels."""
    rows = []
    levels = list(sparsity_levels)
    full = max((c.n for c in cs.values()), default=0)  # seeds of a complete cell
    for task in tasks:
        metric, direction = METRIC[task]
        row = {"task": TASK_LABEL[task], "metric": f"{metric} ({direction} is better)"}
        dense = cs.get((size, task, 0.0))
        for level in levels:
            cell = cs.get((size, task, level))
            label = "dense" if level == 0 else f"{level:.0%}"
            row[f"{label}: ours"] = ("n/a" if cell is None else f"{cell.mean:.2f} ± {cell.std:.2f}"
                                     + (f" (n={cell.n})" if cell.n < full else ""))
            if level > 0:
                row[f"{label}: ours Δ"] = ("n/a" if cell is None or dense is None
                                           else f"{cell.mean - dense.mean:+.2f}")
                published = PUBLISHED_DELTA.get((paper_model, task, level))
                row[f"{label}: paper Δ"] = "not published" if published is None else f"{published:+.2f}"
            else:
                row[f"{label}: paper"] = PUBLISHED_VALUE.get((paper_model, task, level), "not published")
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Verdict:
    hypothesis: str
    verdict: str  # "supported", "partly supported", "not supported", "undecided"
    evidence: str


def verdict_h1(cs: dict, sizes, levels, tasks) -> Verdict:
    checks = []
    for size in sizes:
        for task in tasks:
            dense = cs.get((size, task, 0.0))
            for level in levels:
                sparse = cs.get((size, task, level))
                if level > 0 and dense and sparse:
                    checks.append(((size, task, level), preserved(task, dense, sparse)))
    if not checks:
        return Verdict("H1", "undecided", "no results")
    kept = sum(ok for _, ok in checks)
    failed = ", ".join(f"{t}@{lvl:.0%} ({s})" for (s, t, lvl), ok in checks if not ok)
    share = kept / len(checks)
    verdict = "supported" if share == 1 else "partly supported" if share >= 0.5 else "not supported"
    return Verdict("H1", verdict, f"{kept} of {len(checks)} sparse cells preserve the dense result"
                   + (f"; not preserved: {failed}" if failed else ""))


def verdict_h2(cs: dict, sizes, level: float, tasks) -> Verdict:
    """Summarization should lose more (relative to dense) than the data-to-text tasks at ``level``."""
    lines, agree, total = [], 0, 0
    for size in sizes:
        data_to_text = [degradation(t, cs[(size, t, 0.0)], cs[(size, t, level)]) for t in tasks
                        if t != "summarization" and (size, t, 0.0) in cs and (size, t, level) in cs]
        data_to_text = [d for d in data_to_text if not math.isnan(d)]
        if "summarization" not in tasks or (size, "summarization", level) not in cs or not data_to_text:
            continue
        summ = degradation("summarization", cs[(size, "summarization", 0.0)], cs[(size, "summarization", level)])
        if math.isnan(summ):
            continue
        mean_d2t = sum(data_to_text) / len(data_to_text)
        total += 1
        agree += summ > mean_d2t
        lines.append(f"{size}: summarization {summ:+.1%} vs data-to-text mean {mean_d2t:+.1%}")
    if not total:
        return Verdict("H2", "undecided", "no results")
    verdict = "supported" if agree == total else "not supported" if agree == 0 else "partly supported"
    return Verdict("H2", verdict, "; ".join(lines) + " (relative loss vs dense, positive = worse)")


def verdict_h3(cs: dict, small: str, large: str, level: float, tasks) -> Verdict:
    """The large model should lose less (relative to its dense model) than the small one at ``level``."""
    lines, agree, total = [], 0, 0
    for task in tasks:
        keys = [(small, task, 0.0), (small, task, level), (large, task, 0.0), (large, task, level)]
        if not all(k in cs for k in keys):
            continue
        d_small = degradation(task, cs[keys[0]], cs[keys[1]])
        d_large = degradation(task, cs[keys[2]], cs[keys[3]])
        if math.isnan(d_small) or math.isnan(d_large):
            continue
        total += 1
        agree += d_large < d_small
        lines.append(f"{task}: large {d_large:+.1%} vs small {d_small:+.1%}")
    if not total:
        return Verdict("H3", "undecided", "no results")
    verdict = ("supported" if agree == total else "not supported" if agree == 0 else
               "partly supported")
    return Verdict("H3", verdict, f"{agree} of {total} tasks: " + "; ".join(lines))
