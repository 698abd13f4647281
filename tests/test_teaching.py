"""The teaching guide (book/teaching.md) stays in step with the chapters and the library it points to."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "book" / "teaching.md"
EXERCISE = re.compile(r"\*\*Exercise (\d+\.\d+)\.\*\*")
MODULES = {p.stem for p in (REPO / "spdf_lib").glob("*.py") if p.stem != "__init__"} | {
    p.name for p in (REPO / "spdf_lib").iterdir() if (p / "__init__.py").exists()}
REFERENCE = re.compile(r"`(" + "|".join(sorted(MODULES)) + r")\.([A-Za-z_][A-Za-z0-9_]*)")


def test_the_guide_has_a_note_for_every_exercise_and_none_for_an_exercise_that_does_not_exist():
    in_chapters = {m for path in (REPO / "notebooks").glob("[0-9][0-9]_*.py")
                   for m in EXERCISE.findall(path.read_text(encoding="utf-8"))}
    in_guide = EXERCISE.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(in_guide) == len(set(in_guide)), "an exercise has two notes"
    assert set(in_guide) == in_chapters


@pytest.mark.parametrize("module,name", sorted(set(REFERENCE.findall(GUIDE.read_text(encoding="utf-8")))))
def test_every_library_name_the_guide_points_to_exists(module, name):
    assert hasattr(importlib.import_module(f"spdf_lib.{module}"), name), f"spdf_lib.{module} has no {name}"


def test_the_guide_is_in_the_table_of_contents_before_the_bibliography():
    toc = (REPO / "_toc.yml").read_text(encoding="utf-8")
    assert toc.index("- file: teaching") < toc.index("- file: bibliography")
