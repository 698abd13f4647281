"""The chapter runner: execute ``notebooks/NN_*.py`` with papermill into a book folder, then render the HTML.

The Makefile calls its command line; chapter 00 and the README explain how to re-run the book::

    python -m spdf_lib.book build  [--profile smoke|cpu|gpu] [--chapter NN | --from NN]
    python -m spdf_lib.book run    [--profile P] [--chapter NN | --from NN] [--book-dir book] [--tables-dir tables]
    python -m spdf_lib.book render [--book-dir book] [--output .] [--partial]
    python -m spdf_lib.book status [--book-dir book]

``build`` is what ``make book`` runs. Without a profile (and without FORCE=1) it only renders the
published book, the committed notebooks of ``book/``, into ``_build/html/``. With ``--profile gpu``
(the published profile) it re-executes the chapters into ``book/`` itself. With another profile it
executes them into ``_build/<profile>/book/`` and renders ``_build/<profile>/html/``, so a reader's
re-run never rewrites the committed book.

``run`` executes the chapters in numeric order. Before the first one it checks FORCE, the profile,
the chapters asked for, the data folder and every folder the build writes (book, tables, cache,
work folder: missing rights, a full disk, a file where a folder should be), and takes a lock on the
book, tables and cache folders, so that a second build stops at once with a message instead of
computing the same runs twice. Each chapter is a jupytext percent ``.py`` file; it is executed in a
scratch folder and moved into the book folder only when every cell succeeded, so a failed chapter
never replaces the notebook that was there before. The first failing chapter stops the run with a
paragraph that names the chapter, the failing cell and the error (a kernel that died is reported as
such, with the signal, a memory kill when the system recorded one, and the cell it was running).
Ctrl-C or SIGTERM stop the run with one short message: what was kept, what was not, and the command
that resumes. Every chapter's profile, wall time, status and the runs it computed or reused (from
the ledger ``SPDF_RUN_LEDGER`` that the scheduler appends to) are recorded in ``_status.json``, from
which ``status.md`` (the execution-status page) is generated. Each executed notebook gets a line to
download it and its ``.py`` source, and a closing note on where its numbers were computed
(``spdf_lib.env.provenance``); absolute paths of the executing machine are removed from it.
``render`` builds the HTML with Jupyter Book 1 and fails on any Sphinx warning.

The package has one module per step, each importing only modules listed before it (no import cycle):

* :mod:`~spdf_lib.book.errors`: :class:`BookError` and the two errors a running build raises
  (:class:`ChapterFailed`, :class:`BuildInterrupted`), and the helpers their messages use;
* :mod:`~spdf_lib.book.paths`: where the chapter sources, the published book, its configuration and
  table of contents, the scratch folder and the status files are;
* :mod:`~spdf_lib.book.chapters`: the chapters found in ``notebooks/`` and those a build was asked for;
* :mod:`~spdf_lib.book.ledger`: the runs a chapter's scheduler calls computed or reused
  (``SPDF_RUN_LEDGER``);
* :mod:`~spdf_lib.book.status`: ``_status.json`` and the execution-status page generated from it;
* :mod:`~spdf_lib.book.checks`: everything checked before the first chapter (profile, FORCE, data
  folder, output folders, a chapter's parameters cell);
* :mod:`~spdf_lib.book.notebooks`: an executed notebook finished for the book (paths of the machine
  removed, download line, provenance note);
* :mod:`~spdf_lib.book.failures`: the paragraph a failing chapter or a dead kernel prints;
* :mod:`~spdf_lib.book.interrupts`: Ctrl-C and SIGTERM, and the message that says how to resume;
* :mod:`~spdf_lib.book.engine`: one chapter executed with papermill, its kernel tracked and ended;
* :mod:`~spdf_lib.book.runner`: the selected chapters executed in order (:func:`run`);
* :mod:`~spdf_lib.book.rendering`: the HTML built with Jupyter Book (:func:`render`);
* :mod:`~spdf_lib.book.make`: what ``make book`` does (:func:`plan_build`, :func:`build`);
* :mod:`~spdf_lib.book.cli`: the command line (:func:`main`), run by ``python -m spdf_lib.book``.

Everything a chapter, a test or the command line needs is importable from ``spdf_lib.book`` itself:
``from spdf_lib.book import discover_chapters``.
"""

from __future__ import annotations

from .chapters import Chapter, chapter_title, discover_chapters, select_chapters
from .checks import (MIN_FREE_MB, check_data_dir, check_force, check_writable, has_parameters_cell, output_folders,
                     preflight, resolve_profile)
from .cli import main
from .engine import KERNELSPEC, execute_chapter
from .errors import BookError, BuildInterrupted, ChapterFailed
from .failures import dead_kernel_paragraph, failure_paragraph
from .interrupts import interruption_message
from .ledger import LEDGER_ENV, ledger_results, read_ledger, summarize_ledger
from .make import BuildPlan, build, plan_build, prepare_book_dir
from .notebooks import ABSOLUTE_PATH, ADDED_CELL, finalize_notebook, machine_paths, scrub_text, shows_provenance
from .paths import (CONFIG_PATH, NOTEBOOKS_DIR, PUBLISHED_BOOK, PUBLISHED_PROFILE, REPO_ROOT, STATUS_JSON,
                    STATUS_PAGE, TOC_PATH, WORK_DIR)
from .rendering import (check_renderable, filtered_toc, jupyter_book_executable, render, toc_files,
                        write_partial_toc)
from .rendering import _toc_pages  # noqa: F401 - not public, but the tests read it as book._toc_pages
from .runner import run
from .status import ChapterRun, load_status, record_run, status_markdown, write_status_page

__all__ = [
    # paths
    "REPO_ROOT", "NOTEBOOKS_DIR", "PUBLISHED_BOOK", "CONFIG_PATH", "TOC_PATH", "WORK_DIR", "STATUS_JSON",
    "STATUS_PAGE", "PUBLISHED_PROFILE",
    # errors
    "BookError", "ChapterFailed", "BuildInterrupted",
    # chapters
    "Chapter", "chapter_title", "discover_chapters", "select_chapters",
    # checks
    "MIN_FREE_MB", "resolve_profile", "check_force", "check_data_dir", "check_writable", "output_folders",
    "preflight", "has_parameters_cell",
    # ledger
    "LEDGER_ENV", "read_ledger", "summarize_ledger", "ledger_results",
    # status
    "ChapterRun", "load_status", "record_run", "status_markdown", "write_status_page",
    # notebooks
    "ADDED_CELL", "machine_paths", "ABSOLUTE_PATH", "scrub_text", "finalize_notebook", "shows_provenance",
    # failures
    "failure_paragraph", "dead_kernel_paragraph",
    # interrupts
    "interruption_message",
    # engine
    "KERNELSPEC", "execute_chapter",
    # runner
    "run",
    # rendering
    "toc_files", "filtered_toc", "write_partial_toc", "check_renderable", "jupyter_book_executable", "render",
    # make
    "prepare_book_dir", "BuildPlan", "plan_build", "build",
    # cli
    "main",
]
