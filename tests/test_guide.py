"""The reading path of chapter 00 covers the whole package, once, with real line counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from spdf_lib import guide

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_every_module_of_the_package_is_on_the_path_exactly_once():
    on_path = Counter(s.module for s in guide.READING_PATH)
    assert [m for m, n in on_path.items() if n > 1] == []
    assert set(on_path) == guide.package_modules()


def test_every_chapter_the_path_names_exists():
    chapters = {p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")}
    for stop in guide.READING_PATH:
        for part in filter(None, stop.chapter.replace("-", ", ").split(", ")):
            assert part in chapters, (stop.module, stop.chapter)


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("x = 1\ny = 2\nz = 3\n")
    (pkg / "sub" / "__init__.py").write_text('"""doc"""\n')
    (pkg / "sub" / "b.py").write_text("def f():\n    return 1\n")
    (pkg / "notes").mkdir()  # a folder without __init__.py is not a subpackage
    return pkg


def test_lines_and_legs_are_counted_from_the_files(tmp_path):
    pkg = _package(tmp_path)
    assert guide.package_modules(pkg) == {"a.py", "sub/"}
    path = (guide.Stop("first", "a.py", "three lines"), guide.Stop("second", "sub/", "a subpackage", "01"))
    frame = guide.reading_path(path, pkg)
    assert list(frame["lines"]) == [3, 3] and list(frame["lines so far"]) == [3, 6]
    assert guide.leg_lines(frame) == {"first": 3, "second": 3}
    assert "2 stops and 6 lines in 2 legs" in guide.path_sentence(frame)


def test_a_path_naming_a_missing_module_is_an_error_that_names_it(tmp_path):
    pkg = _package(tmp_path)
    with pytest.raises(FileNotFoundError, match="gone.py"):
        guide.reading_path((guide.Stop("first", "gone.py", "nothing"),), pkg)
