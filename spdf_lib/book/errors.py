"""What goes wrong in a build, and the helpers its messages use.

:class:`BookError` is a problem the reader can fix: its message says what was wrong and what to do.
:class:`ChapterFailed` (a chapter raised) and :class:`BuildInterrupted` (Ctrl-C or SIGTERM) are the two
kinds the runner raises once chapters run. The helpers show a path relative to the working folder, strip
terminal colours from a kernel's traceback and name a signal.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

__all__ = ["BookError", "ChapterFailed", "BuildInterrupted"]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BookError(Exception):
    """A problem the reader can fix. The message says what was wrong and what to do."""


class ChapterFailed(BookError):
    """A chapter raised while it was executed; the message is the error paragraph printed by ``run``."""


class BuildInterrupted(BookError):
    """Ctrl-C or SIGTERM stopped the build; the message says what was kept and how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def _clean(text: str) -> str:
    return _ANSI.sub("", text)


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
