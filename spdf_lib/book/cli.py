"""The chapter runner: execute ``notebooks/NN_*.py`` with papermill into a book folder, then render the HTML.

This is the command line of :mod:`spdf_lib.book` (``python -m spdf_lib.book``). The Makefile calls it;
chapter 00 and the README explain how to re-run the book::

    python -m spdf_lib.book build  [--profile smoke|cpu|gpu] [--chapter NN | --from NN]
    python -m spdf_lib.book run    [--profile P] [--chapter NN | --from NN] [--book-dir book] [--tables-dir tables]
    python -m spdf_lib.book render [--book-dir book] [--output .] [--partial]
    python -m spdf_lib.book status [--book-dir book]

The exit status is 0 on success, 1 when a chapter failed, 2 for another problem the message names, and
128 + the signal's number when Ctrl-C or SIGTERM stopped the build.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .chapters import discover_chapters
from .errors import BookError, BuildInterrupted, ChapterFailed
from .make import build
from .paths import NOTEBOOKS_DIR, PUBLISHED_BOOK, REPO_ROOT, WORK_DIR
from .rendering import render
from .runner import run
from .status import write_status_page

__all__ = ["main"]


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
