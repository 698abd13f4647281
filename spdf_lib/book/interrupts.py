"""Ctrl-C and SIGTERM during a build. While a build runs, ``_Signals`` turns the first of them into
``_Stop``, raised in the main thread (a second one during the clean-up is ignored); the build then ends
with a few lines saying what was kept, what was not, and the command that resumes
(:func:`interruption_message`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from .chapters import Chapter
from .errors import _display_path, _signal_name

__all__ = ["interruption_message"]


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT / SIGTERM handler of :func:`run`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.cell: int | None = None  # the cell of the chapter that was running, 1-based in its .py
        self.partial: Path | None = None  # the partly executed notebook, kept for reading


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
    from .. import store

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
