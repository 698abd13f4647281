"""The tokenizer (spdf_lib.data.tokenizer): round trip on the fine-tuning format, special tokens, the cache."""

from __future__ import annotations

import pytest

from spdf_lib import data
from spdf_lib.data import tokenizer
from spdf_lib.data.tokenizer import EOS_TOKEN, SEP_TOKEN, train_tokenizer

from _corpus_tokenizer import CORPUS, corpus_tokenizer
from conftest import needs_data  # noqa: E402  (skips when no data directory is found)


@pytest.fixture(scope="module")
def tok():
    return corpus_tokenizer()


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


