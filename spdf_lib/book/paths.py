"""Where the book's files are: the chapter sources, the published book with its configuration and table
of contents, the scratch folder of a build, the two status files a build writes in a book folder, and the profile whose
executed notebooks are the published book."""

from __future__ import annotations

from ..store import REPO_ROOT

__all__ = ["REPO_ROOT", "NOTEBOOKS_DIR", "PUBLISHED_BOOK", "CONFIG_PATH", "TOC_PATH", "WORK_DIR",
           "STATUS_JSON", "STATUS_PAGE", "PUBLISHED_PROFILE"]


NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PUBLISHED_BOOK = REPO_ROOT / "book"
CONFIG_PATH = REPO_ROOT / "_config.yml"
TOC_PATH = REPO_ROOT / "_toc.yml"
WORK_DIR = REPO_ROOT / "_build" / "run"
STATUS_JSON = "_status.json"
STATUS_PAGE = "status.md"
# The profile whose executed notebooks are committed in book/ (the published book).
PUBLISHED_PROFILE = "gpu"
