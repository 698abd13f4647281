"""What a failing chapter tells the reader: the paragraph naming the chapter, its failing cell, the error
and what to do (:func:`failure_paragraph`), and its form for a kernel that died
(:func:`dead_kernel_paragraph`: the signal, and a memory kill when the system recorded one)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterable, Sequence

from .chapters import Chapter
from .errors import _clean, _display_path, _signal_name

__all__ = ["failure_paragraph", "dead_kernel_paragraph"]


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
