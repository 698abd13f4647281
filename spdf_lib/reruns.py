"""The grid run more than once (chapter 06): committed runs read back, judged again by the same rules,
and compared run by run.

* Reading: ``load_committed`` reads a profile's committed results, each checked against its manifest;
  ``lr_search_from_finetunes`` rebuilds every learning-rate search from the fine-tuning results alone,
  as the scheduler decided it; ``grid_cells`` and ``judge_profile`` give the cells and the three
  verdicts of a profile's grid.
* Comparing two runs: ``rerun_check`` judges the H1 and H2 cells of one size in both (``RerunCheck``,
  with its figure ``rerun_figure``), ``substituted_verdicts`` puts the re-run's cells into the
  headline verdicts, and the provenance helpers say where and when each run was computed.
* Over several runs: an overview of the committed runs, pre-training perplexities and same-key
  evaluations across runs, and how far each command of a run got; the rate each rule picks in each
  run, and how often a re-run changes a pick, are ``spdf_lib.rate_picks``.
* The next complete re-run: ``RERUN_TEST_RULE`` and ``rerun_test``, fixed before that run exists.

The published run's Tables 1 and 2, verdicts and noise floor are computed by ``spdf_lib.verdicts``
(on ``spdf_lib.stats``) and shown through ``spdf_lib.findings``; how often a fresh run would agree,
from a model of one run, is ``spdf_lib.replication``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from . import verdicts as V
from .findings import VERDICT_VIEW, plural
from .verdicts import level_label

__all__ = [
    "lr_search_from_finetunes", "load_committed", "RerunCheck", "rerun_check", "grid_commands", "RunLogs",
    "run_logs", "rerun_provenance", "provenance_table",
    "run_commits", "grid_only", "runs_overview", "grid_cells", "judge_profile", "substituted_verdicts",
    "verdicts_sentence",
    "RERUN_TEST_RULE", "RerunTest", "rerun_test", "rerun_summary", "relabel", "percell",
    "pretraining_across_runs", "same_key_evaluations", "command_progress", "same_key_sentence", "progress_table",
    "rerun_figure", "STAGES_READ", "NOT_GRID_STEPS",
]

STAGES_READ = ("pretrain", "finetune", "eval")


def lr_search_from_finetunes(finetune_results: Iterable[dict], search, first_seed: int = 0,
                             first_ft_seed: int = 0) -> list[dict]:
    """The learning-rate search cells rebuilt from fine-tuning results, in the shape of the
    scheduler's ``lr_search`` entries (size, sparsity, task, losses {lr: dev_loss}, chosen, runner_up,
    status). The search runs are the dense fine-tunings (masks not kept) of the ``first_seed``
    pre-trained model with the ``first_ft_seed`` fine-tuning seed; chapter 09's runs are left out.
    ``search`` (a ``profiles.LRSearch``) decides the status; with ``search.shared`` every cell of a
    (size, task) takes the choice, runner-up and status of the losses averaged over its sparsities
    (``runs.pooled_losses``, also given as ``pooled``), as the scheduler decides them. A pure function."""
    from .runs import chosen_lr, pooled_losses, runner_up_lr, search_status

    grouped: dict = {}
    for r in finetune_results:
        if V.variant_of(r) or r["keep_masks"] or r["pretrain_seed"] != first_seed or r["seed"] != first_ft_seed:
            continue
        key = (r["size"], float(r["sparsity"]), r["task"])
        grouped.setdefault(key, {})[float(r["lr"])] = float(r["dev_loss"])
    pooled = {}
    if search.shared:
        for size, task in {(k[0], k[2]) for k in grouped}:
            pooled[(size, task)] = pooled_losses([v for k, v in grouped.items() if (k[0], k[2]) == (size, task)])
    task_order = {t: i for i, t in enumerate(V.METRIC)}
    out = []
    for (size, sparsity, task) in sorted(grouped, key=lambda k: (k[0], k[1], task_order.get(k[2], len(task_order)),
                                                                 k[2])):
        losses = dict(sorted(grouped[(size, sparsity, task)].items()))
        decide = pooled.get((size, task), losses)
        cell = {"size": size, "sparsity": sparsity, "task": task, "losses": losses, "chosen": chosen_lr(decide),
                "runner_up": runner_up_lr(decide), "status": search_status(decide, search)}
        if search.shared:
            cell["pooled"] = decide
        out.append(cell)
    return out


def load_committed(tables_dir: Path, profile: str = "gpu") -> dict[str, list[dict]]:
    """The committed results of ``profile`` under ``tables_dir/<profile>/runs/``: {"pretrain",
    "finetune", "eval"} -> list of result dicts, in file-name order. Every result file on disk or in
    the manifest is checked against ``MANIFEST.json`` first (``manifest.verify``): a file changed,
    truncated, missing or not recorded raises ``manifest.CommittedResultError`` naming it. A folder
    that does not exist raises FileNotFoundError."""
    from . import manifest

    root = manifest.runs_dir(tables_dir, profile)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: no committed results of profile {profile!r} there")
    recorded = manifest.load(tables_dir, profile)
    out = {}
    for stage in STAGES_READ:
        on_disk = {f"{stage}/{p.name}" for p in (root / stage).glob("*.json") if not p.name.startswith(".")}
        listed = {rel for rel in recorded if rel.startswith(f"{stage}/") and rel.count("/") == 1
                  and rel.endswith(".json")}
        results = []
        for rel in sorted(on_disk | listed):
            manifest.verify(tables_dir, profile, root / rel)
            results.append(json.loads((root / rel).read_text(encoding="utf-8")))
        out[stage] = results
    return out


def _default_search():
    from .profiles import get_profile

    return get_profile("gpu").finetune.lr_search


def _interval_text(lo: float, hi: float, digits: int) -> str:
    return "n/a" if math.isnan(lo) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


_UNIT = {"H1": "BLEU", "H2": "nats"}  # the unit of each checked hypothesis's estimate
_BOUNDS = ["published low", "published high", "re-run low", "re-run high"]  # for the figure, not the table


def _cell_name(hypothesis: str, task: str, sparsity: float) -> str:
    return f"{hypothesis} {task}, {level_label(sparsity)}"


@dataclass(frozen=True)
class RerunCheck:
    """The verdict cells of one size judged on the published run and on a second run of it.

    ``cells``: one row per judged H1 and H2 cell (published and re-run estimate, interval, outcome,
    whether the outcome is the same, the change of the estimate); ``pretraining``: per (sparsity,
    seed), the validation perplexity of both runs; ``rates``: per learning-rate search cell, the rate
    each run chose (``n_same_rate`` of ``n_rate_cells`` agree, ``differing_rates`` lists the others);
    ``runs``: per task, how far the test metric of the same run (same run id) moved; ``verdicts``: each
    hypothesis's verdict read from this size's cells alone, in both runs."""

    size: str
    cells: pd.DataFrame
    pretraining: pd.DataFrame
    rates: pd.DataFrame
    runs: pd.DataFrame
    verdicts: pd.DataFrame

    @property
    def table(self) -> pd.DataFrame:
        """``cells`` as chapter 06 shows it: the intervals as text, their numeric bounds left out."""
        return self.cells.drop(columns=[c for c in _BOUNDS if c in self.cells.columns])

    @property
    def n_same_outcome(self) -> int:
        return int(self.cells["same outcome"].sum()) if not self.cells.empty else 0

    @property
    def changed(self) -> pd.DataFrame:
        """The judged cells whose outcome differs between the two runs."""
        return self.cells[~self.cells["same outcome"]] if not self.cells.empty else self.cells

    @property
    def n_same_rate(self) -> int:
        return int(self.rates["same rate"].sum()) if not self.rates.empty else 0

    @property
    def n_rate_cells(self) -> int:
        return len(self.rates)

    @property
    def differing_rates(self) -> pd.DataFrame:
        return self.rates[~self.rates["same rate"]] if not self.rates.empty else self.rates

    @property
    def same_rates(self) -> pd.Series:
        """Per row of ``cells``: whether every cell its rule reads (``verdicts.cell_inputs``) had the same
        learning rate chosen in both runs, so that the two runs compare runs at the same rates."""
        raw = V.TASK_OF_LABEL
        moved = {(self.size, raw.get(r["task"], r["task"]), float(r["sparsity"]))
                 for _, r in self.differing_rates.iterrows()}
        return pd.Series([not moved.intersection(V.cell_inputs(r["hypothesis"], self.size, raw.get(r["task"], r["task"]),
                                                                r["sparsity"]))
                          for _, r in self.cells.iterrows()], index=self.cells.index, dtype=bool)

    @property
    def n_outside_interval(self) -> int:
        """How many judged cells have a re-run estimate outside the published run's 95% interval."""
        if self.cells.empty:
            return 0
        est, lo, hi = self.cells["re-run estimate"], self.cells["published low"], self.cells["published high"]
        return int(((est < lo) | (est > hi)).sum())

    def survives(self, hypothesis: str) -> bool | None:
        """True when every judged cell of ``hypothesis`` kept its outcome; None when none was judged."""
        rows = self.cells[self.cells["hypothesis"] == hypothesis] if not self.cells.empty else self.cells
        return None if rows.empty else bool(rows["same outcome"].all())

    def sentence(self, first: str = "published") -> str:
        """The check in one computed paragraph; ``first`` names the first run's rate ("the published rate")."""
        if self.cells.empty:
            return f"No verdict cell of {self.size} could be judged on both runs."
        n, same = len(self.cells), self.n_same_outcome
        per_h = ", ".join(f"{int((self.cells['hypothesis'] == h).sum())} of {h}"
                          for h in dict.fromkeys(self.cells["hypothesis"]))
        text = f"**Re-run check, {self.size}.** Of the {n} judged cells ({per_h}), {same} kept their outcome"
        changed = self.changed
        if changed.empty:
            text += " in the re-run. "
        else:
            moves = []
            for _, r in changed.iterrows():
                move = f"{_cell_name(r['hypothesis'], r['task'], r['sparsity'])}, from *{r['published outcome']}* " \
                       f"to *{r['re-run outcome']}*"
                if not (math.isnan(r["published estimate"]) or math.isnan(r["re-run estimate"])):
                    move += (f" (estimate {r['published estimate']:+.3f} then {r['re-run estimate']:+.3f} "
                             f"{_UNIT.get(r['hypothesis'], '')})".replace(" )", ")"))
                moves.append(move)
            text += f"; {len(changed)} changed: " + "; ".join(moves) + ". "
        said = []
        labels = {r["hypothesis"]: (r["published verdict"], r["re-run verdict"]) for _, r in self.verdicts.iterrows()}
        for h in dict.fromkeys(self.cells["hypothesis"]):
            words = f"{h} {'survives' if self.survives(h) else 'does not survive'}"
            if h in labels:
                before, after = labels[h]
                words += (f" (read from these cells alone it is *{before}* in both runs" if before == after
                          else f" (read from these cells alone it goes from *{before}* to *{after}*") + ")"
            said.append(words)
        text += f"By the rule of this section, at {self.size} " + " and ".join(said) + ". "
        return (text + self.measured(first)).strip()

    def measured(self, first: str = "published") -> str:
        """What moved between the two runs besides the outcomes, in words: the largest change of an
        estimate per hypothesis, of a pre-trained model's validation perplexity, the learning rates the
        searches chose (``first`` names the first run's rate), and the test scores of the same runs."""
        text = ""
        moves = []
        for h, group in self.cells.groupby("hypothesis", sort=False):
            shift = group["change in estimate"].abs()
            if shift.notna().any():
                r = group.loc[shift.idxmax()]
                moves.append(f"{abs(r['change in estimate']):.3f} {_UNIT.get(h, '')} for {h} "
                             f"({r['task']}, {level_label(r['sparsity'])})".replace("  ", " "))
        if moves:
            text += "The estimates moved by up to " + " and ".join(moves) + ". "
            text += (f"In {self.n_outside_interval} of the {len(self.cells)} cells the later run's estimate lies "
                     "outside the first run's 95% interval. ")
        pre = self.pretraining
        pre = pre.dropna(subset=["relative change (%)"]) if not pre.empty else pre
        if not pre.empty:
            i = pre["relative change (%)"].abs().idxmax()
            r = pre.loc[i]
            text += (f"Across the {len(pre)} pre-trained models, the validation perplexity moved by at most "
                     f"{abs(r['relative change (%)']):.2f}% ({level_label(r['sparsity'])}, seed {int(r['seed'])}: "
                     f"{r['published val PPL']:.3f} then {r['re-run val PPL']:.3f}). ")
        if self.n_rate_cells:
            text += f"The learning-rate search chose the same rate in {self.n_same_rate} of {self.n_rate_cells} cells"
            diff = self.differing_rates
            if diff.empty:
                text += ". "
            else:
                parts = []
                for _, r in diff.iterrows():
                    part = (f"{r['task']}, {level_label(r['sparsity'])} ({r['published chosen']:g} then "
                            f"{r['re-run chosen']:g}; the runner-up's validation loss was "
                            f"{r['published margin (val loss)']:.4f} and {r['re-run margin (val loss)']:.4f} above "
                            f"the chosen one's")
                    moved = r["test loss, re-run's rate minus published rate (nats)"]
                    if not math.isnan(moved):
                        part += (f"; on the re-run's first model its own rate gives a test loss {abs(moved):.3f} nats "
                                 f"{'lower' if moved < 0 else 'higher'} than the {first} rate")
                    parts.append(part + ")")
                text += "; it differed in " + "; ".join(parts) + ". "
        if not self.runs.empty:
            parts = [f"{r['task']} up to {r['max |difference|']:.2f} {r['metric']} (mean {r['mean difference']:+.2f}, "
                     f"{r['runs']} runs)" for _, r in self.runs.iterrows()]
            text += ("The same runs, under the same keys, scored differently on the test sets: " + "; ".join(parts)
                     + f"; their test-reference loss moved by at most "
                       f"{self.runs['max |test loss difference| (nats)'].max():.3f} nats.")
        return text.strip()


def _pretrain_table(published: Iterable[dict], rerun: Iterable[dict], size: str, levels) -> pd.DataFrame:
    """:func:`pretraining_across_runs` of two runs of one size, in the re-run check's columns."""
    frame = pretraining_across_runs({"published": {"pretrain": list(published)}, "re-run": {"pretrain": list(rerun)}},
                                    [size], levels)
    return frame.rename(columns={"largest change from published (%)": "relative change (%)"})[
        ["sparsity", "seed", "published val PPL", "re-run val PPL", "relative change (%)"]].reset_index(drop=True)


def _margin(cell: dict | None) -> float:
    """The validation loss of the runner-up rate minus the chosen one's (how close the choice was)."""
    if not cell or cell["runner_up"] is None:
        return math.nan
    return cell["losses"][cell["runner_up"]] - cell["losses"][cell["chosen"]]


_RATE_COLUMNS = ["task", "sparsity", "published chosen", "re-run chosen", "same rate", "published status",
                 "re-run status", "published margin (val loss)", "re-run margin (val loss)",
                 "test loss, re-run's rate minus published rate (nats)"]


def _rates_table(published: list[dict], rerun: list[dict], rerun_evals: Iterable[dict], first_seed: int,
                 first_ft_seed: int) -> pd.DataFrame:
    """Per search cell: the rate each run chose, how close each choice was (the runner-up's validation
    loss minus the chosen one's), and where the two runs chose differently, how far the re-run's test
    loss of the first model moves between its own rate and the published one (both evaluated when
    one is the other's runner-up; NaN otherwise)."""
    pub = {(c["task"], c["sparsity"]): c for c in published}
    again = {(c["task"], c["sparsity"]): c for c in rerun}
    first = {(r["task"], float(r["sparsity"]), float(r["lr"])): float(r["test_loss"]) for r in rerun_evals
             if not r["keep_masks"] and r["pretrain_seed"] == first_seed and r["seed"] == first_ft_seed}
    order = {t: i for i, t in enumerate(V.METRIC)}
    rows = []
    for key in sorted(set(pub) | set(again), key=lambda k: (k[1], order.get(k[0], len(order)))):
        p, q = pub.get(key), again.get(key)
        same = bool(p and q and p["chosen"] == q["chosen"])
        moved = math.nan
        if p and q and not same and (*key, q["chosen"]) in first and (*key, p["chosen"]) in first:
            moved = first[(*key, q["chosen"])] - first[(*key, p["chosen"])]
        rows.append({"task": V.TASK_LABEL.get(key[0], key[0]), "sparsity": key[1],
                     "published chosen": p["chosen"] if p else math.nan,
                     "re-run chosen": q["chosen"] if q else math.nan, "same rate": same,
                     "published status": p["status"] if p else "not run",
                     "re-run status": q["status"] if q else "not run",
                     "published margin (val loss)": _margin(p), "re-run margin (val loss)": _margin(q),
                     "test loss, re-run's rate minus published rate (nats)": moved})
    return pd.DataFrame(rows, columns=_RATE_COLUMNS)


def _runs_table(published: Iterable[dict], rerun: Iterable[dict]) -> pd.DataFrame:
    pub = {r["run_id"]: r for r in published}
    diffs: dict = {}
    for r in rerun:
        p = pub.get(r["run_id"])
        if p is None:
            continue
        d = diffs.setdefault(r["task"], {"value": [], "loss": [], "metric": r.get("metric", V.METRIC[r["task"]][0]),
                                         "keys": 0})
        d["value"].append(float(r["value"]) - float(p["value"]))
        d["loss"].append(float(r["test_loss"]) - float(p["test_loss"]))
        d["keys"] += int(r.get("key") == p.get("key"))
    order = {t: i for i, t in enumerate(V.METRIC)}
    rows = []
    for task in sorted(diffs, key=lambda t: order.get(t, len(order))):
        d = diffs[task]
        v = pd.Series(d["value"])
        rows.append({"task": V.TASK_LABEL.get(task, task), "metric": d["metric"], "runs": len(v),
                     "same key": d["keys"], "mean difference": v.mean(),
                     "sd of difference (n − 1)": v.std(ddof=1) if len(v) > 1 else math.nan,
                     "max |difference|": v.abs().max(),
                     "max |test loss difference| (nats)": pd.Series(d["loss"]).abs().max()})
    return pd.DataFrame(rows, columns=["task", "metric", "runs", "same key", "mean difference",
                                       "sd of difference (n − 1)",
                                       "max |difference|", "max |test loss difference| (nats)"])


def _judged(stages: dict, size: str, levels, search, first_seed: int, first_ft_seed: int):
    """(lr_search, evaluations, H1 and H2 cells, {hypothesis: verdict}) of one size from one run's
    results, the verdicts read from that size's cells alone."""
    finetunes = [r for r in stages["finetune"] if not V.variant_of(r) and r["size"] == size
                 and float(r["sparsity"]) in levels]
    evals = [r for r in stages["eval"] if not V.variant_of(r) and r["size"] == size and float(r["sparsity"]) in levels]
    lr_search = lr_search_from_finetunes(finetunes, search, first_seed, first_ft_seed)
    cells = V.collect(evals, lr_search)
    results = [V.verdict_h1(cells, [size], levels), V.verdict_h2(cells, [size], levels)]
    frames = [v.cells for v in results if not v.cells.empty]
    judged = pd.concat(frames, ignore_index=True) if frames else V._frame([])
    return lr_search, evals, judged, {v.hypothesis: v.verdict for v in results if not v.cells.empty}


def rerun_check(published: dict, rerun: dict, size: str = "gpu-small", levels: Sequence[float] = (0.0, 0.5, 0.75),
                search=None, first_seed: int = 0, first_ft_seed: int = 0, rerun_search=None) -> RerunCheck:
    """Judge the H1 and H2 cells of ``size`` on the published results and on a re-run of them (each
    a ``load_committed`` dict: pretrain/finetune/eval result lists), with the same rules
    (``verdicts.collect``, ``verdict_h1``, ``verdict_h2``) and the learning rates each run's own
    search chose (``lr_search_from_finetunes`` with ``search``, by default the gpu profile's; the
    re-run with ``rerun_search`` where it searched by another rule, such as shared rates).
    Chapter 09's runs, other sizes and pre-training sparsities outside ``levels`` are left out.
    H3 needs two sizes and is not checked here."""
    search = search or _default_search()
    rerun_search = rerun_search or search
    levels = tuple(float(lv) for lv in levels)
    pub_search, pub_evals, pub_cells, pub_verdicts = _judged(published, size, levels, search, first_seed,
                                                             first_ft_seed)
    re_search, re_evals, re_cells, re_verdicts = _judged(rerun, size, levels, rerun_search, first_seed,
                                                         first_ft_seed)
    verdict_rows = pd.DataFrame(
        [{"hypothesis": h, "published verdict": pub_verdicts.get(h, "not judged"),
          "re-run verdict": re_verdicts.get(h, "not judged")} for h in dict.fromkeys([*pub_verdicts, *re_verdicts])],
        columns=["hypothesis", "published verdict", "re-run verdict"])
    digits = {h: view[1] for h, view in VERDICT_VIEW.items()}
    keys = ["hypothesis", "task", "sparsity"]
    both = pub_cells[keys + ["estimate", "low", "high", "outcome"]].merge(
        re_cells[keys + ["estimate", "low", "high", "outcome"]], on=keys, how="outer", suffixes=(" p", " r"))
    order = {t: i for i, t in enumerate((*V.DATA_TO_TEXT, "summarization vs data-to-text"))}
    both = both.sort_values(by=["hypothesis", "task", "sparsity"],
                            key=lambda c: c.map(order) if c.name == "task" else c).reset_index(drop=True)
    rows = []
    for _, r in both.iterrows():
        d = digits.get(r["hypothesis"], 3)
        p_out = r["outcome p"] if isinstance(r["outcome p"], str) else "not judged"
        r_out = r["outcome r"] if isinstance(r["outcome r"], str) else "not judged"
        p_est, r_est = float(r["estimate p"]), float(r["estimate r"])
        rows.append({"hypothesis": r["hypothesis"], "task": V.TASK_LABEL.get(r["task"], r["task"]),
                     "sparsity": float(r["sparsity"]),
                     "published estimate": p_est, "published 95% CI": _interval_text(float(r["low p"]),
                                                                                   float(r["high p"]), d),
                     "published low": float(r["low p"]), "published high": float(r["high p"]),
                     "re-run low": float(r["low r"]), "re-run high": float(r["high r"]),
                     "published outcome": p_out,
                     "re-run estimate": r_est,
                     "re-run 95% CI": _interval_text(float(r["low r"]), float(r["high r"]), d),
                     "re-run outcome": r_out,
                     "same outcome": p_out == r_out and p_out != "not judged",
                     "change in estimate": r_est - p_est})
    cells = pd.DataFrame(rows, columns=["hypothesis", "task", "sparsity", "published estimate", "published 95% CI",
                                        "published outcome", "re-run estimate", "re-run 95% CI", "re-run outcome",
                                        "same outcome", "change in estimate", *_BOUNDS])
    return RerunCheck(size=size, cells=cells,
                      pretraining=_pretrain_table(published["pretrain"], rerun["pretrain"], size, levels),
                      rates=_rates_table(pub_search, re_search, re_evals, first_seed, first_ft_seed),
                      runs=_runs_table(pub_evals, re_evals), verdicts=verdict_rows)


# steps of scripts/gpu_device_step.sh that run no part of the grid (set-up and benchmarks)
NOT_GRID_STEPS = ("setup", "bench", "bench-dynamic", "bench-contention")


def grid_commands(times_path: Path) -> list[tuple[str, float, float]]:
    """(step, start, end) in unix seconds of every command in a ``command_times.txt`` (lines '<epoch>
    start|end <step>', as ``scripts/gpu_device_step.sh`` writes them) that ran the grid: set-up and
    benchmark steps (``NOT_GRID_STEPS``) and unmatched lines left out. A missing file gives none."""
    spans, starts = [], {}
    if not Path(times_path).exists():
        return spans
    for line in Path(times_path).read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) < 3 or parts[1] not in ("start", "end") or parts[2] in NOT_GRID_STEPS:
            continue
        stamp, kind, name = float(parts[0]), parts[1], parts[2]
        if kind == "start":
            starts[name] = stamp
        elif name in starts:
            spans.append((name, starts.pop(name), stamp))
    return spans


def _first_line(path: Path) -> str | None:
    """The first non-empty line of a text file, stripped; None when there is none or no file."""
    if not path.exists():
        return None
    return next((ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), None)


@dataclass(frozen=True)
class RunLogs:
    """What a committed run's logs say of where and how long it ran (:func:`run_logs`): the folder
    (as shown, relative to the repository), the GPU line of ``gpu_env.txt`` (None when absent), and
    the (step, seconds, end) of every command that ran the grid."""

    where: str
    gpu: str | None
    spans: tuple[tuple[str, float, float], ...]

    @property
    def total_s(self) -> float:
        return sum(took for _, took, _ in self.spans)

    @property
    def longest(self) -> tuple[str, float, float] | None:
        return max(self.spans, key=lambda x: x[1]) if self.spans else None

    @property
    def first_started(self) -> float | None:
        """The unix time the first grid command started."""
        return min(end - took for _, took, end in self.spans) if self.spans else None


def run_logs(tables_root: Path, profile: str, folder: str) -> RunLogs:
    """The logs of a committed run in ``tables_root/<profile>/<folder>/logs/`` (``folder=""``: the
    published run's own): ``gpu_env.txt`` and the grid commands of ``command_times.txt``
    (:func:`grid_commands`, set-up and benchmark steps left out)."""
    logs = Path(tables_root) / profile / folder / "logs"
    where = "/".join(part for part in (Path(tables_root).name, profile, folder, "logs") if part) + "/"
    spans = tuple((step, end - start, end) for step, start, end in grid_commands(logs / "command_times.txt"))
    return RunLogs(where, _first_line(logs / "gpu_env.txt"), spans)


def _utc(stamp: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    import time

    return time.strftime(fmt, time.gmtime(stamp))


def rerun_provenance(tables_root: Path, profile: str = "gpu", folder: str = "rerun", label: str = "re-run",
                     beside_published: bool = True) -> str:
    """Where and how long a committed further run of ``profile`` ran, from its logs
    (:func:`run_logs`): the GPU line of ``gpu_env.txt`` and the wall time of each command of
    ``command_times.txt`` (unix-time ``start``/``end`` lines) that ran the grid (set-up and benchmark
    steps, ``NOT_GRID_STEPS``, left out); ``folder=""`` reads the published run's own logs. ``label``
    names the run in the sentence; with ``beside_published`` the published run's GPU line follows, for
    comparison."""
    if not (Path(tables_root) / profile / folder / "logs").is_dir():
        return f"There is no log of a {label} of profile `{profile}` in this checkout."
    run = run_logs(tables_root, profile, folder)
    text = (f"The {label}'s log (`{run.where}`) gives its GPU as `{run.gpu}` (the first line of `gpu_env.txt`)"
            if run.gpu else f"The {label}'s log (`{run.where}`) does not name its GPU")
    if run.spans:
        step, took, _ = run.longest
        text += (f"; its {plural(len(run.spans), 'grid command')} started at {_utc(run.first_started)} UTC and took "
                 f"{run.total_s:,.0f} s of wall time in all, the longest ({step!r} in `command_times.txt`) "
                 f"{took:,.0f} s.")
    else:
        text += "; it records no command times."
    published_gpu = _first_line(Path(tables_root) / profile / "logs" / "gpu_env.txt")
    if published_gpu and beside_published:
        text += f" The published run's log gives `{published_gpu}`."
    return text


def provenance_table(tables_root: Path, profile: str, folders: Mapping[str, str]) -> pd.DataFrame:
    """:func:`rerun_provenance` of several runs as one table (``folders``: run name -> folder under
    ``tables_root/<profile>/``, "" for the published run's own logs): per run, where its logs are, the
    GPU line of ``gpu_env.txt``, how many grid commands it ran, when the first started, their wall
    time in all and the longest, named by its step (the minutes limit it was given)."""
    rows = []
    for name, folder in folders.items():
        run = run_logs(tables_root, profile, folder)
        rows.append({"run": name, "logs": run.where, "GPU": run.gpu or "not recorded", "grid commands": len(run.spans),
                     "first started (UTC)": _utc(run.first_started) if run.spans else "",
                     "wall time (s)": round(run.total_s) if run.spans else math.nan,
                     "longest command": f"{run.longest[0]} min limit: {run.longest[1]:,.0f} s" if run.spans else ""})
    return pd.DataFrame(rows)


def run_commits(stages: dict, size: str | None = None) -> list[str]:
    """The commits recorded in the environment of a run's results (``load_committed`` dict), optionally
    of one model size only, shortened to seven characters: which code computed them."""
    commits = {str(r.get("environment", {}).get("commit"))[:7] for stage in stages.values() for r in stage
               if (size is None or r.get("size") == size) and r.get("environment", {}).get("commit")}
    return sorted(commits)


def grid_only(stages: dict, sizes: Sequence[str], levels: Sequence[float]) -> dict[str, list[dict]]:
    """A run's results (a ``load_committed`` dict) of the grid alone: ``sizes`` at ``levels``, chapter
    09's variants and every other size or sparsity (the pruning stage's random-mask model) left out."""
    levels = {float(lv) for lv in levels}
    return {stage: [r for r in results if not V.variant_of(r) and r.get("size") in sizes
                    and float(r.get("sparsity", -1)) in levels]
            for stage, results in stages.items()}


def runs_overview(runs: Mapping[str, tuple[str, dict, str]], sizes: Sequence[str],
                  levels: Sequence[float]) -> pd.DataFrame:
    """One row per committed run of the grid (``runs``: name -> (folder, ``load_committed`` dict, the
    learning-rate rule it searched by)): its folder, the commits its results record, the rule, the sizes
    it has results for, and how many pre-trainings, fine-tunes and evaluations of the grid (``sizes`` at
    ``levels``; chapter 09's runs and the pruning stage's left out) it holds."""
    counted = {"pretrain": "pre-trainings", "finetune": "fine-tunes", "eval": "evaluations"}
    rows = []
    for name, (folder, stages, rule) in runs.items():
        grid = grid_only(stages, sizes, levels)
        rows.append({"run": name, "folder": folder, "commits": ", ".join(run_commits(grid)), "learning-rate rule": rule,
                     "sizes": ", ".join(sorted({r["size"] for r in grid.get("pretrain", [])})),
                     **{column: len(grid.get(stage, [])) for stage, column in counted.items()}})
    return pd.DataFrame(rows)


def _outcome_counts(verdict: V.Verdict) -> str:
    counts = verdict.cells["outcome"].value_counts()
    return ", ".join(f"{n} {o}" for o, n in counts.items()) or "no cells"


def grid_cells(stages: dict, profile, sizes: Sequence[str] | None = None, search=None) -> dict:
    """The cells of ``verdicts.collect`` from committed results (a ``load_committed`` dict) of the grid of
    ``profile``: its sizes (or ``sizes``) and sparsities, chapter 09's runs left out, each cell at the
    rate that the profile's search (or ``search``) chose from the finetune results."""
    search = search or profile.finetune.lr_search
    grid = grid_only({stage: stages[stage] for stage in ("finetune", "eval")}, tuple(sizes or profile.sizes),
                     profile.sparsity_levels)
    lr_search = lr_search_from_finetunes(grid["finetune"], search, profile.pretrain_seeds[0], profile.finetune_seeds[0])
    return V.collect(grid["eval"], lr_search)


def judge_profile(cells: dict, profile) -> list:
    """The book's three verdicts on ``cells`` with the sizes, sparsities and tasks of ``profile``."""
    return V.judge(cells, profile.sizes, tuple(float(lv) for lv in profile.sparsity_levels), profile.task_names)


def substituted_verdicts(published: dict, rerun: dict, profile, search=None) -> pd.DataFrame:
    """The book's three verdicts on the published runs, and again with the cells of the re-run's size
    (the profile's first) taken from the re-run, every other cell from the published run: what the
    headline verdicts would have been had the small grid come out as it did the second time. H3 then
    pairs the published large model with the re-run small one."""
    small = profile.sizes[0]
    published_cells = grid_cells(published, profile, search=search)
    mixed = {**published_cells,
             **{k: v for k, v in grid_cells(rerun, profile, [small], search).items() if k[0] == small}}
    rows = []
    for before, after in zip(judge_profile(published_cells, profile), judge_profile(mixed, profile)):
        rows.append({"hypothesis": before.hypothesis, "published verdict": before.verdict,
                     "its cells": _outcome_counts(before),
                     f"with the second run's {small} cells": after.verdict, "their cells": _outcome_counts(after),
                     "same verdict": before.verdict == after.verdict})
    return pd.DataFrame(rows)


def verdicts_sentence(before: Sequence, after: Sequence, first: str, second: str) -> str:
    """Two runs' verdicts (lists of ``verdicts.Verdict``, as ``judge_profile`` gives them) side by side in
    one sentence: which stayed and which moved, named by the runs ``first`` and ``second``."""
    was = {v.hypothesis: v.verdict for v in before}
    parts = []
    for v in after:
        old = was.get(v.hypothesis)
        parts.append(f"{v.hypothesis} is *{v.verdict}* in both" if old == v.verdict else
                     f"{v.hypothesis} goes from *{old or 'not judged'}* in the {first} to *{v.verdict}* in the {second}")
    moved = sum(was.get(v.hypothesis) != v.verdict for v in after)
    return (f"The verdicts of the {first} and the {second}: " + "; ".join(parts) + f" ({moved} of {len(after)} "
            f"{'verdict' if len(after) == 1 else 'verdicts'} moved).")


RERUN_TEST_RULE = (
    "**The rule for the next complete re-run, fixed before it exists.** A re-run of the published grid under the same "
    "profile (the same keys, seeds and learning-rate rule; from an empty cache, committed under its own folder) is "
    "judged by the rules at the top of the page. A headline verdict **survives** when the re-run gives it the same "
    "label. The fresh-run model of the published run **holds** for a size when, over the H1 and H2 cells of that "
    "size, the number of cells that keep their published outcome is not in the model's lower tail: at least that "
    "few in one fresh run in twenty or more, with the truth fixed and with it uncertain alike; otherwise it fails "
    "there. H3's cells are counted in its verdict only, since they pair the two sizes.")


@dataclass(frozen=True)
class RerunTest:
    """A complete re-run judged by :data:`RERUN_TEST_RULE` (:func:`rerun_test`).

    ``verdicts``: per hypothesis, the published and the re-run verdict, the re-run's cell outcomes and
    whether the verdict survives; ``comparisons``: per size and forecast, the
    ``replication.compare_with_run`` count of the H1 and H2 cells that kept their published outcome,
    with 'holds' added; ``checks``: the :class:`RerunCheck` of each size, for the cells themselves."""

    verdicts: pd.DataFrame
    comparisons: list[dict]
    checks: tuple[RerunCheck, ...]

    @property
    def model_holds(self) -> dict[str, bool]:
        """Per size, whether the fresh-run model holds there: only when every forecast of that size
        (truth fixed and truth uncertain) does."""
        sizes: dict[str, bool] = {}
        for c in self.comparisons:
            sizes[c["size"]] = sizes.get(c["size"], True) and bool(c["holds"])
        return sizes

    def sentence(self) -> str:
        """The test in words: which verdicts survived, and where the fresh-run model held."""
        from . import replication

        frame = self.verdicts
        kept = frame[frame["survives"]]["hypothesis"].tolist()
        moved = frame[~frame["survives"]]
        text = (f"By the rule fixed in advance, {len(kept)} of the {len(frame)} headline verdicts survive the re-run"
                + (f" ({', '.join(kept)})" if kept else ""))
        if len(moved):
            text += "; " + "; ".join(f"{r['hypothesis']} goes from *{r['published verdict']}* to "
                                     f"*{r['re-run verdict']}*" for _, r in moved.iterrows())
        word = {True: "holds", False: "fails"}
        kept_cells = sum(c.n_same_outcome for c in self.checks)
        text += (f". Underneath, {kept_cells} of the {sum(len(c.cells) for c in self.checks)} H1 and H2 cells kept "
                 "their published outcome. By the same rule the fresh-run model "
                 + " and ".join(f"{word[ok]} at {size}" for size, ok in self.model_holds.items())
                 + f" ({sum(c['holds'] for c in self.comparisons)} of its {len(self.comparisons)} comparisons within "
                   "its tail). " + replication.comparison_sentence(self.comparisons, caveat=False, run="re-run"))
        return text


def rerun_test(published: dict, rerun: dict, profile, forecasts: Sequence) -> RerunTest:
    """The published run against a complete re-run under the same ``profile`` (both ``load_committed``
    dicts), by :data:`RERUN_TEST_RULE`: the three headline verdicts of each (``judge_profile`` on
    ``grid_cells``) and whether each survived, and for every size and every forecast of ``forecasts``
    (``replication.forecast`` of the published run) the ``replication.compare_with_run`` count of the
    H1 and H2 cells that kept their published outcome, with 'holds' added (the count not below the
    forecast's one-in-twenty tail, ``replication.tail_reading``)."""
    from . import replication

    before = judge_profile(grid_cells(published, profile), profile)
    after = {v.hypothesis: v for v in judge_profile(grid_cells(rerun, profile), profile)}
    frame = pd.DataFrame([{"hypothesis": v.hypothesis, "published verdict": v.verdict,
                           "published cells": _outcome_counts(v),
                           "re-run verdict": after[v.hypothesis].verdict if v.hypothesis in after else "not judged",
                           "re-run cells": _outcome_counts(after[v.hypothesis]) if v.hypothesis in after else "",
                           "survives": v.hypothesis in after and after[v.hypothesis].verdict == v.verdict}
                          for v in before])
    search = profile.finetune.lr_search
    comparisons, checks = [], []
    for size in profile.sizes:
        check = rerun_check(published, rerun, size=size, levels=profile.sparsity_levels, search=search,
                            first_seed=profile.pretrain_seeds[0], first_ft_seed=profile.finetune_seeds[0])
        checks.append(check)
        for forecast in forecasts:
            c = replication.compare_with_run(forecast, check.cells, size, "H1 and H2 cells")
            c["holds"] = not c["cells"] or replication.tail_reading(c["p at most observed"], c["draws"]) != "below"
            comparisons.append(c)
    return RerunTest(frame, comparisons, tuple(checks))


def rerun_summary(check: "RerunCheck", substituted: pd.DataFrame | None = None) -> str:
    """One sentence for chapter 06's summary: which verdicts survived the second run of the small grid
    and, with ``substituted`` (:func:`substituted_verdicts`), what became of the headline verdicts."""
    judged = [h for h in ("H1", "H2") if check.survives(h) is not None]
    fate = ", ".join(f"{h} {'kept every cell' if check.survives(h) else 'did not keep every cell'}" for h in judged)
    text = (f"A second run of the {check.size} grid from an empty cache kept the outcome of {check.n_same_outcome} of "
            f"{len(check.cells)} judged cells: {fate or 'nothing could be judged'}.")
    if substituted is not None and len(substituted):
        moved = substituted[~substituted["same verdict"]]
        if len(moved):
            text += " With those cells, " + "; ".join(
                f"{r['hypothesis']} would read *{r[substituted.columns[3]]}* instead of *{r['published verdict']}*"
                for _, r in moved.iterrows()) + "."
        else:
            text += " With those cells, every headline verdict would read the same."
    if check.n_same_outcome < len(check.cells):
        text += (" That section asks every judged cell of a verdict to keep its outcome, a stricter test than the "
                 "label alone, so a label can stay while its cells move. Verdicts move between runs more than their "
                 "intervals alone suggest; the sections on the second run and on fresh runs show where the changes "
                 "come from.")
    return text


def relabel(frame: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """A re-run check's table with its columns named after the two runs it compares (``first`` for
    'published', ``second`` for 're-run'), for a pair other than the published run and its re-run."""
    import re

    name = {"published": first, "re-run": second}
    return frame.rename(columns=lambda c: re.sub("published|re-run", lambda m: name[m.group()], c)
                        if isinstance(c, str) else c)


def percell(profile):
    """``profile`` with one learning rate per cell (``LRSearch(shared=False)``): the rule the first
    published gpu run and its re-run searched by."""
    import dataclasses

    search = dataclasses.replace(profile.finetune.lr_search, shared=False)
    return dataclasses.replace(profile, finetune=dataclasses.replace(profile.finetune, lr_search=search))


def pretraining_across_runs(runs: Mapping[str, dict], sizes: Sequence[str], levels: Sequence[float]) -> pd.DataFrame:
    """The validation perplexity of every pre-trained model of ``sizes`` and ``levels`` (by size,
    sparsity and seed) in every run of ``runs`` (name -> ``load_committed`` dict), NaN where a run
    lacks it, the largest relative difference from the first run among those that have it (%), and
    'same key': whether every run's result has the same run key (same settings). Chapter 09's
    variants are left out."""
    names = list(runs)
    table: dict = {}
    for name, stages in runs.items():
        for r in grid_only({"pretrain": stages["pretrain"]}, sizes, levels)["pretrain"]:
            cell = table.setdefault((r["size"], float(r["sparsity"]), int(r["seed"])), {})
            cell[name] = float(r["val_ppl"])
            cell.setdefault("keys", set()).add(r.get("key"))
    order = {s: i for i, s in enumerate(sizes)}
    rows = []
    for key in sorted(table, key=lambda k: (order[k[0]], k[1], k[2])):
        ppl = table[key]
        first = ppl.get(names[0], math.nan)
        others = [100 * (ppl[n] / first - 1) for n in names[1:] if n in ppl and not math.isnan(first)]
        rows.append({"size": key[0], "sparsity": key[1], "seed": key[2],
                     **{f"{n} val PPL": ppl.get(n, math.nan) for n in names},
                     f"largest change from {names[0]} (%)": max(others, key=abs) if others else math.nan,
                     "same key": len(ppl["keys"]) == 1})
    return pd.DataFrame(rows, columns=["size", "sparsity", "seed", *[f"{n} val PPL" for n in names],
                                       f"largest change from {names[0]} (%)", "same key"])


def same_key_evaluations(published: dict, other: dict) -> pd.DataFrame:
    """Evaluations present in both runs under the same run id (chapter 09's left out), by task: the
    other run's test metric minus the published one (mean, sd, largest) and the largest change of the
    test-reference loss (nats)."""
    keep = lambda stages: [r for r in stages["eval"] if not V.variant_of(r)]  # noqa: E731
    return _runs_table(keep(published), keep(other))


def command_progress(logs: Path) -> pd.DataFrame:
    """How far a gpu run had got after each of its commands, from the summary line each command of
    ``scripts/gpu_profile.sh`` prints at its end into ``logs/gpu_run.log`` (``{"profile": ..., "done":
    {stage: count}, "wall_s": ...}``): per command, its wall time and the results done so far by stage
    (computed or read), and the worker counts it ran with where the line records them (None in logs
    written before it did). Commands are numbered by their summary lines, so a command stopped before
    printing one is not counted. A log without such lines gives an empty frame; a missing log raises
    FileNotFoundError naming it."""
    path = Path(logs) / "gpu_run.log"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no log of a gpu run there")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        try:
            summary = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(summary, dict) or "done" not in summary:
            continue
        done = summary["done"]
        rows.append({"command": len(rows) + 1, "wall s": float(summary.get("wall_s", math.nan)),
                     "pre-trainings": done.get("pretrain", 0), "fine-tunes": done.get("finetune", 0),
                     "evaluations": done.get("eval", 0), "pruning runs": done.get("prune", 0),
                     "workers": summary.get("workers"), "side workers": summary.get("side_workers")})
    frame = pd.DataFrame(rows, columns=["command", "wall s", "pre-trainings", "fine-tunes", "evaluations",
                                        "pruning runs", "workers", "side workers"])
    frame["wall s, cumulative"] = frame["wall s"].cumsum()
    return frame


def same_key_sentence(frame: pd.DataFrame, other: str, published: str = "published") -> str:
    """One computed sentence from :func:`same_key_evaluations`: the largest same-key differences."""
    if frame.empty:
        return f"The {other} and the {published} run share no evaluation under the same run id."
    parts = [f"{r['task']} by up to {r['max |difference|']:.2f} {r['metric']} ({r['runs']} runs, mean "
             f"{r['mean difference']:+.2f})" for _, r in frame.iterrows()]
    return (f"Under the same run ids, the {other}'s test scores differed from the {published} run's "
            f"({other} minus {published}): " + "; ".join(parts) + f"; the test-reference loss moved by at most "
            f"{frame['max |test loss difference| (nats)'].max():.3f} nats.")


def progress_table(logs: Mapping[str, Path]) -> pd.DataFrame:
    """:func:`command_progress` of several runs (name -> logs folder), one frame with a 'run' column."""
    frames = [command_progress(folder).assign(run=name) for name, folder in logs.items()]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run", *[c for c in frame.columns if c != "run"]]]


def rerun_figure(check: "RerunCheck", names: tuple[str, str] = ("published run", "second run")):
    """Figure: every judged cell of a re-run check as two intervals, the first run's and the later
    one's (``names``, for the legend; 95%, as the verdict rules compute them), one panel per
    hypothesis with the line its rule compares against (H1: ``-BLEU_MARGIN``; H2: 0). A cell whose
    outcome changed is drawn with filled markers and named in bold, so the reader sees which cells sat
    close enough to the line to cross it."""
    import matplotlib.pyplot as plt

    hypotheses = list(dict.fromkeys(check.cells["hypothesis"])) if not check.cells.empty else []
    if not hypotheses:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no judged cell in both runs", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heights = [max(1, int((check.cells["hypothesis"] == h).sum())) for h in hypotheses]
    fig, axes = plt.subplots(len(hypotheses), 1, figsize=(7.5, 0.55 * sum(heights) + 1.6 * len(hypotheses)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    lines = {"H1": (-V.BLEU_MARGIN, f"H1 line (-{V.BLEU_MARGIN:g} BLEU)"), "H2": (0.0, "H2 line (0)")}
    xlabels = {"H1": "change in test BLEU, sparse minus dense (points)",
               "H2": "summarization's loss change minus data-to-text's (nats per token)"}
    for ax, h in zip(axes[:, 0], hypotheses):
        rows = check.cells[check.cells["hypothesis"] == h].reset_index(drop=True)
        ys = list(range(len(rows)))[::-1]
        for y, (_, r) in zip(ys, rows.iterrows()):
            moved = not bool(r["same outcome"])
            for offset, run, colour in ((0.15, "published", "tab:blue"), (-0.15, "re-run", "tab:orange")):
                est, lo, hi = float(r[f"{run} estimate"]), float(r[f"{run} low"]), float(r[f"{run} high"])
                if math.isnan(est):
                    continue
                err = [[est - lo if not math.isnan(lo) else 0.0], [hi - est if not math.isnan(hi) else 0.0]]
                ax.errorbar([est], [y + offset], xerr=err, fmt="o", capsize=3, color=colour,
                            markerfacecolor=colour if moved else "white",
                            label=f"{names[0] if run == 'published' else names[1]} (95% CI)")
        line, label = lines.get(h, (0.0, "rule's line"))
        ax.axvline(line, color="tab:red", linestyle="--", linewidth=1, label=label)
        if h == "H1":
            ax.axvline(0.0, color="gray", linewidth=1)
        ticks = [f"{r['task']}, {level_label(r['sparsity'])}" for _, r in rows.iterrows()]
        ax.set_yticks(ys, ticks, fontsize=8)
        for tick, (_, r) in zip(ax.get_yticklabels(), rows.iterrows()):
            if not bool(r["same outcome"]):
                tick.set_fontweight("bold")
        ax.set_xlabel(xlabels.get(h, "estimate"), fontsize=9)
        ax.set_title(f"{h}, {check.size}: the two runs of every judged cell (filled, bold: outcome changed)",
                     fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    fig.tight_layout()
    return fig
