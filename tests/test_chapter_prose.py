"""No number is typed into a chapter's prose: the chapter computes it, or it is not there.

Every markdown cell of ``notebooks/*.py`` is scanned for digits. A digit is allowed only in one of
these forms, and nowhere else:

* a marked quotation: a line of a ``>`` block quote (the paper's own words, with their source);
* a formula, ``$...$`` or ``$$...$$``, and inline code or a fenced code block;
* a chapter, figure, table, exercise or section number ("chapter 05", "Figure 4.2", "Tables 1 and 2"),
  and a hypothesis label (H1, H2, H3);
* a year in the text of a link to a bibliography entry (``[Hoffmann et al. 2022](#bib-chinchilla)``);
* the chapter's own number in its title (``# 01 Weight sparsity``);
* one of the names in ``NAMES``, which contain digits but are not numbers (E2E, GPT-3, ...).

Numbers that the code computes belong in the cell outputs (``display(Markdown(...))``), which are
not scanned.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))

NAMES = ("E2E", "GPT-2", "GPT-3", "CS-2", "H100")

_CELL = re.compile(r"^# %%")
_MARKDOWN_CELL = re.compile(r"^# %%.*\[(?:markdown|md)\]")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ALLOWED = (
    re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.DOTALL),  # formulas
    re.compile(r"`[^`]+`"),  # inline code
    re.compile(r"\b(?:chapters?|figures?|tables?|exercises?|sections?)\s+\d+(?:\.\d+)?"
               r"(?:\s*(?:,|and|or|to|-|–)\s*\d+(?:\.\d+)?)*", re.IGNORECASE),  # numbered references
    re.compile(r"\bH\d\b"),  # hypothesis labels
    re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in NAMES) + r")(?![\w])"),  # names
)
_BIB_LINK = re.compile(r"\[([^\]]*)\]\(#bib-[a-z0-9-]+\)")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_TITLE = re.compile(r"^#\s+(\d\d)\s")


def markdown_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line of every markdown cell of a jupytext percent file."""
    out, in_markdown = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _CELL.match(line):
            in_markdown = bool(_MARKDOWN_CELL.match(line))
            continue
        if in_markdown and line.startswith("#"):
            out.append((number, line[2:] if line.startswith("# ") else line[1:]))
    return out


def _blank(match: re.Match) -> str:
    """The matched text with every character but line breaks turned into a space."""
    return re.sub(r"[^\n]", " ", match.group(0))


def _prose_paragraphs(lines: list[tuple[int, str]]):
    """Paragraphs of prose as lists of (line number, text): fenced code, display math and block
    quotes are left out; a blank line, a gap in the numbering (a new cell) or a skipped line ends one."""
    paragraph, in_fence, in_math, previous = [], False, False, None
    for number, text in lines:
        if previous is not None and number != previous + 1 and paragraph:
            yield paragraph
            paragraph = []
        previous = number
        if _FENCE.match(text):
            in_fence = not in_fence
        elif not in_fence and text.strip().startswith("$$") and text.count("$$") == 1:
            in_math = not in_math
        elif not (in_fence or in_math or text.lstrip().startswith(">") or not text.strip()):
            paragraph.append((number, text))
            continue
        if paragraph:
            yield paragraph
            paragraph = []
    if paragraph:
        yield paragraph


def typed_digits(lines: list[tuple[int, str]], chapter_number: str | None = None) -> list[tuple[int, str]]:
    """The lines that hold a digit outside every allowed form, as (line number, text).

    Allowed forms are matched across the line breaks of a paragraph (inline code or a reference
    such as "chapter 03" may be wrapped)."""
    offenders, title_seen = [], False
    for paragraph in _prose_paragraphs(lines):
        texts = [text for _, text in paragraph]
        title = _TITLE.match(texts[0])
        if title and not title_seen:
            title_seen = True
            if title.group(1) == chapter_number:
                texts[0] = " " * title.end() + texts[0][title.end():]
        rest = "\n".join(texts)
        rest = _BIB_LINK.sub(lambda m: " " + _YEAR.sub(lambda y: " " * len(y.group(0)), m.group(1))
                             + re.sub(r"[^\n]", " ", m.group(0)[len(m.group(1)) + 1:]), rest)
        for pattern in _ALLOWED:
            rest = pattern.sub(_blank, rest)
        for (number, text), scanned in zip(paragraph, rest.split("\n")):
            if re.search(r"\d", scanned):
                offenders.append((number, text.strip()))
    return offenders


# ------------------------------------------------------------------------------ the scanner itself

def _scan(*texts: str, chapter: str | None = None) -> list[str]:
    return [text for _, text in typed_digits(list(enumerate(texts, start=1)), chapter)]


@pytest.mark.parametrize("text", [
    "the loss fell by 0.3 nats",
    "75% of the weights are zero",
    "a budget of 20 tokens per parameter",
    "published in 2022",  # a year outside a bibliography link
    "[see 12 pages](#bib-chinchilla)",  # not a year, inside the link
    "[the data](https://example.org/2022)",  # only links to the bibliography are allowed
    "GPT-4 is not in the list of names",
    "1. a numbered list item",
    "the 2nd run",
])
def test_typed_numbers_are_found(text):
    assert _scan(text) == [text]


@pytest.mark.parametrize("text", [
    "> \"pre-train GPT-3 XL with up to 75% unstructured sparsity\"",
    "the density is $1 - s$ and the cost $2 \\cdot L \\cdot d^2$",
    "windows of `seq_len + 1` tokens",
    "chapter 05 fine-tunes; chapters 04 and 06 pre-train and test",
    "Figure 4.2: perplexity against sparsity (log scale)",
    "Tables 1-2 and Table 3",
    "**Exercise 1.2.** Change the level",
    "H1 and H3",
    "[Hoffmann et al. 2022](#bib-chinchilla) and [WebNLG 2017](#bib-webnlg)",
    "E2E, GPT-2 Small and GPT-3 XL on a Cerebras CS-2",
    "no digits at all",
])
def test_allowed_forms_pass(text):
    assert _scan(text) == []


def test_fenced_code_and_display_math_are_skipped_but_what_follows_is_not():
    assert _scan("```bash", "make book PROFILE=smoke 3", "```", "$$", "x = 2", "$$", "then 7 runs") == ["then 7 runs"]


def test_only_the_chapter_title_number_is_allowed():
    assert _scan("# 03 Data", chapter="03") == []
    assert _scan("# 04 Data", chapter="03") == ["# 04 Data"]
    assert _scan("# 03 Data", "## 03 again", chapter="03") == ["## 03 again"]


def test_the_parser_finds_every_markdown_cell(tmp_path):
    jupytext = pytest.importorskip("jupytext")
    for path in CHAPTERS:
        expected = [c.source for c in jupytext.read(path).cells if c.cell_type == "markdown"]
        text = "\n".join(line for _, line in markdown_lines(path))
        missing = [src.splitlines()[0] for src in expected if src.strip() and src.splitlines()[0] not in text]
        assert not missing, f"{path.name}: markdown cells the scanner does not see: {missing}"


# ------------------------------------------------------------------------------ the chapters

@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_prose_has_no_typed_numbers(path):
    offenders = typed_digits(markdown_lines(path), path.name[:2])
    assert not offenders, (
        f"notebooks/{path.name}: digits typed into the prose (compute the number in a code cell and "
        f"display it, quote it as a > block quote with its source, or write it as a formula):\n"
        + "\n".join(f"  line {number}: {text}" for number, text in offenders))
