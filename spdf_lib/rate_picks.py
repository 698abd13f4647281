"""The learning rate each rule picks, run by run, and how often a re-run changes a pick (chapter 06).

Two rules: one rate per cell (size, task, sparsity), and one rate shared by a size and task's
sparsities, the lowest validation loss averaged over them (``LRSearch(shared=True)``).

* ``rate_choices`` applies both rules to the search runs of several committed runs, whichever rule each
  searched by, and ``rate_choices_sentence`` counts their agreement.
* ``margin_changes`` and ``margin_noise`` measure how far a second run moves the validation-loss
  difference between neighbouring rates; ``swap_forecast`` turns that noise and one run's margins into
  each pick's chance of changing in a re-run (``swap_sentence``), and ``swap_check`` holds the forecast
  against a run it was not fitted on (``swap_check_sentence``).

Every function is pure, on ``reruns.load_committed`` dicts.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd

from . import verdicts as V
from .reruns import lr_search_from_finetunes

__all__ = ["rate_choices", "rate_choices_sentence", "margin_changes", "margin_noise", "swap_forecast",
           "swap_sentence", "swap_check", "swap_check_sentence"]


def _rate_text(losses: dict, search) -> str:
    """The rate a search's losses choose, with ``(needs 0.008)`` when the rule would still try a rate."""
    from .runs import chosen_lr, next_rates

    if not losses:
        return "no common rate"
    more = next_rates(losses, search)
    return f"{chosen_lr(losses):g}" + (f" (needs {', '.join(f'{lr:g}' for lr in more)})" if more else "")


def _bare(text: str) -> str:
    """The rate of a :func:`_rate_text`, without its mark."""
    return text.split(" (")[0]


def rate_choices(runs: Mapping[str, dict], search, sizes: Sequence[str], levels: Sequence[float],
                 first_seed: int = 0, first_ft_seed: int = 0) -> pd.DataFrame:
    """For every (size, task) and every run (``runs``: name -> ``load_committed`` dict), the rate each
    of two rules picks from that run's search fine-tunes (``lr_search_from_finetunes``): one rate per
    cell (the sparsities of ``levels``, joined by ' / ') and one rate shared by the cells, the lowest
    validation loss averaged over them (``runs.pooled_losses``) at the rates all of them tried.

    Each rule sees the rates the run tried, whichever rule that run searched with: a run that searched
    with shared rates may have tried rates a per-cell search would not have, and the reverse. A rate
    the rule would still have extended past is marked '(needs ...)' (a provisional pick); a size a run
    did not compute reads 'not run', one it computed for some sparsities only 'incomplete', and a
    shared pick without a rate every cell tried 'no common rate'. Per (size, task): 'runs' compared;
    'same per cell' and 'same shared' (None with fewer than two runs) whether they all picked the same
    rates, marks ignored; 'cells that moved'; 'provisional shared picks' and 'smallest shared margin',
    the runner-up's averaged validation loss minus the chosen one's (nats), over the runs. A pure
    function of the results."""
    from .runs import chosen_lr, pooled_losses, runner_up_lr

    levels = tuple(float(lv) for lv in levels)
    searched = {name: _search_losses(stages, search, first_seed, first_ft_seed) for name, stages in runs.items()}
    rows = []
    for size in sizes:
        for task in V.METRIC:
            row = {"size": size, "task": V.TASK_LABEL.get(task, task)}
            per_cell, shared, margins = {}, {}, []
            for name, cells in searched.items():
                by_level = {lv: losses for (sz, t, lv), losses in cells.items() if (sz, t) == (size, task) and lv in levels}
                if not all(lv in by_level for lv in levels):
                    row[f"{name}: per cell"] = row[f"{name}: shared"] = "incomplete" if by_level else "not run"
                    continue
                per_cell[name] = tuple(_rate_text(by_level[lv], search) for lv in levels)
                pooled = pooled_losses([by_level[lv] for lv in levels])
                row[f"{name}: per cell"] = " / ".join(per_cell[name])
                row[f"{name}: shared"] = _rate_text(pooled, search)
                if pooled:
                    shared[name] = row[f"{name}: shared"]
                    second = runner_up_lr(pooled)
                    if second is not None:
                        margins.append(pooled[second] - pooled[chosen_lr(pooled)])
            if not per_cell:
                continue
            several = len(per_cell) > 1
            row["runs"] = len(per_cell)
            row["same per cell"] = len({tuple(map(_bare, v)) for v in per_cell.values()}) == 1 if several else None
            row["cells that moved"] = sum(len({_bare(v[i]) for v in per_cell.values()}) > 1 for i in range(len(levels)))
            row["same shared"] = (len({_bare(v) for v in shared.values()}) == 1 and len(shared) == len(per_cell)
                                  if several else None)
            row["provisional shared picks"] = sum("(needs" in v for v in shared.values())
            row["smallest shared margin"] = min(margins) if margins else math.nan
            rows.append(row)
    columns = ["size", "task", *[f"{n}: {k}" for n in runs for k in ("per cell", "shared")], "runs", "same per cell",
               "cells that moved", "same shared", "provisional shared picks", "smallest shared margin"]
    return pd.DataFrame(rows, columns=columns)


def rate_choices_sentence(frame: pd.DataFrame, levels: Sequence[float]) -> str:
    """Counted from :func:`rate_choices`: in how many (size, task) searches computed by more than one
    run each rule picked the same rates in every run, how many of the shared picks were provisional,
    and how close the closest shared pick was."""
    several = frame[frame["runs"] > 1]
    if several.empty:
        return "No (size, task) search was computed by more than one run: nothing to compare."
    n, cells = len(several), len(several) * len(levels)
    moved = int(several["cells that moved"].sum())
    text = (f"Over the {n} (size, task) searches computed by more than one run ({cells} cells), one rate per cell "
            f"picked another rate in some run in {moved} of the {cells} cells "
            f"({n - int(several['same per cell'].astype(bool).sum())} of the {n} searches); one rate shared by the "
            f"sparsities picked the same rate in every run in {int(several['same shared'].astype(bool).sum())} of "
            f"the {n} searches.")
    provisional = int(several["provisional shared picks"].sum())
    if provisional:
        searches = int((several["provisional shared picks"] > 0).sum())
        text += (f" {provisional} of those shared picks, in {searches} of the searches, are provisional: the shared "
                 f"rule would still have tried a rate past them, which that run did not.")
    if several["smallest shared margin"].notna().any():
        i = several["smallest shared margin"].idxmin()
        text += (f" The closest shared pick was {several.loc[i, 'smallest shared margin']:.4f} nats of averaged "
                 f"validation loss ahead of its runner-up ({several.loc[i, 'size']}, {several.loc[i, 'task']}): "
                 f"with so few runs, agreement can be luck.")
    return text


def _neighbour_gaps(losses: Mapping[float, float]) -> dict[tuple[float, float], float]:
    """(lower, upper) -> loss(upper) - loss(lower) for every two neighbouring rates tried (finite)."""
    lrs = [lr for lr in sorted(losses) if math.isfinite(losses[lr])]
    return {(a, b): losses[b] - losses[a] for a, b in zip(lrs, lrs[1:])}


def _search_losses(stages: dict, search, first_seed: int, first_ft_seed: int) -> dict[tuple[str, str, float], dict]:
    """(size, task, sparsity) -> {rate: validation loss} of a run's searches, each cell on its own
    (whatever ``search.shared`` says: the rules are applied to these losses afterwards)."""
    import dataclasses

    return {(c["size"], c["task"], float(c["sparsity"])): c["losses"]
            for c in lr_search_from_finetunes(stages["finetune"], dataclasses.replace(search, shared=False),
                                              first_seed, first_ft_seed)}


def margin_changes(published: dict, rerun: dict, search, levels: Sequence[float], first_seed: int = 0,
                   first_ft_seed: int = 0) -> pd.DataFrame:
    """How much a second run moves the validation-loss difference between two neighbouring rates of a
    search, the quantity a rate choice turns on: for every (size, task) searched in both runs, every two
    neighbouring rates both tried, per cell (``rule`` 'per cell', one row per sparsity) and averaged over
    the sparsities of ``levels`` as the shared rule averages them (``rule`` 'shared'): the difference in
    each run and its change (re-run minus published, nats). A pure function of the results."""
    from .runs import pooled_losses

    levels = tuple(float(lv) for lv in levels)
    cells = [{k: v for k, v in _search_losses(stages, search, first_seed, first_ft_seed).items() if k[2] in levels}
             for stages in (published, rerun)]
    rows = []

    def add(rule, size, task, sparsity, a, b):
        ga, gb = _neighbour_gaps(a), _neighbour_gaps(b)
        for pair in sorted(set(ga) & set(gb)):
            rows.append({"rule": rule, "size": size, "task": V.TASK_LABEL.get(task, task), "sparsity": sparsity,
                         "lower rate": pair[0], "upper rate": pair[1], "published difference": ga[pair],
                         "re-run difference": gb[pair], "change": gb[pair] - ga[pair]})

    for key in sorted(set(cells[0]) & set(cells[1]), key=str):
        add("per cell", *key, cells[0][key], cells[1][key])
    for size, task in sorted({(k[0], k[1]) for k in cells[0]} & {(k[0], k[1]) for k in cells[1]}):
        if all((size, task, lv) in c for c in cells for lv in levels):
            add("shared", size, task, math.nan, *[pooled_losses([c[(size, task, lv)] for lv in levels]) for c in cells])
    return pd.DataFrame(rows, columns=["rule", "size", "task", "sparsity", "lower rate", "upper rate",
                                       "published difference", "re-run difference", "change"])


def margin_noise(changes: pd.DataFrame) -> dict[str, float]:
    """Per rule of ``margin_changes``: the sample standard deviation (n - 1) of the margin changes, the
    noise ``swap_forecast`` gives a re-run (NaN with fewer than two)."""
    return {rule: (float(group["change"].std(ddof=1)) if len(group) > 1 else math.nan)
            for rule, group in changes.groupby("rule")}


def swap_forecast(stages: dict, search, levels: Sequence[float], noise: Mapping[str, float], sizes: Sequence[str],
                  first_seed: int = 0, first_ft_seed: int = 0) -> pd.DataFrame:
    """How likely a re-run is to pick another rate, rule by rule, from one run's searches: per (size, task)
    and rule ('per cell': each sparsity on its own; 'shared': one rate from the losses averaged over
    ``levels``), the margin (runner-up's validation loss minus the chosen one's) and the chance that a
    re-run's noise, normal with the rule's standard deviation ``noise[rule]`` (from ``margin_changes``),
    reverses it: ``Phi(-margin / sd)``, the margin taken as measured. A pick whose search would still
    extend past it (provisional) gets no chance: its margin is not known yet."""
    from scipy.stats import norm

    from .runs import chosen_lr, next_rates, pooled_losses, runner_up_lr

    levels = tuple(float(lv) for lv in levels)
    cells = _search_losses(stages, search, first_seed, first_ft_seed)
    rows = []
    for size in sizes:
        for task in V.METRIC:
            if not all((size, task, lv) in cells for lv in levels):
                continue
            decided = [("per cell", lv, cells[(size, task, lv)]) for lv in levels]
            decided.append(("shared", math.nan, pooled_losses([cells[(size, task, lv)] for lv in levels])))
            for rule, level, losses in decided:
                second = runner_up_lr(losses) if losses else None
                provisional = bool(next_rates(losses, search)) if losses else True
                margin = losses[second] - losses[chosen_lr(losses)] if second is not None else math.nan
                sd = noise.get(rule, math.nan)
                p = float(norm.cdf(-margin / sd)) if not provisional and math.isfinite(margin) and sd > 0 else math.nan
                rows.append({"size": size, "task": V.TASK_LABEL.get(task, task), "rule": rule, "sparsity": level,
                             "chosen": chosen_lr(losses) if losses else math.nan, "runner-up": second,
                             "margin (nats)": margin, "provisional": provisional, "P(re-run picks another)": p})
    return pd.DataFrame(rows, columns=["size", "task", "rule", "sparsity", "chosen", "runner-up", "margin (nats)",
                                       "provisional", "P(re-run picks another)"])


def _at_least(probabilities: Sequence[float], k: int) -> float:
    """P(at least ``k`` of independent events with these ``probabilities`` happen): the Poisson-binomial
    tail, by convolution."""
    if k <= 0:
        return 1.0
    dist = [1.0]
    for q in probabilities:
        dist = [a * (1 - q) + b * q for a, b in zip([*dist, 0.0], [0.0, *dist])]
    return float(min(1.0, sum(dist[k:])))


def swap_check(forecast: pd.DataFrame, stages: dict, search, levels: Sequence[float], first_seed: int = 0,
               first_ft_seed: int = 0) -> pd.DataFrame:
    """A :func:`swap_forecast` held against a run it was not fitted on (``stages``, a ``load_committed``
    dict): per rule, the picks the forecast called final, how many of them the forecast expects the run to
    change (the sum of their chances), how many it changed (the rule applied to that run's own search
    losses, at the rates it tried, so a run that searched by the other rule can be read too), and the
    chance of at least that many under the forecast (independent picks). A pick the run cannot make
    (a cell it did not search) is left out and counted in 'not searched'."""
    from .runs import chosen_lr, pooled_losses

    levels = tuple(float(lv) for lv in levels)
    cells = _search_losses(stages, search, first_seed, first_ft_seed)
    raw = V.TASK_OF_LABEL
    rows = []
    for rule, group in forecast.groupby("rule", sort=False):
        final = group[~group["provisional"] & group["P(re-run picks another)"].notna()]
        chances, changed, missing = [], 0, 0
        for _, r in final.iterrows():
            task = raw.get(r["task"], r["task"])
            wanted = levels if rule == "shared" else (float(r["sparsity"]),)
            if not all((r["size"], task, lv) in cells for lv in wanted):
                missing += 1
                continue
            losses = pooled_losses([cells[(r["size"], task, lv)] for lv in wanted])
            chances.append(float(r["P(re-run picks another)"]))
            changed += int(chosen_lr(losses) != r["chosen"])
        rows.append({"rule": rule, "final picks": len(chances), "expected changes": sum(chances),
                     "observed changes": changed, "P(at least observed)": _at_least(chances, changed),
                     "not searched": missing})
    return pd.DataFrame(rows, columns=["rule", "final picks", "expected changes", "observed changes",
                                       "P(at least observed)", "not searched"])


def swap_check_sentence(check: pd.DataFrame, run: str) -> str:
    """:func:`swap_check` in words, each rule with its tail probability read against one in twenty."""
    parts = []
    for _, r in check.iterrows():
        if not r["final picks"]:
            parts.append(f"{r['rule']}: no final pick to check")
            continue
        p = r["P(at least observed)"]
        reading = ("more than the forecast allows (fewer than one in twenty)" if p < 0.05
                   else "within what the forecast allows")
        parts.append(f"{r['rule']}, the forecast expected {r['expected changes']:.1f} of its {r['final picks']} final "
                     f"picks to change and the {run} changed {r['observed changes']} (at least that many in "
                     f"{p:.1%} of re-runs under the forecast: {reading})")
    return (f"The rate-swap forecast against the {run}, which it was not fitted on: with one rate "
            + "; with one rate ".join(parts) + ".")


def swap_sentence(changes: pd.DataFrame, forecast: pd.DataFrame, observed_swaps: int, observed_cells: int,
                  observed_size: str, shared_agreement: tuple[int, int] | None = None) -> str:
    """The rate-swap forecast in words: the measured noise of each rule's margin, the expected number of
    picks a re-run changes under each rule, the check against the second run's own swaps (in-sample:
    the noise was measured on that pair) and, with ``shared_agreement`` (searches whose shared pick was
    the same in every run, searches compared; from ``rate_choices``), against runs it was not fitted on."""
    parts = []
    for rule, name in (("per cell", "per cell"), ("shared", "shared by the sparsities")):
        ch = changes[changes["rule"] == rule]["change"]
        f = forecast[forecast["rule"] == rule]
        known = f[~f["provisional"] & f["P(re-run picks another)"].notna()]
        picks = "cells" if rule == "per cell" else "(size, task) searches"
        sd = ch.std(ddof=1) if len(ch) > 1 else math.nan
        provisional = int(f["provisional"].sum())
        more = (f"; {provisional} more are provisional: their search would still try a rate past the pick"
                if provisional else "; none is provisional")
        parts.append(f"{name}, the second run moved the validation-loss difference between two neighbouring rates "
                     f"by a standard deviation of {sd:.4f} nats (sample sd over the {len(ch)} neighbouring-rate "
                     f"differences both runs measured), so a re-run would pick another rate in about "
                     f"{known['P(re-run picks another)'].sum():.1f} of the {len(known)} {picks} whose pick is final "
                     f"(an expected count{more})")
    small = forecast[(forecast["rule"] == "per cell") & (forecast["size"] == observed_size)]
    expected = small["P(re-run picks another)"].sum(skipna=True)
    return ("How often a re-run would pick another rate, from the first run's searches and the noise the second run "
            f"showed ({observed_size}, the only size run twice; the other size is taken to be as noisy). With one rate "
            + "; with one rate ".join(parts)
            + f". Check, in-sample (the noise comes from the same pair of runs): for {observed_size}, one rate per cell "
            f"expects {expected:.1f} changed picks; the second run changed {observed_swaps} of {observed_cells}."
            + (f" The shared rule's pick was the same in every run in {shared_agreement[0]} of the "
               f"{shared_agreement[1]} searches that more than one run computed, the third run included, which "
               f"the noise was not measured on." if shared_agreement else ""))
