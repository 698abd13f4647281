"""The chapter runner (spdf_lib/book/): bad input, failing chapters, status page, atomic outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE", "SPDF_BUILD_LOCK_HELD")}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**env, "SPDF_CACHE": str(tmp_path / "cache")})


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
    from spdf_lib import data

    monkeypatch.setattr(data, "data_root", lambda verbose=True: tmp_path / "no-such-data")
    with pytest.raises(BookError, match="no-such-data does not exist.*SPDF_DATA"):
        book.check_data_dir()

    def raising_root(verbose=True):
        raise FileNotFoundError("none of SPDF_DATA, <repo>/data exists")

    monkeypatch.setattr(data, "data_root", raising_root)
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
    assert "the later chapter(s) 02_after were not run" in err
    assert "[1/3] 00_ok" in result.stdout and "[2/3] 01_boom" in result.stdout and "FAILED" in result.stdout

    assert (book_dir / "01_boom.ipynb").read_bytes() == before
    assert not (book_dir / "02_after.ipynb").exists()
    # Only finished files in book/: no temporary or half-written notebook.
    assert sorted(p.name for p in book_dir.iterdir()) == ["00_ok.ipynb", "01_boom.ipynb", "_sources_py",
                                                          "_status.json", "status.md"]
    # a book folder outside the repository holds a copy of each executed chapter's source, to download
    assert [p.name for p in (book_dir / "_sources_py").iterdir()] == ["00_ok.py"]
    executed = nbformat.read(book_dir / "00_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    # tables_dir is passed as an absolute path, which the committed notebook does not keep
    assert str(tmp_path) not in (book_dir / "00_ok.ipynb").read_text()
    assert 'tables_dir = "<tables>"' in injected[0].source
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


def _dry_make(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-n", "-W", "pyproject.toml", *args], capture_output=True, text=True,
                          cwd=repo_root, timeout=60)


def test_makefile_passes_profile_chapter_from_and_force_through(repo_root):
    dry = _dry_make(repo_root, "book", "PROFILE=smoke", "CHAPTER=03")
    assert dry.returncode == 0, dry.stderr
    assert "spdf_lib.book build --profile smoke --chapter 03" in dry.stdout
    assert "spdf_lib.book build --profile cpu --from 05" in _dry_make(repo_root, "book", "PROFILE=cpu", "FROM=05").stdout
    assert _dry_make(repo_root, "book").stdout.strip().splitlines()[-1].split("spdf_lib.book ")[1].strip() == "build"
    assert 'install --quiet "torch==2.13.0"' in dry.stdout  # torch first, pinned
    assert dry.stdout.index("torch==2.13.0") < dry.stdout.index("install --quiet -e .")
    makefile = (repo_root / "Makefile").read_text()
    assert "export FORCE" in makefile and "HF_HUB_OFFLINE" in makefile


# ------------------------------------------------------------------ where make book writes


def test_plain_make_book_renders_the_published_book_and_executes_nothing(tmp_path):
    plan = book.plan_build(None, repo=tmp_path)
    assert not plan.execute and plan.book_dir == tmp_path / "book" and plan.html_dir == tmp_path / "_build" / "html"


def test_only_the_published_profile_executes_into_the_committed_book(tmp_path, monkeypatch):
    from spdf_lib import profiles

    gpu = book.plan_build("gpu", repo=tmp_path)
    assert gpu.execute and gpu.book_dir == tmp_path / "book" and not gpu.partial
    for name in ("cpu", "smoke"):
        plan = book.plan_build(name, repo=tmp_path)
        assert plan.execute and plan.partial and plan.book_dir == tmp_path / "_build" / name / "book"
        assert plan.html_dir == tmp_path / "_build" / name / "_build" / "html"
    # CHAPTER, FROM or FORCE=1 without a PROFILE execute at the default profile, never into book/,
    # even on a machine whose default is the published profile
    monkeypatch.setattr(profiles, "default_profile_name", lambda: "gpu")
    for plan in (book.plan_build(None, "03", repo=tmp_path), book.plan_build(None, None, "05", repo=tmp_path),
                 book.plan_build(None, force=True, repo=tmp_path)):
        assert plan.execute and plan.book_dir == tmp_path / "_build" / "gpu" / "book"


def test_a_build_at_another_profile_gets_the_static_pages_and_a_table_of_contents_of_what_exists(tmp_path):
    source = tmp_path / "published"
    (source / "images").mkdir(parents=True)
    (source / "images" / "logo.png").write_bytes(b"png")
    (source / "bibliography.md").write_text("# Bibliography\n")
    (source / "03_data.ipynb").write_text("{}")  # executed notebooks are not copied
    (source / book.STATUS_JSON).write_text("{}")
    build_dir = book.prepare_book_dir(tmp_path / "_build" / "cpu" / "book", source)
    assert sorted(p.relative_to(build_dir).as_posix() for p in build_dir.rglob("*") if p.is_file()) == \
        ["bibliography.md", "images/logo.png"]
    (build_dir / "03_data.ipynb").write_text("{}")
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: 00_about\nchapters:\n  - file: 01_x\n  - file: 03_data\n"
                   "  - file: bibliography\n  - file: status\n")
    partial = book.write_partial_toc(build_dir, toc, tmp_path / "partial.yml")
    assert book.toc_files(partial) == ["03_data", "bibliography"]


@pytest.mark.parametrize("keep,expected", [
    ({"03_data", "status"}, ["03_data", "status"]),  # the root is dropped: the first page kept replaces it
    ({"00_about", "03_data"}, ["00_about", "03_data"]),
    ({"01_x", "01a"}, ["01_x", "01a"]),  # a section kept with its chapter
    ({"02"}, ["02"]),  # a part emptied of chapters goes
])
def test_a_table_of_contents_can_be_restricted_to_some_pages(keep, expected):
    toc = {"format": "jb-book", "root": "00_about",
           "parts": [{"caption": "A", "chapters": [{"file": "01_x", "sections": [{"file": "01a"}]}, {"file": "03_data"}]},
                     {"caption": "B", "chapters": [{"file": "02"}, {"file": "status"}]}]}
    out = book.filtered_toc(toc, lambda page: page in keep)
    assert [out["root"]] + book._toc_pages(out) == expected


def test_chapters_can_be_selected_from_one_on(write_chapter, tmp_path):
    for stem in ("00_a", "03_b", "05_c", "08_d"):
        write_chapter(stem)
    chapters = book.discover_chapters(tmp_path / "notebooks")
    assert [c.stem for c in book.select_chapters(chapters, None, "5")] == ["05_c", "08_d"]
    with pytest.raises(BookError, match="CHAPTER=03 and FROM=05 were both given"):
        book.select_chapters(chapters, "03", "05")
    with pytest.raises(BookError, match="unknown chapter '07'.*make book FROM=00"):
        book.select_chapters(chapters, None, "07")


# ------------------------------------------------------------------ provenance, downloads, paths


def _executed_notebook(tmp_path: Path, tables_dir: Path):
    """A notebook as papermill leaves it, with this machine's paths in its parameters, outputs and metadata."""
    from spdf_lib import data, store

    home, repo = Path.home(), book.REPO_ROOT
    try:
        data_root = data.data_root(verbose=False)
    except data.DataNotFoundError:
        data_root = Path("/srv/data")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 03 Data"),
        nbformat.v4.new_code_cell('profile = "cpu"\ntables_dir = "../tables"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f'# Parameters\nprofile = "smoke"\ntables_dir = "{tables_dir}"\n',
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(...)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=f"data root: {data_root} (<repo>/../shared/data)\n"
                                   f"wrote {repo}/tables/smoke/x.csv and {tables_dir}/smoke/y.csv\n"),
            nbformat.v4.new_output("stream", name="stderr", text=f"{sys.prefix}/lib/site.py:1: UserWarning: w\n"
                                   f"{home}/.cache/x {store.cache_root(create=False)}/tok /mnt/scratch/z\n"),
            nbformat.v4.new_output("display_data", data={"text/html": f"<p>{repo}/book</p>",
                                                         "image/png": "iVBORw0KG/tmp/x/AAA="}),
            nbformat.v4.new_output("error", ename="OSError", evalue=f"{home}/x", traceback=[f"File {repo}/spdf_lib/a.py"]),
        ]),
    ])
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke", "tables_dir": str(tables_dir)},
                                "input_path": str(repo / "notebooks" / "03_data.py"), "output_path": str(tmp_path / "w.ipynb"),
                                "environment_variables": {}, "cwd": str(repo / "notebooks")}
    return nb


@pytest.mark.parametrize("where", ["inside the repository", "elsewhere"])
def test_a_finished_notebook_names_no_absolute_path_of_this_machine(tmp_path, where):
    tables_dir = book.REPO_ROOT / "tables" if where == "inside the repository" else tmp_path / "tables"
    chapter = book.Chapter("03", book.REPO_ROOT / "notebooks" / "03_data.py", "03 Data")
    nb = book.finalize_notebook(_executed_notebook(tmp_path, tables_dir), chapter, book.REPO_ROOT / "book",
                                tables_dir=tables_dir, profile="smoke", work_dir=tmp_path / "work")
    text = nbformat.writes(nb)
    without_images = text.replace("iVBORw0KG/tmp/x/AAA=", "")
    for root in {str(book.REPO_ROOT), str(Path.home()), str(tmp_path), sys.prefix}:
        assert root not in without_images, root
    assert not book.ABSOLUTE_PATH.search(without_images), book.ABSOLUTE_PATH.search(without_images).group(0)
    assert "iVBORw0KG/tmp/x/AAA=" in text  # image data is left alone
    expected = "../tables" if where == "inside the repository" else "<tables>"
    assert nb.metadata["papermill"]["parameters"]["tables_dir"] == expected
    assert f'tables_dir = "{expected}"' in nb.cells[3].source and "remove-cell" in nb.cells[3].metadata.tags
    from spdf_lib import store

    cache = store.cache_root(create=False)
    inside = cache.resolve().is_relative_to(book.REPO_ROOT)
    expected_cache = f"{cache.resolve().relative_to(book.REPO_ROOT).as_posix()}/tok" if inside else "<cache>/tok"
    assert "wrote tables/smoke/x.csv" in text and expected_cache in text and "~/.cache/x" in text
    assert nb.metadata["papermill"]["input_path"] == "notebooks/03_data.py"


def test_every_page_offers_its_notebook_and_source_and_says_where_it_was_executed(tmp_path):
    chapter = book.Chapter("03", book.REPO_ROOT / "notebooks" / "03_data.py", "03 Data")
    nb = book.finalize_notebook(_executed_notebook(tmp_path, tmp_path / "t"), chapter, book.REPO_ROOT / "book",
                                tables_dir=tmp_path / "t", profile="smoke")
    assert nb.cells[0].source == "# 03 Data"
    downloads = nb.cells[1].source
    assert "{download}`executed notebook <03_data.ipynb>`" in downloads
    assert "{download}`source 03_data.py <../notebooks/03_data.py>`" in downloads
    about = nb.cells[-1].source
    assert about.startswith("## About this page") and "no run of the experiment grid" in about
    assert "This page was executed on" in about
    again = book.finalize_notebook(nb, chapter, book.REPO_ROOT / "book", tables_dir=tmp_path / "t", profile="smoke")
    assert sum("{download}" in c.source for c in again.cells if c.cell_type == "markdown") == 1  # not added twice
    assert sum(c.source.startswith("## About this page") for c in again.cells) == 1


def _result(run_id: str, stage: str, device: str, day: str, commit: str | None = None) -> dict:
    return {"run_id": run_id, "stage": stage, "finished_utc": f"{day}T10:00:00Z",
            "environment": {"device": device, "torch": "2.11.0+cu130", "commit": commit}}


def test_provenance_says_where_the_results_were_computed_and_where_the_page_was_executed(tmp_path):
    from spdf_lib import env

    (tmp_path / "gpu" / "logs").mkdir(parents=True)
    results = [_result("a", "pretrain", "cuda: NVIDIA H100 80GB HBM3", "2026-11-30", "abc123"),
               _result("b", "eval", "cuda: NVIDIA H100 80GB HBM3", "2026-12-01", "abc123"),
               _result("c", "eval", "cpu: x86_64 (2 threads)", "2026-12-02")]
    text = env.provenance(results, tmp_path, "gpu", rendered_on="cpu: laptop", rendered_at="2026-12-03T08:00:00Z")
    assert text.startswith(env.PROVENANCE_MARKER) and "3 result(s)" in text
    assert "| cuda: NVIDIA H100 80GB HBM3 | 2.11.0+cu130 | 2 (1 eval, 1 pretrain) | 2026-11-30 to 2026-12-01 | `abc123` |" in text
    assert "| cpu: x86_64 (2 threads) | 2.11.0+cu130 | 1 (1 eval) | 2026-12-02 | not recorded |" in text
    assert "`tables/gpu/logs/`" in text and "`tables/gpu/runs/`" in text
    assert text.rstrip().endswith("This page was executed on cpu: laptop, 2026-12-03 08:00:00 UTC.")
    assert "logs" not in env.provenance(results, tmp_path, "cpu")  # no log folder for cpu: none named
    old = {"run_id": "d", "stage": "eval", "environment": {"device": "cuda: X", "torch": "2.0"}}
    assert "| cuda: X | 2.0 | 1 (1 eval) | not recorded | not recorded |" in env.provenance([old], tmp_path, "gpu")


def test_the_chapter_header_names_the_executing_machine_not_the_source_of_the_numbers(capsys):
    from spdf_lib import env

    env.chapter_header("smoke")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("profile: smoke")
    assert lines[1].startswith("page executed with spdf_lib") and env.describe_device() in lines[1]
    assert "Where these numbers come from" in lines[2]
    assert not any(line.startswith("spdf_lib") and "| device" in line for line in lines)  # the old claim


def test_results_record_their_date_and_commit():
    from spdf_lib import env

    environment = env.environment()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", environment["date"])
    head = subprocess.run(["git", "-C", str(book.REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)
    assert environment["commit"] == (head.stdout.strip() if head.returncode == 0 else None)


def test_a_chapter_that_shows_its_own_provenance_gets_no_second_one(tmp_path):
    from spdf_lib import env

    nb = _executed_notebook(tmp_path, tmp_path / "t")
    nb.cells.append(nbformat.v4.new_code_cell("display(...)", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/markdown": env.provenance([], tmp_path, "smoke")})]))
    chapter = book.Chapter("03", book.REPO_ROOT / "notebooks" / "03_data.py", "03 Data")
    out = book.finalize_notebook(nb, chapter, tmp_path / "book", tables_dir=tmp_path / "t", profile="smoke")
    assert not any(c.source.startswith("## About this page") for c in out.cells)


def test_the_committed_notebooks_name_no_absolute_path(repo_root):
    """The published notebooks were finished by finalize_notebook: no path of the machine that
    executed them (re-execute a chapter with make book PROFILE=gpu CHAPTER=NN to fix one)."""
    offenders = {}
    for path in sorted((repo_root / "book").glob("*.ipynb")):
        text = re.sub(r'"image/[a-z+]+": "[^"]*"', '"image": ""', path.read_text(encoding="utf-8"))
        found = book.ABSOLUTE_PATH.findall(text) + [r for r in (str(repo_root),) if r in text]
        if found:
            offenders[path.name] = sorted(set(found))[:3]
    assert not offenders, offenders


# ------------------------------------------------------------------ the ledger and the status page


def test_the_ledger_of_a_chapter_is_summarised_on_the_status_page(write_chapter, tmp_path):
    tables = tmp_path / "tables" / "smoke" / "runs" / "eval"
    tables.mkdir(parents=True)
    for i in range(3):
        (tables / f"r{i}.json").write_text(json.dumps(_result(f"r{i}", "eval", "cuda: H100", "2026-11-30", "c0ffee")))
    write_chapter("00_runs", body="""\
        import json, os
        with open(os.environ["SPDF_RUN_LEDGER"], "a") as ledger:
            for run_id, source in (("r0", "computed"), ("r1", "committed"), ("r2", "cached"), ("r1", "committed")):
                ledger.write(json.dumps({"stage": "eval", "run_id": run_id, "source": source}) + "\\n")
            ledger.write('{"stage": "eval", "run_')  # a line cut short by a kill
        """)
    result = _run_cli(tmp_path, "--profile", "smoke")
    assert result.returncode == 0, result.stderr
    row = json.loads((tmp_path / "book" / "_status.json").read_text())["chapters"]["00"]
    assert row["runs"] == {"cached": 1, "committed": 1, "computed": 1} and row["computed"] == ["eval/r0"]
    page = (tmp_path / "book" / "status.md").read_text()
    assert "| 1 | 1 committed, 1 cached |" in page and "- 00 A chapter: `eval/r0`" in page
    about = nbformat.read(tmp_path / "book" / "00_runs.ipynb", as_version=4).cells[-1].source
    assert "3 result(s)" in about and "| cuda: H100 |" in about and "`c0ffee`" in about
    assert "SPDF_RUN_LEDGER" not in os.environ  # set for the chapter's kernel only


def test_read_ledger_keeps_one_line_per_run_with_its_strongest_source(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"stage": "pretrain", "run_id": "a", "source": "committed"}\n'
                    '{"stage": "pretrain", "run_id": "a", "source": "computed"}\n'
                    'not json\n{"stage": "eval", "run_id": "a", "source": "cached"}\n')
    entries = book.read_ledger(path)
    assert book.summarize_ledger(entries) == ({"cached": 1, "computed": 1}, ("pretrain/a",))
    assert book.read_ledger(tmp_path / "absent.jsonl") == []


# ------------------------------------------------------------------ the README's commands


def _readme_commands(repo_root: Path) -> list[str]:
    """Every command line of the README's shell code blocks (comments and continuation lines dropped)."""
    text = (repo_root / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _env_and_words(line: str) -> tuple[dict, list[str]]:
    import shlex

    words = shlex.split(line)
    assignments = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    return assignments, words


def test_every_command_the_readme_shows_exists_as_shown(repo_root):
    """make targets and variables, environment variables, test paths, modules and scripts of every
    command in the README's code blocks."""
    commands = _readme_commands(repo_root)
    assert any(c.startswith("make book") for c in commands) and any("pytest" in c for c in commands)
    makefile = (repo_root / "Makefile").read_text()
    sources = "\n".join(p.read_text(encoding="utf-8") for folder in ("spdf_lib", "scripts", "tests")
                        for p in sorted((repo_root / folder).rglob("*")) if p.suffix in (".py", ".sh", "") and p.is_file()
                        and "__pycache__" not in p.parts)
    for line in commands:
        env, words = _env_and_words(line)
        if not words:
            continue
        make_vars = {}
        if words[0] == "make":
            make_vars = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            targets = [w for w in words[1:] if "=" not in w]
            dry = _dry_make(repo_root, *targets, *(f"{k}={v}" for k, v in make_vars.items()))
            assert dry.returncode == 0, f"README command {line!r}: {dry.stderr}"
            for name in make_vars:
                assert re.search(rf"^{name} \?=|\$\({name}\)|export {name}", makefile, re.M), \
                    f"README command {line!r}: the Makefile does not read {name}"
        for name in env:
            assert (re.search(rf"\b{name}\b", makefile) or f'"{name}"' in sources or f"${name}" in sources
                    or f"${{{name}" in sources), f"README command {line!r}: nothing reads the variable {name}"
        for word in words:
            if re.fullmatch(r"(tests|scripts|notebooks|benchmarks)/[\w./-]+", word):
                assert (repo_root / word).exists(), f"README command {line!r}: {word} does not exist"
            if word.startswith("scripts/"):
                assert os.access(repo_root / word, os.X_OK), f"README command {line!r}: {word} is not executable"
        if "-m" in words:
            module = words[words.index("-m") + 1]
            import importlib.util

            assert importlib.util.find_spec(module) is not None, f"README command {line!r}: no module {module}"


def test_the_readme_test_example_runs_only_the_chapter_it_names(repo_root):
    """SPDF_TEST_CHAPTERS=03 .venv/bin/pytest tests/test_chapters_smoke.py collects chapter 03 only,
    and the book it renders keeps its other pages (the table of contents opens on 03)."""
    examples = [c for c in _readme_commands(repo_root) if c.startswith("SPDF_TEST_CHAPTERS=")]
    assert examples, "the README shows how to test one chapter"
    for line in examples:
        env, words = _env_and_words(line)
        wanted = env["SPDF_TEST_CHAPTERS"]
        args = [w for w in words[words.index(next(w for w in words if w.endswith("pytest"))) + 1:]
                if not w.startswith("-")] if "pytest" in line else ["tests"]
        collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=repo_root,
                                   env={**os.environ, "SPDF_TEST_CHAPTERS": wanted}, capture_output=True, text=True,
                                   timeout=300)
        assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
        executed = re.findall(r"test_chapter_executes_at_smoke\[(\w+)\]", collected.stdout)
        assert executed and all(stem.startswith(wanted.zfill(2)) for stem in executed), executed
def test_ci_runs_exactly_the_readme_test_command(repo_root):
    ci = (repo_root / ".ci" / "run").read_text().strip().splitlines()
    assert ci[0] == "#!/usr/bin/env bash" and ci[-1] == "make test"
    readme = (repo_root / "README.md").read_text()
    assert "\nmake test\n" in readme
