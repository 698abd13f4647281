"""Score one run's decoded outputs with its task's official suite, cached on disk.

The result is cached under ``store.cache_root() / "official_metrics"`` by a hash of the grouped
outputs and references, the metrics asked for and the scorer version (this module's suite version and
the versions of the packages that compute the numbers), so scoring the same outputs again is free
and a changed scorer recomputes. Entries carry a checksum; a damaged one is recomputed.
"""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import store
from ..outputs import OutputsMismatchError
from .suites import (E2E_METRICS, GENERATION_EVAL_METRICS, Grouped, e2e_suite,
                     generation_eval_suite, group_by_input, select_metrics)

__all__ = ["SUITES", "METRICS", "SUITE_VERSION", "scorer_version", "score", "score_entry", "cache_dir"]

# Bump when the way any number is computed changes (the package versions are in the key as well).
SUITE_VERSION = 1

SUITES = {"e2e": (e2e_suite, E2E_METRICS),
          "webnlg": (generation_eval_suite, GENERATION_EVAL_METRICS),
          "dart": (generation_eval_suite, GENERATION_EVAL_METRICS)}
METRICS = tuple(dict.fromkeys(m for _, names in SUITES.values() for m in names))
_SCORER_PACKAGES = ("sacrebleu", "pycocoevalcap", "nltk", "pyter3")


@functools.lru_cache(maxsize=1)
def scorer_version() -> dict[str, Any]:
    """The suite version and the installed versions of the packages that compute the metrics."""
    return {"suite": SUITE_VERSION, **{name: metadata.version(name) for name in _SCORER_PACKAGES}}


def cache_dir() -> Path:
    return store.cache_root() / "official_metrics"


def _check_task(task: str) -> None:
    if task not in SUITES:
        if task == "summarization":
            raise ValueError("task 'summarization' has no official metric suite here: it is scored by the "
                             "perplexity of its reference summaries")
        raise ValueError(f"unknown task {task!r}; the official metric suites cover {', '.join(SUITES)}")


def _columns(rows: Any) -> dict[str, list]:
    """The test rows as columns: a ``datasets.Dataset``, a dict of columns or a list of row dicts."""
    if hasattr(rows, "column_names") and hasattr(rows, "select_columns"):  # datasets.Dataset
        from ..data import column

        return {name: column(rows, name) for name in rows.column_names if name in ("source", "references", "eid")}
    if isinstance(rows, Mapping):
        return {name: list(values) for name, values in rows.items()}
    rows = list(rows)
    names = {name for row in rows for name in row}
    return {name: [row.get(name) for row in rows] for name in names}


def _empty_references(task: str, eids: Sequence[str], sources: Sequence[str]) -> list[int]:
    """How many references without text each test entry has in the released XML.

    ``load_task`` keeps only references with text; LoRA's conversion keeps an empty one as the empty
    string, which ``eval.py`` scores (TER 1 against it, BLEU may take its length 0 as the closest).
    DART's test entry Id116 has one."""
    from .. import data

    test_file = data.task_files(task)[-1]
    entries = {entry.eid: entry for entry in data.parse_benchmark_xml(test_file)}
    counts = []
    for eid, source in zip(eids, sources):
        entry = entries.get(eid)
        if entry is None or data.linearize_triples(list(entry.triples)) != source:
            raise ValueError(f"{task} test input {eid!r} ({source[:60]!r}) is not an entry of {test_file} with "
                             f"those triples: the test rows do not come from that file")
        counts.append(entry.empty_lexes)
    return counts


def _grouped(task: str, hyps: Sequence[str], rows: Any) -> Grouped:
    columns = _columns(rows)
    missing = [c for c in ("source", "references") if c not in columns]
    if missing:
        raise ValueError(f"the {task} test rows need the columns 'source' and 'references'; missing {missing}")
    sources, references = columns["source"], [list(r) for r in columns["references"]]
    if len(hyps) != len(sources):
        raise OutputsMismatchError(f"{len(hyps)} outputs for {len(sources)} {task} test inputs: outputs that do "
                                   f"not line up with their inputs are never scored")
    for number, hyp in enumerate(hyps, start=1):
        if not isinstance(hyp, str):
            raise TypeError(f"output {number} is a {type(hyp).__name__}, not a string")
    if task in ("webnlg", "dart") and columns.get("eid") and all(columns["eid"]):
        empties = _empty_references(task, columns["eid"], sources)
        references = [refs + [""] * extra for refs, extra in zip(references, empties)]
    return group_by_input(list(hyps), sources, references)


def score_entry(task: str, hyps: Sequence[str], references_rows: Any,
                metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """:func:`score` with what was scored: ``{"scores", "segments", "inputs", "disagreeing", "scorer"}``."""
    _check_task(task)
    suite, available = SUITES[task]
    wanted = select_metrics(metrics, available)
    grouped = _grouped(task, hyps, references_rows)
    version = scorer_version()
    path = cache_dir() / f"{task}-{store.stable_hash(task, wanted, version, grouped.hyps, grouped.references)}.json"
    if path.exists() and not store.force_recompute(path):
        try:
            return store.read_json_verified(path, require_checksum=True)
        except store.CorruptCacheError:
            store.discard_entry(path)
    entry = {"task": task, "scores": suite(grouped.hyps, grouped.references, wanted), "segments": len(grouped.hyps),
             "inputs": grouped.inputs, "disagreeing": grouped.disagreeing, "scorer": version}
    store.write_json_entry(path, entry)
    return entry


def score(task: str, hyps: Sequence[str], references_rows: Any,
          metrics: Sequence[str] | None = None) -> dict[str, float]:
    """The official metrics of ``task`` for the outputs ``hyps``, one per row of ``references_rows``
    (the test split from ``spdf_lib.data.load_task(task, "test", limit=...)``, or rows with ``source``
    and ``references``). ``metrics`` picks some of the suite's metrics (default: all of them).

    Raises ValueError for an unknown task, :class:`~.suites.UnknownMetricError` for a metric the
    suite does not compute, and :class:`~spdf_lib.outputs.OutputsMismatchError` when the number of
    outputs differs from the number of rows (nothing is scored then)."""
    return dict(score_entry(task, hyps, references_rows, metrics)["scores"])
