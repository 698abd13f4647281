"""A small mixed corpus (fine-tuning format, triples, book text; non-ASCII bytes) and a tokenizer trained on it,
shared by the tokenizer and token-stream tests."""

from __future__ import annotations

import functools

from spdf_lib.data.tokenizer import SpdfTokenizer, train_tokenizer

CORPUS = [
    "name[The Eagle], eatType[coffee shop], food[French], priceRange[£20-25]. "
    "The Eagle is a French coffee shop near Burger King.\n\nIt costs £20-25 — a bargain.",
    "Abilene Regional Airport | cityServed | Abilene, Texas ; Texas | capital | Austin",
    "Chapter 1\n\nIt was a bright cold day in April, and the clocks were striking thirteen.\n",
] * 40


@functools.lru_cache(maxsize=1)
def corpus_tokenizer() -> SpdfTokenizer:
    """A byte-level BPE with 400 ids trained on ``CORPUS`` (in memory, trained once per test process)."""
    return train_tokenizer(CORPUS, vocab_size=400)
