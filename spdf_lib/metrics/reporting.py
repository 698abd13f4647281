"""The official metrics of every evaluation run, and the per-size tables in the LoRA paper's layout.

:func:`score_eval_results` reads each run's saved outputs (``<run_id>.outputs.jsonl.gz``, checked
against the run's number of test inputs) and scores them with :func:`~.scoring.score`;
:func:`metric_tables` turns those scores into one table per model size, laid out like the NLG tables
of the LoRA paper (Hu et al. 2021, Tables 3 and 13-14): one column group per task with that task's
metrics, here one row per pre-training sparsity, each cell the mean and the standard deviation over
the cell's runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from ..outputs import OutputsMismatchError, read_outputs
from .scoring import METRICS, SUITES, score_entry

__all__ = ["RUN_FIELDS", "DIGITS", "ESTIMATOR", "outputs_path", "score_eval_results", "metric_tables"]

RUN_FIELDS = ("run_id", "size", "sparsity", "pretrain_seed", "task", "seed", "lr", "keep_masks", "test_inputs")
DIGITS = {"BLEU": 2, "NIST": 2, "METEOR": 3, "ROUGE-L": 3, "CIDEr": 2, "TER": 3}
ESTIMATOR = ("mean ± sample standard deviation (n - 1 in the denominator) over the n runs of a cell "
             "(pre-training seeds × fine-tuning seeds)")
SCALES = ("BLEU on 0-100; METEOR, ROUGE-L and TER as fractions; NIST and CIDEr(-D) unscaled; "
          "TER is lower-better, every other metric higher-better")


def outputs_path(tables_dir: Path | str, profile: str, run_id: str) -> Path:
    """Where an evaluation run's decoded outputs are saved."""
    return Path(tables_dir) / profile / "runs" / "eval" / f"{run_id}.outputs.jsonl.gz"


def _limit(limit_inputs: int | None | Mapping[str, int | None], task: str) -> int | None:
    return limit_inputs.get(task) if isinstance(limit_inputs, Mapping) else limit_inputs


def score_eval_results(eval_results: Iterable[dict], tables_dir: Path | str, profile: str,
                       limit_inputs: int | None | Mapping[str, int | None]) -> pd.DataFrame:
    """One row per evaluation run of E2E, WebNLG or DART (other tasks are skipped: they have no
    official suite) with the run's fields, ``segments`` (inputs after grouping identical ones) and
    every metric of its task's suite (NaN for the metrics of the other suites).

    ``limit_inputs`` is the profile's test-set limit (``max_test_inputs``), one for all tasks or a
    mapping task -> limit. The outputs are read with :func:`~spdf_lib.outputs.read_outputs`, which
    refuses a file whose line count differs from the run's ``test_inputs``; the test split must have
    that many inputs too. Nothing misaligned is ever scored."""
    from ..data import load_task

    splits: dict[tuple[str, int | None], object] = {}
    rows = []
    for result in eval_results:
        task = result.get("task")
        if task not in SUITES:
            continue
        missing = [f for f in RUN_FIELDS if f not in result]
        if missing:
            raise ValueError(f"evaluation result {result.get('run_id', '?')!r} lacks the field(s) {missing}")
        path = outputs_path(tables_dir, profile, result["run_id"])
        expected = int(result["test_inputs"])
        hyps = read_outputs(path, expected=expected)
        limit = _limit(limit_inputs, task)
        if (task, limit) not in splits:
            splits[(task, limit)] = load_task(task, "test", limit=limit)
        test = splits[(task, limit)]
        if test.num_rows != expected:
            raise OutputsMismatchError(f"{path}: the run {result['run_id']} has {expected} test inputs but the {task} "
                                       f"test split with limit={limit} has {test.num_rows}; they are not scored")
        entry = score_entry(task, hyps, test)
        rows.append({**{f: result[f] for f in RUN_FIELDS}, "segments": entry["segments"], **entry["scores"]})
    return pd.DataFrame(rows, columns=[*RUN_FIELDS, "segments", *METRICS])


def _cell(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return ""
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return f"{mean:.{digits}f} ± " + ("n/a" if math.isnan(sd) else f"{sd:.{digits}f}")


def metric_tables(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per model size, a table with one row per pre-training sparsity and one column group per task:
    its suite's metrics (``"mean ± sd"`` strings) and ``n``, the number of runs in the cell. Only
    dense fine-tuning runs (``keep_masks`` False) enter. ``table.attrs["caption"]`` states the
    estimator, the scales and the scoring scripts."""
    missing = [c for c in ("size", "sparsity", "task", "keep_masks", *METRICS) if c not in scores.columns]
    if missing:
        raise ValueError(f"metric_tables needs the frame of score_eval_results; missing columns {missing}")
    dense = scores[~scores["keep_masks"].astype(bool)]
    tables = {}
    for size in dict.fromkeys(dense["size"]):
        runs = dense[dense["size"] == size]
        tasks = [t for t in SUITES if t in set(runs["task"])]
        columns = pd.MultiIndex.from_tuples([(t, m) for t in tasks for m in (*SUITES[t][1], "n")],
                                            names=["task", "metric"])
        levels = sorted(set(runs["sparsity"]))
        table = pd.DataFrame(index=pd.Index(levels, name="pre-training sparsity"), columns=columns, dtype=object)
        for level in levels:
            for task in tasks:
                cell = runs[(runs["sparsity"] == level) & (runs["task"] == task)]
                table.loc[level, (task, "n")] = len(cell)
                for metric in SUITES[task][1]:
                    table.loc[level, (task, metric)] = _cell(cell[metric], DIGITS[metric])
        segments = {t: sorted(set(runs.loc[runs["task"] == t, "segments"])) for t in tasks}
        table.attrs["caption"] = (
            f"{size}: the official metric suites of the test sets, dense fine-tuning. E2E: BLEU, NIST, METEOR, "
            f"ROUGE-L, CIDEr of the E2E challenge scorer (measure_scores.py -p, as the LoRA repository runs it); "
            f"WebNLG and DART: BLEU, METEOR, TER of the WebNLG GenerationEval eval.py after the LoRA "
            f"preprocessing (lower case, split at non-word characters, references of identical inputs merged, "
            f"at most 6). Segments scored: "
            + ", ".join(f"{t} {'/'.join(str(s) for s in segments[t])}" for t in tasks)
            + f". Each cell: {ESTIMATOR}. {SCALES}.")
        tables[size] = table
    return tables
