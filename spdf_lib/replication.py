"""How often a verdict would come out the same in a fresh run of the same design (chapter 06).

A second run of the grid is one sample of whether the verdicts move; this module estimates how often
they would. It fits a normal model to one run and draws many fresh runs from it:

* The unit is the pre-trained model, as in ``spdf_lib.stats``. For each (size, sparsity), every
  pre-trained model is a vector of its per-model means: the test metric and the test-reference loss
  of every task. Their observed covariance is the spread of a new pre-trained model around the truth.
  Tasks stay paired: a draw moves all tasks of one model together as the observed models did, which
  H2's per-model contrast needs.
* The truth is either this run's estimate (the plug-in choice of a power analysis: "if the effects
  are what this run measured") or, with ``truth_uncertain``, drawn anew for each fresh run around the
  estimate with the estimate's own sampling spread (covariance / n, widened to Student's t with n - 1
  degrees of freedom as the published intervals are): what this run leaves unknown then counts too,
  and more models per cell cannot remove the chance that the truth lies across a rule's line.
* A fresh run draws ``n_models`` new models for every (size, sparsity), each group independently of
  the others (as the rules' Welch intervals treat them), each model with one value per task and field
  (it stands for the model's mean over its fine-tuning seeds), and judges them with the same rules
  (``verdicts.judge``). Where the observed models had different numbers of fine-tuning seeds (the
  first pre-trained model of the gpu profile has two, the others one), the fitted spread is their
  average, and every drawn model has it.

What it leaves out: the uncertainty of the covariance itself (estimated from a few models), the
choice of a learning rate (a fresh run keeps every cell's observed runs at its chosen rate), and
anything not normal. Its probabilities are those of a model of this run, not of the world. With the
truth fixed, two fresh runs are independent draws and agree on a verdict with probability
``sum_v p_v ** 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import stats
from . import verdicts as V

__all__ = [
    "Group", "fit", "draw", "Forecast", "cell_key", "forecast", "forecast_pair", "OUTCOME_COLUMNS",
    "METHOD", "design_label", "verdict_table", "design_table", "cell_figure", "compare_with_run",
    "tail_reading", "comparison_sentence", "RecordEntry", "record_table", "record_sentence",
    "summary_sentence",
]

METHOD = ("a normal model fitted to this run: for each size and sparsity, the per-model means of every task "
          "(test metric and test-reference loss) spread between pre-trained models with their observed "
          "covariance, around a truth that is either this run's estimate or drawn anew for each fresh run with "
          "the estimate's own uncertainty; each fresh run draws new models, keeps every cell at its chosen "
          "learning rate, and is judged by the same rules")

FIELDS = ("value", "loss")


@dataclass(frozen=True)
class Group:
    """The fitted model of one (size, sparsity): the mean vector and the centred observed models."""

    size: str
    sparsity: float
    columns: tuple[tuple[str, str], ...]  # (task, field) of each entry of a model's vector
    mean: np.ndarray  # (p,)
    deviations: np.ndarray  # (n, p): each observed model minus the mean

    @property
    def n_observed(self) -> int:
        return len(self.deviations)

    @property
    def covariance(self) -> np.ndarray:
        return self.deviations.T @ self.deviations / (self.n_observed - 1)


def fit(cells: dict) -> dict[tuple[str, float], Group]:
    """The model of every (size, sparsity) in ``cells`` (``verdicts.collect``). Every task of a group must
    have the same pre-trained models, at least two (else NotComputable, naming the group and the models
    at fault): a model missing from one task would leave the covariance resting on fewer models than
    the verdicts it forecasts."""
    keys: dict[tuple[str, float], list[str]] = {}
    for size, task, level in cells:
        keys.setdefault((size, float(level)), []).append(task)
    groups = {}
    for (size, level), tasks in sorted(keys.items()):
        tasks = sorted(tasks)
        per_task = [cells[(size, t, level)] for t in tasks]
        seeds = sorted(set.intersection(*[set(c.values) for c in per_task]), key=str)
        partial = sorted(set.union(*[set(c.values) for c in per_task]) - set(seeds), key=str)
        if partial:
            raise stats.NotComputable(
                f"{size}, {V.level_label(level)}: pre-trained model(s) {', '.join(map(str, partial))} lack a result "
                f"in some of its tasks ({', '.join(tasks)}); a replication forecast needs every task of every model")
        if len(seeds) < 2:
            raise stats.NotComputable(
                f"{size}, {V.level_label(level)}: {len(seeds)} pre-trained model(s) common to its tasks "
                f"({', '.join(tasks)}); a replication forecast needs at least 2")
        columns = tuple((t, f) for t in tasks for f in FIELDS)
        rows = np.array([[np.mean((c.values if f == "value" else c.losses)[s]) for c in per_task for f in FIELDS]
                         for s in seeds], dtype=float)
        mean = rows.mean(axis=0)
        groups[(size, level)] = Group(size, level, columns, mean, rows - mean)
    return groups


def _models_for(n_models: int | Mapping[str, int], size: str) -> int:
    if isinstance(n_models, Mapping) and size not in n_models:
        raise ValueError(f"n_models gives no number for size {size!r} (it has {', '.join(map(str, n_models))})")
    n = n_models[size] if isinstance(n_models, Mapping) else n_models
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n_models={n} for {size}: a fresh run needs at least 2 pre-trained models per group")
    return int(n)


def draw(groups: dict[tuple[str, float], Group], rng: np.random.Generator, n_models: int | Mapping[str, int],
         truth_uncertain: bool = False) -> dict:
    """One fresh run: ``n_models`` new pre-trained models (a number, or one per size) for every group, as cells of
    ``verdicts.collect`` (one fine-tuning value per model). A new model is ``truth + w @ deviations /
    sqrt(n - 1)`` with ``w`` standard normal, so its covariance is the observed one. The truth is the
    observed mean, or with ``truth_uncertain`` a draw around it with the observed mean's own sampling
    spread (covariance / n), widened as Student's t with n - 1 degrees of freedom (a scale
    ``sqrt((n - 1) / chi2_{n-1})`` per group and draw), the uncertainty the published t intervals carry,
    so that a fresh run also varies with what the observed run left unknown."""
    cells = {}
    for (size, level), g in groups.items():
        n = _models_for(n_models, size)
        scale = 1 / math.sqrt(g.n_observed - 1)
        truth = g.mean
        if truth_uncertain:
            widen = math.sqrt((g.n_observed - 1) / rng.chisquare(g.n_observed - 1))
            truth = truth + rng.standard_normal(g.n_observed) @ g.deviations * scale * widen / math.sqrt(g.n_observed)
        w = rng.standard_normal((n, g.n_observed))
        models = truth + w @ g.deviations * scale
        by_task: dict[str, dict[str, dict]] = {}
        for j, (task, field) in enumerate(g.columns):
            by_task.setdefault(task, {})[field] = {k: (float(models[k, j]),) for k in range(n)}
        for task, fields in by_task.items():
            cells[(size, task, level)] = V.Cell(size, task, level, fields["value"], fields["loss"])
    return cells


@dataclass(frozen=True)
class Forecast:
    """The verdicts of ``draws`` fresh runs of ``n_models`` pre-trained models per group, beside the
    observed run's."""

    n_models: int | Mapping[str, int]  # pre-trained models per group, or per size
    truth_uncertain: bool  # fresh runs around a truth drawn anew each time, not around this run's estimates
    observed: tuple  # the observed run's verdicts (verdicts.Verdict)
    verdict_draws: pd.DataFrame  # one row per draw, one column per hypothesis: its verdict
    outcome_draws: pd.DataFrame  # one row per draw, one column per judged cell (cell_key): its outcome

    @property
    def draws(self) -> int:
        return len(self.verdict_draws)

    @property
    def mc_error(self) -> float:
        """The largest Monte Carlo standard error of a share of fresh runs here (``fresh run gives it`` and
        the outcome shares): 0.5 / sqrt(draws). The agreement of two fresh runs is a square of such
        shares and can have up to about 0.56 / sqrt(draws)."""
        return 0.5 / math.sqrt(self.draws)

    @property
    def verdicts(self) -> pd.DataFrame:
        """Per hypothesis: the observed verdict, how often a fresh run gives it, how often two fresh runs
        agree (``sum_v p_v ** 2``; NaN with an uncertain truth, where two runs of one world are not
        independent draws) and the verdict fresh runs give most often."""
        rows = []
        for v in self.observed:
            p = self.verdict_draws[v.hypothesis].value_counts(normalize=True)
            rows.append({"hypothesis": v.hypothesis, "observed verdict": v.verdict,
                         "fresh run gives it": float(p.get(v.verdict, 0.0)),
                         "two fresh runs agree": float("nan") if self.truth_uncertain else float((p ** 2).sum()),
                         "most likely verdict": str(p.idxmax())})
        return pd.DataFrame(rows)

    @property
    def cells(self) -> pd.DataFrame:
        """Per judged cell: the observed outcome, how often a fresh run gives it, and how often each
        outcome comes out (``OUTCOME_COLUMNS``: for the hypothesis, inconclusive, against it)."""
        rows = []
        for v in self.observed:
            for _, row in v.cells.iterrows():
                key = cell_key(row)
                p = self.outcome_draws[key].value_counts(normalize=True)
                rows.append({"hypothesis": key[0], "size": key[1], "task": key[2], "sparsity": key[3],
                             "observed outcome": row["outcome"],
                             "fresh run gives it": float(p.get(row["outcome"], 0.0)),
                             **{c: float(p.get(o, 0.0)) for c, o in zip(OUTCOME_COLUMNS, _outcomes(key[0]))}})
        return pd.DataFrame(rows)

    def kept(self, keys: Sequence[tuple]) -> np.ndarray:
        """Per draw: how many of the cells ``keys`` (``cell_key``) a fresh run gives their observed outcome."""
        observed = {k: o for v in self.observed for k, o in _outcomes_of(v).items()}
        return sum(((self.outcome_draws[k] == observed[k]).to_numpy(dtype=int) for k in keys),
                   np.zeros(self.draws, dtype=int))


def cell_key(row) -> tuple:
    """(hypothesis, size, task, sparsity) of a row of ``Verdict.cells``."""
    return (row["hypothesis"], row["size"], row["task"], float(row["sparsity"]))


def _outcomes_of(verdict: V.Verdict) -> dict[tuple, str]:
    c = verdict.cells
    return {(h, size, task, float(level)): outcome for h, size, task, level, outcome
            in zip(c["hypothesis"], c["size"], c["task"], c["sparsity"], c["outcome"])}


def forecast(cells: dict, judge: Callable[[dict], Sequence[V.Verdict]], n_models: int | Mapping[str, int] | None = None,
             draws: int = 1000, seed: int = 0, truth_uncertain: bool = False) -> Forecast:
    """Judge ``draws`` fresh runs drawn from the model of ``cells`` (``fit``) with ``judge`` (cells ->
    verdicts, e.g. ``verdicts.judge`` with the profile's sizes), each with ``n_models`` pre-trained
    models per group, or per size with a mapping (default: the smallest number any group has now),
    around this run's estimates
    or, with ``truth_uncertain``, around a truth drawn anew for each fresh run (``draw``).
    Reproducible for a ``seed``."""
    if draws < 1:
        raise ValueError(f"draws={draws}: a forecast needs at least one draw")
    groups = fit(cells)
    n_models = min(g.n_observed for g in groups.values()) if n_models is None else n_models
    for size in {g.size for g in groups.values()}:
        _models_for(n_models, size)  # every size has a count, and a usable one, before any draw
    observed = tuple(judge(cells))
    rng = np.random.default_rng(seed)
    verdict_rows, outcome_rows = [], []
    for _ in range(draws):
        judged = judge(draw(groups, rng, n_models, truth_uncertain))
        verdict_rows.append({v.hypothesis: v.verdict for v in judged})
        outcome_rows.append({k: o for v in judged for k, o in _outcomes_of(v).items()})
    keys = [k for v in observed for k in _outcomes_of(v)]
    outcomes = pd.DataFrame({k: [r.get(k, "not judged") for r in outcome_rows] for k in keys})
    return Forecast(n_models, truth_uncertain, observed,
                    pd.DataFrame(verdict_rows, columns=[v.hypothesis for v in observed]), outcomes)


# a cell's outcomes in the order of OUTCOME_COLUMNS: for the hypothesis, neither way, against it
OUTCOME_COLUMNS = ("P(for)", "P(inconclusive)", "P(against)", "P(not computable)")


def forecast_pair(cells: dict, judge: Callable[[dict], Sequence[V.Verdict]],
                  n_models: int | Mapping[str, int] | None = None, draws: int = 1000,
                  seed: int = 0) -> tuple[Forecast, Forecast]:
    """The two readings of one design that chapter 06 always sets side by side: :func:`forecast` with the
    truth fixed at this run's estimates, then with the truth uncertain, same draws and seed."""
    return tuple(forecast(cells, judge, n_models=n_models, draws=draws, seed=seed, truth_uncertain=u)
                 for u in (False, True))


def _outcomes(hypothesis: str) -> tuple[str, ...]:
    good, bad = ("preserved", "degraded") if hypothesis == "H1" else ("supported", "contradicted")
    return (good, "inconclusive", bad, "not computable")


# ------------------------------------------------------------------ what chapter 06 shows of a forecast

def design_label(f: Forecast) -> str:
    """How a table names a forecast's design: models per group and where the truth is."""
    return f"{_models_text(f.n_models)} models, {'truth uncertain' if f.truth_uncertain else 'truth = this run'}"


def _models_text(n_models: int | Mapping[str, int]) -> str:
    """'3', or '6 gpu-small / 3 gpu-large' for a count per size."""
    return " / ".join(f"{k} {size}" for size, k in n_models.items()) if isinstance(n_models, Mapping) else str(n_models)


def verdict_table(forecasts: Sequence[Forecast]) -> pd.DataFrame:
    """Per hypothesis: the observed verdict and, for each forecast (``design_label``), how often a fresh
    run gives it."""
    if not forecasts:
        raise ValueError("verdict_table needs at least one forecast")
    table = forecasts[0].verdicts[["hypothesis", "observed verdict"]].copy()
    for f in forecasts:
        given = f.verdicts.set_index("hypothesis")["fresh run gives it"]
        table[f"fresh run gives it: {design_label(f)}"] = table["hypothesis"].map(given)
    return table


def design_table(forecasts: Sequence[Forecast]) -> pd.DataFrame:
    """One row per design (models per group), one column per hypothesis and truth: how often a fresh run
    of that design gives the observed verdict. ``forecasts`` hold each design with the truth fixed and
    uncertain, in any order."""
    rows: dict = {}
    for f in forecasts:
        n = _models_text(f.n_models)
        row = rows.setdefault(n, {"pre-trained models per cell": n})
        truth = "truth uncertain" if f.truth_uncertain else "truth = this run"
        for _, v in f.verdicts.iterrows():
            row[f"{v['hypothesis']} ({v['observed verdict']}), {truth}"] = v["fresh run gives it"]
    frame = pd.DataFrame(list(rows.values()))
    return frame[["pre-trained models per cell", *sorted(c for c in frame.columns if c != "pre-trained models per cell")]]


def _cell_label(key: tuple) -> str:
    h, size, task, level = key
    return f"{h} {size}, {V.TASK_LABEL.get(task, task)}, {V.level_label(level)}"


def cell_figure(forecast: Forecast):
    """Figure: for every judged cell, the share of fresh runs whose outcome is for the hypothesis,
    inconclusive or against it (stacked bars), the observed outcome marked; one row per cell."""
    import matplotlib.pyplot as plt

    cells = forecast.cells
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(cells) + 1.6))
    ys = list(range(len(cells)))[::-1]
    colours = dict(zip(OUTCOME_COLUMNS[:3], ("tab:green", "lightgray", "tab:red")))
    names = {"P(for)": "for the hypothesis (preserved / supported)", "P(inconclusive)": "inconclusive",
             "P(against)": "against it (degraded / contradicted)"}
    left = np.zeros(len(cells))
    for column in OUTCOME_COLUMNS[:3]:
        share = cells[column].to_numpy(dtype=float)
        ax.barh(ys, share, left=left, color=colours[column], edgecolor="white", height=0.8, label=names[column])
        left += share
    label = "this run's outcome"
    for y, (_, r) in zip(ys, cells.iterrows()):
        kind = _outcomes(r["hypothesis"]).index(r["observed outcome"])
        if kind > 2:  # not computable: no bar to mark
            continue
        start = sum(float(r[c]) for c in OUTCOME_COLUMNS[:kind])
        ax.plot([start + float(r[OUTCOME_COLUMNS[kind]]) / 2], [y], marker="o", color="black", markersize=4,
                linestyle="none", label=label)
        label = None
    keys = [(r["hypothesis"], r["size"], r["task"], r["sparsity"]) for _, r in cells.iterrows()]
    ax.set_yticks(ys, [_cell_label(k) for k in keys], fontsize=7)
    ax.set_xlim(0, 1)
    design = design_label(forecast).replace(" models,", " pre-trained models per size and sparsity,")
    ax.set_xlabel(f"share of {forecast.draws} fresh runs ({design})")
    ax.set_title("Each judged cell: what fresh runs of this design would conclude", fontsize=10)
    fig.tight_layout()
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2)
    return fig


def compare_with_run(forecast: Forecast, rerun_cells: pd.DataFrame, size: str, label: str = "all judged cells") -> dict:
    """The forecast beside an actual second run of ``size``: ``rerun_cells`` is (a subset, named by
    ``label``, of) a re-run check's cell table (hypothesis, task label, sparsity, published outcome, same
    outcome). Returns the cells compared, how many the forecast expects to keep their published outcome,
    how many the second run kept, and the forecast's probability of keeping that many or fewer."""
    raw = V.TASK_OF_LABEL
    judged = rerun_cells[rerun_cells["published outcome"] != "not judged"]
    keys = [(r["hypothesis"], size, raw.get(r["task"], r["task"]), float(r["sparsity"])) for _, r in judged.iterrows()]
    missing = [k for k in keys if k not in forecast.outcome_draws.columns]
    if missing:
        raise KeyError(f"the forecast judged no cell {_cell_label(missing[0])}")
    forecast_outcomes = {k: o for v in forecast.observed for k, o in _outcomes_of(v).items()}
    for key, (_, r) in zip(keys, judged.iterrows()):
        if forecast_outcomes[key] != r["published outcome"]:
            raise ValueError(f"{_cell_label(key)}: the re-run check's published outcome is {r['published outcome']!r}, "
                             f"the forecast's {forecast_outcomes[key]!r}: they judged different runs or rates")
    kept = forecast.kept(keys)
    observed = int(judged["same outcome"].sum())
    return {"label": label, "size": size, "design": design_label(forecast), "n models": forecast.n_models,
            "truth uncertain": forecast.truth_uncertain, "cells": len(keys),
            "expected kept": float(kept.mean()), "observed kept": observed,
            "p at most observed": float((kept <= observed).mean()), "draws": forecast.draws}


def tail_reading(p: float, draws: int, line: float = 0.05) -> str:
    """Where a tail probability ``p`` estimated from ``draws`` fresh runs lies against ``line``, allowing
    for its own Monte Carlo error (two standard errors): 'below', 'above' or 'at'."""
    se = math.sqrt(max(p * (1 - p), 1e-12) / draws)
    return "below" if p + 2 * se < line else "above" if p - 2 * se > line else "at"


_READING = {
    "below": ("fewer than one in twenty", "so the {run} moved more than this model makes a fresh run move, and "
                                          "the model leaves out something that moved it"),
    "above": ("more than one in twenty", "so the {run} is within what this model makes a fresh run do"),
    "at": ("about one in twenty, within the simulation's own error",
           "so the {run} sits at the edge of what this model makes a fresh run do"),
}


def comparison_sentence(comparisons: Sequence[dict], caveat: bool = True, run: str = "second run") -> str:
    """The comparisons of ``compare_with_run`` in words, each with its reading against a line of one in
    twenty, and (``caveat``) what a same-seed later run can show; ``run`` names the later run."""
    if not comparisons:
        raise ValueError("comparison_sentence needs at least one comparison")
    parts = []
    for c in comparisons:
        head = f"{c['label'][0].upper()}{c['label'][1:]} ({c['cells']} of {c['size']})"
        if not c["cells"]:
            parts.append(f"{head}: none to compare.")
            continue
        band, reading = _READING[tail_reading(c["p at most observed"], c["draws"])]
        parts.append(f"{head}: the {run} kept the earlier outcome in {c['observed kept']}; fresh runs "
                     f"({c['design']}) keep {c['expected kept']:.1f} on average, and {c['observed kept']} or fewer "
                     f"in {c['p at most observed']:.1%} of {c['draws']} ({band}), {reading.format(run=run)}.")
    if caveat:
        parts.append(f"The {run} reused the earlier run's seeds, so it should move less than a fresh run with "
                     f"new ones: a {run} within the model's range is weak support for the model, one beyond it is "
                     "strong evidence against it.")
    return " ".join(parts)


@dataclass(frozen=True)
class RecordEntry:
    """One test of a fresh-run model against a later run, for :func:`record_table`: its name, the run
    the model was fitted to, the run it was held against, whether it counts as a test of the model
    (not when the later run was known as the model was written, nor for cells whose learning rate
    changed, which the model leaves out), and its ``compare_with_run`` dicts."""

    name: str
    model_of: str
    later_run: str
    counts: bool
    comparisons: Sequence[dict]


_RECORD_READING = {"below": "beyond the model", "above": "within", "at": "at the edge"}


def record_table(entries: Sequence[RecordEntry]) -> pd.DataFrame:
    """Every comparison of a fresh-run model with a later run, one row each: the test, the run the
    model was fitted to and the later run, the size, which cells, the models per group and whether the
    truth was fixed at the fitted run's estimates or uncertain, how many cells the forecast expects kept
    and how many were, the chance of that few or fewer, the reading against one in twenty
    (``tail_reading``: 'beyond the model' below it, 'at the edge' within the simulation's own error of
    it, 'within' above it), and whether the row counts as a test. Comparisons with no cells are left
    out."""
    rows = [{"test": e.name, "model of": e.model_of, "later run": e.later_run, "size": c["size"],
             "cells compared": c["label"], "models per group": _models_text(c["n models"]),
             "truth": "uncertain" if c["truth uncertain"] else "fixed",
             "cells": c["cells"], "expected kept": c["expected kept"], "observed kept": c["observed kept"],
             "P(that few or fewer)": c["p at most observed"],
             "reading": _RECORD_READING[tail_reading(c["p at most observed"], c["draws"])],
             "counts as a test": e.counts}
            for e in entries for c in e.comparisons if c["cells"]]
    return pd.DataFrame(rows, columns=["test", "model of", "later run", "size", "cells compared",
                                       "models per group", "truth", "cells", "expected kept", "observed kept",
                                       "P(that few or fewer)", "reading", "counts as a test"])


def record_sentence(record: pd.DataFrame) -> str:
    """:func:`record_table` in one sentence: per reading of the truth (fixed, uncertain), how many of
    the rows that count as tests fell beyond the model, and where; then how many of the others."""
    if record.empty:
        return "No forecast has been compared with a later run."
    tests = record[record["counts as a test"]]
    parts = []
    for truth in ("fixed", "uncertain"):
        rows = tests[tests["truth"] == truth]
        if rows.empty:
            continue
        beyond = rows[rows["reading"] == "beyond the model"]
        where = "; ".join(f"the {r['model of']}'s model against the {r['later run']}, {r['size']}"
                          for _, r in beyond.iterrows())
        parts.append(f"with the truth {truth}, {len(beyond)} of {len(rows)} fell beyond the model"
                     + (f" ({where})" if where else ""))
    text = ("Of the comparisons that count as tests, " + "; ".join(parts) + "."
            if parts else "No comparison counts as a test of the model yet.")
    others = record[~record["counts as a test"]]
    if len(others):
        text += (f" Of the {len(others)} that do not (the later run known when the model was written, or cells "
                 f"whose learning rate changed), {int((others['reading'] == 'beyond the model').sum())} fell "
                 "beyond it.")
    return text


def summary_sentence(forecasts: Sequence[Forecast]) -> str:
    """One sentence for chapter 06's summary: how often a fresh run gives each published verdict in the
    first forecast's design, and the least of those in each other design."""
    if not forecasts:
        raise ValueError("summary_sentence needs at least one forecast")
    first = forecasts[0].verdicts
    text = (f"Under a model of the published run, a fresh run of the same design ({design_label(forecasts[0])}) "
            "gives " + ", ".join(f"{r['hypothesis']}'s verdict in {r['fresh run gives it']:.0%}"
                                 for _, r in first.iterrows()) + " of fresh runs")
    others = [f"{f.verdicts['fresh run gives it'].min():.0%} ({design_label(f)})" for f in forecasts[1:]]
    if others:
        text += "; the least stable verdict comes out the same in " + ", ".join(others)
    return text + "."
