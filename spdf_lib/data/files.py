"""Where the data lives, which files each task and corpus reads, and their fingerprints (chapter 03).

:func:`data_root` picks the data directory (``$SPDF_DATA``, else ``<repo>/data``, else
``<repo>/../shared/data``); :func:`data_path` resolves a file under it or raises a
:class:`DataNotFoundError` that says how to get the data. :func:`task_files` and
:func:`pretraining_files` list what each loader reads, and :func:`data_fingerprint` hashes those
files: every cache derived from data has the fingerprint in its key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import store

TASKS = ("e2e", "webnlg", "dart", "summarization")
SPLITS = ("train", "validation", "test")
PRETRAIN_SPLITS = ("train", "validation")
PRETRAIN_CORPORA = ("wikipedia_en", "gutenberg", "blog_authorship")

# The files of each task and corpus, relative to the data root.
PRETRAIN_FILES = {"train": "train.jsonl.xz", "validation": "valid.jsonl.xz"}
E2E_FILES = {"train": "e2e/trainset.csv", "validation": "e2e/devset.csv", "test": "e2e/testset_w_refs.csv"}
E2E_TEST_INPUTS = "e2e/testset.csv"
WEBNLG_TEST = "webnlg2017/test/testdata_with_lex.xml"
DART_DEV = "dart/dart-v1.1.1-full-dev.xml"
DART_TEST = "dart/dart-v1.1.1-full-test.xml"
BBC_FILES = {"train": "summarization/bbc_news_summary/train.jsonl",
             "validation": "summarization/bbc_news_summary/valid.jsonl",
             "test": "summarization/bbc_news_summary/test.jsonl"}

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
    check_task(name)
    if name == "e2e":
        return (*E2E_FILES.values(), E2E_TEST_INPUTS)
    if name == "webnlg":
        return ("webnlg2017/train", "webnlg2017/dev", WEBNLG_TEST)
    if name == "dart":
        return (DART_DEV, DART_TEST)
    return tuple(BBC_FILES.values())


def task_fingerprint(name: str) -> str:
    """:func:`data_fingerprint` of a task's files."""
    return data_fingerprint(*task_files(name))


def pretraining_files(split: str) -> tuple[str, ...]:
    """The three corpus files of a pre-training split, relative to the data root."""
    check_pretrain_split(split)
    return tuple(f"pretrain/{corpus}/{PRETRAIN_FILES[split]}" for corpus in PRETRAIN_CORPORA)


def pretraining_fingerprint(split: str) -> str:
    """:func:`data_fingerprint` of a pre-training split's files (cheap after the first call)."""
    return data_fingerprint(*pretraining_files(split))


def check_task(name: str) -> None:
    """A ValueError naming the known tasks when ``name`` is not one of them."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


def check_split(split: str) -> None:
    """A ValueError naming the known splits when ``split`` is not one of them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def check_pretrain_split(split: str) -> None:
    """A ValueError naming the pre-training splits when ``split`` is not one of them."""
    if split not in PRETRAIN_SPLITS:
        raise ValueError(f"unknown pre-training split {split!r}; choose one of {', '.join(PRETRAIN_SPLITS)}")



__all__ = [
    "TASKS", "SPLITS", "PRETRAIN_SPLITS", "PRETRAIN_CORPORA", "PRETRAIN_FILES", "E2E_FILES", "E2E_TEST_INPUTS",
    "WEBNLG_TEST", "DART_DEV", "DART_TEST", "BBC_FILES", "HOW_TO_GET_DATA", "DataNotFoundError", "data_root",
    "data_path", "data_fingerprint", "task_files", "task_fingerprint", "pretraining_files", "pretraining_fingerprint",
    "check_task", "check_split", "check_pretrain_split",
]
