"""Data layer: counts against the data README, clear errors, fine-tuning batches, packed streams."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from spdf_lib import data
from spdf_lib.tokenizer import train_tokenizer


from conftest import needs_data  # noqa: E402  (skips when no data directory is found)

# (rows, inputs, references) per split, from the data README (shared/data/README.md).
README_COUNTS = {
    ("e2e", "train"): 42_061, ("e2e", "validation"): 4_672, ("e2e", "test"): (630, 4_693),
    ("webnlg", "train"): 18_102, ("webnlg", "validation"): 2_268, ("webnlg", "test"): (1_862, 4_928),
    # DART test: 12,552 annotations in the file, one of them empty (a counted skip).
    ("dart", "test"): (5_097, 12_552 - 1),
    ("summarization", "train"): 1_780, ("summarization", "validation"): 222, ("summarization", "test"): (223, 223),
}


@needs_data
@pytest.mark.parametrize("name,split", sorted(README_COUNTS))
def test_split_counts_match_the_data_readme(name, split):
    ds = data.load_task(name, split)
    expected = README_COUNTS[(name, split)]
    if split == "test":
        assert ds.num_rows == expected[0]
        assert sum(len(r) for r in data.column(ds, "references")) == expected[1]
        assert "target" not in ds.column_names
    else:
        assert ds.num_rows == expected
        assert all(t.strip() for t in data.column(ds, "target"))


@needs_data
def test_dart_dev_is_split_by_triple_set_into_train_and_validation():
    train_idx, validation_idx = data.dart_dev_partition()
    assert len(train_idx) + len(validation_idx) == 2_768  # README: dev triple sets
    assert not set(train_idx) & set(validation_idx)
    assert len(validation_idx) == round(0.1 * 2_768)
    rows = data.load_task("dart", "train").num_rows + data.load_task("dart", "validation").num_rows
    assert rows == 6_980  # README: dev annotations
    assert data.data_quality("dart")["test"]["empty references skipped"] == 1


@needs_data
def test_e2e_test_groups_all_references_of_an_mr():
    test = data.load_task("e2e", "test")
    counts = [len(r) for r in data.column(test, "references")]
    assert min(counts) == 1 and max(counts) == 45  # README: 1-45 references per MR
    sources = data.column(test, "source")
    assert len(set(sources)) == len(sources)
    assert sources[0] == "name[Blue Spice], eatType[coffee shop], area[city centre]"


@needs_data
def test_webnlg_test_marks_the_five_unseen_categories():
    test = data.load_task("webnlg", "test")
    seen = data.column(test, "seen")
    unseen_categories = {c for c, s in zip(data.column(test, "category"), seen) if not s}
    assert len(unseen_categories) == 5
    assert seen.count(False) == 891  # README: testdata_unseen_with_lex.xml entries


@needs_data
def test_limit_takes_the_same_random_subset_every_time():
    a = data.load_task("webnlg", "train", limit=50)
    b = data.load_task("webnlg", "train", limit=50)
    assert a.num_rows == 50 and data.column(a, "source") == data.column(b, "source")
    assert len(set(data.column(a, "category"))) > 3  # not just the first file's category


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


def test_missing_data_root_gives_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("SPDF_DATA", str(missing))
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_task("e2e", "train")
    message = str(info.value)
    assert str(missing) in message and "SPDF_DATA" in message
    assert "tuetschek/e2e_nlg" in message and "Yale-LILY/dart" in message  # how to get the data


def _fake_root(monkeypatch, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SPDF_DATA", str(root))
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    return root


def test_missing_file_is_named(monkeypatch, tmp_path):
    _fake_root(monkeypatch, tmp_path)
    with pytest.raises(data.DataNotFoundError, match=r"e2e/trainset\.csv"):
        data.load_task("e2e", "train")


def test_malformed_csv_row_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    (root / "e2e").mkdir()
    (root / "e2e" / "trainset.csv").write_text('mr,ref\n"name[A]",Fine.\n"name[B]",too,many\n')
    with pytest.raises(ValueError, match=r"trainset\.csv.*data row 2"):
        data.load_task("e2e", "train")


def test_empty_csv_field_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    (root / "e2e").mkdir()
    (root / "e2e" / "devset.csv").write_text('mr,ref\n"name[A]",Fine.\n"name[B]",NA\n"name[C]",\n')
    with pytest.raises(ValueError, match=r"devset\.csv: data row 3: field 'ref'"):
        data.load_task("e2e", "validation")


def test_malformed_jsonl_line_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    folder = root / "summarization" / "bbc_news_summary"
    folder.mkdir(parents=True)
    good = {"category": "tech", "file": "001.txt", "article": "A\n\nB.", "summary": "B."}
    (folder / "valid.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + '{"category": "tech",\n')
    with pytest.raises(ValueError, match=r"valid\.jsonl.*line 3"):
        data.load_task("summarization", "validation")


def test_malformed_xml_entry_is_named(monkeypatch, tmp_path):
    root = _fake_root(monkeypatch, tmp_path)
    folder = root / "dart"
    folder.mkdir()
    (folder / "dart-v1.1.1-full-test.xml").write_text(textwrap.dedent("""\
        <benchmark><entries>
          <entry category="MISC" eid="Id1" size="1"><modifiedtripleset><mtriple>a | b | c</mtriple>
            </modifiedtripleset><lex comment="e2e" lid="Id1">A b c.</lex></entry>
          <entry category="MISC" eid="Id2" size="1"><modifiedtripleset><mtriple>a | b</mtriple>
            </modifiedtripleset><lex comment="e2e" lid="Id1">A b.</lex></entry>
        </entries></benchmark>"""))
    with pytest.raises(ValueError, match=r"full-test\.xml: entry 2 \(eid='Id2'\)"):
        data.load_task("dart", "test")


def test_linearize_triples():
    triples = ['Abilene_Regional_Airport | cityServed | "Abilene, Texas"', "A | NO._OF_CHANNELS | 1"]
    assert data.linearize_triples(triples) == "Abilene Regional Airport | cityServed | Abilene, Texas ; A | NO. OF CHANNELS | 1"


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


# ---------------------------------------------------------------------------------------------
# Fine-tuning examples and batches
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_tok():
    corpus = ["name[The Eagle], eatType[coffee shop], food[French]. The Eagle is a French coffee shop."] * 50
    corpus += ["The quick brown fox jumps over the lazy dog. Café prices: £20-25."] * 50
    return train_tokenizer(corpus, vocab_size=320)


def test_loss_mask_covers_exactly_the_target_tokens(tiny_tok):
    pairs = {"source": ["name[The Eagle], food[French]", "name[X]"],
             "target": ["The Eagle serves French food.", "X is a café."]}
    examples = data.encode_finetune(tiny_tok, pairs, max_len=200)
    idx, targets = next(data.finetune_batches(examples, batch_size=2, seed=0, epoch=0, pad_id=tiny_tok.pad_id))
    for row in range(2):
        # find which example this row is (batches are shuffled)
        n = int((targets[row] != -100).sum())
        kept = targets[row][targets[row] != -100].tolist()
        matches = [i for i in range(2) if tiny_tok.encode(" " + pairs["target"][i]) + [tiny_tok.eos_id] == kept]
        assert len(matches) == 1
        e = examples[matches[0]]
        # targets are predicted from the separator onwards: positions n_source .. n_source + n - 1
        positions = (targets[row] != -100).nonzero().flatten().tolist()
        assert positions == list(range(e.n_source, e.n_source + n))
        assert idx[row, e.n_source].item() == tiny_tok.sep_id
        assert sum(e.loss_mask) == n


def test_truncation_respects_max_len_and_keeps_target_share(tiny_tok):
    assert data.truncation_lengths(10, 5, 100) == (10, 5)
    assert data.truncation_lengths(300, 20, 101) == (80, 20)  # source cut, target whole
    assert data.truncation_lengths(300, 200, 101) == (50, 50)  # both cut, target gets half
    long = {"source": ["word " * 400], "target": ["short answer"]}
    (e,) = data.encode_finetune(tiny_tok, long, max_len=64)
    assert len(e) == 64 and e.source_truncated and not e.target_truncated
    assert e.input_ids[-1] == tiny_tok.eos_id
    with pytest.raises(ValueError, match="max_len"):
        data.truncation_lengths(1, 1, 3)


def test_finetune_batches_are_deterministic_bucketed_and_complete(tiny_tok):
    sources = [f"name[{'x' * (i % 17)}]" for i in range(100)]
    pairs = {"source": sources, "target": ["ok" + " fine" * (i % 7) for i in range(100)]}
    examples = data.encode_finetune(tiny_tok, pairs, max_len=128)
    order_a = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=0)
    order_b = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=0)
    order_c = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=1)
    assert order_a == order_b and order_a != order_c
    assert sorted(i for b in order_a for i in b) == list(range(100))
    batches = list(data.finetune_batches(examples, 8, seed=1, epoch=0, pad_id=tiny_tok.pad_id))
    assert len(batches) == 13
    for idx, targets in batches:
        assert idx.dtype == torch.long and targets.shape == idx.shape


def test_encode_finetune_rejects_a_test_split_without_targets(tiny_tok):
    with pytest.raises(ValueError, match="as_pairs"):
        data.encode_finetune(tiny_tok, {"source": ["a"], "references": [["b"]]}, max_len=32)


# ---------------------------------------------------------------------------------------------
# Packed pre-training batches
# ---------------------------------------------------------------------------------------------

def test_packed_batch_is_a_function_of_step_and_covers_each_window_once_per_pass():
    tokens = np.arange(1000, dtype=np.uint16)
    seq_len, batch = 9, 4  # windows of 10 tokens: 100 windows, 25 steps per pass
    x1, y1 = data.packed_batch(tokens, 7, batch, seq_len, seed=3)
    x2, y2 = data.packed_batch(tokens, 7, batch, seq_len, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # y is x shifted by one
    starts = [int(data.packed_batch(tokens, s, batch, seq_len, seed=3)[0][i, 0])
              for s in range(25) for i in range(batch)]
    assert sorted(starts) == list(range(0, 1000, 10))
    second_pass = [int(data.packed_batch(tokens, s, batch, seq_len, seed=3)[0][i, 0])
                   for s in range(25, 50) for i in range(batch)]
    assert sorted(second_pass) == list(range(0, 1000, 10)) and second_pass != starts
    assert data.passes_for(2000, tokens) == 2.0
    assert data.passes_for(1800, tokens, seq_len=9) == 2.0  # 100 windows x 9 predicted tokens
    with pytest.raises(ValueError):
        data.packed_batch(tokens[:5], 0, 1, 9, seed=0)
