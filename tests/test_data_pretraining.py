"""The pre-training mixture (spdf_lib.data.pretraining): document counts, interleaving, Gutenberg licence removal."""

from __future__ import annotations

from spdf_lib import data

from conftest import needs_data  # noqa: E402  (skips when no data directory is found)


@needs_data
def test_pretraining_document_counts_match_the_data_readme():
    summary = data.pretraining_summary("validation")
    docs = {c: info["documents"] for c, info in summary["corpora"].items()}
    assert docs == {"wikipedia_en": 173, "gutenberg": 7, "blog_authorship": 1_468}
    gutenberg = summary["corpora"]["gutenberg"]
    assert gutenberg["header_marker_stripped"] + gutenberg["header_small_print_stripped"] == 7
    ds = data.load_pretraining("validation")
    assert ds.num_rows == sum(docs.values())
    assert not any("*** START OF" in t for t in data.column(ds, "text"))


@needs_data
def test_limit_docs_takes_the_first_documents_of_each_corpus_interleaved():
    ds = data.load_pretraining("validation", limit_docs=5)
    corpora = data.column(ds, "corpus")
    assert {c: corpora.count(c) for c in data.PRETRAIN_CORPORA} == {c: 5 for c in data.PRETRAIN_CORPORA}
    # Interleaved: the corpora alternate instead of following one another.
    changes = sum(a != b for a, b in zip(corpora, corpora[1:]))
    assert changes > 2


def test_strip_gutenberg_keeps_only_the_book():
    book = ("The Project Gutenberg EBook of X\nlicence text\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\n"
            "Chapter 1\nIt was a dark night.\n\nEnd of the Project Gutenberg EBook of X\n\n"
            "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nmore licence\n")
    result = data.strip_gutenberg(book)
    assert result.text == "Chapter 1\nIt was a dark night."
    assert result.header == "marker" and result.footer
    old = ("header\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nBody.\n\n"
           "End of this Project Gutenberg Etext of Crito, by Plato\n\n")
    result = data.strip_gutenberg(old)
    assert result.text == "Body." and result.header == "small print" and result.footer
    plain = data.strip_gutenberg("No licence here.")
    assert plain.text == "No licence here." and plain.header == "" and not plain.footer
