"""Decoded outputs of an evaluation on disk: one JSON string per test input (chapters 05 and 06).

An evaluation saves the text generated for every test input so that its metrics can be recomputed
later without the model (chapter 06 re-scores them with the official metric suites on the CPU). The
file is gzip-compressed JSON Lines: line *i* is ``json.dumps(output_i)``, a JSON string. JSON escapes
a line break inside an output as ``\\n``, so an output that contains one is still exactly one line
and line *i* always belongs to test input *i*. (Plain text joined by newlines cannot promise that: an
output with a line break would shift every later output onto the wrong input.)

The gzip header carries no time stamp (``mtime=0``), so the same outputs give the same bytes, and the
file is replaced atomically. :func:`read_outputs` checks the line count against the number of test
inputs the caller expects and refuses anything else, so nothing is ever scored against misaligned
references.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Iterable

from . import store

__all__ = ["OutputsMismatchError", "write_outputs", "read_outputs"]


class OutputsMismatchError(ValueError):
    """An outputs file does not hold exactly one JSON string per expected test input."""


def write_outputs(path: Path | str, hyps: Iterable[str]) -> None:
    """Write ``hyps`` to ``path`` as gzip JSON Lines, one JSON string per line (atomic, deterministic)."""
    hyps = list(hyps)
    for number, hyp in enumerate(hyps, start=1):
        if not isinstance(hyp, str):
            raise TypeError(f"{path}: output {number} is a {type(hyp).__name__}, not a string ({hyp!r:.60})")
    # ASCII-only JSON: also U+2028 and other characters that some readers take for line ends are escaped.
    text = "".join(json.dumps(hyp) + "\n" for hyp in hyps)
    store.atomic_write_bytes(Path(path), gzip.compress(text.encode("utf-8"), mtime=0))


def read_outputs(path: Path | str, expected: int) -> list[str]:
    """The outputs saved in ``path``; raises :class:`OutputsMismatchError` naming the file and both counts
    when it does not hold exactly ``expected`` lines, or naming the line when one is not a JSON string."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"outputs file {path} does not exist")
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise OutputsMismatchError(f"{path}: not a readable gzip file of UTF-8 text ({err})") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if len(lines) != expected:
        raise OutputsMismatchError(f"{path}: {len(lines)} lines but {expected} test inputs expected; "
                                   f"outputs that do not line up with their inputs are never scored")
    hyps = []
    for number, line in enumerate(lines, start=1):
        try:
            hyp = json.loads(line)
        except json.JSONDecodeError as err:
            raise OutputsMismatchError(f"{path}: line {number} is not JSON ({err.msg}): {line[:60]!r}") from err
        if not isinstance(hyp, str):
            raise OutputsMismatchError(f"{path}: line {number} holds a JSON {type(hyp).__name__}, "
                                       f"not a string: {line[:60]!r}")
        hyps.append(hyp)
    return hyps
