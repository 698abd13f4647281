"""Executing the selected chapters in order (:func:`run`).

Before the first chapter it checks FORCE, the profile, the chapters asked for, the data folder and every
folder the build writes (:mod:`~spdf_lib.book.checks`), and takes a lock on the book, tables and cache
folders, so that a second build stops at once with a message instead of computing the same runs twice.
After each chapter it records the chapter's row of the status page with the runs its ledger lists. The
first failing chapter stops the run (``ChapterFailed``); Ctrl-C or SIGTERM stop it with the message of
:mod:`~spdf_lib.book.interrupts` (``BuildInterrupted``)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from .chapters import Chapter, discover_chapters, select_chapters
from .checks import check_force, preflight, resolve_profile
from .engine import execute_chapter
from .errors import BookError, BuildInterrupted, ChapterFailed, _display_path
from .interrupts import _resume_command, _Signals, _Stop, interruption_message
from .ledger import read_ledger, summarize_ledger
from .paths import NOTEBOOKS_DIR, PUBLISHED_BOOK, REPO_ROOT, WORK_DIR
from .status import ChapterRun, record_run, write_status_page

__all__ = ["run"]


def _device_label() -> str:
    try:
        from ..env import describe_device

        return describe_device()
    except Exception:  # noqa: BLE001 - the status page must not fail because the device query did
        return "unknown"


def run(profile: str | None, chapter: str | None = None, *, book_dir: Path = PUBLISHED_BOOK,
        tables_dir: Path = REPO_ROOT / "tables", notebooks_dir: Path = NOTEBOOKS_DIR,
        work_dir: Path = WORK_DIR, progress_bar: bool | None = None,
        log_output: bool = False, out=None, start: str | None = None,
        resume_args: list[str] | None = None) -> list[ChapterRun]:
    """Execute the selected chapters in order; stop at the first failure (ChapterFailed) or at Ctrl-C
    or SIGTERM (BuildInterrupted). ``start`` runs a chapter and every later one."""
    out = out or sys.stdout
    from .. import store

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
