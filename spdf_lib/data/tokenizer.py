"""The book's tokenizer: a byte-level BPE trained on the pre-training mixture (chapter 03).

The paper uses GPT-2's 50,257-token vocabulary. Our models are far smaller, so each profile trains
its own byte-level BPE (Hugging Face ``tokenizers``) with a vocabulary size that fits the model
(``Profile.vocab_size``). Byte-level means every string round-trips: any byte sequence is encodable,
and ``decode(encode(text)) == text``.

Three special tokens carry the fine-tuning format of the LoRA NLG setup (chapter 03 shows it):
``source <|sep|> target <|eos|>``; ``<|eos|>`` also separates documents in the pre-training stream
and ``<|pad|>`` fills batches of unequal length.

The trained tokenizer is cached as ``tokenizer.json`` under ``spdf_lib.store.cache_root()/tokenizer``,
keyed by its settings, the library version, the ``tokenizers`` version and the fingerprint of the
training data, and written atomically: a crash leaves no half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .. import store
from .files import pretraining_fingerprint
from .pretraining import load_pretraining
from .readers import column

SEP_TOKEN = "<|sep|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
# Order fixes their ids: sep 0, eos 1, pad 2 (kept stable so cached token streams stay valid).
SPECIAL_TOKENS = (SEP_TOKEN, EOS_TOKEN, PAD_TOKEN)
MIN_FREQUENCY = 2  # a merge must be seen twice; keeps one-off junk out of small vocabularies
BYTE_ALPHABET_SIZE = 256


@dataclass(frozen=True)
class SpdfTokenizer:
    """A trained byte-level BPE with the book's special tokens. Explained in chapter 03.

    ``fingerprint`` is a hash of ``tokenizer.json``: every cache derived from token ids (token
    streams, models) includes it in its key.
    """

    backend: object = field(repr=False, compare=False)  # tokenizers.Tokenizer
    fingerprint: str
    path: Path | None = None

    @property
    def vocab_size(self) -> int:
        """Number of ids (special tokens included); the model's embedding needs this many rows."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def sep_id(self) -> int:
        return self._special_id(SEP_TOKEN)

    @property
    def eos_id(self) -> int:
        return self._special_id(EOS_TOKEN)

    @property
    def pad_id(self) -> int:
        return self._special_id(PAD_TOKEN)

    def _special_id(self, token: str) -> int:
        token_id = self.backend.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer {self.fingerprint} has no special token {token!r}")
        return token_id

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``. Special-token strings inside ``text`` become their single ids."""
        return self.backend.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """``encode`` for many strings at once, in parallel in the Rust backend."""
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        return [e.ids for e in encode(list(texts))]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids``; special tokens are kept unless ``skip_special_tokens``."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each id's token as text (for showing how a string is split; ``Ġ`` marks a space)."""
        return [self.backend.id_to_token(int(i)) for i in ids]


def _fingerprint_of(json_text: str) -> str:
    return hashlib.sha256(json_text.encode("utf-8")).hexdigest()[:16]


def from_json(json_text: str, path: Path | None = None) -> SpdfTokenizer:
    """Wrap a serialized tokenizer, checking that it has the book's special tokens."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(json_text)
    tok = SpdfTokenizer(backend=backend, fingerprint=_fingerprint_of(json_text), path=path)
    for token in SPECIAL_TOKENS:
        tok._special_id(token)
    return tok


def load_tokenizer(path: Path) -> SpdfTokenizer:
    """Load a ``tokenizer.json`` written by :func:`get_tokenizer`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no tokenizer file at {path}")
    return from_json(path.read_text(encoding="utf-8"), path=path)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> SpdfTokenizer:
    """Train a byte-level BPE with ``vocab_size`` ids on ``texts`` (in memory; nothing cached).

    The GPT-2 pre-tokenizer splits text into words with their leading space before BPE merges are
    learned, and no prefix space is added, so that ``decode(encode(x)) == x`` for every string.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    minimum = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS) + 1
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least "
                         f"{minimum} ids (256 bytes, {len(SPECIAL_TOKENS)} special tokens, one merge)")
    if vocab_size > 65535:
        raise ValueError(f"vocab_size={vocab_size} does not fit the uint16 token streams (max 65535)")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=MIN_FREQUENCY, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    return from_json(backend.to_str())


def _take_chars(texts: Iterable[str], n_chars: int) -> Iterator[str]:
    """The first ``n_chars`` characters of the concatenation of ``texts`` (last text cut)."""
    left = n_chars
    for text in texts:
        if left <= 0:
            return
        yield text[:left]
        left -= len(text)


def tokenizer_settings(vocab_size: int, train_chars: int, limit_docs: int | None = None) -> dict:
    """Everything that determines the trained tokenizer (its cache key, with the data fingerprint)."""
    return {"vocab_size": int(vocab_size), "train_chars": int(train_chars), "limit_docs": limit_docs,
            "special_tokens": list(SPECIAL_TOKENS), "min_frequency": MIN_FREQUENCY,
            "algorithm": "byte-level BPE, GPT-2 pre-tokenizer, no prefix space"}


def get_tokenizer(vocab_size: int, train_chars: int, limit_docs: int | None = None,
                  verbose: bool = True) -> SpdfTokenizer:
    """The profile's tokenizer, trained once on the pre-training split and then read from the cache.

    Trained on the first ``train_chars`` characters of ``load_pretraining("train", limit_docs)``
    (documents of the three corpora interleaved in proportion, so any prefix mixes them).
    Pass the profile's ``pretrain.corpus_docs`` as ``limit_docs`` so that the tokenizer sees the
    same documents the model is trained on. Explained in chapter 03.
    """
    if train_chars <= 0:
        raise ValueError(f"train_chars must be positive, got {train_chars}")
    settings = tokenizer_settings(vocab_size, train_chars, limit_docs)
    fingerprint = pretraining_fingerprint("train")
    path = store.key("tokenizer", settings, fingerprint) / "tokenizer.json"
    if path.exists() and not store.force_recompute(path):
        try:
            tok = load_tokenizer(path)
            # settings.json (written last) records the fingerprint, a checksum of tokenizer.json
            recorded = json.loads((path.parent / "settings.json").read_text())["fingerprint"]
            if tok.fingerprint != recorded:
                raise store.CorruptCacheError(f"fingerprint {tok.fingerprint} is not the recorded {recorded}")
            return tok
        except Exception as err:  # a corrupted entry is retrained, never used
            if verbose:
                print(f"tokenizer cache {path} unreadable ({err}); retraining")
    start = time.perf_counter()
    corpus = load_pretraining("train", limit_docs=limit_docs)
    texts = _take_chars(column(corpus, "text"), train_chars)
    tok = train_tokenizer(texts, vocab_size)
    json_text = tok.backend.to_str()
    store.atomic_write_text(path, json_text)
    store.atomic_write_json(path.parent / "settings.json",
                            {**settings, "tokenizers": __import__("tokenizers").__version__,
                             "data_fingerprint": fingerprint, "fingerprint": tok.fingerprint,
                             "vocab_size_actual": tok.vocab_size,
                             "train_seconds": round(time.perf_counter() - start, 2)})
    if verbose:
        print(f"trained tokenizer {tok.fingerprint}: {tok.vocab_size} ids on {train_chars:,} characters "
              f"in {time.perf_counter() - start:.1f} s -> {path}")
    return from_json(json_text, path=path)


__all__ = ["SEP_TOKEN", "EOS_TOKEN", "PAD_TOKEN", "SPECIAL_TOKENS", "MIN_FREQUENCY", "BYTE_ALPHABET_SIZE",
           "SpdfTokenizer", "from_json", "load_tokenizer", "train_tokenizer", "tokenizer_settings", "get_tokenizer"]
