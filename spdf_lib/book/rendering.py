"""Rendering the HTML with Jupyter Book 1 (:func:`render`; any Sphinx warning fails it).

The pages of the table of contents (:func:`toc_files`), a table of contents restricted to the pages a
partial build executed (:func:`filtered_toc`, :func:`write_partial_toc`), and the check that refuses a
book with a missing page or a chapter whose last execution failed (:func:`check_renderable`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import BookError, _clean, _display_path
from .paths import CONFIG_PATH, PUBLISHED_BOOK, REPO_ROOT, TOC_PATH
from .status import load_status

__all__ = ["toc_files", "filtered_toc", "write_partial_toc", "check_renderable", "jupyter_book_executable",
           "render"]


_TOC_CHILDREN = ("parts", "chapters", "sections")


def _toc_pages(toc) -> list[str]:
    """The ``file`` entries of a table of contents, in order (the root not included)."""
    pages = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                pages.append(node["file"])
            for key in _TOC_CHILDREN:
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return pages


def toc_files(toc_path: Path = TOC_PATH) -> list[str]:
    """Every page of the table of contents (paths relative to book/, no extension), in order."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    root = toc.get("root") if isinstance(toc, dict) else None
    return ([root] if isinstance(root, str) else []) + _toc_pages(toc)


def filtered_toc(toc: dict, keep) -> dict:
    """The table of contents with only the pages for which ``keep(page)`` is true (a dropped page
    takes its sections with it; a part left without chapters goes too). When the root page is
    dropped, the first page kept becomes the root: a book restricted to chapter 03 opens on it."""

    def walk(node, drop_also=None):
        if isinstance(node, list):
            out = []
            for child in node:
                if isinstance(child, dict) and drop_also is not None and child.get("file") == drop_also:
                    out += walk(child.get("sections") or [], drop_also)  # the new root's sections move up
                    continue
                walked = walk(child, drop_also)
                if walked is not None:
                    out.append(walked)
            return out
        if isinstance(node, dict):
            if "file" in node and not keep(node["file"]):
                return None
            walked = {k: walk(v, drop_also) if k in _TOC_CHILDREN else v for k, v in node.items()}
            for key in _TOC_CHILDREN:
                if key in walked and not walked[key]:
                    del walked[key]
            if "file" not in node and "root" not in node and not any(k in walked for k in _TOC_CHILDREN):
                return None  # a part whose chapters were all dropped
            return walked
        return node

    out = walk(toc)
    if "root" in out and not keep(out["root"]):
        pages = _toc_pages(out)
        if not pages:
            raise BookError("no page of the table of contents is present, so there is nothing to render")
        out = walk(dict(out, root=pages[0]), drop_also=pages[0])
    return out


def write_partial_toc(book_dir: Path, toc_path: Path, target: Path) -> Path:
    """A table of contents holding only the pages present in ``book_dir`` (a build of some chapters
    at a profile other than the published one), written to ``target``."""
    import yaml

    from ..store import atomic_write_text

    book_dir = Path(book_dir)
    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    present = lambda page: any((book_dir / f"{page}{ext}").exists() for ext in (".ipynb", ".md"))  # noqa: E731
    atomic_write_text(Path(target), yaml.safe_dump(filtered_toc(toc, present), sort_keys=False))
    return Path(target)


def check_renderable(book_dir: Path, toc_path: Path = TOC_PATH) -> None:
    """Refuse to render a book with a missing page or a chapter whose last execution failed."""
    book_dir = Path(book_dir)
    status = load_status(book_dir)
    problems = []
    for page in toc_files(toc_path):
        sources = [book_dir / f"{page}{ext}" for ext in (".ipynb", ".md")]
        if not any(p.exists() for p in sources):
            problems.append(f"{page} is listed in {_display_path(toc_path)} but {_display_path(book_dir)}/{page}.ipynb "
                            f"does not exist: execute it with make book CHAPTER={page[:2]}")
            continue
        number = page[:2]
        run_ = status["chapters"].get(number)
        if run_ is not None and run_.get("stem") == page and run_.get("status") != "ok":
            problems.append(f"chapter {page} failed in its last execution (profile {run_.get('profile')}): "
                            f"fix it and run make book CHAPTER={number}")
    if problems:
        raise BookError("the book cannot be rendered:\n  " + "\n  ".join(problems))


def jupyter_book_executable() -> str:
    candidate = Path(sys.executable).parent / "jupyter-book"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed in this environment: run make book (it installs it).")
    return found


def render(book_dir: Path = PUBLISHED_BOOK, output_dir: Path = REPO_ROOT, *, config: Path = CONFIG_PATH,
           toc: Path = TOC_PATH, partial: bool = False, out=None) -> Path:
    """Build the HTML of ``book_dir`` into ``output_dir/_build/html``; any Sphinx warning is an error.

    ``partial`` renders only the pages present in ``book_dir`` (a build of some chapters at another
    profile). Returns the HTML folder. ``config`` and ``toc`` are passed as absolute paths because
    Jupyter Book resolves relative ones against ``book_dir``.
    """
    out = out or sys.stdout
    book_dir, output_dir = Path(book_dir).resolve(), Path(output_dir).resolve()
    if partial:
        output_dir.mkdir(parents=True, exist_ok=True)
        toc = write_partial_toc(book_dir, toc, output_dir / "_toc.yml")
    check_renderable(book_dir, toc)
    cmd = [jupyter_book_executable(), "build", str(book_dir), "--config", str(Path(config).resolve()),
           "--toc", str(Path(toc).resolve()), "--path-output", str(output_dir),
           "-W", "-n", "--keep-going", "--all"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    log = _clean(proc.stdout + proc.stderr)
    warnings = [ln for ln in log.splitlines() if re.search(r"\bWARNING\b|\bERROR\b|\berror\b", ln)]
    if proc.returncode != 0:
        shown = warnings[:40] or log.splitlines()[-40:]
        raise BookError("the HTML build failed (a Sphinx warning counts as a failure):\n  " + "\n  ".join(shown)
                        + f"\nWhat to do: fix the pages named above, then run make book again. Full command:\n  "
                        + " ".join(cmd))
    html = output_dir / "_build" / "html"
    print(f"Rendered the HTML in {wall:.1f} s with no warnings: {_display_path(html / 'index.html')}",
          file=out, flush=True)
    return html
