"""The chapter runner: execute ``notebooks/NN_*.py`` with papermill into a book folder, then render the HTML.

The Makefile calls it; chapter 00 and the README explain how to re-run the book::

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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "REPO_ROOT", "NOTEBOOKS_DIR", "PUBLISHED_BOOK", "CONFIG_PATH", "TOC_PATH", "WORK_DIR", "STATUS_JSON",
    "STATUS_PAGE", "PUBLISHED_PROFILE", "MIN_FREE_MB", "LEDGER_ENV", "KERNELSPEC", "ADDED_CELL", "BookError",
    "ChapterFailed", "BuildInterrupted", "Chapter", "ChapterRun", "chapter_title", "discover_chapters",
    "select_chapters", "resolve_profile", "check_force", "check_data_dir", "check_writable", "output_folders",
    "preflight", "has_parameters_cell", "read_ledger", "summarize_ledger", "ledger_results",
    "failure_paragraph", "dead_kernel_paragraph", "execute_chapter", "machine_paths", "ABSOLUTE_PATH",
    "scrub_text", "finalize_notebook", "shows_provenance", "load_status", "record_run", "status_markdown",
    "write_status_page", "interruption_message", "run", "toc_files", "filtered_toc", "write_partial_toc",
    "check_renderable", "jupyter_book_executable", "render", "prepare_book_dir", "BuildPlan", "plan_build",
    "build", "main",
]


REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PUBLISHED_BOOK = REPO_ROOT / "book"
CONFIG_PATH = REPO_ROOT / "_config.yml"
TOC_PATH = REPO_ROOT / "_toc.yml"
WORK_DIR = REPO_ROOT / "_build" / "run"
STATUS_JSON = "_status.json"
STATUS_PAGE = "status.md"
# The profile whose executed notebooks are committed in book/ (the published book).
PUBLISHED_PROFILE = "gpu"
# A build stops before its first chapter when a folder it writes lies on a disk with less free space.
MIN_FREE_MB = 200
LEDGER_ENV = "SPDF_RUN_LEDGER"

_CHAPTER_FILE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.py$")
# In a jupytext percent file the chapter title is the first markdown heading: "# # 03 Data".
_TITLE_LINE = re.compile(r"^# # (.+?)\s*$", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# Cells the runner adds to an executed notebook carry this metadata key (so a re-run replaces them).
ADDED_CELL = "spdf_added"


class BookError(Exception):
    """A problem the reader can fix. The message says what was wrong and what to do."""


class ChapterFailed(BookError):
    """A chapter raised while it was executed; the message is the error paragraph printed by ``run``."""


class BuildInterrupted(BookError):
    """Ctrl-C or SIGTERM stopped the build; the message says what was kept and how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT / SIGTERM handler of :func:`run`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.cell: int | None = None  # the cell of the chapter that was running, 1-based in its .py
        self.partial: Path | None = None  # the partly executed notebook, kept for reading


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


@dataclass(frozen=True)
class ChapterRun:
    """What the status page records about one executed chapter."""

    chapter: str
    stem: str
    title: str
    profile: str
    wall_s: float
    status: str  # "ok", "failed" or "interrupted"
    finished_utc: str
    device: str
    runs: dict = field(default_factory=dict)  # source ("computed", "cached", "committed") -> count
    computed: tuple = ()  # "stage/run_id" of every run this execution computed


# --------------------------------------------------------------------------- chapters and profiles


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


def resolve_profile(name: str | None) -> str:
    """``name`` checked against ``spdf_lib.profiles.PROFILES``; the default profile when empty."""
    from .profiles import PROFILES, default_profile_name

    if name is None or not str(name).strip():
        return default_profile_name()
    name = str(name).strip()
    if name not in PROFILES:
        raise BookError(f"unknown profile {name!r}. The profiles are: {', '.join(PROFILES)}. "
                        f"Pick one, e.g. make book PROFILE=smoke (the quick check), or leave PROFILE unset "
                        f"for the default (gpu when CUDA is available, else cpu).")
    return name


def check_force() -> bool:
    """FORCE as ``store.force_requested()`` reads it, as a BookError for an undocumented value."""
    from . import store

    try:
        return store.force_requested()
    except ValueError as error:
        raise BookError(f"{error} Nothing was run.") from None


# --------------------------------------------------------------------------- checks before the first chapter


def check_data_dir() -> Path:
    """The data folder the chapters read, or a BookError saying how to provide it.

    ``spdf_lib.data`` decides where the data lives (``SPDF_DATA``, ``<repo>/data`` ...). The folder
    must exist, be readable, and hold the pre-training corpora every profile reads.
    """
    from . import data

    advice = ("Point SPDF_DATA at the folder that holds e2e/, webnlg2017/, dart/, summarization/ and pretrain/ "
              "(e.g. make book SPDF_DATA=/path/to/data), or place that folder at <repository>/data.")
    try:
        root = Path(data.data_root(verbose=False))
    except Exception as error:  # noqa: BLE001 - whatever data_root raises, the reader needs the advice
        # data_root's own message lists the paths it tried and how to get the data.
        raise BookError(f"the data directory is missing, so no chapter was run.\n{error}") from None
    if not root.is_dir():
        raise BookError(f"the data directory {root} does not exist, so no chapter was run. {advice}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise BookError(f"the data directory {root} cannot be read (no permission), so no chapter was run. "
                        f"Give yourself read access to it, or {advice[0].lower()}{advice[1:]}")
    corpora = data.PRETRAIN_CORPORA
    absent = [f"pretrain/{c}" for c in corpora if not (root / "pretrain" / c).is_dir()]
    if absent:
        raise BookError(f"the data directory {root} has no {', '.join(absent)} folder(s), which every profile reads, "
                        f"so no chapter was run. {advice}")
    return root


def check_writable(folder: Path, what: str, advice: str | None = None) -> None:
    """A BookError unless files can be written in ``folder`` (or in its nearest existing parent, when
    it does not exist yet): it must be a folder, writable, and on a disk with at least
    ``MIN_FREE_MB`` MB free. Checked before any chapter runs, so a bad output folder writes nothing."""
    import errno

    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if advice is None:
        advice = f"make it writable, or pass another folder (e.g. --{what.replace(' ', '-')} /tmp/spdf-{what.split()[0]})"
    if not existing.is_dir():
        raise BookError(f"the {what} {folder} cannot be created: {existing} is a file, not a folder; {advice}. "
                        f"No chapter was run.")
    try:
        free_mb = shutil.disk_usage(existing).free / 1e6
    except OSError:
        free_mb = None
    if free_mb is not None and free_mb < MIN_FREE_MB:
        raise BookError(f"the disk that holds the {what} {folder} is full: {free_mb:.0f} MB free, and a build needs "
                        f"at least {MIN_FREE_MB} MB. Free some space, or {advice}. No chapter was run.")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BookError(f"the disk that holds the {what} {folder} is full ({error.strerror} in {existing}). "
                            f"Free some space, or {advice}. No chapter was run.") from None
        reason = "read-only file system" if error.errno == errno.EROFS else error.strerror
        raise BookError(f"the {what} {folder} is not writable ({reason} in {existing}); {advice}. "
                        f"No chapter was run.") from None


def output_folders(book_dir: Path, tables_dir: Path, work_dir: Path) -> list[tuple[Path, str, str]]:
    """Every folder a build writes, with its name in messages and the advice for it."""
    from . import store

    return [
        (Path(book_dir), "book dir", "make it writable, or pass another folder with --book-dir"),
        (Path(tables_dir), "tables dir", "make it writable, or pass another folder with --tables-dir"),
        (store.cache_root(create=False), "cache folder",
         "make it writable, or point SPDF_CACHE at another folder (e.g. make book SPDF_CACHE=/tmp/spdf-cache)"),
        (Path(work_dir), "work dir", "make it writable, or pass another folder with --work-dir"),
    ]


def preflight(book_dir: Path, tables_dir: Path, work_dir: Path) -> Path | None:
    """Everything checked before the first chapter: the data folder, then every output folder."""
    root = check_data_dir()
    for folder, what, advice in output_folders(book_dir, tables_dir, work_dir):
        check_writable(folder, what, advice)
    load_status(book_dir)  # a damaged status file is reported now, not after a chapter has run
    return root


def has_parameters_cell(nb) -> bool:
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells)


# --------------------------------------------------------------------------- the ledger of runs


def read_ledger(path: Path | None) -> list[dict]:
    """The ``{"stage", "run_id", "source"}`` lines of a run ledger, one per run (a run resolved twice
    keeps its strongest source: computed, then cached, then committed). A line cut short by a kill
    is skipped."""
    if path is None or not Path(path).exists():
        return []
    rank = {"computed": 0, "cached": 1, "committed": 2}
    best: dict[tuple[str, str], dict] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "run_id" not in entry:
            continue
        key = (str(entry.get("stage", "")), str(entry["run_id"]))
        if key not in best or rank.get(entry.get("source"), 9) < rank.get(best[key].get("source"), 9):
            best[key] = entry
    return list(best.values())


def summarize_ledger(entries: Iterable[dict]) -> tuple[dict, tuple]:
    """(count per source, sorted "stage/run_id" of the computed runs)."""
    counts: dict[str, int] = {}
    computed = []
    for entry in entries:
        source = str(entry.get("source", "unknown"))
        counts[source] = counts.get(source, 0) + 1
        if source == "computed":
            computed.append(f"{entry.get('stage', '')}/{entry['run_id']}")
    return dict(sorted(counts.items())), tuple(sorted(computed))


def ledger_results(entries: Iterable[dict], tables_dir: Path, profile: str) -> dict[str, list[dict]]:
    """The exported result of each ledger entry, grouped by the profile whose ``tables/<profile>/runs``
    holds it (the chapter's profile first; a result of another profile, such as the published ``gpu``
    tables shown beside a re-run, is found under its own folder)."""
    tables_dir = Path(tables_dir)
    profiles = [profile] + sorted(p.name for p in tables_dir.iterdir()
                                  if p.is_dir() and p.name != profile and (p / "runs").is_dir()) \
        if tables_dir.is_dir() else [profile]
    grouped: dict[str, list[dict]] = {}
    for entry in entries:
        candidates = [entry["profile"]] if entry.get("profile") else profiles
        for name in candidates:
            path = tables_dir / name / "runs" / str(entry.get("stage", "")) / f"{entry['run_id']}.json"
            if path.is_file():
                try:
                    grouped.setdefault(name, []).append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                    pass  # a damaged file is reported by the manifest check, not by the provenance note
                break
    return grouped


# --------------------------------------------------------------------------- executing one chapter


def _clean(text: str) -> str:
    return _ANSI.sub("", text)


def _source_cell_number(nb_source, executed_index: int) -> int:
    """1-based cell number in the ``.py`` file for a cell index of the executed notebook.

    papermill inserts its parameter cell right after the cell tagged ``parameters``.
    """
    params_at = next((i for i, c in enumerate(nb_source.cells)
                      if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    return executed_index + 1 - (1 if executed_index > params_at else 0)


def failure_paragraph(chapter: Chapter, profile: str, *, cell_number: int | None, cell_source: str,
                      ename: str, evalue: str, traceback: Iterable[str], failed_copy: Path | None,
                      book_dir: Path, later: Sequence[str] | None = None, advice: str | None = None) -> str:
    """The error paragraph printed when a chapter raises (what failed, where, and what to do).
    ``later`` are the chapters of this run after the failing one (empty: nothing is said about later
    chapters; None: not known)."""
    rel = _display_path(chapter.path)
    first_line = next((ln for ln in cell_source.splitlines() if ln.strip()), "").strip()
    tb_lines = [ln for ln in _clean("\n".join(traceback)).splitlines() if ln.strip()][-12:]
    where = f"cell {cell_number} of {rel}" if cell_number is not None else rel
    lines = [
        f"ERROR: chapter {chapter.stem} ({rel}) failed at profile {profile!r}.",
        f"  Failing cell: {where}" + (f", which begins: {first_line}" if first_line else ""),
        f"  Error: {ename}: {evalue}",
    ]
    if tb_lines:
        lines.append("  Traceback (last lines):")
        lines += [f"    {ln}" for ln in tb_lines]
    lines.append(f"What to do: {advice or 'fix that cell or the spdf_lib code it calls'}, then re-run only this "
                 f"chapter with\n    make book PROFILE={profile} CHAPTER={chapter.number}")
    if failed_copy is not None:
        lines.append(f"The executed notebook with the full output is {_display_path(failed_copy)}.")
    kept = f"{_display_path(Path(book_dir) / (chapter.stem + '.ipynb'))} was left as it was"
    if later is None:
        kept += ", the later chapters were not run"
    elif later:
        kept += f", the later chapter(s) {', '.join(later)} were not run"
    lines.append(f"{kept}, and no HTML was rendered.")
    return "\n".join(lines)


def _display_path(path: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _oom_kills() -> int | None:
    """The out-of-memory kills recorded for this process's cgroup (Linux cgroup v2), or None."""
    try:
        cgroup = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[-1]
        events = Path("/sys/fs/cgroup") / cgroup.lstrip("/") / "memory.events"
        for line in events.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def dead_kernel_paragraph(chapter: Chapter, profile: str, *, returncode: int | None, oom: bool,
                          cell_number: int | None, cell_source: str, failed_copy: Path | None, book_dir: Path,
                          later: Sequence[str]) -> str:
    """The error paragraph for a kernel that died while executing a chapter."""
    if returncode is not None and returncode < 0:
        how = f"was killed by {_signal_name(-returncode)}"
        if oom:
            how += ", sent by the system's out-of-memory killer (the memory limit of this machine was reached)"
        elif -returncode == signal.SIGKILL:
            how += " (the signal the out-of-memory killer sends; nothing else recorded a memory kill)"
    elif returncode is not None:
        how = f"exited with status {returncode}"
    else:
        how = "stopped responding"
    if oom:
        advice = "free memory (close other programs) or use a smaller profile (PROFILE=smoke)"
    elif returncode == -signal.SIGKILL:
        advice = ("if it ran out of memory, free memory (close other programs) or use a smaller profile "
                  "(PROFILE=smoke); if another program killed it, stop that program")
    else:
        advice = ("look for the cause in the chapter's output (a crash in a compiled library, a kill by another "
                  "program)")
    return failure_paragraph(chapter, profile, cell_number=cell_number, cell_source=cell_source,
                             ename="DeadKernelError", evalue=f"the kernel executing the chapter {how}",
                             traceback=[], failed_copy=failed_copy, book_dir=book_dir, later=later, advice=advice)


_ENGINE_NAME = "spdf_tracked"


def _register_engine():
    """A papermill engine like its default nbclient one, except that its notebook client records the
    kernel process it starts (so that the runner can end it on Ctrl-C and read how it died) and
    starts the kernel in the chapter's folder without changing this process's working folder."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class TrackedClient(PapermillNotebookClient):
        track: dict = {}

        def start_new_kernel(self, **kwargs):
            super().start_new_kernel(**kwargs)
            provisioner = getattr(self.km, "provisioner", None)
            self.track["process"] = getattr(provisioner, "process", None)

        def execute_cell(self, cell, cell_index, *args, **kwargs):
            self.track["cell"] = cell_index  # the last cell started: the one running when the kernel died
            return super().execute_cell(cell, cell_index, *args, **kwargs)

    class TrackedEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, track=None,
                                     kernel_cwd=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log=logger, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file,
                                 resources={"metadata": {"path": kernel_cwd}} if kernel_cwd else {})
            client = TrackedClient(nb_man, **final)
            client.track = track if track is not None else {}
            return client.execute()

    papermill_engines.register(_ENGINE_NAME, TrackedEngine)


def _kernel_process(track: dict):
    """The kernel's Popen object once the notebook client has started it, else None."""
    return track.get("process")


def _stop_kernel(process, grace_s: float = 3.0) -> None:
    """End the kernel this runner started and every process it started (its own session): SIGTERM,
    then SIGKILL after ``grace_s``."""
    if process is None or process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)  # the kernel leads its own session (jupyter_client starts it so)
        except ProcessLookupError:
            return
        except PermissionError:
            process.send_signal(sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.05)


def _keep(running: Path, folder: Path) -> Path | None:
    if not running.exists():
        return None
    target = folder / running.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(running, target)
    return target


def execute_chapter(chapter: Chapter, *, profile: str, book_dir: Path, tables_dir: Path, work_dir: Path,
                    progress_bar: bool = False, log_output: bool = False, later: Sequence[str] | None = None,
                    ledger: Path | None = None) -> float:
    """Execute one chapter into ``book_dir/<stem>.ipynb``; return its wall time in seconds.

    The notebook is executed into ``work_dir`` and moved into ``book_dir`` atomically once every cell
    has succeeded. On failure the executed notebook goes to ``work_dir/failed/`` and ChapterFailed is
    raised with the error paragraph; ``book_dir`` is not touched. ``progress_bar`` streams the chapter's
    stderr (its tqdm bars) to the console; ``log_output`` logs every cell output. ``ledger`` is the
    file the chapter's scheduler calls append their runs to (``SPDF_RUN_LEDGER``).

    The kernel runs while this thread waits for it, so that Ctrl-C or SIGTERM (turned into ``_Stop``
    by :func:`run`) can end the kernel and everything it started, keep the partly executed notebook in
    ``work_dir/interrupted/`` and name the cell that was running.
    """
    import jupytext
    import nbformat
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    from .store import atomic_write_text

    nb = jupytext.read(chapter.path)
    if not has_parameters_cell(nb):
        raise BookError(f"chapter {chapter.path.name} has no cell tagged \"parameters\". Add, after the title, "
                        f"a cell starting with  # %% tags=[\"parameters\", \"remove-cell\"]  that sets "
                        f"profile and tables_dir.")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    _register_engine()

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    running = work_dir / f"{chapter.stem}.ipynb"
    track: dict = {}
    outcome: dict = {}

    def execute() -> None:
        try:
            pm.execute_notebook(nb, str(running), parameters={"profile": profile, "tables_dir": str(tables_dir)},
                                engine_name=_ENGINE_NAME, kernel_name="python3", language="python",
                                kernel_cwd=str(chapter.path.parent), track=track,
                                # Console feedback: the chapter's own stderr, i.e. its tqdm bars of long
                                # steps, is streamed live; papermill's per-cell bar would overwrite them.
                                progress_bar=False, stderr_file=sys.stderr if progress_bar else None,
                                log_output=log_output,
                                # Silences the kernel's own start-up notice about its local TCP transport;
                                # errors raised by chapter code still reach the notebook and this runner.
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error

    previous_ledger = os.environ.get(LEDGER_ENV)
    if ledger is not None:
        Path(ledger).parent.mkdir(parents=True, exist_ok=True)
        Path(ledger).unlink(missing_ok=True)
        os.environ[LEDGER_ENV] = str(ledger)
    import logging

    # The runner reports a failure itself; papermill's logger would add its own line about it.
    papermill_log = logging.getLogger("papermill")
    previous_level = papermill_log.level
    papermill_log.setLevel(logging.INFO if log_output else logging.CRITICAL)
    oom_before = _oom_kills()
    start = time.perf_counter()
    worker = threading.Thread(target=execute, name=f"chapter {chapter.stem}", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.25)
    except _Stop as stop:
        # End the kernel, and again if it was still starting, until the client thread gives up.
        deadline = time.monotonic() + 20
        while True:
            _stop_kernel(_kernel_process(track))
            worker.join(0.5)
            if not worker.is_alive() or time.monotonic() > deadline:
                break
        _stop_kernel(_kernel_process(track))
        index = track.get("cell")
        stop.cell = _source_cell_number(nb, index) if index is not None else None
        stop.partial = _keep(running, work_dir / "interrupted")
        raise
    finally:
        papermill_log.setLevel(previous_level)
        if ledger is not None:
            if previous_ledger is None:
                os.environ.pop(LEDGER_ENV, None)
            else:
                os.environ[LEDGER_ENV] = previous_ledger
    process = _kernel_process(track)
    error = outcome.get("error")
    if error is not None:
        index = track.get("cell")
        failed_copy = _keep(running, work_dir / "failed")
        if isinstance(error, pm.PapermillExecutionError):
            message = failure_paragraph(
                chapter, profile, cell_number=_source_cell_number(nb, error.cell_index),
                cell_source=error.source or "", ename=error.ename, evalue=_clean(str(error.evalue)),
                traceback=error.traceback or [], failed_copy=failed_copy, book_dir=book_dir, later=later)
        elif isinstance(error, DeadKernelError) or (process is not None and process.poll() is not None):
            for _ in range(40):  # the exit status arrives a moment after the client noticed the death
                if process is None or process.poll() is not None:
                    break
                time.sleep(0.05)
            oom_after = _oom_kills()
            number = _source_cell_number(nb, index) if index is not None else None
            message = dead_kernel_paragraph(
                chapter, profile, returncode=process.poll() if process is not None else None,
                oom=oom_before is not None and oom_after is not None and oom_after > oom_before,
                cell_number=number,
                cell_source=nb.cells[number - 1].source if number is not None and 0 < number <= len(nb.cells) else "",
                failed_copy=failed_copy, book_dir=book_dir, later=later)
        else:
            message = failure_paragraph(
                chapter, profile, cell_number=None, cell_source="", ename=type(error).__name__,
                evalue=_clean(str(error)), traceback=[], failed_copy=failed_copy, book_dir=book_dir, later=later)
        raise ChapterFailed(message) from error
    wall = time.perf_counter() - start
    executed = finalize_notebook(nbformat.read(running, as_version=4), chapter, book_dir, tables_dir=tables_dir,
                                 profile=profile, ledger=read_ledger(ledger), work_dir=work_dir)
    atomic_write_text(Path(book_dir) / f"{chapter.stem}.ipynb", nbformat.writes(executed) + "\n")
    running.unlink()
    for old in ("failed", "interrupted"):  # an older failure or interruption is now resolved
        (work_dir / old / running.name).unlink(missing_ok=True)
    return wall


# --------------------------------------------------------------------------- finishing a notebook


def machine_paths(*, tables_dir: Path | None = None, book_dir: Path | None = None,
                  work_dir: Path | None = None) -> list[tuple[str, str]]:
    """(absolute path of this machine, what a committed notebook says instead), longest first:
    paths inside the repository become relative to it, the others a name in angle brackets."""
    from . import store

    named: list[tuple[Path | None, str]] = [(tables_dir, "<tables>"), (book_dir, "<book>"), (work_dir, "<work>"),
                                           (store.cache_root(create=False), "<cache>")]
    try:
        from . import data

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
        from .store import atomic_write_bytes

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

    from .env import provenance

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
    from .env import PROVENANCE_MARKER

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
            if any(PROVENANCE_MARKER in ("".join(t) if isinstance(t, list) else str(t)) for t in texts):
                return True
    return False


# --------------------------------------------------------------------------- execution status page


def load_status(book_dir: Path) -> dict:
    """The recorded runs, ``{"chapters": {"00": {...}, ...}}`` (empty when nothing has run)."""
    path = Path(book_dir) / STATUS_JSON
    if not path.exists():
        return {"chapters": {}}
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BookError(f"{path} is not valid JSON ({error}); delete it and run make book again.") from None
    status.setdefault("chapters", {})
    return status


def record_run(book_dir: Path, run: ChapterRun) -> dict:
    """Update one chapter's row of ``_status.json`` (atomically) and return the whole status."""
    from dataclasses import asdict

    from .store import atomic_write_json

    status = load_status(book_dir)
    row = asdict(run)
    row["computed"] = list(row["computed"])
    status["chapters"][run.chapter] = row
    atomic_write_json(Path(book_dir) / STATUS_JSON, status)
    return status


def _runs_cells(run: dict) -> tuple[str, str]:
    if "runs" not in run:  # a row written before runs were counted
        return "", ""
    counts = run["runs"] or {}
    reused = [f"{counts[s]} {s}" for s in ("committed", "cached") if counts.get(s)]
    return str(counts.get("computed", 0)), ", ".join(reused) or "0"


def status_markdown(status: dict, chapters: Sequence[Chapter]) -> str:
    """The MyST page listing, per chapter, the profile, wall time and status of its last execution,
    and the runs of the experiment grid it computed or reused."""
    rows = []
    total = 0.0
    computed_lists = []
    for chapter in chapters:
        run = status.get("chapters", {}).get(chapter.number)
        if run is None:
            rows.append(f"| {chapter.number} | {chapter.short_title} | | | not run yet | | | | |")
            continue
        total += float(run["wall_s"])
        computed, reused = _runs_cells(run)
        rows.append(f"| {chapter.number} | {_without_number(run['title'])} | {run['profile']} | {float(run['wall_s']):.1f} | "
                    f"{run['status']} | {run['finished_utc']} | {run.get('device', '')} | {computed} | {reused} |")
        if run.get("computed"):
            ids = ", ".join(f"`{r}`" for r in run["computed"])
            computed_lists.append(f"- {chapter.number} {_without_number(run['title'])}: {ids}")
    ran = [c for c in chapters if c.number in status.get("chapters", {})]
    summary = (f"Total wall time of the last executions: {total:.1f} s over {len(ran)} chapter(s)."
               if ran else "No chapter has been executed yet: run `make book`.")
    lines = [
        "# Execution status",
        "",
        "This page is generated by the chapter runner (`spdf_lib/book.py`) every time a chapter is executed.",
        "It shows, for each chapter, the profile it was last executed at, how long that took, whether every",
        "cell succeeded, and the machine that executed it. A chapter re-run on its own (`make book CHAPTER=NN`)",
        "updates its row only, so rows can come from different profiles or machines.",
        "",
        "The machine that executed a chapter is not necessarily the one that computed its results: the last",
        "two columns count the runs of the experiment grid the chapter computed during that execution and those",
        "it reused (committed under `tables/<profile>/runs/` or cached), and the end of each chapter says where",
        "its results were computed.",
        "",
        summary,
        "",
        "| Chapter | Title | Profile | Wall time (s) | Status | Finished (UTC) | Executed on | Runs computed | Runs reused |",
        "|---|---|---|---:|---|---|---|---:|---|",
        *rows,
        "",
    ]
    if computed_lists:
        lines += ["Runs computed during the last execution of each chapter:", "", *computed_lists, ""]
    return "\n".join(lines)


def write_status_page(book_dir: Path, chapters: Sequence[Chapter]) -> Path:
    """(Re)generate ``book_dir/status.md`` from ``book_dir/_status.json`` atomically."""
    from .store import atomic_write_text

    path = Path(book_dir) / STATUS_PAGE
    atomic_write_text(path, status_markdown(load_status(book_dir), chapters))
    return path


# --------------------------------------------------------------------------- run


def _device_label() -> str:
    try:
        from .env import describe_device

        return describe_device()
    except Exception:  # noqa: BLE001 - the status page must not fail because the device query did
        return "unknown"


class _Signals:
    """While active (in the main thread only), SIGINT and SIGTERM raise ``_Stop`` once; a second
    signal during the clean-up that follows is ignored, so the clean-up finishes."""

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        self.stopping = False
        return self

    def _handle(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        raise _Stop(signum)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _resume_command(profile: str, number: str, *, single: bool, custom: list[str], force: bool) -> str:
    variable = "CHAPTER" if single else "FROM"
    prefix = ""
    if force:
        # The recomputation already done is not done twice: the new build keeps the old start time.
        prefix = f"FORCE=1 SPDF_FORCE_BEFORE={os.environ.get('SPDF_FORCE_BEFORE', '')} "
    if custom:
        flag = "--chapter" if single else "--from"
        python = sys.executable
        cwd = os.getcwd() + os.sep
        python = python[len(cwd):] if python.startswith(cwd) else python
        return (f"{prefix}{python} -m spdf_lib.book run --profile {profile} {flag} {number} {' '.join(custom)}")
    return f"{prefix}make book PROFILE={profile} {variable}={number}"


def interruption_message(signum: int, *, chapter: Chapter | None, cell: int | None, partial: Path | None,
                         finished: Sequence[Chapter], later: Sequence[Chapter], book_dir: Path,
                         computed_runs: int, resume: str) -> str:
    """The few lines printed when Ctrl-C or SIGTERM stops a build."""
    from . import store

    what = "Ctrl-C" if signum == signal.SIGINT else _signal_name(signum)
    where = ""
    if chapter is not None:
        where = f" while chapter {chapter.stem} was running" + (f" (cell {cell} of {_display_path(chapter.path)})"
                                                               if cell is not None else "")
    kept = (f"Kept: chapter(s) {', '.join(c.stem for c in finished)} (in {_display_path(book_dir)}/)"
            if finished else "Kept: no chapter finished in this build")
    kept += (f"; {computed_runs} run(s) computed in this build, and every finished run, in the cache "
             f"folder {_display_path(store.cache_root(create=False))} (a run stopped midway resumes from its last checkpoint).")
    not_kept = []
    if chapter is not None:
        not_kept.append(f"{chapter.stem}'s output ({_display_path(book_dir / (chapter.stem + '.ipynb'))} is as it was"
                        + (f"; the partly executed copy is {_display_path(partial)}" if partial else "") + ")")
    if later:
        not_kept.append(f"chapter(s) {', '.join(c.stem for c in later)} not run")
    not_kept.append("no HTML rendered")
    return "\n".join([f"Stopped by {what}{where}.", kept, "Not kept: " + "; ".join(not_kept) + ".",
                      f"To resume: {resume}"])


def run(profile: str | None, chapter: str | None = None, *, book_dir: Path = PUBLISHED_BOOK,
        tables_dir: Path = REPO_ROOT / "tables", notebooks_dir: Path = NOTEBOOKS_DIR,
        work_dir: Path = WORK_DIR, progress_bar: bool | None = None,
        log_output: bool = False, out=None, start: str | None = None,
        resume_args: list[str] | None = None) -> list[ChapterRun]:
    """Execute the selected chapters in order; stop at the first failure (ChapterFailed) or at Ctrl-C
    or SIGTERM (BuildInterrupted). ``start`` runs a chapter and every later one."""
    out = out or sys.stdout
    from . import store

    force = check_force()
    if force and "SPDF_FORCE_BEFORE" not in os.environ:
        os.environ["SPDF_FORCE_BEFORE"] = repr(time.time())  # the chapter kernels inherit the start time
    chapters = discover_chapters(notebooks_dir)
    selected = select_chapters(chapters, chapter, start)
    profile = resolve_profile(profile)
    book_dir, tables_dir, work_dir = Path(book_dir).resolve(), Path(tables_dir).resolve(), Path(work_dir).resolve()
    preflight(book_dir, tables_dir, work_dir)
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    device = _device_label()
    runs: list[ChapterRun] = []
    computed_total = 0
    current: Chapter | None = None
    locks = [(book_dir, "book dir"), (tables_dir, "tables dir"), (store.cache_root(create=False), "cache folder")]
    try:
        with _Signals(), store.build_lock(locks):
            print(f"Executing {len(selected)} chapter(s) at profile {profile!r} into {_display_path(book_dir)}/ "
                  f"(tables in {_display_path(tables_dir)}/{profile}/)", file=out, flush=True)
            total = 0.0
            for i, ch in enumerate(selected, start=1):
                current = ch
                ledger = work_dir / "ledger" / f"{ch.stem}.jsonl"
                later = [c.stem for c in selected[i:]]
                started = time.perf_counter()
                try:
                    wall = execute_chapter(ch, profile=profile, book_dir=book_dir, tables_dir=tables_dir,
                                           work_dir=work_dir, progress_bar=progress_bar, log_output=log_output,
                                           later=later, ledger=ledger)
                except ChapterFailed:
                    wall = time.perf_counter() - started
                    counts, computed = summarize_ledger(read_ledger(ledger))
                    record_run(book_dir, ChapterRun(ch.number, ch.stem, ch.title, profile, round(wall, 2), "failed",
                                                    _now(), device, counts, computed))
                    write_status_page(book_dir, chapters)
                    print(f"[{i}/{len(selected)}] {ch.stem:<28} FAILED after {wall:8.1f} s", file=out, flush=True)
                    raise
                counts, computed = summarize_ledger(read_ledger(ledger))
                computed_total += len(computed)
                run_ = ChapterRun(ch.number, ch.stem, ch.title, profile, round(wall, 2), "ok", _now(), device,
                                  counts, computed)
                record_run(book_dir, run_)
                write_status_page(book_dir, chapters)
                runs.append(run_)
                current = None
                total += wall
                print(f"[{i}/{len(selected)}] {ch.stem:<28} ok     {wall:8.1f} s", file=out, flush=True)
            print(f"All {len(runs)} chapter(s) executed in {total:.1f} s.", file=out, flush=True)
    except store.BuildLockedError as error:
        raise BookError(f"{error} No chapter was run.") from None
    except _Stop as stop:
        if current is not None:
            computed_total += len(summarize_ledger(read_ledger(work_dir / "ledger" / f"{current.stem}.jsonl"))[1])
        done = {r.stem for r in runs}
        later = [c for c in selected if c.stem not in done and c is not current]
        first = current or (later[0] if later else None)
        resume = (_resume_command(profile, first.number, single=chapter is not None and bool(str(chapter).strip()),
                                  custom=resume_args or [], force=force)
                  if first is not None else "nothing left to run")
        message = interruption_message(stop.signum, chapter=current, cell=stop.cell, partial=stop.partial,
                                       finished=[c for c in selected if c.stem in done], later=later,
                                       book_dir=book_dir, computed_runs=computed_total, resume=resume)
        raise BuildInterrupted(message, stop.signum) from None
    return runs


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- render


def toc_files(toc_path: Path = TOC_PATH) -> list[str]:
    """Every page of the table of contents (paths relative to book/, no extension), in order."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    pages: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    pages.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return pages


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

    from .store import atomic_write_text

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


# --------------------------------------------------------------------------- build (make book)


def prepare_book_dir(book_dir: Path, source: Path = PUBLISHED_BOOK) -> Path:
    """Copy the static parts of the published book (hand-written pages, images, vendored MathJax; not
    the executed notebooks nor the status files) into ``book_dir``, where a build at another profile
    executes its chapters. Files already there with the same bytes are left alone."""
    from .store import atomic_write_bytes

    book_dir, source = Path(book_dir), Path(source)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if (not path.is_file() or path.suffix == ".ipynb" or path.name in (STATUS_JSON, STATUS_PAGE)
                or any(part.startswith(".") for part in rel.parts)):
            continue
        target = book_dir / rel
        if target.exists() and target.stat().st_size == path.stat().st_size and target.read_bytes() == path.read_bytes():
            continue
        atomic_write_bytes(target, path.read_bytes())
    return book_dir


@dataclass(frozen=True)
class BuildPlan:
    """What ``make book`` does with the variables it was given (see :func:`plan_build`)."""

    execute: bool
    profile: str | None
    book_dir: Path
    output_dir: Path  # the HTML lands in output_dir/_build/html
    partial: bool  # render only the pages present in book_dir

    @property
    def html_dir(self) -> Path:
        return self.output_dir / "_build" / "html"


def plan_build(profile: str | None, chapter: str | None = None, start: str | None = None, *,
               force: bool = False, repo: Path = REPO_ROOT) -> BuildPlan:
    """Where ``make book`` executes and renders.

    * no PROFILE, CHAPTER or FROM (and no FORCE=1): nothing is executed; the published book
      (``book/``) is rendered into ``_build/html/``;
    * ``PROFILE=gpu``, the published profile: the chapters are executed into ``book/`` itself;
    * any other profile (or CHAPTER / FROM / FORCE=1 without PROFILE, which use the default
      profile): the chapters are executed into ``_build/<profile>/book/`` and rendered into
      ``_build/<profile>/_build/html/``, so the committed book is never rewritten by them.
    """
    given = profile is not None and bool(str(profile).strip())
    if not given and not any(v is not None and str(v).strip() for v in (chapter, start)) and not force:
        return BuildPlan(False, None, repo / "book", repo, False)
    name = resolve_profile(profile)
    if given and name == PUBLISHED_PROFILE:
        return BuildPlan(True, name, repo / "book", repo, False)
    folder = repo / "_build" / name
    return BuildPlan(True, name, folder / "book", folder, True)


def build(profile: str | None, chapter: str | None = None, start: str | None = None, *,
          tables_dir: Path = REPO_ROOT / "tables", work_dir: Path = WORK_DIR, out=None) -> Path:
    """``make book``: execute what :func:`plan_build` says, then render; returns the HTML folder."""
    out = out or sys.stdout
    plan = plan_build(profile, chapter, start, force=check_force())
    if not plan.execute:
        print("Rendering the published book (book/, profile gpu); nothing is executed. To execute the chapters, "
              "give a profile: make book PROFILE=cpu (into _build/cpu/book/) or PROFILE=gpu (into book/).",
              file=out, flush=True)
        return render(plan.book_dir, plan.output_dir, out=out)
    if plan.partial:
        prepare_book_dir(plan.book_dir)
    run(plan.profile, chapter, book_dir=plan.book_dir, tables_dir=tables_dir, work_dir=work_dir, start=start, out=out)
    return render(plan.book_dir, plan.output_dir, partial=plan.partial, out=out)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spdf_lib.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="what make book does: execute (given a profile), then render")
    p_build.add_argument("--profile", default=None, help="smoke, cpu or gpu; none: render the published book only")
    p_build.add_argument("--chapter", default=None, help="execute only this chapter (its number, e.g. 03)")
    p_build.add_argument("--from", dest="start", default=None, help="execute this chapter and every later one")
    p_run = sub.add_parser("run", help="execute the chapters into the book folder")
    p_run.add_argument("--profile", default=os.environ.get("PROFILE") or None,
                       help="smoke, cpu or gpu (default: gpu when CUDA is available, else cpu)")
    p_run.add_argument("--chapter", default=None, help="re-run only this chapter (its number, e.g. 03)")
    p_run.add_argument("--from", dest="start", default=None, help="run this chapter and every later one")
    p_run.add_argument("--book-dir", default=str(PUBLISHED_BOOK))
    p_run.add_argument("--tables-dir", default=str(REPO_ROOT / "tables"))
    p_run.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR))
    p_run.add_argument("--work-dir", default=str(WORK_DIR),
                       help="scratch folder for notebooks being executed (failed ones are kept in WORK_DIR/failed)")
    p_run.add_argument("--verbose", action="store_true", help="stream every cell's output to the console")
    p_render = sub.add_parser("render", help="build the HTML from the executed notebooks")
    p_render.add_argument("--book-dir", default=str(PUBLISHED_BOOK))
    p_render.add_argument("--output", default=str(REPO_ROOT), help="the HTML lands in OUTPUT/_build/html")
    p_render.add_argument("--partial", action="store_true", help="render only the pages present in the book folder")
    p_status = sub.add_parser("status", help="regenerate the execution-status page")
    p_status.add_argument("--book-dir", default=str(PUBLISHED_BOOK))
    p_status.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR))
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.profile, args.chapter, args.start)
        elif args.command == "run":
            custom = [f"--{name.replace('_', '-')} {value}" for name, value, default in (
                ("book_dir", args.book_dir, str(PUBLISHED_BOOK)), ("tables_dir", args.tables_dir, str(REPO_ROOT / "tables")),
                ("notebooks_dir", args.notebooks_dir, str(NOTEBOOKS_DIR)), ("work_dir", args.work_dir, str(WORK_DIR)))
                if str(Path(value).resolve()) != str(Path(default).resolve())]
            run(args.profile, args.chapter, book_dir=Path(args.book_dir), tables_dir=Path(args.tables_dir),
                notebooks_dir=Path(args.notebooks_dir), work_dir=Path(args.work_dir), log_output=args.verbose,
                start=args.start, resume_args=custom)
        elif args.command == "render":
            render(Path(args.book_dir), Path(args.output), partial=args.partial)
        else:
            write_status_page(Path(args.book_dir), discover_chapters(Path(args.notebooks_dir)))
    except BuildInterrupted as error:
        print(f"\n{error}", file=sys.stderr, flush=True)
        return 128 + error.signum
    except ChapterFailed as error:
        print(f"\n{error}", file=sys.stderr)
        return 1
    except BookError as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
