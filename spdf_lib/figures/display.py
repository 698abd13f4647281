"""How a chapter shows a table or the library's code: frames without their index, grouped headers,
Markdown tables, and excerpts of a function's source.

:func:`show_table` returns a pandas ``Styler`` (no index, every cell in full, numbers formatted);
:func:`source_excerpt` reads the code a chapter explains from the function itself, so the code shown
is the code that runs.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

__all__ = ["show_table", "grouped_columns", "markdown_table", "source_excerpt"]


# ----------------------------------------------------------------------------------------- tables

def show_table(frame: pd.DataFrame, formats: Mapping[str, str] | str | None = None,
               precision: int | None = None, na_rep: str | None = None):
    """``frame`` for display: no index, every cell in full (long text wraps), numbers formatted.

    ``formats`` maps column names (or, for grouped headers, column tuples) to format strings such
    as ``"{:,}"``; ``precision`` applies to the other float columns; ``na_rep`` replaces missing values.
    """
    styler = frame.style.hide(axis="index").format(precision=precision, thousands=",", escape="html", na_rep=na_rep)
    if formats:  # columns not named in ``formats`` keep the default format set here
        styler = styler.format(formats, precision=precision, thousands=",", escape="html", na_rep=na_rep)
    return styler.set_properties(**{"white-space": "normal", "text-align": "left"})


def grouped_columns(frame: pd.DataFrame, groups: Mapping[str, Sequence[str]],
                    names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with two header rows: each column under its group (``""`` for ungrouped ones), the
    columns of a group side by side where its first column stands.

    ``groups`` maps a group heading to the columns it spans; ``names`` renames columns within
    their group (e.g. ``"pretrain FLOP"`` shown as ``"pre-training"`` under ``"training FLOPs"``).
    """
    names = dict(names or {})
    owner = {column: group for group, columns in groups.items() for column in columns}
    missing = [c for c in owner if c not in frame.columns]
    if missing:
        raise ValueError(f"grouped_columns: no column {missing} in the frame (it has {list(frame.columns)})")
    order = []  # each group's columns side by side, where the group's first column stands
    for c in frame.columns:
        if c in order:
            continue
        order += list(groups[owner[c]]) if c in owner else [c]
    out = frame[order].copy()
    out.columns = pd.MultiIndex.from_tuples([(owner.get(c, ""), names.get(c, c)) for c in order])
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame`` (no index; ``|`` in cells escaped), for short text tables."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


# ---------------------------------------------------------------------------------- code excerpts

def source_excerpt(obj, first: str, last: str | None = None) -> str:
    """Markdown: the lines of ``obj``'s source from the line containing ``first`` to the one
    containing ``last`` (the whole object when ``first`` is empty), with where they come from.

    A marker that is not found raises ValueError naming the function, so a chapter whose excerpt
    no longer matches the library fails instead of showing stale code.
    """
    lines, start_line = inspect.getsourcelines(obj)
    name = f"{obj.__module__}.{obj.__qualname__}"
    if first:
        begin = next((i for i, line in enumerate(lines) if first in line), None)
        if begin is None:
            raise ValueError(f"source_excerpt: {name} has no line containing {first!r}")
        end = begin if last is None else next((i for i in range(begin, len(lines)) if last in lines[i]), None)
        if end is None:
            raise ValueError(f"source_excerpt: {name} has no line containing {last!r} after {first!r}")
    else:
        begin, end = 0, len(lines) - 1
    code = textwrap.dedent("".join(lines[begin:end + 1])).rstrip()
    path = Path(inspect.getsourcefile(obj)).as_posix()
    where = path[path.rindex("spdf_lib/"):] if "spdf_lib/" in path else Path(path).name
    return (f"From `{name}` (`{where}`, lines {start_line + begin} to {start_line + end}):\n\n"
            f"```python\n{code}\n```")
