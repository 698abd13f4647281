"""What ``make book`` does (:func:`build`): where it executes and renders, given PROFILE, CHAPTER, FROM and
FORCE (:func:`plan_build`); the static pages of the published book copied into the book folder of another
profile (:func:`prepare_book_dir`); then :func:`~spdf_lib.book.runner.run` and
:func:`~spdf_lib.book.rendering.render`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .checks import check_force, resolve_profile
from .paths import PUBLISHED_BOOK, PUBLISHED_PROFILE, REPO_ROOT, STATUS_JSON, STATUS_PAGE, WORK_DIR
from .rendering import render
from .runner import run

__all__ = ["prepare_book_dir", "BuildPlan", "plan_build", "build"]


def prepare_book_dir(book_dir: Path, source: Path = PUBLISHED_BOOK) -> Path:
    """Copy the static parts of the published book (hand-written pages, images, vendored MathJax; not
    the executed notebooks nor the status files) into ``book_dir``, where a build at another profile
    executes its chapters. Files already there with the same bytes are left alone."""
    from ..store import atomic_write_bytes

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
