"""The chapter runner: execute ``notebooks/NN_*.py`` with papermill into ``book/``, then render the HTML.

The Makefile calls it; chapter 00 explains how to re-run the book::

    python -m spdf_lib.book run [--profile smoke|cpu|gpu] [--chapter NN] [--book-dir book] [--tables-dir tables]
    python -m spdf_lib.book render [--book-dir book] [--output .]
    python -m spdf_lib.book status [--book-dir book]

``run`` executes the chapters in numeric order. Each chapter is a jupytext percent ``.py`` file; it is
executed in a scratch folder and moved into ``book/`` only when every cell succeeded, so a failed
chapter never replaces the notebook that was there before. The first failing chapter stops the run
with a paragraph that names the chapter, the failing cell and the error. Every chapter's profile,
wall time and status is recorded in ``book/_status.json``, from which ``book/status.md`` (the
execution-status page) is generated. ``render`` builds the HTML with Jupyter Book 1 and fails on any
Sphinx warning.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
CONFIG_PATH = REPO_ROOT / "_config.yml"
TOC_PATH = REPO_ROOT / "_toc.yml"
STATUS_JSON = "_status.json"
STATUS_PAGE = "status.md"

_CHAPTER_FILE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.py$")
# In a jupytext percent file the chapter title is the first markdown heading: "# # 03 Data".
_TITLE_LINE = re.compile(r"^# # (.+?)\s*$", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


class BookError(Exception):
    """A problem the reader can fix. The message says what was wrong and what to do."""


class ChapterFailed(BookError):
    """A chapter raised while it was executed; the message is the error paragraph printed by ``run``."""


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
    status: str  # "ok" or "failed"
    finished_utc: str
    device: str


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


def select_chapters(chapters: Sequence[Chapter], wanted: str | None) -> list[Chapter]:
    """All chapters, or the one named by ``wanted`` (``3``, ``03`` or ``03_data``)."""
    if wanted is None or not str(wanted).strip():
        return list(chapters)
    key = str(wanted).strip()
    if key.isdigit():
        key = key.zfill(2)
    picked = [c for c in chapters if key in (c.number, c.stem, c.path.name)]
    if not picked:
        listing = ", ".join(f"{c.number} ({c.stem})" for c in chapters)
        raise BookError(f"unknown chapter {wanted!r}. The chapters are: {listing}. "
                        f"Pass one of these numbers, e.g. make book CHAPTER={chapters[0].number}.")
    return picked


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


def check_data_dir() -> Path | None:
    """The data folder the chapters read, or a BookError saying how to provide it.

    ``spdf_lib.data`` decides where the data lives (``SPDF_DATA``, ``<repo>/data`` ...); while that
    module does not exist yet there is nothing to check.
    """
    import importlib

    try:
        data = importlib.import_module("spdf_lib.data")
    except ModuleNotFoundError as error:
        if error.name == "spdf_lib.data":
            return None
        raise
    advice = ("Point SPDF_DATA at the folder that holds e2e/, webnlg2017/, dart/, summarization/ and pretrain/ "
              "(e.g. make book SPDF_DATA=/path/to/data), or place that folder at <repository>/data.")
    try:
        root = Path(data.data_root())
    except Exception as error:  # noqa: BLE001 - whatever data_root raises, the reader needs the advice
        # data_root's own message lists the paths it tried and how to get the data.
        raise BookError(f"the data directory is missing, so no chapter was run.\n{error}") from None
    if not root.is_dir():
        raise BookError(f"the data directory {root} does not exist. {advice}")
    return root


def check_writable(folder: Path, what: str) -> None:
    """A BookError unless files can be created in ``folder`` (or in its nearest existing parent, when
    it does not exist yet); checked before any chapter runs, so a read-only output writes nothing."""
    import tempfile

    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    advice = f"make it writable, or pass another folder (e.g. --{what.replace(' ', '-')} /tmp/spdf-{what.split()[0]})"
    if not existing.is_dir():
        raise BookError(f"the {what} {folder} cannot be created: {existing} is a file, not a folder; {advice}.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise BookError(f"the {what} {folder} is not writable ({error.strerror} in {existing}); {advice}.") from None


def has_parameters_cell(nb) -> bool:
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells)


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
                      book_dir: Path) -> str:
    """The error paragraph printed when a chapter raises (what failed, where, and what to do)."""
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
    lines.append(f"What to do: fix that cell or the spdf_lib code it calls, then re-run only this chapter with\n"
                 f"    make book PROFILE={profile} CHAPTER={chapter.number}")
    if failed_copy is not None:
        lines.append(f"The executed notebook with the full output is {_display_path(failed_copy)}.")
    lines.append(f"{_display_path(Path(book_dir) / (chapter.stem + '.ipynb'))} was left as it was, the later "
                 f"chapters were not run, and no HTML was rendered.")
    return "\n".join(lines)


def _display_path(path: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def finalize_notebook(nb, chapter: Chapter, book_dir: Path):
    """Hide papermill's injected cell in the book and drop machine-specific paths from the metadata."""
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    meta = nb.metadata.get("papermill", {})
    if meta:
        meta["input_path"] = f"notebooks/{chapter.path.name}"
        meta["output_path"] = f"book/{chapter.stem}.ipynb"
    return nb


def execute_chapter(chapter: Chapter, *, profile: str, book_dir: Path, tables_dir: Path, work_dir: Path,
                    progress_bar: bool = False, log_output: bool = False) -> float:
    """Execute one chapter into ``book_dir/<stem>.ipynb``; return its wall time in seconds.

    The notebook is executed into ``work_dir`` and moved into ``book_dir`` atomically once every cell
    has succeeded. On failure the executed notebook goes to ``work_dir/failed/`` and ChapterFailed is
    raised with the error paragraph; ``book_dir`` is not touched. ``progress_bar`` streams the chapter's
    stderr (its tqdm bars) to the console; ``log_output`` logs every cell output.
    """
    import jupytext
    import nbformat
    import papermill as pm

    from .store import atomic_write_text

    nb = jupytext.read(chapter.path)
    if not has_parameters_cell(nb):
        raise BookError(f"chapter {chapter.path.name} has no cell tagged \"parameters\". Add, after the title, "
                        f"a cell starting with  # %% tags=[\"parameters\", \"remove-cell\"]  that sets "
                        f"profile and tables_dir.")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    running = work_dir / f"{chapter.stem}.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(nb, str(running), parameters={"profile": profile, "tables_dir": str(tables_dir)},
                            kernel_name="python3", language="python", cwd=str(chapter.path.parent),
                            # Console feedback: the chapter's own stderr, i.e. its tqdm bars of long
                            # steps, is streamed live; papermill's per-cell bar would overwrite them.
                            progress_bar=False, stderr_file=sys.stderr if progress_bar else None,
                            log_output=log_output,
                            # Silences the kernel's own start-up notice about its local TCP transport;
                            # errors raised by chapter code still reach the notebook and this runner.
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except Exception as error:  # noqa: BLE001 - any failure (cell error, dead kernel) stops the run
        failed_copy = None
        if running.exists():
            failed_copy = work_dir / "failed" / running.name
            failed_copy.parent.mkdir(parents=True, exist_ok=True)
            os.replace(running, failed_copy)
        if isinstance(error, pm.PapermillExecutionError):
            message = failure_paragraph(
                chapter, profile, cell_number=_source_cell_number(nb, error.cell_index),
                cell_source=error.source or "", ename=error.ename, evalue=_clean(str(error.evalue)),
                traceback=error.traceback or [], failed_copy=failed_copy, book_dir=book_dir)
        else:
            message = failure_paragraph(
                chapter, profile, cell_number=None, cell_source="", ename=type(error).__name__,
                evalue=_clean(str(error)), traceback=[], failed_copy=failed_copy, book_dir=book_dir)
        raise ChapterFailed(message) from error
    wall = time.perf_counter() - start
    executed = finalize_notebook(nbformat.read(running, as_version=4), chapter, book_dir)
    atomic_write_text(Path(book_dir) / f"{chapter.stem}.ipynb", nbformat.writes(executed) + "\n")
    running.unlink()
    (work_dir / "failed" / running.name).unlink(missing_ok=True)  # an older failure is now fixed
    return wall


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
    status["chapters"][run.chapter] = asdict(run)
    atomic_write_json(Path(book_dir) / STATUS_JSON, status)
    return status


def status_markdown(status: dict, chapters: Sequence[Chapter]) -> str:
    """The MyST page listing, per chapter, the profile, wall time and status of its last run."""
    rows = []
    total = 0.0
    for chapter in chapters:
        run = status.get("chapters", {}).get(chapter.number)
        if run is None:
            rows.append(f"| {chapter.number} | {chapter.short_title} | | | not run yet | | |")
            continue
        total += float(run["wall_s"])
        rows.append(f"| {chapter.number} | {_without_number(run['title'])} | {run['profile']} | {float(run['wall_s']):.1f} | "
                    f"{run['status']} | {run['finished_utc']} | {run.get('device', '')} |")
    ran = [c for c in chapters if c.number in status.get("chapters", {})]
    summary = (f"Total wall time of the last runs: {total:.1f} s over {len(ran)} chapter(s)."
               if ran else "No chapter has been executed yet: run `make book`.")
    return "\n".join([
        "# Execution status",
        "",
        "This page is generated by the chapter runner (`spdf_lib/book.py`) every time a chapter is executed.",
        "It shows, for each chapter, the profile it was last executed at, how long that took, and whether",
        "every cell succeeded. A chapter re-run on its own (`make book CHAPTER=NN`) updates its row only,",
        "so rows can come from different profiles or machines.",
        "",
        summary,
        "",
        "| Chapter | Title | Profile | Wall time (s) | Status | Finished (UTC) | Device |",
        "|---|---|---|---:|---|---|---|",
        *rows,
        "",
    ])


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


def run(profile: str | None, chapter: str | None = None, *, book_dir: Path = REPO_ROOT / "book",
        tables_dir: Path = REPO_ROOT / "tables", notebooks_dir: Path = NOTEBOOKS_DIR,
        work_dir: Path = REPO_ROOT / "_build" / "run", progress_bar: bool | None = None,
        log_output: bool = False, out=None) -> list[ChapterRun]:
    """Execute the selected chapters in order; stop at the first failure (ChapterFailed)."""
    out = out or sys.stdout
    # Importing the store first records FORCE=1's start time, which the chapter kernels inherit.
    from . import store  # noqa: F401

    chapters = discover_chapters(notebooks_dir)
    selected = select_chapters(chapters, chapter)
    profile = resolve_profile(profile)
    check_data_dir()
    book_dir, tables_dir = Path(book_dir).resolve(), Path(tables_dir).resolve()
    for folder, what in ((book_dir, "book dir"), (tables_dir, "tables dir"), (Path(work_dir), "work dir")):
        check_writable(folder, what)
    load_status(book_dir)  # a damaged status file is reported now, not after a chapter has run
    book_dir.mkdir(parents=True, exist_ok=True)
    tables_dir.mkdir(parents=True, exist_ok=True)
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    device = _device_label()
    print(f"Executing {len(selected)} chapter(s) at profile {profile!r} into {_display_path(book_dir)}/ "
          f"(tables in {_display_path(tables_dir)}/{profile}/)", file=out, flush=True)
    runs: list[ChapterRun] = []
    total = 0.0
    for i, ch in enumerate(selected, start=1):
        start = time.perf_counter()
        try:
            wall = execute_chapter(ch, profile=profile, book_dir=book_dir, tables_dir=tables_dir,
                                   work_dir=work_dir, progress_bar=progress_bar, log_output=log_output)
            state = "ok"
        except ChapterFailed:
            wall, state = time.perf_counter() - start, "failed"
            record_run(book_dir, ChapterRun(ch.number, ch.stem, ch.title, profile, round(wall, 2), state,
                                            _now(), device))
            write_status_page(book_dir, chapters)
            print(f"[{i}/{len(selected)}] {ch.stem:<28} FAILED after {wall:8.1f} s", file=out, flush=True)
            raise
        run_ = ChapterRun(ch.number, ch.stem, ch.title, profile, round(wall, 2), state, _now(), device)
        record_run(book_dir, run_)
        write_status_page(book_dir, chapters)
        runs.append(run_)
        total += wall
        print(f"[{i}/{len(selected)}] {ch.stem:<28} ok     {wall:8.1f} s", file=out, flush=True)
    print(f"All {len(runs)} chapter(s) executed in {total:.1f} s.", file=out, flush=True)
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


def render(book_dir: Path = REPO_ROOT / "book", output_dir: Path = REPO_ROOT, *, config: Path = CONFIG_PATH,
           toc: Path = TOC_PATH, out=None) -> Path:
    """Build the HTML of ``book_dir`` into ``output_dir/_build/html``; any Sphinx warning is an error.

    Returns the HTML folder. ``config`` and ``toc`` are passed as absolute paths because Jupyter Book
    resolves relative ones against ``book_dir``.
    """
    out = out or sys.stdout
    book_dir, output_dir = Path(book_dir).resolve(), Path(output_dir).resolve()
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


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spdf_lib.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the chapters into the book folder")
    p_run.add_argument("--profile", default=os.environ.get("PROFILE") or None,
                       help="smoke, cpu or gpu (default: gpu when CUDA is available, else cpu)")
    p_run.add_argument("--chapter", default=None, help="re-run only this chapter (its number, e.g. 03)")
    p_run.add_argument("--book-dir", default=str(REPO_ROOT / "book"))
    p_run.add_argument("--tables-dir", default=str(REPO_ROOT / "tables"))
    p_run.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR))
    p_run.add_argument("--work-dir", default=str(REPO_ROOT / "_build" / "run"),
                       help="scratch folder for notebooks being executed (failed ones are kept in WORK_DIR/failed)")
    p_run.add_argument("--verbose", action="store_true", help="stream every cell's output to the console")
    p_render = sub.add_parser("render", help="build the HTML from the executed notebooks")
    p_render.add_argument("--book-dir", default=str(REPO_ROOT / "book"))
    p_render.add_argument("--output", default=str(REPO_ROOT), help="the HTML lands in OUTPUT/_build/html")
    p_status = sub.add_parser("status", help="regenerate the execution-status page")
    p_status.add_argument("--book-dir", default=str(REPO_ROOT / "book"))
    p_status.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR))
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.profile, args.chapter, book_dir=Path(args.book_dir), tables_dir=Path(args.tables_dir),
                notebooks_dir=Path(args.notebooks_dir), work_dir=Path(args.work_dir), log_output=args.verbose)
        elif args.command == "render":
            render(Path(args.book_dir), Path(args.output))
        else:
            write_status_page(Path(args.book_dir), discover_chapters(Path(args.notebooks_dir)))
    except ChapterFailed as error:
        print(f"\n{error}", file=sys.stderr)
        return 1
    except BookError as error:
        print(f"\nERROR: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
