"""Tables 1 and 2 and the verdicts on H1-H3, computed from per-run test results (chapter 06).

Nothing here is typed by hand: a cell is the mean over every final run of one (size, task,
sparsity), its spread the standard deviation of the per-pre-training means, each delta against the
dense model of the same size comes with the 95% interval of ``spdf_lib.stats`` (units: pre-trained
models), and the published values come from ``PUBLISHED_DELTA`` (transcribed from the sources;
absent where they publish nothing).

The rules below are fixed before any result is read and can come out either way. Each judged cell
has one of three outcomes, decided by where its interval lies:

* H1 (sparse pre-training preserves the data-to-text BLEU): *preserved* when the whole interval of
  the BLEU change lies above ``-BLEU_MARGIN``, *degraded* when it lies below, else *inconclusive*.
* H2 (summarization suffers more than data-to-text) and H3 (the larger model suffers less), on one
  scale for all four tasks: the change of the fine-tuned model's mean per-token loss on the test
  references (nats, sparse minus dense). H2 at each size and sparsity: summarization's change minus
  the mean change of the three data-to-text tasks, computed per pre-trained model; *supported* when
  its interval lies above 0, *contradicted* below, else *inconclusive*. H3 at each task and sparsity:
  the large model's change minus the small model's; *supported* below 0, *contradicted* above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import pandas as pd

from . import stats

__all__ = [
    "METRIC", "TASK_LABEL", "TASK_OF_LABEL", "PUBLISHED_DELTA", "PUBLISHED_VALUE", "BLEU_MARGIN", "MARGIN_REASON", "rules_markdown",
    "Cell", "variant_of", "chosen_rates", "final_evals", "collect", "delta", "Verdict", "verdict_h1", "verdict_h2",
    "verdict_h3", "judge", "cell_inputs", "results_table",
    "noise_floor", "DATA_TO_TEXT", "level_label",
]

METRIC = {"e2e": ("BLEU", "higher"), "webnlg": ("BLEU", "higher"), "dart": ("BLEU", "higher"),
          "summarization": ("PPL", "lower")}
TASK_LABEL = {"e2e": "E2E", "webnlg": "WebNLG", "dart": "DART", "summarization": "Summarization"}
TASK_OF_LABEL = {label: task for task, label in TASK_LABEL.items()}  # a table's task label back to its name
DATA_TO_TEXT = ("e2e", "webnlg", "dart")

# Published deltas vs dense, (paper model, task, sparsity) -> value; absent: not published.
# Sources: the SPDF blog of November 2022 (v1) and its March 2023 update (v2), see the bibliography.
PUBLISHED_DELTA = {
    ("gpt3-xl", "e2e", 0.75): -0.44, ("gpt3-xl", "webnlg", 0.75): -0.56, ("gpt3-xl", "dart", 0.75): -0.75,
    ("gpt3-xl", "summarization", 0.50): 0.83, ("gpt3-xl", "summarization", 0.75): 2.75,
    ("gpt2-small", "e2e", 0.50): -0.10, ("gpt2-small", "e2e", 0.75): -0.99,
    ("gpt2-small", "webnlg", 0.50): -0.32, ("gpt2-small", "dart", 0.50): -0.56,
    ("gpt2-small", "summarization", 0.75): 3.76,
}
PUBLISHED_VALUE = {("gpt3-xl", "e2e", 0.0): (68.10, 0.46), ("gpt3-xl", "e2e", 0.75): (67.66, 0.59)}

# H1's margin, in BLEU points. The March 2023 text calls the 75% GPT-3 XL deltas of -0.44, -0.56 and
# -0.75 BLEU "without any significant degradation", and the November 2022 text reports -0.98 for the
# 75% GPT-2 Small E2E model among its preserved results: the paper's own usage treats a loss below
# one BLEU point as preserved, so one point is the margin.
BLEU_MARGIN = 1.0
MARGIN_REASON = ("the sources call BLEU changes of -0.44 to -0.75 (GPT-3 XL at 75%) 'without any significant "
                 "degradation' and report -0.98 (GPT-2 Small, E2E, 75%; -0.99 in the March 2023 update, whose "
                 "value the tables show) among their preserved results, so a loss below one BLEU point is what "
                 "the paper calls preserved")


def level_label(level: float) -> str:
    """'dense' or 'N% sparse', how every table of the book names a pre-training sparsity."""
    return "dense" if level == 0 else f"{level:.0%} sparse"


def rules_markdown() -> str:
    """The verdict rules as the chapter prints them, before any result is read."""
    return "\n".join([
        f"- **Intervals**: {stats.METHOD}.",
        f"- **H1** (each of the three data-to-text tasks, each size, each sparsity): the change in test BLEU "
        f"against the dense model of the same size. *Preserved* if the whole interval lies above "
        f"-{BLEU_MARGIN:g} BLEU, *degraded* if it lies below -{BLEU_MARGIN:g}, otherwise *inconclusive*. "
        f"The margin: {MARGIN_REASON}. H1 holds if every cell is preserved and fails if any is degraded; "
        f"otherwise it is inconclusive.",
        "- **One scale for H2 and H3**: the change of the mean per-token loss (nats) of the fine-tuned model "
        "on the test references given their input, sparse minus dense; defined for all four tasks.",
        "- **H2** (each size, each sparsity): summarization's loss change minus the mean change of the three "
        "data-to-text tasks, computed per pre-trained model. *Supported* if the interval lies above 0, "
        "*contradicted* if below, otherwise *inconclusive*. H2 holds if every cell is supported and fails if "
        "any is contradicted.",
        "- **H3** (each task, each sparsity): the large model's loss change minus the small model's. "
        "*Supported* if the interval lies below 0 (the large model loses less), *contradicted* if above. "
        "The paper claims this only 'in some cases': H3 holds if at least one cell is supported and none is "
        "contradicted, fails if at least one is contradicted and none supported, is *mixed* if both occur.",
        "- A rule needs at least two pre-trained models in every group it compares; otherwise its verdict is "
        "*not computable*.",
    ])


@dataclass(frozen=True)
class Cell:
    """The final runs of one (size, task, sparsity), by pre-trained model (pre-training seed)."""

    size: str
    task: str
    sparsity: float
    values: dict  # pre-training seed -> tuple of test metric values (one per fine-tuning seed)
    losses: dict  # pre-training seed -> tuple of test-reference losses (nats per token)

    @property
    def n_runs(self) -> int:
        return sum(len(v) for v in self.values.values())

    @property
    def n_pretrained(self) -> int:
        return len(self.values)

    def unit_means(self, field: str = "value") -> list[float]:
        return stats.unit_means(self.values if field == "value" else self.losses)

    @property
    def mean(self) -> float:
        means = self.unit_means()
        return sum(means) / len(means)

    @property
    def sd(self) -> float:
        """Sample standard deviation (n-1) of the per-pre-training means; NaN with one model."""
        means = self.unit_means()
        if len(means) < 2:
            return float("nan")
        m = sum(means) / len(means)
        return math.sqrt(sum((x - m) ** 2 for x in means) / (len(means) - 1))


def variant_of(result) -> str:
    """The run kind of a result or search cell: ``""`` for the grid of chapters 04-06 (the static mask
    at the Chinchilla length), else chapter 09's ``"isoflop"``, ``"rigl"`` or ``"set"``."""
    return str(result.get("variant") or "")


def chosen_rates(lr_search: Iterable[dict]) -> dict[tuple[str, str, float], float]:
    """The learning rate each grid cell's search chose, by (size, task, sparsity); chapter 09's cells
    (a ``variant``) are left out, so they never stand in for a grid cell of the same key."""
    return {(c["size"], c["task"], float(c["sparsity"])): c["chosen"] for c in lr_search if not variant_of(c)}


def final_evals(eval_results: Iterable[dict], lr_search: Iterable[dict]) -> list[dict]:
    """The evaluations of final runs: at the rate each cell's search chose, grid and chapter 09 cells
    alike (the runner-up rate's evaluation, kept for the noise floor, is left out), dense fine-tuning
    and the masks-kept control."""
    chosen = {(c["size"], round(float(c["sparsity"]), 6), variant_of(c), c["task"]): float(c["chosen"])
              for c in lr_search if c.get("chosen") is not None}
    return [e for e in eval_results
            if chosen.get((e["size"], round(float(e["sparsity"]), 6), variant_of(e), e["task"])) == float(e["lr"])]


def collect(eval_results: Iterable[dict], lr_search: Iterable[dict], keep_masks: bool = False) -> dict:
    """Cells of the final runs: for each (size, task, sparsity) the evaluations at the rate its search
    chose (the runner-up rate's evaluation is left out), grouped by pre-training seed."""
    chosen = chosen_rates(lr_search)
    grouped: dict = {}
    for r in eval_results:
        key = (r["size"], r["task"], float(r["sparsity"]))
        if variant_of(r) or bool(r["keep_masks"]) != keep_masks or key not in chosen or r["lr"] != chosen[key]:
            continue
        values, losses = grouped.setdefault(key, ({}, {}))
        values.setdefault(r["pretrain_seed"], []).append(float(r["value"]))
        losses.setdefault(r["pretrain_seed"], []).append(float(r["test_loss"]))
    return {k: Cell(k[0], k[1], k[2], {s: tuple(v) for s, v in vals.items()}, {s: tuple(v) for s, v in ls.items()})
            for k, (vals, ls) in grouped.items()}


def delta(cells: dict, size: str, task: str, level: float, field: str = "value") -> stats.Interval:
    """Sparse minus dense of one size and task, with its interval (raises stats.NotComputable)."""
    sparse, dense = cells[(size, task, level)], cells[(size, task, 0.0)]
    return stats.contrast([(1.0, sparse.unit_means(field)), (-1.0, dense.unit_means(field))])


@dataclass(frozen=True)
class Verdict:
    hypothesis: str
    verdict: str  # "supported", "not supported", "inconclusive", "mixed", "not computable"
    cells: pd.DataFrame  # one row per judged cell: what was compared, estimate, interval, outcome


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["hypothesis", "size", "task", "sparsity", "quantity", "estimate", "low",
                                       "high", "outcome"])


def _judge(iv: stats.Interval, good_above: float | None = None, good_below: float | None = None) -> str:
    if good_above is not None:
        return "preserved" if iv.low > good_above else "degraded" if iv.high < good_above else "inconclusive"
    return "supported" if iv.high < good_below else "contradicted" if iv.low > good_below else "inconclusive"


def _row(h, size, task, level, quantity, iv, outcome) -> dict:
    if iv is None:
        return {"hypothesis": h, "size": size, "task": task, "sparsity": level, "quantity": quantity,
                "estimate": float("nan"), "low": float("nan"), "high": float("nan"), "outcome": outcome}
    return {"hypothesis": h, "size": size, "task": task, "sparsity": level, "quantity": quantity,
            "estimate": iv.estimate, "low": iv.low, "high": iv.high, "outcome": outcome}


def _all_or_any(outcomes: Sequence[str], good: str, bad: str) -> str:
    if not outcomes or any(o == "not computable" for o in outcomes):
        return "not computable"
    if all(o == good for o in outcomes):
        return "supported"
    if any(o == bad for o in outcomes):
        return "not supported"
    return "inconclusive"


def verdict_h1(cells: dict, sizes: Sequence[str], levels: Sequence[float]) -> Verdict:
    rows = []
    for size in sizes:
        for task in DATA_TO_TEXT:
            for level in levels:
                if level == 0 or (size, task, level) not in cells or (size, task, 0.0) not in cells:
                    continue
                try:
                    iv = delta(cells, size, task, level)
                    outcome = _judge(iv, good_above=-BLEU_MARGIN)
                except stats.NotComputable:
                    iv, outcome = None, "not computable"
                rows.append(_row("H1", size, task, level, "BLEU change (sparse - dense)", iv, outcome))
    return Verdict("H1", _all_or_any([r["outcome"] for r in rows], "preserved", "degraded"), _frame(rows))


def _per_model_contrast(cells: dict, size: str, level: float) -> list[float]:
    """Per pre-trained model: summarization's test loss minus the mean of the data-to-text tasks'."""
    summ = cells[(size, "summarization", level)].losses
    d2t = [cells[(size, t, level)].losses for t in DATA_TO_TEXT]
    seeds = sorted(set(summ).intersection(*[set(d) for d in d2t]))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return [mean(summ[s]) - mean([mean(d[s]) for d in d2t]) for s in seeds]


def verdict_h2(cells: dict, sizes: Sequence[str], levels: Sequence[float]) -> Verdict:
    rows = []
    for size in sizes:
        for level in levels:
            needed = [(size, t, lv) for t in (*DATA_TO_TEXT, "summarization") for lv in (0.0, level)]
            if level == 0 or not all(k in cells for k in needed):
                continue
            try:
                iv = stats.contrast([(1.0, _per_model_contrast(cells, size, level)),
                                     (-1.0, _per_model_contrast(cells, size, 0.0))])
                outcome = "supported" if iv.low > 0 else "contradicted" if iv.high < 0 else "inconclusive"
            except stats.NotComputable:
                iv, outcome = None, "not computable"
            rows.append(_row("H2", size, "summarization vs data-to-text", level,
                             "loss change, summarization minus data-to-text mean (nats)", iv, outcome))
    return Verdict("H2", _all_or_any([r["outcome"] for r in rows], "supported", "contradicted"), _frame(rows))


def verdict_h3(cells: dict, small: str, large: str, levels: Sequence[float], tasks: Sequence[str]) -> Verdict:
    rows = []
    for task in tasks:
        for level in levels:
            keys = [(s, task, lv) for s in (small, large) for lv in (0.0, level)]
            if level == 0 or not all(k in cells for k in keys):
                continue
            try:
                iv = stats.contrast([(1.0, cells[(large, task, level)].unit_means("loss")),
                                     (-1.0, cells[(large, task, 0.0)].unit_means("loss")),
                                     (-1.0, cells[(small, task, level)].unit_means("loss")),
                                     (1.0, cells[(small, task, 0.0)].unit_means("loss"))])
                outcome = _judge(iv, good_below=0.0)
            except stats.NotComputable:
                iv, outcome = None, "not computable"
            rows.append(_row("H3", f"{large} vs {small}", task, level,
                             "loss change, large minus small (nats)", iv, outcome))
    outcomes = [r["outcome"] for r in rows]
    if not outcomes or "not computable" in outcomes:
        verdict = "not computable"
    elif "supported" in outcomes and "contradicted" in outcomes:
        verdict = "mixed"
    elif "supported" in outcomes:
        verdict = "supported"
    elif "contradicted" in outcomes:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return Verdict("H3", verdict, _frame(rows))


def cell_inputs(hypothesis: str, size: str, task: str, level: float,
                sizes: Sequence[str] = ()) -> list[tuple[str, str, float]]:
    """The (size, task, sparsity) cells a judged cell of ``hypothesis`` reads, by its rule: H1 the task at
    ``level`` and dense; H2 every data-to-text task and summarization at both; H3 the task at both, in each
    of ``sizes`` (the judged row's ``size`` names the pair). Used to ask which inputs a change reached."""
    level = float(level)
    if hypothesis == "H1":
        return [(size, task, level), (size, task, 0.0)]
    if hypothesis == "H2":
        return [(size, t, lv) for t in (*DATA_TO_TEXT, "summarization") for lv in (level, 0.0)]
    if hypothesis == "H3":
        if not sizes:
            raise ValueError("an H3 cell reads two sizes: pass sizes")
        return [(s, task, lv) for s in sizes for lv in (level, 0.0)]
    raise ValueError(f"unknown hypothesis {hypothesis!r}")


def judge(cells: dict, sizes: Sequence[str], levels: Sequence[float], tasks: Sequence[str]) -> list[Verdict]:
    """The book's three verdicts on ``cells``: H1 and H2 at every size, H3 between the first and the last
    size (left out with one size)."""
    out = [verdict_h1(cells, sizes, levels), verdict_h2(cells, sizes, levels)]
    if len(sizes) > 1:
        out.append(verdict_h3(cells, sizes[0], sizes[-1], levels, tasks))
    return out


def _published(paper_model: str, task: str, level: float) -> str:
    if level == 0:
        value = PUBLISHED_VALUE.get((paper_model, task, 0.0))
        return f"{value[0]:.2f} ± {value[1]:.2f}" if value else "–"
    value = PUBLISHED_DELTA.get((paper_model, task, level))
    return "–" if value is None else f"{value:+.2f}"


def results_table(cells: dict, size: str, paper_model: str, levels: Sequence[float],
                  tasks: Sequence[str]) -> pd.DataFrame:
    """Table 1 (small) or Table 2 (large): one row per task, a column group per sparsity with our
    value, our change against dense with its 95% interval, and the paper's published change."""
    rows = []
    full = max((c.n_pretrained for c in cells.values()), default=0)
    for task in tasks:
        metric, direction = METRIC[task]
        row = {("Task", ""): TASK_LABEL[task], ("Metric", ""): f"{metric} ({direction} is better)"}
        for level in levels:
            group = "Dense" if level == 0 else f"{level:.0%} sparse"
            cell = cells.get((size, task, level))
            if cell is None:
                ours = "n/a"
            else:
                spread = "" if math.isnan(cell.sd) else f" ± {cell.sd:.2f}"
                ours = f"{cell.mean:.2f}{spread}" + (f" (n={cell.n_pretrained})" if cell.n_pretrained < full else "")
            row[(group, "ours")] = ours
            if level > 0:
                try:
                    row[(group, "Δ ours [95% CI]")] = delta(cells, size, task, level).text()
                except (KeyError, stats.NotComputable):
                    dense = cells.get((size, task, 0.0))
                    row[(group, "Δ ours [95% CI]")] = ("n/a" if cell is None or dense is None
                                                       else f"{cell.mean - dense.mean:+.2f} [no interval]")
                row[(group, "Δ paper")] = _published(paper_model, task, level)
            else:
                row[(group, "paper")] = _published(paper_model, task, level)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def noise_floor(cells: dict, eval_results: Iterable[dict], lr_search: Iterable[dict], sizes: Sequence[str],
                levels: Sequence[float], paper_models: dict[str, str]) -> pd.DataFrame:
    """Per (size, task, sparsity): how much of the spread comes from the pre-training seed, the
    fine-tuning seed and the learning-rate choice, and the smallest change against dense this design
    detects (two-sided 5% test, 80% power), beside the change the paper publishes."""
    evals = list(eval_results)
    by_run = {(r["size"], r["task"], float(r["sparsity"]), r["pretrain_seed"], r["seed"], r["lr"]): r["value"]
              for r in evals if not r["keep_masks"]}
    rows = []
    for c in lr_search:
        key = (c["size"], c["task"], float(c["sparsity"]))
        cell = cells.get(key)
        if cell is None:
            continue
        comps = stats.variance_components(cell.values)
        p0 = min(cell.values)
        f0 = min(s for (sz, t, lv, p, s, lr) in by_run if (sz, t, lv, p) == (*key, p0))
        chosen = by_run.get((*key, p0, f0, c["chosen"]))
        runner = by_run.get((*key, p0, f0, c["runner_up"])) if c["runner_up"] is not None else None
        row = {"size": key[0], "task": TASK_LABEL[key[1]], "sparsity": level_label(key[2]), "metric": METRIC[key[1]][0],
               "pre-training seed sd": comps["between_sd"], "fine-tuning seed sd": comps["within_sd"],
               "learning-rate choice": (abs(chosen - runner) if chosen is not None and runner is not None
                                        else float("nan"))}
        if key[2] > 0 and (key[0], key[1], 0.0) in cells:
            try:
                iv = delta(cells, *key)
                row["smallest detectable Δ"] = stats.min_detectable(iv.se, iv.df)
            except stats.NotComputable:
                row["smallest detectable Δ"] = float("nan")
            published = PUBLISHED_DELTA.get((paper_models[key[0]], key[1], key[2]))
            row["paper Δ"] = float("nan") if published is None else published
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)
