"""The chapter runner (spdf_lib/book.py): bad input, failing chapters, status page, atomic outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from spdf_lib import book
from spdf_lib.book import BookError


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m spdf_lib.book run`` on the chapters of ``tmp_path/notebooks``, as the Makefile calls it."""
    cmd = [sys.executable, "-m", "spdf_lib.book", "run", "--notebooks-dir", str(tmp_path / "notebooks"),
           "--book-dir", str(tmp_path / "book"), "--tables-dir", str(tmp_path / "tables"),
           "--work-dir", str(tmp_path / "work"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ discovery and selection


def test_chapters_are_discovered_in_numeric_order_with_titles(write_chapter, tmp_path):
    write_chapter("10_last", title="Last")
    write_chapter("02_second", title="Second")
    write_chapter("00_first", title="First")
    (tmp_path / "notebooks" / "helper.py").write_text("x = 1\n")  # not a chapter: no NN_ prefix
    chapters = book.discover_chapters(tmp_path / "notebooks")
    assert [c.stem for c in chapters] == ["00_first", "02_second", "10_last"]
    assert [c.title for c in chapters] == ["00 First", "02 Second", "10 Last"]
    assert chapters[1].short_title == "Second"


def test_two_chapters_with_one_number_are_rejected(write_chapter, tmp_path):
    write_chapter("03_data")
    write_chapter("03_other")
    with pytest.raises(BookError, match="share the number 03"):
        book.discover_chapters(tmp_path / "notebooks")


def test_a_folder_without_chapters_is_rejected(tmp_path):
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(BookError, match="no chapters"):
        book.discover_chapters(tmp_path / "notebooks")


@pytest.mark.parametrize("wanted", ["3", "03", "03_data", "03_data.py"])
def test_one_chapter_can_be_named_by_number_or_name(write_chapter, tmp_path, wanted):
    write_chapter("00_about")
    write_chapter("03_data")
    chapters = book.discover_chapters(tmp_path / "notebooks")
    assert [c.stem for c in book.select_chapters(chapters, wanted)] == ["03_data"]
    assert len(book.select_chapters(chapters, None)) == 2


def test_the_repository_chapters_are_all_in_the_table_of_contents(repo_root):
    """A chapter missing from _toc.yml would be executed but never shown in the book."""
    pages = book.toc_files(repo_root / "_toc.yml")
    chapters = book.discover_chapters(repo_root / "notebooks")
    assert pages[0] == "00_about" and pages[-1] == "status"
    missing = [c.stem for c in chapters if c.stem not in pages]
    assert not missing, f"add these chapters to _toc.yml as '- file: NN_name': {missing}"
    for page in pages:  # a page is a chapter source or a hand-written page in book/
        assert (repo_root / "notebooks" / f"{page}.py").exists() or (repo_root / "book" / f"{page}.md").exists(), \
            f"_toc.yml lists {page} but neither notebooks/{page}.py nor book/{page}.md exists"


def test_toc_files_walks_parts_chapters_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: 00_about\nparts:\n  - caption: A\n    chapters:\n"
                   "      - file: 01_x\n        sections:\n          - file: 01a_y\n  - caption: B\n"
                   "    chapters:\n      - file: status\n")
    assert book.toc_files(toc) == ["00_about", "01_x", "01a_y", "status"]


# ------------------------------------------------------------------ bad input on the command line


def test_unknown_profile_exits_nonzero_and_lists_the_profiles(write_chapter, tmp_path):
    write_chapter("00_about")
    result = _run_cli(tmp_path, "--profile", "huge")
    assert result.returncode == 2
    assert "unknown profile 'huge'" in result.stderr
    for name in ("smoke", "cpu", "gpu"):
        assert name in result.stderr
    assert "PROFILE=smoke" in result.stderr  # says what to do
    assert not (tmp_path / "book").exists() or not any((tmp_path / "book").iterdir())


def test_unknown_chapter_exits_nonzero_and_lists_the_chapters(write_chapter, tmp_path):
    write_chapter("00_about")
    write_chapter("01_weight_sparsity")
    result = _run_cli(tmp_path, "--profile", "smoke", "--chapter", "42")
    assert result.returncode == 2
    assert "unknown chapter '42'" in result.stderr
    assert "00 (00_about)" in result.stderr and "01 (01_weight_sparsity)" in result.stderr
    assert not (tmp_path / "book").exists() or not any((tmp_path / "book").iterdir())


def test_a_chapter_without_parameters_cell_is_rejected(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_bare.py").write_text("# %% [markdown]\n# # 00 Bare\n\n# %%\nprint(1)\n")
    result = _run_cli(tmp_path, "--profile", "smoke")
    assert result.returncode == 2
    assert 'no cell tagged "parameters"' in result.stderr


def test_a_missing_data_directory_is_reported_before_any_chapter_runs(monkeypatch, tmp_path):
    fake = types.ModuleType("spdf_lib.data")
    fake.data_root = lambda: tmp_path / "no-such-data"
    monkeypatch.setitem(sys.modules, "spdf_lib.data", fake)
    with pytest.raises(BookError, match="no-such-data does not exist.*SPDF_DATA"):
        book.check_data_dir()

    def raising_root():
        raise FileNotFoundError("none of SPDF_DATA, <repo>/data exists")

    fake.data_root = raising_root
    with pytest.raises(BookError, match="data directory is missing(.|\n)*<repo>/data exists"):
        book.check_data_dir()


# ------------------------------------------------------------------ a chapter that raises


def test_a_failing_chapter_stops_the_run_and_leaves_book_and_tables_untouched(write_chapter, tmp_path):
    write_chapter("00_ok", body="""\
        from pathlib import Path
        out = Path(tables_dir) / profile
        out.mkdir(parents=True, exist_ok=True)
        (out / "ok.json").write_text('{"ok": true}')
        """)
    write_chapter("01_boom", body="""\
        n = 7
        raise ValueError(f"boom n={n}")
        """)
    write_chapter("02_after", body="print('never runs')")
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    # The notebook of a previous successful run must survive the failed one byte for byte.
    previous = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 Boom (previous run)")])
    nbformat.write(previous, book_dir / "01_boom.ipynb")
    before = (book_dir / "01_boom.ipynb").read_bytes()

    result = _run_cli(tmp_path, "--profile", "smoke")

    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "ERROR: chapter 01_boom" in err and "01_boom.py" in err
    assert "cell 3 of" in err and "which begins: n = 7" in err  # the cell as numbered in the .py file
    assert "ValueError: boom n=7" in err
    assert "make book PROFILE=smoke CHAPTER=01" in err  # what to do
    assert "[1/3] 00_ok" in result.stdout and "[2/3] 01_boom" in result.stdout and "FAILED" in result.stdout

    assert (book_dir / "01_boom.ipynb").read_bytes() == before
    assert not (book_dir / "02_after.ipynb").exists()
    # Only finished files in book/: no temporary or half-written notebook.
    assert sorted(p.name for p in book_dir.iterdir()) == ["00_ok.ipynb", "01_boom.ipynb", "_status.json",
                                                          "status.md"]
    executed = nbformat.read(book_dir / "00_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert str(tmp_path / "tables") in injected[0].source  # tables_dir is passed as an absolute path
    assert _tree(tmp_path / "tables") == {"smoke/ok.json": b'{"ok": true}'}
    assert (tmp_path / "work" / "failed" / "01_boom.ipynb").exists()  # kept for debugging, outside book/

    status = json.loads((book_dir / "_status.json").read_text())["chapters"]
    assert status["00"]["status"] == "ok" and status["01"]["status"] == "failed"
    assert "02" not in status
    page = (book_dir / "status.md").read_text()
    assert "| 00 | A chapter | smoke |" in page and "| failed |" in page
    assert "| 02 | A chapter | | | not run yet" in page

    # No book is rendered while the last run of a chapter failed.
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: 00_ok\nchapters:\n  - file: 01_boom\n  - file: status\n")
    with pytest.raises(BookError, match="01_boom failed in its last execution"):
        book.check_renderable(book_dir, toc)


def test_render_refuses_a_book_with_a_missing_page(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "status.md").write_text("# Execution status\n")
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: 00_about\nchapters:\n  - file: status\n")
    with pytest.raises(BookError, match="00_about.ipynb does not exist.*CHAPTER=00"):
        book.render(tmp_path / "book", tmp_path / "out", toc=toc)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ status page


def _run_record(number: str, profile: str, wall: float, status: str = "ok") -> book.ChapterRun:
    return book.ChapterRun(number, f"{number}_x", f"{number} Title {number}", profile, wall, status,
                           "2026-01-01 00:00", "cpu")


def test_rerunning_one_chapter_updates_only_its_status_row(tmp_path, write_chapter):
    write_chapter("00_x", title="Title 00")
    write_chapter("01_x", title="Title 01")
    chapters = book.discover_chapters(tmp_path / "notebooks")
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    book.record_run(book_dir, _run_record("00", "cpu", 12.5))
    book.record_run(book_dir, _run_record("01", "cpu", 30.0))
    book.record_run(book_dir, _run_record("01", "smoke", 2.0))
    rows = json.loads((book_dir / "_status.json").read_text())["chapters"]
    assert rows["00"]["profile"] == "cpu" and rows["00"]["wall_s"] == 12.5
    assert rows["01"]["profile"] == "smoke" and rows["01"]["wall_s"] == 2.0
    page = book.write_status_page(book_dir, chapters).read_text()
    assert "| 00 | Title 00 | cpu | 12.5 | ok |" in page
    assert "| 01 | Title 01 | smoke | 2.0 | ok |" in page
    assert "14.5 s over 2 chapter(s)" in page
    assert not [p for p in book_dir.iterdir() if p.name not in ("_status.json", "status.md")]


def test_status_page_before_any_run_says_so(tmp_path, write_chapter):
    write_chapter("00_x", title="Title 00")
    page = book.status_markdown({"chapters": {}}, book.discover_chapters(tmp_path / "notebooks"))
    assert page.startswith("# Execution status")
    assert "| 00 | Title 00 | | | not run yet" in page
    assert "No chapter has been executed yet" in page


def test_a_corrupt_status_file_is_reported(tmp_path):
    (tmp_path / "_status.json").write_text("{not json")
    with pytest.raises(BookError, match="not valid JSON"):
        book.load_status(tmp_path)


# ------------------------------------------------------------------ Makefile and CI entry point


def test_makefile_passes_profile_chapter_and_force_through(repo_root):
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "book", "PROFILE=smoke", "CHAPTER=03"],
                         capture_output=True, text=True, cwd=repo_root, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "spdf_lib.book run --profile smoke --chapter 03 --book-dir book --tables-dir tables" in dry.stdout
    assert "spdf_lib.book render" in dry.stdout
    assert 'install --quiet "torch==2.13.0"' in dry.stdout  # torch first, pinned
    assert dry.stdout.index("torch==2.13.0") < dry.stdout.index("install --quiet -e .")
    makefile = (repo_root / "Makefile").read_text()
    assert "export FORCE" in makefile and "HF_HUB_OFFLINE" in makefile


def test_ci_runs_exactly_the_readme_test_command(repo_root):
    ci = (repo_root / ".ci" / "run").read_text().strip().splitlines()
    assert ci[0] == "#!/usr/bin/env bash" and ci[-1] == "make test"
    readme = (repo_root / "README.md").read_text()
    assert "\nmake test\n" in readme
