"""The pre-training mixture: English Wikipedia, Project Gutenberg books and blog posts (chapter 03).

Our stand-in for the Pile. :func:`load_pretraining` reads the three corpora of a split, removes the
Project Gutenberg licence header and footer from every book (:func:`strip_gutenberg`) and interleaves
the documents in proportion to their characters, so that every prefix of the stream mixes the three
corpora. :func:`pretraining_summary` counts documents and characters per corpus.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .files import PRETRAIN_CORPORA, check_pretrain_split, data_path, pretraining_fingerprint, pretraining_files
from .readers import check_strings, column, import_datasets, load_jsonl, read_jsonl_head

if TYPE_CHECKING:  # pragma: no cover
    import datasets


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
    datasets = import_datasets()

    texts_per_corpus, summary = [], {"split": split, "limit_docs": limit_docs, "corpora": {}}
    for corpus, relative in zip(PRETRAIN_CORPORA, pretraining_files(split)):
        if limit_docs is None:
            texts = column(load_jsonl(relative, ("text",)), "text")
        else:
            texts = column(read_jsonl_head(relative, limit_docs, ("text",)), "text")
        if not texts:
            raise ValueError(f"{data_path(relative)}: empty corpus file (no documents)")
        check_strings(data_path(relative), "text", texts)
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
    check_pretrain_split(split)
    if limit_docs is not None and limit_docs <= 0:
        raise ValueError(f"limit_docs must be positive or None, got {limit_docs}")
    return _pretraining_cached(split, limit_docs, pretraining_fingerprint(split))[0]


def pretraining_summary(split: str, limit_docs: int | None = None) -> dict:
    """Documents and characters per corpus, and how many Gutenberg headers/footers were removed."""
    check_pretrain_split(split)
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



__all__ = ["GutenbergStrip", "strip_gutenberg", "load_pretraining", "pretraining_summary", "corpus_sources"]
