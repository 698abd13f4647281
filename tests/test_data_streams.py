"""The pre-training token stream (spdf_lib.data.streams): exact chunked encoding, the cache, packed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spdf_lib import data
from spdf_lib.data import streams

from _corpus_tokenizer import CORPUS, corpus_tokenizer
from conftest import needs_data  # noqa: E402  (skips when no data directory is found)


@pytest.fixture(scope="module")
def tok():
    return corpus_tokenizer()


def test_split_for_encoding_gives_the_same_tokens_as_the_whole_text(tok):
    text = "".join(CORPUS) + "trailing  spaces \n\n  indented line\nlast"
    pieces = data.split_for_encoding(text, piece_chars=50)
    assert len(pieces) > 10 and "".join(pieces) == text
    assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)
    stream = data.tokenize_documents(tok, [text, "second doc"], verbose=False)
    assert stream.dtype == np.uint16
    assert stream.tolist() == tok.encode(text) + [tok.eos_id] + tok.encode("second doc") + [tok.eos_id]


@needs_data
def test_token_stream_cache_survives_an_interrupted_run(monkeypatch, tmp_path, tok):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    path = data.pretraining_tokens_path(tok, "validation", limit_docs=1)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(streams, "tokenize_documents", boom)
    with pytest.raises(KeyboardInterrupt):
        data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert not path.exists()
    monkeypatch.undo()
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    tokens = data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert path.exists() and tokens.dtype == np.uint16
    assert int((tokens == tok.eos_id).sum()) == 3  # one EOS after each of the 3 documents
    # A corrupted cache file is detected by its checksum and rebuilt, never used.
    streams._token_memo.clear()
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = data.pretraining_tokens(tok, "validation", limit_docs=1, verbose=False)
    assert np.array_equal(rebuilt, tokens)


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
