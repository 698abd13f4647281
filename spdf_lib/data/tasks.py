"""The four fine-tuning tasks, after the LoRA NLG setup that SPDF follows (chapter 03).

:func:`load_task` returns one split of a task as a ``datasets.Dataset``:

* ``e2e``: E2E NLG Challenge, official CSVs. The source is the meaning representation (MR) as it is
  written in the file, e.g. ``name[The Eagle], eatType[coffee shop]``. Test: 630 MRs, each with all of
  its references (consecutive rows of ``testset_w_refs.csv`` with the same MR, as the official scorer
  groups them).
* ``webnlg``: WebNLG Challenge 2017, official XML; test = ``testdata_with_lex.xml`` (seen + unseen).
* ``dart``: DART v1.1.1. Its train split could not be obtained, so we train on the official dev split
  minus a held-out 10 % of its triple sets (the validation split) and test on the official test split.
* ``summarization``: BBC News Summary (article -> summary), our stand-in for Curation Corpus, whose
  articles are not redistributable. Its summaries are extractive (sentences copied from the article).

Triples (WebNLG, DART) are linearized as ``subject | property | object`` with underscores turned into
spaces and surrounding double quotes dropped, joined by `` ; `` in the order of the file.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .files import (BBC_FILES, DART_DEV, DART_TEST, E2E_FILES, E2E_TEST_INPUTS, SPLITS, WEBNLG_TEST,
                    DataNotFoundError, check_split, check_task, data_path, data_root, task_files)
from .readers import check_strings, column, import_datasets, load_csv, load_jsonl

if TYPE_CHECKING:  # pragma: no cover
    import datasets

DART_VALIDATION_FRACTION = 0.1  # share of DART dev triple sets held out for validation
DART_SPLIT_SEED = 0
SUBSET_SEED = 0  # ``limit=`` picks a seeded random subset, the same in every chapter
TRIPLE_JOINER = " ; "


def _clean_part(part: str) -> str:
    part = part.strip().replace("_", " ")
    if len(part) >= 2 and part[0] == part[-1] == '"':
        part = part[1:-1]
    return part


def linearize_triples(triples: list[str]) -> str:
    """``["A_b | p | "c"", ...]`` -> ``"A b | p | c ; ..."`` (the source text of WebNLG and DART)."""
    return TRIPLE_JOINER.join(" | ".join(_clean_part(p) for p in t.split(" | ")) for t in triples)


@dataclass(frozen=True)
class XmlEntry:
    """One ``<entry>`` of a WebNLG-style benchmark file (WebNLG 2017, DART)."""

    eid: str
    category: str
    triples: tuple[str, ...]
    lexes: tuple[str, ...]  # reference texts, empty ones removed
    lex_comments: tuple[str, ...]  # the ``comment`` attribute of each kept lex (DART: its origin)
    empty_lexes: int  # references without text (a known defect of one DART test entry)


@functools.lru_cache(maxsize=256)
def _parse_benchmark_xml_cached(path_str: str, size: int, mtime_ns: int) -> tuple[XmlEntry, ...]:
    import xml.etree.ElementTree as ET

    path = Path(path_str)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: malformed XML: {err}") from err
    entries = []
    for number, entry in enumerate(root.iter("entry"), start=1):
        where = f"{path}: entry {number} (eid={entry.get('eid')!r})"
        triples = tuple((t.text or "").strip() for t in entry.findall("modifiedtripleset/mtriple"))
        if not triples:
            raise ValueError(f"{where}: no <modifiedtripleset>/<mtriple>")
        for triple in triples:
            if len(triple.split(" | ")) != 3:
                raise ValueError(f"{where}: triple {triple!r} is not 'subject | property | object'")
        lexes, comments, empty = [], [], 0
        for lex in entry.findall("lex"):
            text = " ".join((lex.text or "").split())
            if text:
                lexes.append(text)
                comments.append(lex.get("comment", ""))
            else:
                empty += 1
        entries.append(XmlEntry(eid=entry.get("eid", str(number)), category=entry.get("category", ""),
                                triples=triples, lexes=tuple(lexes), lex_comments=tuple(comments),
                                empty_lexes=empty))
    if not entries:
        raise ValueError(f"{path}: no <entry> elements")
    return tuple(entries)


def parse_benchmark_xml(relative: str) -> tuple[XmlEntry, ...]:
    """The entries of a WebNLG-format XML file (memoized per process by path, size, mtime)."""
    path = data_path(relative)
    stat = path.stat()
    return _parse_benchmark_xml_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _xml_files(relative_dir: str) -> list[str]:
    root = data_root(verbose=False)
    files = sorted(str(p.relative_to(root)) for p in data_path(relative_dir).rglob("*.xml"))
    if not files:
        raise DataNotFoundError(f"no XML files under {root / relative_dir}")
    return files


# Data-quality notes (counted skips and repairs) collected while parsing, for chapter 03.
_quality: dict[tuple[str, str], dict[str, int]] = {}


def data_quality(name: str) -> dict[str, dict[str, int]]:
    """Counted skips and repairs per split of a task (loads all its splits). Shown in chapter 03."""
    for split in SPLITS:
        load_task(name, split)
    return {split: dict(_quality.get((name, split), {})) for split in SPLITS}


def _rows_e2e(split: str) -> dict[str, list]:
    path, table = load_csv(E2E_FILES[split], ("mr", "ref"))
    mrs = [m.strip() for m in table["mr"]]
    refs = [" ".join(r.split()) for r in table["ref"]]
    if split != "test":
        return {"source": mrs, "target": refs}
    # Multi-reference test: consecutive rows with the same MR form one input (as the official scorer).
    groups: list[tuple[str, list[str]]] = []
    for mr, ref in zip(mrs, refs):
        if groups and groups[-1][0] == mr:
            groups[-1][1].append(ref)
        else:
            groups.append((mr, [ref]))
    inputs_path, inputs = load_csv(E2E_TEST_INPUTS, ("MR",))
    expected = [m.strip() for m in inputs["MR"]]
    if [g[0] for g in groups] != expected:
        raise ValueError(f"{path}: its MR groups do not match the {len(expected)} inputs of {inputs_path} "
                         f"in order ({len(groups)} groups)")
    return {"source": [g[0] for g in groups], "references": [g[1] for g in groups]}


def _rows_from_entries(entries: list[XmlEntry], split: str, seen: set[str] | None, task: str) -> dict[str, list]:
    quality = _quality.setdefault((task, split), {})
    quality["empty references skipped"] = sum(e.empty_lexes for e in entries)
    if split == "test":
        kept = [e for e in entries if e.lexes]
        quality["inputs without any reference skipped"] = len(entries) - len(kept)
        rows = {"source": [linearize_triples(list(e.triples)) for e in kept],
                "references": [list(e.lexes) for e in kept],
                "category": [e.category for e in kept],
                "n_triples": [len(e.triples) for e in kept],
                "eid": [e.eid for e in kept]}
        if task == "webnlg":
            rows["seen"] = [e.category in seen for e in kept]
        else:  # DART: where the references came from (webnlg, e2e, WikiSQL_..., WikiTableQuestions_...)
            rows["origin"] = [max(set(e.lex_comments), key=e.lex_comments.count) for e in kept]
        return rows
    rows: dict[str, list] = {"source": [], "target": [], "category": [], "n_triples": [], "eid": []}
    if task == "dart":
        rows["origin"] = []
    for e in entries:
        source = linearize_triples(list(e.triples))
        for text, comment in zip(e.lexes, e.lex_comments):
            rows["source"].append(source)
            rows["target"].append(text)
            rows["category"].append(e.category)
            rows["n_triples"].append(len(e.triples))
            rows["eid"].append(e.eid)
            if task == "dart":
                rows["origin"].append(comment)
    return rows


def _webnlg_entries(split: str) -> list[XmlEntry]:
    if split == "test":
        return list(parse_benchmark_xml(WEBNLG_TEST))
    folder = "webnlg2017/train" if split == "train" else "webnlg2017/dev"
    entries = []
    for relative in _xml_files(folder):
        # eids restart in every file: make them unique with the file name.
        stem = Path(relative).stem
        entries += [XmlEntry(f"{stem}/{e.eid}", e.category, e.triples, e.lexes, e.lex_comments, e.empty_lexes)
                    for e in parse_benchmark_xml(relative)]
    return entries


def _rows_webnlg(split: str) -> dict[str, list]:
    seen = {e.category for e in _webnlg_entries("train")} if split == "test" else None
    return _rows_from_entries(_webnlg_entries(split), split, seen, "webnlg")


def dart_dev_partition() -> tuple[list[int], list[int]]:
    """Indices of the DART dev triple sets used for training and for validation (seeded, by triple set,
    so that no input appears on both sides). Explained in chapter 03."""
    n = len(parse_benchmark_xml(DART_DEV))
    order = list(range(n))
    random.Random(DART_SPLIT_SEED).shuffle(order)
    n_validation = round(DART_VALIDATION_FRACTION * n)
    return sorted(order[n_validation:]), sorted(order[:n_validation])


def _rows_dart(split: str) -> dict[str, list]:
    if split == "test":
        entries = list(parse_benchmark_xml(DART_TEST))
    else:
        dev = parse_benchmark_xml(DART_DEV)
        train_idx, validation_idx = dart_dev_partition()
        entries = [dev[i] for i in (train_idx if split == "train" else validation_idx)]
    return _rows_from_entries(entries, split, None, "dart")


# "Greenspan.The" -> "Greenspan. The": the BBC summaries often join sentences without a space.
# A lower-case letter or digit before the period keeps abbreviations such as "U.S." intact.
_JOINED_SENTENCES = re.compile(r'(?<=[a-z0-9%)][.?!])(?=[A-Z"])|(?<=[a-z0-9%)][.?!]")(?=[A-Z])')


def _rows_summarization(split: str) -> dict[str, list]:
    relative = BBC_FILES[split]
    ds = load_jsonl(relative, ("category", "file", "article", "summary"))
    path = data_path(relative)
    articles, summaries = column(ds, "article"), column(ds, "summary")
    check_strings(path, "article", articles)
    check_strings(path, "summary", summaries)
    repaired = [_JOINED_SENTENCES.subn(" ", s) for s in summaries]
    quality = _quality.setdefault(("summarization", split), {})
    quality["summaries with joined sentences repaired"] = sum(1 for _, n in repaired if n)
    sources = [a.strip() for a in articles]
    targets = [" ".join(s.split()) for s, _ in repaired]
    rows = {"source": sources, "category": column(ds, "category"), "file": column(ds, "file")}
    if split == "test":
        rows["references"] = [[t] for t in targets]
    else:
        rows["target"] = targets
    return rows


_ROW_BUILDERS = {"e2e": _rows_e2e, "webnlg": _rows_webnlg, "dart": _rows_dart, "summarization": _rows_summarization}


@functools.lru_cache(maxsize=32)
def _load_task_cached(name: str, split: str, root: str, stamp: tuple) -> "datasets.Dataset":
    datasets = import_datasets()

    return datasets.Dataset.from_dict(_ROW_BUILDERS[name](split))


def _stamp(relative_paths: tuple[str, ...]) -> tuple:
    """Cheap change detector for the in-process memo: (path, size, mtime) of each file."""
    root = data_root(verbose=False)
    out = []
    for relative in relative_paths:
        path = root / relative
        if path.is_dir():
            out.append((relative, len(list(path.rglob("*.xml"))), path.stat().st_mtime_ns))
        elif path.exists():
            out.append((relative, path.stat().st_size, path.stat().st_mtime_ns))
    return tuple(out)


def subset_indices(n: int, limit: int | None, seed: int = SUBSET_SEED) -> list[int]:
    """``limit`` of ``n`` row indices chosen at random with ``seed``, in their original order."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n, size=limit, replace=False))


def load_task(name: str, split: str, limit: int | None = None) -> "datasets.Dataset":
    """One split of a fine-tuning task. Explained in chapter 03.

    ``train``/``validation``: one row per (input, reference) pair, columns ``source`` and ``target``.
    ``test``: one row per distinct input, columns ``source`` and ``references`` (all references).
    Extra columns: ``category``, ``n_triples``, ``eid`` (WebNLG, DART), ``seen`` (WebNLG test),
    ``origin`` (DART), ``category``/``file`` (summarization).
    ``limit`` keeps a seeded random subset of that many rows (the same in every chapter).
    """
    check_task(name)
    check_split(split)
    root = data_root()
    ds = _load_task_cached(name, split, str(root), _stamp(task_files(name)))
    if limit is not None and limit < ds.num_rows:
        ds = ds.select(subset_indices(ds.num_rows, limit))
    return ds


def as_pairs(dataset: "datasets.Dataset") -> "datasets.Dataset":
    """A test split flattened to one (source, target) row per reference (e.g. for test perplexity)."""
    datasets = import_datasets()

    if "target" in dataset.column_names:
        return dataset
    if "references" not in dataset.column_names:
        raise ValueError(f"expected a 'target' or 'references' column, found {dataset.column_names}")
    sources, targets = [], []
    for source, refs in zip(column(dataset, "source"), column(dataset, "references")):
        sources += [source] * len(refs)
        targets += list(refs)
    return datasets.Dataset.from_dict({"source": sources, "target": targets})


def split_statistics(name: str) -> list[dict]:
    """Per split of a task: rows, distinct inputs, references per input, mean lengths in words
    (chapter 03's overview table)."""
    from collections import Counter

    rows = []
    for split in SPLITS:
        ds = load_task(name, split)
        sources = column(ds, "source")
        if "references" in ds.column_names:
            references = column(ds, "references")
            targets = [r for refs in references for r in refs]
            per_input = [len(refs) for refs in references]
        else:
            targets = column(ds, "target")
            per_input = list(Counter(sources).values())
        rows.append({
            "task": name, "split": split, "rows": ds.num_rows, "inputs": len(per_input),
            "references": len(targets), "refs per input (mean)": float(np.mean(per_input)),
            "refs per input (max)": int(max(per_input)),
            "source words (mean)": float(np.mean([len(x.split()) for x in sources])),
            "target words (mean)": float(np.mean([len(x.split()) for x in targets])),
        })
    return rows



__all__ = [
    "DART_VALIDATION_FRACTION", "DART_SPLIT_SEED", "SUBSET_SEED", "TRIPLE_JOINER", "XmlEntry", "linearize_triples",
    "parse_benchmark_xml", "data_quality", "dart_dev_partition", "subset_indices", "load_task", "as_pairs",
    "split_statistics",
]
