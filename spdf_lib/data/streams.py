"""The pre-training token stream and its packed batches (chapter 03).

:func:`pretraining_tokens` encodes a split of the mixture into one stream of token ids, every
document followed by ``<|eos|>``, and caches it as ``.npy`` keyed by the tokenizer and data
fingerprints (written atomically, with a checksum). :func:`packed_batch` cuts the stream into
non-overlapping windows and serves batch ``step`` of a run as a pure function of (step, seed), so a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .. import store
from .files import check_pretrain_split, pretraining_fingerprint
from .pretraining import load_pretraining, pretraining_summary
from .readers import column

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tokenizer import SpdfTokenizer


_SAFE_CUT = re.compile(r"\S(?=\n)")
ENCODE_PIECE_CHARS = 32_768  # long documents are cut into pieces of about this size for parallel encoding
ENCODE_BATCH_CHARS = 4_000_000  # characters per encode_batch call (the progress bar's step)


def split_for_encoding(text: str, piece_chars: int = ENCODE_PIECE_CHARS) -> list[str]:
    """Cut ``text`` into pieces whose encodings concatenate to the encoding of ``text``.

    Cuts are made only between a non-space character and a newline: the GPT-2 pre-tokenizer always
    separates words there, so no BPE merge can cross a cut. (Checked in tests/test_data_streams.py.)
    """
    if len(text) <= piece_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        match = _SAFE_CUT.search(text, start + piece_chars)
        if match is None:
            break
        pieces.append(text[start:match.end()])
        start = match.end()
    pieces.append(text[start:])
    return pieces


def token_dtype(vocab_size: int):
    """uint16 when every id fits (halves memory and disk), else uint32."""
    return np.uint16 if vocab_size <= 65535 else np.uint32


def _document_batches(texts: list[str], max_chars: int) -> Iterator[tuple[list[str], int]]:
    batch, chars = [], 0
    for text in texts:
        batch.append(text)
        chars += len(text)
        if chars >= max_chars:
            yield batch, chars
            batch, chars = [], 0
    if batch:
        yield batch, chars


def tokenize_documents(tok: "SpdfTokenizer", texts: list[str], verbose: bool = True,
                       desc: str = "tokenizing") -> np.ndarray:
    """Encode documents into one stream, each followed by EOS, with a progress bar."""
    from tqdm import tqdm

    dtype = token_dtype(tok.vocab_size)
    eos = tok.eos_id
    chunks: list[np.ndarray] = []
    total = sum(map(len, texts))
    with tqdm(total=total, unit="char", unit_scale=True, desc=desc, disable=not verbose, mininterval=2.0) as bar:
        for docs, chars in _document_batches(texts, ENCODE_BATCH_CHARS):
            pieces, last_piece = [], []
            for text in docs:
                doc_pieces = split_for_encoding(text)
                pieces += doc_pieces
                last_piece += [False] * (len(doc_pieces) - 1) + [True]
            stream: list[int] = []
            for ids, is_last in zip(tok.encode_batch(pieces), last_piece):
                stream.extend(ids)
                if is_last:
                    stream.append(eos)
            chunks.append(np.asarray(stream, dtype=dtype))
            bar.update(chars)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


def pretraining_tokens_path(tok: "SpdfTokenizer", split: str, limit_docs: int | None = None) -> Path:
    """Where :func:`pretraining_tokens` caches its stream (``tokens.npy`` with ``meta.json``)."""
    settings = {"split": split, "limit_docs": limit_docs, "tokenizer": tok.fingerprint,
                "format": "documents in load_pretraining order, each followed by EOS"}
    return store.key("pretrain_tokens", settings, pretraining_fingerprint(split)) / "tokens.npy"


_token_memo: dict[Path, np.ndarray] = {}


def _read_token_cache(path: Path) -> np.ndarray | None:
    meta_path = path.parent / "meta.json"
    if not (path.exists() and meta_path.exists()) or store.force_recompute(path):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if store.sha256_file(path) != meta["sha256"]:
            return None  # corrupted: recompute
        tokens = np.load(path, allow_pickle=False)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return tokens if len(tokens) == meta.get("tokens") else None


def pretraining_tokens(tok: "SpdfTokenizer", split: str, limit_docs: int | None = None,
                       verbose: bool = True) -> np.ndarray:
    """The tokenized pre-training split as one read-only uint16 stream (documents joined by EOS).

    Cached as ``.npy`` keyed by the tokenizer and data fingerprints, the split and ``limit_docs``;
    written atomically with a checksum, so an interrupted run leaves no half-written cache behind.
    Explained in chapter 03.
    """
    import io

    check_pretrain_split(split)
    path = pretraining_tokens_path(tok, split, limit_docs)
    if path in _token_memo and path.exists():
        return _token_memo[path]
    tokens = _read_token_cache(path)
    if tokens is None:
        start = time.perf_counter()
        corpus = load_pretraining(split, limit_docs)
        loaded = time.perf_counter()
        tokens = tokenize_documents(tok, column(corpus, "text"), verbose=verbose, desc=f"tokenizing {split}")
        buffer = io.BytesIO()
        np.save(buffer, tokens, allow_pickle=False)
        payload = buffer.getvalue()
        store.atomic_write_bytes(path, payload)
        # meta.json is written last and holds the checksum: a cache without it is not trusted.
        store.atomic_write_json(path.parent / "meta.json", {
            "split": split, "limit_docs": limit_docs, "tokenizer": tok.fingerprint,
            "data_fingerprint": pretraining_fingerprint(split), "tokens": int(len(tokens)),
            "documents": corpus.num_rows, "characters": pretraining_summary(split, limit_docs)["characters"],
            "dtype": str(tokens.dtype), "sha256": hashlib.sha256(payload).hexdigest(),
            "load_seconds": round(loaded - start, 2), "tokenize_seconds": round(time.perf_counter() - loaded, 2)})
        if verbose:
            print(f"{split}: {len(tokens):,} tokens from {corpus.num_rows:,} documents, cached in {path.parent}")
    tokens.flags.writeable = False
    _token_memo[path] = tokens
    return tokens


@functools.lru_cache(maxsize=8)
def _window_order(n_windows: int, seed: int, pass_index: int) -> np.ndarray:
    return np.random.default_rng([seed, pass_index]).permutation(n_windows)


def n_windows(tokens: np.ndarray, seq_len: int) -> int:
    """Non-overlapping windows of ``seq_len + 1`` tokens in the stream (one training sequence each)."""
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    return len(tokens) // (seq_len + 1)


def packed_batch(tokens: np.ndarray, step: int, batch_size: int, seq_len: int,
                 seed: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Batch ``step`` of packed pre-training sequences: ``(x, y)`` LongTensors of shape (B, T).

    The stream is cut into non-overlapping windows of ``seq_len + 1`` tokens; pass ``p`` over the
    corpus visits them in the order of a permutation seeded by ``(seed, p)``; sequence ``i`` of the
    run is ``step * batch_size + i`` in the concatenation of passes. So a batch depends only on
    ``(step, seed)``: a resumed run sees exactly the batches it would have seen. Explained in chapter 03.
    """
    import torch

    if step < 0 or batch_size <= 0:
        raise ValueError(f"step must be >= 0 and batch_size > 0, got step={step}, batch_size={batch_size}")
    windows = n_windows(tokens, seq_len)
    if windows == 0:
        raise ValueError(f"a stream of {len(tokens)} tokens holds no window of seq_len + 1 = {seq_len + 1}")
    sample = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    passes, positions = np.divmod(sample, windows)
    starts = np.empty(batch_size, dtype=np.int64)
    for p in np.unique(passes):
        chosen = passes == p
        starts[chosen] = _window_order(windows, seed, int(p))[positions[chosen]] * (seq_len + 1)
    rows = np.asarray(tokens)[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    batch = torch.from_numpy(rows)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()


def passes_for(n_tokens_needed: int, tokens: np.ndarray, seq_len: int | None = None) -> float:
    """How many passes over the stream a budget of ``n_tokens_needed`` training tokens takes.

    With ``seq_len`` the count uses what :func:`packed_batch` can serve per pass (whole windows, each
    yielding ``seq_len`` predicted tokens); without it, the raw stream length.
    """
    per_pass = len(tokens) if seq_len is None else n_windows(tokens, seq_len) * seq_len
    if per_pass == 0:
        raise ValueError("the token stream is too short to serve a single sequence")
    return n_tokens_needed / per_pass



__all__ = ["ENCODE_PIECE_CHARS", "ENCODE_BATCH_CHARS", "split_for_encoding", "token_dtype", "tokenize_documents",
           "pretraining_tokens_path", "pretraining_tokens", "n_windows", "packed_batch", "passes_for"]
