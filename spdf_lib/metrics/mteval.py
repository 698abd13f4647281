"""BLEU and NIST of the E2E NLG Challenge scorer: mteval-v13a tokenization, case-insensitive, all references.

The E2E challenge's ``measure_scores.py`` (github.com/tuetschek/e2e-metrics) computes BLEU and NIST
either with the Perl ``mteval-v13a-sig.pl`` or, with ``-p``, with its Python port (``metrics/pymteval.py``).
The LoRA repository, whose NLG setup the SPDF paper follows, runs it with ``-p`` (README of
github.com/microsoft/LoRA, ``examples/NLG``), so this module computes what that port computes:

* tokens: the mteval-v13a tokenizer (``sacrebleu``'s ``Tokenizer13a``, the same rules), then lower case;
  an empty text is one empty token, as the port's ``split(' ')`` makes it;
* BLEU: n-grams up to 4 clipped by their largest count in any one reference; the brevity penalty uses
  the reference closest in length to each output (the shorter one on a tie); every order's candidate
  count is ``len(output) - n + 1`` summed over segments (negative for outputs shorter than the order,
  as in the port); a zero count is replaced by 1e-15 (hits) or 1e-9 (candidates) instead of
  smoothing. Reported on the 0-100 scale (the script prints the 0-1 fraction);
* NIST: n-grams up to 5; the information weight of an n-gram is ``log2(count(first n-1 words) /
  count(n-gram))`` over all references of the corpus (the empty prefix counts every reference word);
  each order's information of the clipped hits is divided by that order's candidate count; the length
  penalty ``exp(-beta * log(ratio)^2)``, ``beta = -log(0.5) / log(1.5)^2``, compares the output length
  with the sum over segments of the *average* reference length. The Perl script pads inputs with
  fewer references with empty ones, so for E2E (1 to 45 references per input) its NIST differs from
  this one; its docstring says so and calls this one "the proper way".

Written from the port's definitions; on the published E2E outputs it reproduces the port's BLEU and
NIST to rounding error. Where the port would divide by zero (an n-gram order whose candidate count
sums to 0 over the corpus, possible only for very short outputs), that order adds nothing here.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Sequence

__all__ = ["mteval_tokens", "bleu", "nist"]

BLEU_ORDER = 4
NIST_ORDER = 5
NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2
_TINY, _SMALL = 1e-15, 1e-9  # the port's stand-ins for zero hits and zero candidates

Tokens = Sequence[str]


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def mteval_tokens(text: str) -> list[str]:
    """``text`` tokenized by the mteval-v13a rules and lower-cased; an empty text is ``[""]``."""
    return _tokenizer()(text).lower().split(" ")


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _clipped_hits(hyp: Counter, refs: list[Counter]) -> dict[tuple, int]:
    """Each output n-gram's count clipped by its largest count in any one reference (0 dropped)."""
    hits = {}
    for gram, count in hyp.items():
        best = max(ref.get(gram, 0) for ref in refs)
        if best:
            hits[gram] = min(count, best)
    return hits


def _check(hyps: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} tokenized outputs but {len(refs)} reference lists")
    if not hyps:
        raise ValueError("no segments to score")
    for number, group in enumerate(refs, start=1):
        if not group:
            raise ValueError(f"segment {number} has no reference")


def bleu(hyps: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> float:
    """Corpus BLEU (0-100) of tokenized outputs against their tokenized references."""
    _check(hyps, refs)
    hits = [0] * BLEU_ORDER
    candidates = [0] * BLEU_ORDER
    ref_len = 0
    for hyp, group in zip(hyps, refs):
        for n in range(1, BLEU_ORDER + 1):
            hits[n - 1] += sum(_clipped_hits(_ngrams(hyp, n), [_ngrams(r, n) for r in group]).values())
            candidates[n - 1] += len(hyp) - n + 1
        ref_len += len(min(group, key=lambda r: (abs(len(r) - len(hyp)), len(r))))
    penalty = 1.0
    if candidates[0] <= ref_len:
        penalty = math.exp(1.0 - ref_len / (candidates[0] if candidates[0] else 1e-5))
    log_precision = sum(math.log(max(h, _TINY) / max(c, _SMALL)) for h, c in zip(hits, candidates))
    return 100.0 * penalty * math.exp(log_precision / BLEU_ORDER)


def nist(hyps: Sequence[Tokens], refs: Sequence[Sequence[Tokens]]) -> float:
    """Corpus NIST of tokenized outputs against their tokenized references."""
    _check(hyps, refs)
    ref_counts: list[Counter] = [Counter() for _ in range(NIST_ORDER + 1)]  # index 0: the empty prefix
    hit_grams: list[list[dict]] = [[] for _ in range(NIST_ORDER)]
    candidates = [0] * NIST_ORDER
    avg_ref_len = 0.0
    for hyp, group in zip(hyps, refs):
        for n in range(1, NIST_ORDER + 1):
            ref_ngrams = [_ngrams(r, n) for r in group]
            hit_grams[n - 1].append(_clipped_hits(_ngrams(hyp, n), ref_ngrams))
            candidates[n - 1] += len(hyp) - n + 1
            for counter in ref_ngrams:
                ref_counts[n].update(counter)
        words = sum(len(r) for r in group)
        ref_counts[0][()] += words
        avg_ref_len += words / len(group)

    def info(gram: tuple) -> float:
        return math.log2(ref_counts[len(gram) - 1][gram[:-1]] / ref_counts[len(gram)][gram])

    score = 0.0
    for n in range(NIST_ORDER):
        information = sum(info(g) * c for segment in hit_grams[n] for g, c in segment.items())
        if candidates[n]:  # zero only for a corpus of outputs all shorter than the order
            score += information / candidates[n]
    ratio = candidates[0] / avg_ref_len
    if ratio <= 0:
        return 0.0
    penalty = 1.0 if ratio >= 1 else math.exp(-NIST_BETA * math.log(ratio) ** 2)
    return penalty * score
