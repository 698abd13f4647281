"""The chapters: the ``notebooks/NN_name.py`` files in numeric order (:func:`discover_chapters`), their
titles, and the chapters a build was asked for (:func:`select_chapters`: all, one, or one and every later
one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import BookError
from .paths import NOTEBOOKS_DIR

__all__ = ["Chapter", "chapter_title", "discover_chapters", "select_chapters"]


_CHAPTER_FILE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.py$")
# In a jupytext percent file the chapter title is the first markdown heading: "# # 03 Data".
_TITLE_LINE = re.compile(r"^# # (.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Chapter:
    """One chapter source, ``notebooks/NN_name.py`` (explained in chapter 00)."""

    number: str
    path: Path
    title: str

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def short_title(self) -> str:
        """The title without its leading chapter number."""
        return _without_number(self.title)


def _without_number(title: str) -> str:
    head, _, rest = title.partition(" ")
    return rest if head.isdigit() and rest else title


def chapter_title(path: Path) -> str:
    """The first markdown heading of a percent-format chapter, e.g. ``00 About this book``."""
    match = _TITLE_LINE.search(path.read_text(encoding="utf-8"))
    return match.group(1) if match else path.stem


def discover_chapters(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Chapter]:
    """All ``NN_name.py`` chapters of ``notebooks_dir`` in numeric order."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise BookError(f"the chapter folder {notebooks_dir} does not exist. Run the command from the "
                        f"repository root (the folder that holds the Makefile).")
    chapters = [Chapter(number=m.group(1), path=p, title=chapter_title(p))
                for p in sorted(notebooks_dir.iterdir()) if (m := _CHAPTER_FILE.match(p.name))]
    seen: dict[str, Path] = {}
    for chapter in chapters:
        if chapter.number in seen:
            raise BookError(f"two chapters share the number {chapter.number}: {seen[chapter.number].name} and "
                            f"{chapter.path.name}. Renumber one of them.")
        seen[chapter.number] = chapter.path
    if not chapters:
        raise BookError(f"no chapters (files named NN_name.py) found in {notebooks_dir}.")
    return chapters


def _find_chapter(chapters: Sequence[Chapter], wanted: str, variable: str) -> Chapter:
    key = str(wanted).strip()
    if key.isdigit():
        key = key.zfill(2)
    picked = [c for c in chapters if key in (c.number, c.stem, c.path.name)]
    if not picked:
        listing = ", ".join(f"{c.number} ({c.stem})" for c in chapters)
        raise BookError(f"unknown chapter {wanted!r}. The chapters are: {listing}. "
                        f"Pass one of these numbers, e.g. make book {variable}={chapters[0].number}.")
    return picked[0]


def select_chapters(chapters: Sequence[Chapter], wanted: str | None, start: str | None = None) -> list[Chapter]:
    """All chapters, or the one named by ``wanted`` (``3``, ``03`` or ``03_data``), or those from
    ``start`` on (the resume point printed after an interruption)."""
    wanted = None if wanted is None or not str(wanted).strip() else wanted
    start = None if start is None or not str(start).strip() else start
    if wanted is not None and start is not None:
        raise BookError(f"CHAPTER={wanted} and FROM={start} were both given: CHAPTER runs one chapter, FROM runs "
                        f"a chapter and every later one. Give one of them.")
    if wanted is not None:
        return [_find_chapter(chapters, wanted, "CHAPTER")]
    if start is not None:
        first = _find_chapter(chapters, start, "FROM")
        return [c for c in chapters if c.number >= first.number]
    return list(chapters)
