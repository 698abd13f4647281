"""An executed notebook made ready for the book (:func:`finalize_notebook`).

papermill's parameter cell is hidden and given a relative ``tables_dir``; every absolute path of the
executing machine is removed from cells, outputs and metadata (:func:`machine_paths`,
:func:`scrub_text`); a line to download the notebook and its ``.py`` source follows the title; and,
unless the chapter showed its own (:func:`shows_provenance`), a closing note says where the numbers were
computed. Cells added here carry the metadata key :data:`ADDED_CELL`, so a re-run replaces them."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .chapters import Chapter
from .ledger import ledger_results
from .paths import REPO_ROOT

__all__ = ["ADDED_CELL", "machine_paths", "ABSOLUTE_PATH", "scrub_text", "finalize_notebook",
           "shows_provenance"]


# Cells the runner adds to an executed notebook carry this metadata key (so a re-run replaces them).
ADDED_CELL = "spdf_added"


def machine_paths(*, tables_dir: Path | None = None, book_dir: Path | None = None,
                  work_dir: Path | None = None) -> list[tuple[str, str]]:
    """(absolute path of this machine, what a committed notebook says instead), longest first:
    paths inside the repository become relative to it, the others a name in angle brackets."""
    from .. import store

    named: list[tuple[Path | None, str]] = [(tables_dir, "<tables>"), (book_dir, "<book>"), (work_dir, "<work>"),
                                           (store.cache_root(create=False), "<cache>")]
    try:
        from .. import data

        named.append((Path(data.data_root(verbose=False)), "<data>"))
    except Exception:  # noqa: BLE001 - no data folder: nothing of it to hide
        pass
    named += [(Path(sys.prefix), "<python>"), (Path(sys.base_prefix), "<python>"), (Path(tempfile.gettempdir()), "<tmp>"),
              (Path.home(), "~")]
    repo = str(REPO_ROOT)
    pairs: dict[str, str] = {}
    for path, name in named:
        if path is None:
            continue
        for variant in {str(Path(path).absolute()), str(Path(path).resolve())}:
            if variant in ("/", "") or variant in pairs:
                continue
            if variant == repo or variant.startswith(repo + os.sep):
                continue  # covered by the repository rule below
            pairs[variant] = name
    for variant in {repo, str(Path(repo).resolve())}:
        pairs[variant + os.sep] = ""
        pairs[variant] = "."
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


# Any absolute path left under a usual top-level folder of a machine (after machine_paths).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/\\-])/(?:home|root|Users|tmp|var|private|mnt|media|work|opt|srv|usr|scratch|"
                           r"data|nfs|gpfs|lustre|workspace|content)(?:/[^\s'\"<>)\]]*)?(?=[\s'\"<>)\],:]|$)")


def scrub_text(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """``text`` with every absolute path of ``pairs`` replaced, then any other absolute path under a
    usual top-level folder replaced by ``<path>``."""
    for old, new in pairs:
        if old in text:
            text = text.replace(old, new)
    return ABSOLUTE_PATH.sub("<path>", text)


def _scrub(obj, pairs):
    if isinstance(obj, str):
        return scrub_text(obj, pairs)
    if isinstance(obj, list):
        return [_scrub(v, pairs) for v in obj]
    if isinstance(obj, dict):
        # image data is base64, never a path (and could contain "/tmp/" by chance)
        return {k: (v if str(k).startswith("image/") else _scrub(v, pairs)) for k, v in obj.items()}
    return obj


def _tables_parameter(tables_dir: Path | None, chapter: Chapter) -> str:
    """``tables_dir`` as the chapter would be given it from its own folder: relative inside the
    repository (``../tables``), ``<tables>`` elsewhere."""
    if tables_dir is None:
        return "../tables"
    absolute = Path(tables_dir).resolve()
    try:
        absolute.relative_to(REPO_ROOT)
    except ValueError:
        return "<tables>"
    return Path(os.path.relpath(absolute, chapter.path.parent.resolve())).as_posix()


def _downloads_cell(chapter: Chapter, book_dir: Path):
    """The line under the title offering the notebook and its source. The source is linked where it
    is (``../notebooks/NN_name.py`` from ``book/``) when both lie in the repository; a book folder
    elsewhere gets a copy in its ``_sources_py/`` folder, so no path of the machine is written."""
    import nbformat

    book_dir = Path(book_dir).resolve()
    if chapter.path.resolve().is_relative_to(REPO_ROOT) and book_dir.is_relative_to(REPO_ROOT):
        source = Path(os.path.relpath(chapter.path.resolve(), book_dir)).as_posix()
    else:
        from ..store import atomic_write_bytes

        atomic_write_bytes(book_dir / "_sources_py" / chapter.path.name, chapter.path.read_bytes())
        source = f"_sources_py/{chapter.path.name}"
    text = (f"Download this page as the {{download}}`executed notebook <{chapter.stem}.ipynb>` or as its "
            f"{{download}}`source {chapter.path.name} <{source}>` (jupytext percent format: the README says how "
            f"to open it in JupyterLab and run it cell by cell).")
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata[ADDED_CELL] = "downloads"
    return cell


def _provenance_cell(ledger: Sequence[dict], tables_dir: Path | None, profile: str | None):
    import nbformat

    from ..env import provenance

    profile = profile or "unknown"
    grouped = ledger_results(ledger, tables_dir, profile) if tables_dir is not None and ledger else {}
    blocks = []
    order = sorted(grouped, key=lambda p: (p != profile, p))
    for i, name in enumerate(order):
        blocks.append(provenance(grouped[name], tables_dir, name, executed=i == len(order) - 1))
    if not blocks:
        blocks.append(provenance([], tables_dir or "tables", profile))
    cell = nbformat.v4.new_markdown_cell("## About this page\n\n" + "\n".join(blocks).strip())
    cell.metadata[ADDED_CELL] = "provenance"
    return cell


def finalize_notebook(nb, chapter: Chapter, book_dir: Path, *, tables_dir: Path | None = None,
                      profile: str | None = None, ledger: Sequence[dict] = (), work_dir: Path | None = None):
    """Prepare an executed notebook for the book.

    * papermill's injected cell is hidden in the book and says ``tables_dir = "../tables"`` (a path
      relative to the chapter's folder) instead of this machine's absolute path;
    * every absolute path of this machine is removed from the cells, their outputs and the metadata
      (paths inside the repository become relative, the others ``<tables>``, ``<data>``, ``<cache>``,
      ``~`` ...);
    * a line to download the notebook and its ``.py`` source follows the title, and, unless the chapter
      showed its own (``spdf_lib.env.provenance``), a closing "About this page" says where the numbers
      were computed (from the ledger) and where the page was executed.
    """
    import nbformat

    pairs = machine_paths(tables_dir=tables_dir, book_dir=book_dir, work_dir=work_dir)
    relative_tables = _tables_parameter(tables_dir, chapter)
    nb.cells = [c for c in nb.cells if ADDED_CELL not in c.get("metadata", {})]
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags:
            if "remove-cell" not in tags:
                tags.append("remove-cell")
            if tables_dir is not None:
                cell["source"] = re.sub(r"^tables_dir = .*$", lambda _: f"tables_dir = {json.dumps(relative_tables)}",
                                        cell["source"], flags=re.M)
        cell["source"] = scrub_text(cell.get("source", ""), pairs)
        if "outputs" in cell:
            cell["outputs"] = nbformat.from_dict(_scrub(cell["outputs"], pairs))
        cell["metadata"] = nbformat.from_dict(_scrub(cell["metadata"], pairs))
    meta = nb.metadata.get("papermill", {})
    if meta:
        meta["input_path"] = f"notebooks/{chapter.path.name}"
        meta["output_path"] = f"book/{chapter.stem}.ipynb"
        if tables_dir is not None and "tables_dir" in meta.get("parameters", {}):
            meta["parameters"]["tables_dir"] = relative_tables
    nb.metadata = nbformat.from_dict(_scrub(dict(nb.metadata), pairs))
    title_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(title_at + 1, _downloads_cell(chapter, book_dir))
    if not shows_provenance(nb):
        nb.cells.append(_provenance_cell(ledger, tables_dir, profile))
    return nb


def shows_provenance(nb) -> bool:
    """True when a cell output of ``nb`` already says where its numbers come from
    (``spdf_lib.env.provenance`` displayed by the chapter)."""
    from ..env import PROVENANCE_MARKER

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
            if any(PROVENANCE_MARKER in ("".join(t) if isinstance(t, list) else str(t)) for t in texts):
                return True
    return False
