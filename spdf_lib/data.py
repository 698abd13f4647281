"""The book's data: four fine-tuning tasks and the pre-training mixture (chapter 03).

Everything is read from local files through Hugging Face ``datasets`` (CSV and JSON Lines with
``load_dataset``, XML parsed with ``xml.etree`` and turned into a ``Dataset``); nothing touches the
network. Where the files live is decided by :func:`data_root`.

Fine-tuning tasks (``load_task``), after the LoRA NLG setup that SPDF follows:

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

Pre-training (``load_pretraining``): English Wikipedia, Project Gutenberg books (licence header and
footer removed) and blog posts, our stand-in for the Pile. Documents of the three corpora are
interleaved in proportion to their characters, so that every prefix of the stream mixes them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import lzma
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from . import store
from .tokenizer import EOS_TOKEN, PAD_TOKEN, SEP_TOKEN

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch

    from .tokenizer import SpdfTokenizer

# The data is local: make any hidden call to the Hub fail fast instead of waiting for a timeout.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _import_datasets():
    """Import ``datasets`` without the warning ``tqdm.auto`` prints in a notebook without ipywidgets
    (noise in every chapter; the progress bars are switched off anyway, see ``_quiet_datasets``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import datasets
    return datasets


TASKS = ("e2e", "webnlg", "dart", "summarization")
SPLITS = ("train", "validation", "test")
PRETRAIN_SPLITS = ("train", "validation")
PRETRAIN_CORPORA = ("wikipedia_en", "gutenberg", "blog_authorship")
DART_VALIDATION_FRACTION = 0.1  # share of DART dev triple sets held out for validation
DART_SPLIT_SEED = 0
SUBSET_SEED = 0  # ``limit=`` picks a seeded random subset, the same in every chapter
TRIPLE_JOINER = " ; "

_PRETRAIN_FILES = {"train": "train.jsonl.xz", "validation": "valid.jsonl.xz"}
_E2E_FILES = {"train": "e2e/trainset.csv", "validation": "e2e/devset.csv", "test": "e2e/testset_w_refs.csv"}
_E2E_TEST_INPUTS = "e2e/testset.csv"
_WEBNLG_TEST = "webnlg2017/test/testdata_with_lex.xml"
_DART_DEV = "dart/dart-v1.1.1-full-dev.xml"
_DART_TEST = "dart/dart-v1.1.1-full-test.xml"
_BBC_FILES = {"train": "summarization/bbc_news_summary/train.jsonl",
              "validation": "summarization/bbc_news_summary/valid.jsonl",
              "test": "summarization/bbc_news_summary/test.jsonl"}

# Shown when no data directory exists: where the files came from, and Hub IDs to use when online.
HOW_TO_GET_DATA = """\
The data is not part of the repository (licences). Put the files laid out as in the data README
(e2e/, webnlg2017/, dart/, summarization/bbc_news_summary/, pretrain/{wikipedia_en,gutenberg,blog_authorship}/)
in <repo>/data, or point the SPDF_DATA environment variable at such a directory. Public sources:
  E2E NLG:            github.com/tuetschek/e2e-dataset            (Hugging Face Hub: tuetschek/e2e_nlg)
  WebNLG 2017:        the challenge XML, e.g. github.com/XiangLi1999/PrefixTuning data/webnlg_challenge_2017
                                                                 (Hub: web_nlg, config webnlg_challenge_2017)
  DART v1.1.1:        github.com/Yale-LILY/dart data/v1.1.1        (Hub: Yale-LILY/dart)
  BBC News Summary:   Kaggle dataset pariza/bbc-news-summary
  Wikipedia:          any WikiExtractor dump of English Wikipedia (Hub: wikimedia/wikipedia)
  Project Gutenberg:  gutenberg.org plain-text books               (Hub: manu/project_gutenberg)
  Blog Authorship:    Schler et al. 2006 blog corpus               (Hub: barilan/blog_authorship_corpus)"""


# ----------------------------------------------------------------------------------------------
# Where the data is, and its fingerprint
# ----------------------------------------------------------------------------------------------

class DataNotFoundError(FileNotFoundError):
    """The data directory or one of its files is missing; the message says how to get it."""


def _candidate_roots() -> list[tuple[str, Path]]:
    configured = os.environ.get("SPDF_DATA")
    if configured:
        # An explicit setting is never silently replaced by a fallback.
        return [("$SPDF_DATA", Path(configured).expanduser())]
    return [("<repo>/data", store.REPO_ROOT / "data"),
            ("<repo>/../shared/data", store.REPO_ROOT.parent / "shared" / "data")]


_announced_roots: set[Path] = set()


def data_root(verbose: bool = True) -> Path:
    """The data directory: ``$SPDF_DATA``, else ``<repo>/data``, else ``<repo>/../shared/data``.

    The chosen path is printed (once per process). When none exists, a DataNotFoundError lists the
    paths tried and how to get the data. Explained in chapter 03.
    """
    tried = _candidate_roots()
    for label, path in tried:
        if path.is_dir():
            path = path.resolve()
            if verbose and path not in _announced_roots:
                _announced_roots.add(path)
                print(f"data root: {path} ({label})")
            return path
    listing = "\n".join(f"  {label}: {path} (missing)" for label, path in tried)
    raise DataNotFoundError(f"no data directory found. Tried:\n{listing}\n{HOW_TO_GET_DATA}")


def data_path(relative: str) -> Path:
    """``data_root() / relative``, or a DataNotFoundError naming the missing file."""
    root = data_root()
    path = root / relative
    if not path.exists():
        raise DataNotFoundError(f"missing data file {relative!r} (looked for {path}); the data README "
                                f"lists every file and where it comes from.\n{HOW_TO_GET_DATA}")
    return path


_file_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, memoized per process by (path, size, mtime)."""
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _file_digests:
        _file_digests[memo_key] = store.sha256_file(path)
    return _file_digests[memo_key]


def _expand(relative: str) -> list[str]:
    path = data_path(relative)
    if path.is_dir():
        root = data_root(verbose=False)
        return sorted(str(p.relative_to(root)) for p in path.rglob("*") if p.is_file())
    return [relative]


def data_fingerprint(*relative_paths: str) -> str:
    """16 hex characters of SHA-256 over the contents of the given files (directories: all files).

    Every cache built from data (tokenizer, token streams, fine-tuning results) includes it in its key,
    so a changed data file invalidates exactly what was derived from it. Memoized per process.
    """
    if not relative_paths:
        raise ValueError("data_fingerprint needs at least one path relative to the data root")
    digest = hashlib.sha256()
    for relative in sorted({f for r in relative_paths for f in _expand(r)}):
        digest.update(f"{relative}\0{_file_digest(data_path(relative))}\n".encode())
    return digest.hexdigest()[:16]


def task_files(name: str) -> tuple[str, ...]:
    """The data files (relative to the data root) that ``load_task(name, ...)`` reads."""
    _check_task(name)
    if name == "e2e":
        return (*_E2E_FILES.values(), _E2E_TEST_INPUTS)
    if name == "webnlg":
        return ("webnlg2017/train", "webnlg2017/dev", _WEBNLG_TEST)
    if name == "dart":
        return (_DART_DEV, _DART_TEST)
    return tuple(_BBC_FILES.values())


def task_fingerprint(name: str) -> str:
    """:func:`data_fingerprint` of a task's files."""
    return data_fingerprint(*task_files(name))


def pretraining_files(split: str) -> tuple[str, ...]:
    """The three corpus files of a pre-training split, relative to the data root."""
    _check_pretrain_split(split)
    return tuple(f"pretrain/{corpus}/{_PRETRAIN_FILES[split]}" for corpus in PRETRAIN_CORPORA)


def pretraining_fingerprint(split: str) -> str:
    """:func:`data_fingerprint` of a pre-training split's files (cheap after the first call)."""
    return data_fingerprint(*pretraining_files(split))


def _check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _check_pretrain_split(split: str) -> None:
    if split not in PRETRAIN_SPLITS:
        raise ValueError(f"unknown pre-training split {split!r}; choose one of {', '.join(PRETRAIN_SPLITS)}")


# ----------------------------------------------------------------------------------------------
# Reading files through datasets, with errors that name the file and the row
# ----------------------------------------------------------------------------------------------

def _hf_cache_dir() -> str:
    """The ``datasets`` Arrow cache lives in the project cache (follows ``SPDF_CACHE``)."""
    path = store.cache_root() / "hf_datasets"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def _quiet_datasets():
    """Silence the per-file progress bars of ``datasets`` (noise in the book), then restore them."""
    datasets = _import_datasets()

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def column(dataset, name: str) -> list:
    """A column as a plain list (fast: one Arrow conversion, not a Python loop over rows)."""
    if isinstance(dataset, dict):
        return list(dataset[name])
    if name not in dataset.column_names:
        raise ValueError(f"no column {name!r}; found {dataset.column_names}")
    return dataset.select_columns([name])[:][name]


def _open_text(path: Path):
    return lzma.open(path, "rt", encoding="utf-8") if path.suffix == ".xz" else open(path, encoding="utf-8")


def _locate_jsonl_error(path: Path) -> str:
    """Scan a JSON Lines file and describe its first bad line (the Arrow reader does not say)."""
    try:
        with _open_text(path) as handle:
            number = 0
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    return f"line {number}: empty line"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    return f"line {number}: not valid JSON ({err.msg} at column {err.colno})"
                if not isinstance(obj, dict):
                    return f"line {number}: expected a JSON object, got {type(obj).__name__}"
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as err:
        return f"unreadable ({type(err).__name__}: {err})"
    return "the file is empty (no documents)" if number == 0 else ""


def _load_jsonl(relative: str, columns: tuple[str, ...]) -> "datasets.Dataset":
    """A JSON Lines file (``.xz`` too) as a Dataset with the required ``columns`` of strings."""
    datasets = _import_datasets()

    path = data_path(relative)
    try:
        with _quiet_datasets():
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=_hf_cache_dir())
    except Exception as err:  # the Arrow reader's message names neither file nor line
        where = _locate_jsonl_error(path) or str(err.__cause__ or err)
        raise ValueError(f"{path}: malformed JSON Lines file: {where}") from err
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; found {ds.column_names}")
    return ds


def _read_jsonl_head(relative: str, n: int, columns: tuple[str, ...]) -> "datasets.Dataset":
    """The first ``n`` lines of a JSON Lines file as a Dataset (the small profiles need a few
    documents; converting the whole file to Arrow first would take longer than using them)."""
    datasets = _import_datasets()

    path = data_path(relative)
    rows = []
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(itertools.islice(handle, n), start=1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {number}: not valid JSON ({err.msg} at column {err.colno})") from err
                if not isinstance(row, dict) or any(not isinstance(row.get(c), str) for c in columns):
                    raise ValueError(f"{path}: line {number}: expected a JSON object with string fields "
                                     f"{list(columns)}")
                rows.append({c: row[c] for c in columns})
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as err:
        raise ValueError(f"{path}: unreadable after {len(rows)} lines ({type(err).__name__}: {err})") from err
    return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({c: [] for c in columns})


def _check_strings(path: Path, name: str, values: list, unit: str = "line") -> None:
    for number, value in enumerate(values, start=1):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: {unit} {number}: field {name!r} is empty or not a string ({value!r})")


def _locate_csv_error(path: Path, columns: tuple[str, ...]) -> str:
    import csv

    number = 0
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header] != [c.lower() for c in columns]:
                return f"header {header} instead of {list(columns)}"
            for number, row in enumerate(reader, start=1):
                if len(row) != len(columns):
                    return f"data row {number} (line {reader.line_num}): {len(row)} fields instead of {len(columns)}"
    except UnicodeDecodeError as err:
        return f"not UTF-8 text after data row {number} ({err.reason})"
    return "no data rows" if number == 0 else ""


def _load_csv(relative: str, columns: tuple[str, ...]) -> tuple[Path, dict[str, list[str]]]:
    """A CSV file with exactly ``columns`` (all strings, none empty) as column lists."""
    datasets = _import_datasets()

    path = data_path(relative)
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    try:
        with _quiet_datasets():
            # No NA parsing: a reference reading "NA" or "null" is text, not a missing value.
            ds = datasets.load_dataset("csv", data_files=str(path), split="train", cache_dir=_hf_cache_dir(),
                                       features=features, keep_default_na=False, na_filter=False)
    except Exception as err:
        where = _locate_csv_error(path, columns) or str(err.__cause__ or err)
        raise ValueError(f"{path}: malformed CSV: {where}") from err
    out = {c: column(ds, c) for c in columns}
    for c in columns:
        _check_strings(path, c, out[c], unit="data row")
    return path, out


# ----------------------------------------------------------------------------------------------
# The tasks
# ----------------------------------------------------------------------------------------------

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
    path, table = _load_csv(_E2E_FILES[split], ("mr", "ref"))
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
    inputs_path, inputs = _load_csv(_E2E_TEST_INPUTS, ("MR",))
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
        return list(parse_benchmark_xml(_WEBNLG_TEST))
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
    n = len(parse_benchmark_xml(_DART_DEV))
    order = list(range(n))
    random.Random(DART_SPLIT_SEED).shuffle(order)
    n_validation = round(DART_VALIDATION_FRACTION * n)
    return sorted(order[n_validation:]), sorted(order[:n_validation])


def _rows_dart(split: str) -> dict[str, list]:
    if split == "test":
        entries = list(parse_benchmark_xml(_DART_TEST))
    else:
        dev = parse_benchmark_xml(_DART_DEV)
        train_idx, validation_idx = dart_dev_partition()
        entries = [dev[i] for i in (train_idx if split == "train" else validation_idx)]
    return _rows_from_entries(entries, split, None, "dart")


# "Greenspan.The" -> "Greenspan. The": the BBC summaries often join sentences without a space.
# A lower-case letter or digit before the period keeps abbreviations such as "U.S." intact.
_JOINED_SENTENCES = re.compile(r'(?<=[a-z0-9%)][.?!])(?=[A-Z"])|(?<=[a-z0-9%)][.?!]")(?=[A-Z])')


def _rows_summarization(split: str) -> dict[str, list]:
    relative = _BBC_FILES[split]
    ds = _load_jsonl(relative, ("category", "file", "article", "summary"))
    path = data_path(relative)
    articles, summaries = column(ds, "article"), column(ds, "summary")
    _check_strings(path, "article", articles)
    _check_strings(path, "summary", summaries)
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
    datasets = _import_datasets()

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
    _check_task(name)
    _check_split(split)
    root = data_root()
    ds = _load_task_cached(name, split, str(root), _stamp(task_files(name)))
    if limit is not None and limit < ds.num_rows:
        ds = ds.select(subset_indices(ds.num_rows, limit))
    return ds


def as_pairs(dataset: "datasets.Dataset") -> "datasets.Dataset":
    """A test split flattened to one (source, target) row per reference (e.g. for test perplexity)."""
    datasets = _import_datasets()

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


# ----------------------------------------------------------------------------------------------
# The pre-training mixture
# ----------------------------------------------------------------------------------------------

_PG_START = re.compile(r"^\*\*\* ?START OF (?:THIS|THE) PROJECT GUTENBERG.*$", re.M | re.I)
_PG_END = re.compile(r"^\*\*\* ?END OF (?:THIS|THE) PROJECT GUTENBERG.*$", re.M | re.I)
_PG_OLD_HEADER_END = re.compile(r"^.*END\*?\s?THE SMALL PRINT!.*$", re.M)  # pre-2000s "small print" header
_PG_TRAILER = re.compile(r"^\s*End (?:of )?(?:the |this )?Project Gutenberg", re.M | re.I)
_PG_TRAILER_WINDOW = 3000  # the closing "End of the Project Gutenberg EBook of ..." line is near the end


@dataclass(frozen=True)
class GutenbergStrip:
    """A book with its Project Gutenberg licence header and footer removed."""

    text: str
    header: str  # "marker" (*** START OF ...), "small print" (older files) or "" (none found)
    footer: bool  # "*** END OF ..." marker or closing "End of ... Project Gutenberg" line found
    removed_chars: int


def strip_gutenberg(text: str) -> GutenbergStrip:
    """Keep only the book: drop the licence header and footer. Explained in chapter 03."""
    body, header, footer = text, "", False
    start = _PG_START.search(body)
    if start:
        body, header = body[start.end():], "marker"
    else:
        old = _PG_OLD_HEADER_END.search(body)
        if old:
            body, header = body[old.end():], "small print"
    end = _PG_END.search(body)
    if end:
        body, footer = body[:end.start()], True
    tail_start = max(0, len(body) - _PG_TRAILER_WINDOW)
    trailer = None
    for trailer in _PG_TRAILER.finditer(body, tail_start):
        pass  # keep the last match
    if trailer is not None:
        body, footer = body[:trailer.start()], True
    body = body.strip()
    return GutenbergStrip(text=body, header=header, footer=footer, removed_chars=len(text) - len(body))


def _interleave(lengths: list[list[int]]) -> list[tuple[int, int]]:
    """Order documents of several corpora so that every prefix holds each corpus in proportion to its
    characters: document ``i`` of corpus ``c`` is placed at the relative position of its middle."""
    keys = []
    for c, corpus_lengths in enumerate(lengths):
        total = max(1, sum(corpus_lengths))
        position = 0
        for i, n in enumerate(corpus_lengths):
            keys.append(((position + n / 2) / total, c, i))
            position += n
    keys.sort()
    return [(c, i) for _, c, i in keys]


@functools.lru_cache(maxsize=4)
def _pretraining_cached(split: str, limit_docs: int | None, fingerprint: str) -> tuple["datasets.Dataset", dict]:
    datasets = _import_datasets()

    texts_per_corpus, summary = [], {"split": split, "limit_docs": limit_docs, "corpora": {}}
    for corpus, relative in zip(PRETRAIN_CORPORA, pretraining_files(split)):
        if limit_docs is None:
            texts = column(_load_jsonl(relative, ("text",)), "text")
        else:
            texts = column(_read_jsonl_head(relative, limit_docs, ("text",)), "text")
        if not texts:
            raise ValueError(f"{data_path(relative)}: empty corpus file (no documents)")
        _check_strings(data_path(relative), "text", texts)
        info = {"documents": len(texts), "characters_raw": sum(map(len, texts))}
        if corpus == "gutenberg":
            stripped = [strip_gutenberg(t) for t in texts]
            texts = [s.text for s in stripped]
            info["header_marker_stripped"] = sum(s.header == "marker" for s in stripped)
            info["header_small_print_stripped"] = sum(s.header == "small print" for s in stripped)
            info["footer_stripped"] = sum(s.footer for s in stripped)
            info["licence_chars_removed"] = sum(s.removed_chars for s in stripped)
            empty = [i for i, t in enumerate(texts) if not t]
            if empty:
                raise ValueError(f"{data_path(relative)}: line {empty[0] + 1}: nothing left after removing "
                                 f"the Project Gutenberg header and footer")
        info["characters"] = sum(map(len, texts))
        summary["corpora"][corpus] = info
        texts_per_corpus.append(texts)
    order = _interleave([[len(t) for t in texts] for texts in texts_per_corpus])
    columns = {"text": [texts_per_corpus[c][i] for c, i in order],
               "corpus": [PRETRAIN_CORPORA[c] for c, _ in order],
               "doc_index": [i for _, i in order]}
    summary["documents"] = len(order)
    summary["characters"] = sum(info["characters"] for info in summary["corpora"].values())
    return datasets.Dataset.from_dict(columns), summary


def load_pretraining(split: str, limit_docs: int | None = None) -> "datasets.Dataset":
    """The pre-training mixture: columns ``text``, ``corpus``, ``doc_index``. Explained in chapter 03.

    ``limit_docs`` keeps the first ``limit_docs`` documents of each corpus (the small profiles).
    Gutenberg books lose their licence header and footer; the three corpora are interleaved in
    proportion to their characters. Memoized per process.
    """
    _check_pretrain_split(split)
    if limit_docs is not None and limit_docs <= 0:
        raise ValueError(f"limit_docs must be positive or None, got {limit_docs}")
    return _pretraining_cached(split, limit_docs, pretraining_fingerprint(split))[0]


def pretraining_summary(split: str, limit_docs: int | None = None) -> dict:
    """Documents and characters per corpus, and how many Gutenberg headers/footers were removed."""
    _check_pretrain_split(split)
    return json.loads(json.dumps(_pretraining_cached(split, limit_docs, pretraining_fingerprint(split))[1]))


def corpus_sources(corpus: str) -> dict:
    """The corpus's ``sources.json`` (provenance and counts recorded when the data was gathered)."""
    if corpus not in PRETRAIN_CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; choose one of {', '.join(PRETRAIN_CORPORA)}")
    path = data_path(f"pretrain/{corpus}/sources.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno}: {err.msg}") from err


# ----------------------------------------------------------------------------------------------
# Fine-tuning examples (LoRA NLG format)
# ----------------------------------------------------------------------------------------------

def format_example(source: str, target: str) -> str:
    """The text the model is fine-tuned on: ``source<|sep|> target<|eos|>``. Explained in chapter 03.

    The space before the target makes its first word tokenize as in running text.
    """
    return f"{source}{SEP_TOKEN} {target}{EOS_TOKEN}"


@dataclass(frozen=True)
class FinetuneExample:
    """One tokenized (source, target) pair: ``source <sep> target <eos>``. Explained in chapter 03.

    ``loss_mask[i]`` is True where token ``i`` is part of the target (its EOS included): the loss is
    computed on predicting exactly these tokens.
    """

    input_ids: tuple[int, ...]
    loss_mask: tuple[bool, ...]
    n_source: int  # source tokens kept (the separator follows them)
    source_truncated: bool
    target_truncated: bool  # when True the EOS was cut off too

    def __len__(self) -> int:
        return len(self.input_ids)


def truncation_lengths(n_source: int, n_target: int, max_len: int) -> tuple[int, int]:
    """Source and target tokens kept when ``source + <sep> + target`` must fit ``max_len`` tokens.

    ``n_target`` counts the target with its EOS. Rules (chapter 03): if everything fits, nothing is
    cut. Otherwise the target keeps what the source leaves, but at least half of the budget, and is
    cut at its end (losing the EOS); the source is cut at its end (a news article keeps its headline
    and first paragraphs, a triple list its first triples).
    """
    if max_len < 4:
        raise ValueError(f"max_len={max_len} is too small for source, separator, target and EOS")
    budget = max_len - 1  # the separator
    if n_source + n_target <= budget:
        return n_source, n_target
    target_kept = min(n_target, max(budget - n_source, budget - budget // 2))
    source_kept = min(n_source, budget - target_kept)
    return source_kept, target_kept


def encode_finetune(tok: "SpdfTokenizer", dataset, max_len: int) -> list[FinetuneExample]:
    """Tokenize (source, target) rows into fine-tuning examples of at most ``max_len`` tokens.

    ``dataset`` is a train/validation split of :func:`load_task` (or anything with ``source`` and
    ``target`` columns); pass ``as_pairs(test)`` for a test split. Explained in chapter 03.
    """
    columns = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    if "target" not in columns or "source" not in columns:
        raise ValueError(f"encode_finetune needs 'source' and 'target' columns, found {columns} "
                         f"(use as_pairs() on a test split)")
    sources = column(dataset, "source")
    targets = column(dataset, "target")
    source_ids = tok.encode_batch(sources)
    target_ids = tok.encode_batch([" " + t for t in targets])
    sep, eos = tok.sep_id, tok.eos_id
    examples = []
    for s, t in zip(source_ids, target_ids):
        t = t + [eos]
        n_s, n_t = truncation_lengths(len(s), len(t), max_len)
        ids = tuple(s[:n_s]) + (sep,) + tuple(t[:n_t])
        mask = (False,) * (n_s + 1) + (True,) * n_t
        examples.append(FinetuneExample(ids, mask, n_s, n_s < len(s), n_t < len(t)))
    return examples


def encode_prompt(tok: "SpdfTokenizer", source: str, max_prompt_len: int) -> list[int]:
    """``source <sep>`` for generation, the source cut at its end to fit ``max_prompt_len`` tokens."""
    if max_prompt_len < 2:
        raise ValueError(f"max_prompt_len={max_prompt_len} leaves no room for the source and separator")
    return tok.encode(source)[: max_prompt_len - 1] + [tok.sep_id]


def collate_finetune(examples: list[FinetuneExample], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Right-padded ``(idx, targets)``: ``targets[b, t]`` is token ``t + 1`` where it is a target
    token, else -100 (ignored by the loss), so the loss covers exactly the target tokens."""
    import torch

    width = max(len(e) for e in examples) - 1
    idx = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, e in enumerate(examples):
        ids = torch.tensor(e.input_ids, dtype=torch.long)
        mask = torch.tensor(e.loss_mask[1:], dtype=torch.bool)
        n = len(e) - 1
        idx[row, :n] = ids[:-1]
        targets[row, :n] = torch.where(mask, ids[1:], torch.full_like(ids[1:], -100))
    return idx, targets


LENGTH_BUCKET_BATCHES = 50  # batches per sorting window: long enough to group lengths, short enough to mix


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches of example indices, a pure function of (lengths, seed, epoch).

    Shuffle all examples, sort each window of ``LENGTH_BUCKET_BATCHES`` batches by length, cut it into
    batches, then shuffle the batches: little padding, yet every epoch sees a new order.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths_arr = np.asarray(lengths)
    window = batch_size * LENGTH_BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        part = part[np.argsort(lengths_arr[part], kind="stable")]
        batches += [part[i:i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def finetune_batches(examples: list[FinetuneExample], batch_size: int, seed: int,
                     epoch: int, pad_id: int | None = None) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Yield ``(idx, targets)`` LongTensor batches for one epoch (see :func:`batch_order`).

    ``pad_id`` fills ``idx`` beyond each example (its targets are -100, so its value never matters);
    it defaults to 0. The last batch may be smaller. Explained in chapter 03.
    """
    if not examples:
        raise ValueError("finetune_batches needs at least one example")
    pad = 0 if pad_id is None else pad_id
    for batch in batch_order([len(e) for e in examples], batch_size, seed, epoch):
        yield collate_finetune([examples[i] for i in batch], pad)


# ----------------------------------------------------------------------------------------------
# The pre-training token stream
# ----------------------------------------------------------------------------------------------

_SAFE_CUT = re.compile(r"\S(?=\n)")
ENCODE_PIECE_CHARS = 32_768  # long documents are cut into pieces of about this size for parallel encoding
ENCODE_BATCH_CHARS = 4_000_000  # characters per encode_batch call (the progress bar's step)


def split_for_encoding(text: str, piece_chars: int = ENCODE_PIECE_CHARS) -> list[str]:
    """Cut ``text`` into pieces whose encodings concatenate to the encoding of ``text``.

    Cuts are made only between a non-space character and a newline: the GPT-2 pre-tokenizer always
    separates words there, so no BPE merge can cross a cut. (Checked in tests/test_tokenizer.py.)
    """
    if len(text) <= piece_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        match = _SAFE_CUT.search(text, start + piece_chars)
        if match is None:
            break
        pieces.append(text[start:match.end()])
        start = match.end()
    pieces.append(text[start:])
    return pieces


def token_dtype(vocab_size: int):
    """uint16 when every id fits (halves memory and disk), else uint32."""
    return np.uint16 if vocab_size <= 65535 else np.uint32


def _document_batches(texts: list[str], max_chars: int) -> Iterator[tuple[list[str], int]]:
    batch, chars = [], 0
    for text in texts:
        batch.append(text)
        chars += len(text)
        if chars >= max_chars:
            yield batch, chars
            batch, chars = [], 0
    if batch:
        yield batch, chars


def tokenize_documents(tok: "SpdfTokenizer", texts: list[str], verbose: bool = True,
                       desc: str = "tokenizing") -> np.ndarray:
    """Encode documents into one stream, each followed by EOS, with a progress bar."""
    from tqdm import tqdm

    dtype = token_dtype(tok.vocab_size)
    eos = tok.eos_id
    chunks: list[np.ndarray] = []
    total = sum(map(len, texts))
    with tqdm(total=total, unit="char", unit_scale=True, desc=desc, disable=not verbose, mininterval=2.0) as bar:
        for docs, chars in _document_batches(texts, ENCODE_BATCH_CHARS):
            pieces, last_piece = [], []
            for text in docs:
                doc_pieces = split_for_encoding(text)
                pieces += doc_pieces
                last_piece += [False] * (len(doc_pieces) - 1) + [True]
            stream: list[int] = []
            for ids, is_last in zip(tok.encode_batch(pieces), last_piece):
                stream.extend(ids)
                if is_last:
                    stream.append(eos)
            chunks.append(np.asarray(stream, dtype=dtype))
            bar.update(chars)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


def pretraining_tokens_path(tok: "SpdfTokenizer", split: str, limit_docs: int | None = None) -> Path:
    """Where :func:`pretraining_tokens` caches its stream (``tokens.npy`` with ``meta.json``)."""
    settings = {"split": split, "limit_docs": limit_docs, "tokenizer": tok.fingerprint,
                "format": "documents in load_pretraining order, each followed by EOS"}
    return store.key("pretrain_tokens", settings, pretraining_fingerprint(split)) / "tokens.npy"


_token_memo: dict[Path, np.ndarray] = {}


def _read_token_cache(path: Path) -> np.ndarray | None:
    meta_path = path.parent / "meta.json"
    if not (path.exists() and meta_path.exists()) or store.force_recompute(path):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if store.sha256_file(path) != meta["sha256"]:
            return None  # corrupted: recompute
        tokens = np.load(path, allow_pickle=False)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return tokens if len(tokens) == meta.get("tokens") else None


def pretraining_tokens(tok: "SpdfTokenizer", split: str, limit_docs: int | None = None,
                       verbose: bool = True) -> np.ndarray:
    """The tokenized pre-training split as one read-only uint16 stream (documents joined by EOS).

    Cached as ``.npy`` keyed by the tokenizer and data fingerprints, the split and ``limit_docs``;
    written atomically with a checksum, so an interrupted run leaves no half-written cache behind.
    Explained in chapter 03.
    """
    import io

    _check_pretrain_split(split)
    path = pretraining_tokens_path(tok, split, limit_docs)
    if path in _token_memo and path.exists():
        return _token_memo[path]
    tokens = _read_token_cache(path)
    if tokens is None:
        start = time.perf_counter()
        corpus = load_pretraining(split, limit_docs)
        loaded = time.perf_counter()
        tokens = tokenize_documents(tok, column(corpus, "text"), verbose=verbose, desc=f"tokenizing {split}")
        buffer = io.BytesIO()
        np.save(buffer, tokens, allow_pickle=False)
        payload = buffer.getvalue()
        store.atomic_write_bytes(path, payload)
        # meta.json is written last and holds the checksum: a cache without it is not trusted.
        store.atomic_write_json(path.parent / "meta.json", {
            "split": split, "limit_docs": limit_docs, "tokenizer": tok.fingerprint,
            "data_fingerprint": pretraining_fingerprint(split), "tokens": int(len(tokens)),
            "documents": corpus.num_rows, "characters": pretraining_summary(split, limit_docs)["characters"],
            "dtype": str(tokens.dtype), "sha256": hashlib.sha256(payload).hexdigest(),
            "load_seconds": round(loaded - start, 2), "tokenize_seconds": round(time.perf_counter() - loaded, 2)})
        if verbose:
            print(f"{split}: {len(tokens):,} tokens from {corpus.num_rows:,} documents, cached in {path.parent}")
    tokens.flags.writeable = False
    _token_memo[path] = tokens
    return tokens


def pretraining_tokens_meta(tok: "SpdfTokenizer", split: str, limit_docs: int | None = None) -> dict:
    """The ``meta.json`` of a cached stream (tokens, documents, characters, timings)."""
    pretraining_tokens(tok, split, limit_docs, verbose=False)
    return json.loads((pretraining_tokens_path(tok, split, limit_docs).parent / "meta.json").read_text())


@functools.lru_cache(maxsize=8)
def _window_order(n_windows: int, seed: int, pass_index: int) -> np.ndarray:
    return np.random.default_rng([seed, pass_index]).permutation(n_windows)


def n_windows(tokens: np.ndarray, seq_len: int) -> int:
    """Non-overlapping windows of ``seq_len + 1`` tokens in the stream (one training sequence each)."""
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    return len(tokens) // (seq_len + 1)


def packed_batch(tokens: np.ndarray, step: int, batch_size: int, seq_len: int,
                 seed: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Batch ``step`` of packed pre-training sequences: ``(x, y)`` LongTensors of shape (B, T).

    The stream is cut into non-overlapping windows of ``seq_len + 1`` tokens; pass ``p`` over the
    corpus visits them in the order of a permutation seeded by ``(seed, p)``; sequence ``i`` of the
    run is ``step * batch_size + i`` in the concatenation of passes. So a batch depends only on
    ``(step, seed)``: a resumed run sees exactly the batches it would have seen. Explained in chapter 03.
    """
    import torch

    if step < 0 or batch_size <= 0:
        raise ValueError(f"step must be >= 0 and batch_size > 0, got step={step}, batch_size={batch_size}")
    windows = n_windows(tokens, seq_len)
    if windows == 0:
        raise ValueError(f"a stream of {len(tokens)} tokens holds no window of seq_len + 1 = {seq_len + 1}")
    sample = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    passes, positions = np.divmod(sample, windows)
    starts = np.empty(batch_size, dtype=np.int64)
    for p in np.unique(passes):
        chosen = passes == p
        starts[chosen] = _window_order(windows, seed, int(p))[positions[chosen]] * (seq_len + 1)
    rows = np.asarray(tokens)[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    batch = torch.from_numpy(rows)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()


def passes_for(n_tokens_needed: int, tokens: np.ndarray, seq_len: int | None = None) -> float:
    """How many passes over the stream a budget of ``n_tokens_needed`` training tokens takes.

    With ``seq_len`` the count uses what :func:`packed_batch` can serve per pass (whole windows, each
    yielding ``seq_len`` predicted tokens); without it, the raw stream length.
    """
    per_pass = len(tokens) if seq_len is None else n_windows(tokens, seq_len) * seq_len
    if per_pass == 0:
        raise ValueError("the token stream is too short to serve a single sequence")
    return n_tokens_needed / per_pass


__all__ = [
    "TASKS", "SPLITS", "PRETRAIN_CORPORA", "SEP_TOKEN", "EOS_TOKEN", "PAD_TOKEN", "DataNotFoundError",
    "data_root", "data_path", "data_fingerprint", "task_files", "task_fingerprint", "pretraining_files",
    "pretraining_fingerprint", "linearize_triples", "load_task", "as_pairs", "data_quality", "split_statistics",
    "dart_dev_partition", "strip_gutenberg", "load_pretraining", "pretraining_summary", "corpus_sources",
    "column", "format_example", "FinetuneExample", "truncation_lengths", "encode_finetune", "encode_prompt",
    "collate_finetune", "batch_order", "finetune_batches", "split_for_encoding", "tokenize_documents",
    "pretraining_tokens", "pretraining_tokens_meta", "packed_batch", "passes_for", "n_windows",
]
