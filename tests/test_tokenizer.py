"""Tokenizer: round trip on the fine-tuning format, special tokens, exact chunked encoding, caches."""

from __future__ import annotations

import numpy as np
import pytest

from spdf_lib import data, tokenizer
from spdf_lib.tokenizer import EOS_TOKEN, SEP_TOKEN, train_tokenizer

CORPUS = [
    "name[The Eagle], eatType[coffee shop], food[French], priceRange[£20-25]. "
    "The Eagle is a French coffee shop near Burger King.\n\nIt costs £20-25 — a bargain.",
    "Abilene Regional Airport | cityServed | Abilene, Texas ; Texas | capital | Austin",
    "Chapter 1\n\nIt was a bright cold day in April, and the clocks were striking thirteen.\n",
] * 40


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=400)


from conftest import needs_data  # noqa: E402  (skips when no data directory is found)


@pytest.mark.parametrize("source,target", [
    ("name[The Eagle], eatType[coffee shop]", "The Eagle is a coffee shop."),
    ("Abilene_Regional_Airport | cityServed | Abilene,_Texas", "Abilene, Texas is served by the airport."),
    ("name[Café Rouge], priceRange[£30]", "Café Rouge — prices over £30 ✓ 😀"),  # bytes outside the corpus
    ("  leading and\ttabs\n", "  two spaces\n\nand newlines  "),
])
def test_round_trip_on_the_finetuning_format(tok, source, target):
    text = data.format_example(source, target)
    ids = tok.encode(text)
    assert ids == tok.encode(source) + [tok.sep_id] + tok.encode(" " + target) + [tok.eos_id]
    assert ids.count(tok.sep_id) == 1 and ids[-1] == tok.eos_id
    assert tok.decode(ids) == text
    (example,) = data.encode_finetune(tok, {"source": [source], "target": [target]}, max_len=10_000)
    assert list(example.input_ids) == ids
    assert tok.decode(ids, skip_special_tokens=True) == source + " " + target


def test_special_tokens_and_vocabulary(tok):
    assert tok.vocab_size == 400
    assert len({tok.sep_id, tok.eos_id, tok.pad_id}) == 3
    assert tok.token_strings([tok.sep_id, tok.eos_id]) == [SEP_TOKEN, EOS_TOKEN]
    assert tok.encode_batch(["a b", "c"]) == [tok.encode("a b"), tok.encode("c")]
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(CORPUS, vocab_size=100)


def test_split_for_encoding_gives_the_same_tokens_as_the_whole_text(tok):
    text = "".join(CORPUS) + "trailing  spaces \n\n  indented line\nlast"
    pieces = data.split_for_encoding(text, piece_chars=50)
    assert len(pieces) > 10 and "".join(pieces) == text
    assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)
    stream = data.tokenize_documents(tok, [text, "second doc"], verbose=False)
    assert stream.dtype == np.uint16
    assert stream.tolist() == tok.encode(text) + [tok.eos_id] + tok.encode("second doc") + [tok.eos_id]


@needs_data
def test_get_tokenizer_is_cached_and_never_half_written(monkeypatch, tmp_path):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    first = tokenizer.get_tokenizer(300, 20_000, limit_docs=2, verbose=False)
    assert first.path is not None and first.path.exists()
    assert not list(first.path.parent.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("must load from the cache, not retrain")

    monkeypatch.setattr(tokenizer, "train_tokenizer", fail)
    again = tokenizer.get_tokenizer(300, 20_000, limit_docs=2, verbose=False)
    assert again.fingerprint == first.fingerprint
    # A training run that dies leaves nothing behind for the next run to trust.
    with pytest.raises(AssertionError):
        tokenizer.get_tokenizer(301, 20_000, limit_docs=2, verbose=False)
    assert len(list((tmp_path / "tokenizer").rglob("tokenizer.json"))) == 1


@needs_data
def test_token_stream_cache_survives_an_interrupted_run(monkeypatch, tmp_path, tok):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    path = data.pretraining_tokens_path(tok, "validation", limit_docs=1)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "tokenize_documents", boom)
    with pytest.raises(KeyboardInterrupt):
        data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert not path.exists()
    monkeypatch.undo()
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    tokens = data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert path.exists() and tokens.dtype == np.uint16
    assert int((tokens == tok.eos_id).sum()) == 3  # one EOS after each of the 3 documents
    # A corrupted cache file is detected by its checksum and rebuilt, never used.
    data._token_memo.clear()
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert np.array_equal(rebuilt, tokens)
