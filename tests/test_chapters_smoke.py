"""Every chapter executed at the ``smoke`` profile, the book rendered from it, and checked in a browser.

Everything is written under a temporary folder: the executed notebooks, ``tables/``, the results cache
(``SPDF_CACHE``) and the HTML. The committed ``book/`` and ``tables/`` are never touched. Chapters are
picked up from ``notebooks/NN_*.py`` and pages from ``_toc.yml``, so a new chapter is tested as soon as
its file exists. ``SPDF_TEST_CHAPTERS="00 03"`` (or any single chapter, ``SPDF_TEST_CHAPTERS=03``)
restricts the run to some chapters while one is being written; the rendered book then holds only
those chapters and the hand-written pages, and opens on the first of them.

The browser check looks at what a reader sees on every page: it loads, every image is drawn, no console
error, no request leaves the machine, no table cell is cut short ("..."), every figure has a caption
("Figure N.M: ..." in the cell after it), no absolute path of this machine appears, and the page offers
its executed notebook and its ``.py`` source for download.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import yaml

from conftest import SMOKE_WALLS
from spdf_lib import book

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _selected_chapters() -> list[book.Chapter]:
    chapters = book.discover_chapters(REPO_ROOT / "notebooks")
    wanted = os.environ.get("SPDF_TEST_CHAPTERS", "").replace(",", " ").split()
    if not wanted:
        return chapters
    return [c for w in wanted for c in book.select_chapters(chapters, w)]


CHAPTERS = _selected_chapters()
ALL_CHAPTERS = book.discover_chapters(REPO_ROOT / "notebooks")
RESTRICTED = len(CHAPTERS) < len(ALL_CHAPTERS)


@dataclass
class SmokeBook:
    root: Path
    book_dir: Path
    tables_dir: Path
    toc: Path
    walls: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, request) -> SmokeBook:
    """Execute the chapters at ``smoke`` into a temporary copy of the book, one after the other."""
    root = tmp_path_factory.mktemp("smoke_book")
    # Static parts of the book (vendored MathJax, images, hand-written pages), not the executed ones:
    # the same preparation as a build at a profile other than the published one.
    book_dir = book.prepare_book_dir(root / "book")
    toc = root / "_toc.yml"
    dropped = {c.stem for c in ALL_CHAPTERS} - {c.stem for c in CHAPTERS}
    toc.write_text(yaml.safe_dump(book.filtered_toc(yaml.safe_load((REPO_ROOT / "_toc.yml").read_text()),
                                                    lambda page: page not in dropped), sort_keys=False))
    run = SmokeBook(root=root, book_dir=book_dir, tables_dir=root / "tables", toc=toc)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPDF_CACHE", str(root / "cache"))
        mp.delenv("FORCE", raising=False)
        mp.delenv("SPDF_FORCE_BEFORE", raising=False)
        walls = request.config.stash.setdefault(SMOKE_WALLS, {})
        for chapter in CHAPTERS:
            # Later chapters may reuse what earlier ones cached, so they run in order, like make book;
            # a failure is recorded and the next chapter still runs, so each gets its own verdict.
            start = time.perf_counter()
            try:
                [result] = book.run("smoke", chapter.number, book_dir=book_dir, tables_dir=run.tables_dir,
                                    notebooks_dir=REPO_ROOT / "notebooks", work_dir=root / "work",
                                    progress_bar=False)
                run.walls[chapter.stem] = result.wall_s
                walls[chapter.stem] = (result.wall_s, "ok")
            except book.BuildInterrupted as error:  # Ctrl-C stops the test session, not only this chapter
                raise KeyboardInterrupt(str(error)) from None
            except book.BookError as error:
                run.failures[chapter.stem] = str(error)
                walls[chapter.stem] = (time.perf_counter() - start, "FAILED")
    return run


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.stem)
def test_chapter_executes_at_smoke(smoke_book, chapter):
    if chapter.stem in smoke_book.failures:
        pytest.fail(smoke_book.failures[chapter.stem], pytrace=False)
    nb = nbformat.read(smoke_book.book_dir / f"{chapter.stem}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "profile: smoke" in text, "every chapter must call spdf_lib.env.chapter_header(profile) first"


def test_executed_notebooks_hold_no_absolute_path_of_this_machine(smoke_book):
    """Outputs, papermill's injected parameters and the metadata: nothing names a folder of the
    machine that executed the chapter (paths become relative, or <tables>, <data>, <cache>, ~ ...)."""
    roots = _machine_roots(smoke_book.root)
    for chapter in CHAPTERS:
        if chapter.stem in smoke_book.failures:
            continue
        raw = (smoke_book.book_dir / f"{chapter.stem}.ipynb").read_text(encoding="utf-8")
        text = re.sub(r'"image/[a-z+]+": "[^"]*"', '"image": ""', raw)  # base64 images are not text
        found = _named_roots(text, roots)
        assert not found, f"{chapter.stem}.ipynb names folders of this machine: {found}"
        assert not book.ABSOLUTE_PATH.search(text), \
            f"{chapter.stem}.ipynb holds an absolute path: {book.ABSOLUTE_PATH.search(text).group(0)}"
        nb = nbformat.reads(raw, as_version=4)
        assert nb.metadata["papermill"]["parameters"]["tables_dir"] in ("<tables>", "../tables")


def test_chapters_write_tables_only_under_the_profile_folder(smoke_book):
    assert smoke_book.tables_dir.exists(), "the smoke chapters wrote no tables at all"
    stray = [p.name for p in smoke_book.tables_dir.iterdir() if p.name != "smoke"]
    assert not stray, f"tables written outside tables/<profile>/: {stray}"
    leftovers = [str(p) for p in smoke_book.tables_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left in tables/: {leftovers}"


@pytest.fixture(scope="session")
def smoke_html(smoke_book) -> Path:
    if smoke_book.failures:
        pytest.fail(f"not rendered: chapters failed: {', '.join(smoke_book.failures)}", pytrace=False)
    try:
        return book.render(smoke_book.book_dir, smoke_book.root / "site", toc=smoke_book.toc)
    except book.BookError as error:
        pytest.fail(str(error), pytrace=False)


def test_the_book_renders_with_no_warnings(smoke_html, smoke_book):
    for page in book.toc_files(smoke_book.toc):
        assert (smoke_html / f"{page}.html").exists(), page
    status = (smoke_html / "status.html").read_text(encoding="utf-8")
    assert all(f">{c.number}<" in status for c in CHAPTERS)


def _machine_roots(build_root: Path) -> list[str]:
    """Folders of this machine that must not appear in a page or a committed notebook."""
    from spdf_lib import data

    roots = {str(REPO_ROOT), str(REPO_ROOT.resolve()), str(build_root), str(build_root.resolve()),
             str(Path.home()), tempfile.gettempdir()}
    try:
        roots.add(str(data.data_root(verbose=False)))
    except data.DataNotFoundError:
        pass
    return sorted(r for r in roots if r not in ("/", ""))


def _named_roots(text: str, roots: list[str]) -> list[str]:
    """The roots that ``text`` names as a path (the root itself, or a path below it)."""
    return [r for r in roots if re.search(re.escape(r) + r"(?![\w.-])", text)]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


@pytest.fixture(scope="session")
def site(smoke_html):
    """The rendered book served on 127.0.0.1 at a free port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(smoke_html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser_context():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs the Debian package chromium.",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        yield context
        context.close()
        browser.close()


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in ("127.0.0.1", "localhost")


# Run in the page: what a reader sees that a build log cannot show.
_READER_CHECKS = """() => {
  const cut = [...document.querySelectorAll('table td, table th')]
      .map(c => c.innerText.trim()).filter(t => /(\\.\\.\\.|\u2026)$/.test(t));
  const uncaptioned = [];
  for (const img of document.querySelectorAll('.cell_output img, .output img')) {
    const figure = img.closest('figure');
    if (figure && figure.querySelector('figcaption')) continue;
    const cell = img.closest('div.cell');
    let next = cell ? cell.nextElementSibling : null;
    while (next && next.innerText.trim() === '') next = next.nextElementSibling;
    const text = next ? next.innerText.trim() : '';
    if (!/^(Figure|Fig\\.) [0-9A-Z]+(\\.[0-9]+)?[:.]/.test(text)) uncaptioned.push([img.currentSrc || img.src, text.slice(0, 80)]);
  }
  const downloads = [...document.querySelectorAll('a[href*="_downloads/"]')].map(a => a.getAttribute('href'));
  // a table wider than the page scrolls inside its output; its caption must stay readable without scrolling
  const wideCaptions = [];
  for (const caption of document.querySelectorAll('table caption')) {
    let box = caption.closest('table').parentElement;
    while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
    if (box && caption.getBoundingClientRect().width > box.clientWidth + 2) wideCaptions.push(caption.innerText.slice(0, 60));
  }
  return {cut, uncaptioned, downloads, wideCaptions, text: document.body.innerText,
          html: document.documentElement.outerHTML};
}"""


@pytest.mark.parametrize("page_name", book.toc_files(REPO_ROOT / "_toc.yml"))
def test_page_loads_cleanly_in_a_browser(site, browser_context, smoke_book, smoke_html, page_name):
    if page_name not in book.toc_files(smoke_book.toc):
        pytest.skip(f"{page_name} is not part of this restricted run")
    page = browser_context.new_page()
    external, errors, bad = [], [], []

    def route(r):
        if _is_local(r.request.url):
            r.continue_()
        else:  # never wait on the network: record and refuse
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: bad.append(f"{r.url}: {r.failure}") if _is_local(r.url) else None)
    page.on("response", lambda r: bad.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None)
    try:
        response = page.goto(f"{site}/{page_name}.html", wait_until="networkidle")
        assert response is not None and response.status == 200
        # Load lazy images too, then wait for every image to finish (or fail).
        page.evaluate("""() => Promise.all([...document.images].map(img => {
            img.loading = 'eager';
            return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
        }))""")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.currentSrc || e.src, e.naturalWidth])")
        assert not [src for src, width in images if not width], f"images not drawn on {page_name}: {images}"
        assert not external, f"requests leaving localhost from {page_name}: {external}"
        assert not errors, f"console errors on {page_name}: {errors}"
        assert not bad, f"failed requests on {page_name}: {bad}"
        seen = page.evaluate(_READER_CHECKS)
        assert not seen["cut"], f"table cells cut short on {page_name}: {seen['cut'][:10]}"
        assert not seen["wideCaptions"], \
            f"table captions wider than the page on {page_name} (the reader must scroll to read them): " \
            f"{seen['wideCaptions'][:5]}"
        assert not seen["uncaptioned"], \
            f"figures without a caption ('Figure N.M: ...' in the cell after them) on {page_name}: {seen['uncaptioned']}"
        roots = _named_roots(seen["html"], _machine_roots(smoke_book.root))
        assert not roots, f"{page_name} shows folders of this machine: {roots}"
        assert not book.ABSOLUTE_PATH.search(seen["text"]), \
            f"{page_name} shows an absolute path: {book.ABSOLUTE_PATH.search(seen['text']).group(0)}"
        if (REPO_ROOT / "notebooks" / f"{page_name}.py").exists():  # a chapter: both downloads offered
            names = sorted(Path(href).name for href in seen["downloads"])
            assert names == sorted([f"{page_name}.ipynb", f"{page_name}.py"]), \
                f"{page_name} must offer its notebook and its .py source for download, offers {names}"
            for href in seen["downloads"]:
                assert (smoke_html / href).is_file(), f"{page_name}: the download {href} is missing from the site"
    finally:
        page.close()
