"""The official metric suites of E2E, WebNLG and DART, as the LoRA repository runs them.

The SPDF paper scores its test sets "using official scripts" and follows the NLG setup of LoRA
(Hu et al. 2021, github.com/microsoft/LoRA, ``examples/NLG``). That setup decodes one output per test
line, groups the references of identical inputs (``src/gpt2_decode.py``, keyed by the linearised
input) and runs:

* **E2E**: the challenge scorer ``measure_scores.py -p`` (github.com/tuetschek/e2e-metrics) on the
  raw outputs and references: BLEU and NIST by its Python mteval port (:mod:`.mteval`), METEOR 1.5,
  ROUGE-L and CIDEr-D by the bundled COCO caption code after its PTB tokenizer (:mod:`.coco`). All
  references of an input are used (1 to 45 for E2E).
* **WebNLG and DART**: ``gpt2_decode.py --tokenize --lower --ref_num 6`` writes outputs and references
  lower-cased, split on every non-word character (``re.split(r'(\\W)')``, whitespace collapsed), with
  the first 6 references of each input (fewer are padded with the first one, which changes no
  metric); then the WebNLG 2020 challenge's GenerationEval ``eval.py -nr 6 -m bleu,meteor,ter``
  (github.com/WebNLG/GenerationEval): BLEU by Moses' ``multi-bleu-detok.perl`` (mteval-v13a
  tokenization, case-sensitive on the lower-cased text, closest reference length, no smoothing:
  ``sacrebleu`` with the same settings computes the same statistics), METEOR 1.5 with
  ``-l en -norm -r 6`` and TER by ``pyter3`` as the minimum over the references, averaged over
  inputs; METEOR and TER see the texts after NLTK's word tokenizer.

What we do differently, and why no number changes:

* ``eval.py`` as released reads every file with ``read().split('\n')``; the newline that ends each
  file then yields one more, empty, segment. Its METEOR call gets 5 reference lines too many for its
  outputs and fails, and its TER averages over one segment too many, counting the empty one as 1.
  We do what the script means: every real segment, and no empty one.
* ``multi-bleu-detok.perl`` prints BLEU with two decimals; we keep the unrounded value.
* ``eval.py`` calls ``nltk.word_tokenize``, which first splits sentences with the Punkt model (a data
  download). We call the same word tokenizer with ``preserve_line=True``. On text already split at
  every non-word character the word tokenizer only inserts spaces, and turns every double quote into
  a pair of backquotes (each one starts the text or follows a space), whether or not the text was
  split into sentences first: the tokens are the same.
* TER runs pyter3's algorithm with a compiled edit distance (:func:`ter`; a test compares it with
  pyter3), and a reference repeated by the padding is scored once, by TER and by METEOR: TER takes
  the minimum, and the METEOR jar keeps the first reference with the highest score.
* We group references by the input as our models see it (the ``source`` column of the test split);
  on the full test sets that gives the same groups as LoRA's key (DART: 5,097 entries, 4,159
  inputs; WebNLG: 1,862; E2E: 630), a test checks it. When the merged inputs of a group got
  different outputs (batched decoding is not bit-identical), the last one is scored, as in
  ``gpt2_decode.py``; :class:`Grouped` counts such groups.
* ``load_task`` drops references without text; LoRA's conversion keeps one as an empty reference
  (TER 1 against it; BLEU may take its length 0 as the closest), so the caller adds them back
  (:mod:`.scoring`; DART's test entry Id116 has one).
* Each output is one line of a JSON Lines file, so a line break inside an output cannot shift the
  others (:mod:`spdf_lib.outputs`). The LoRA files are plain lines; its WebNLG and DART
  post-processing removes a line break with the other whitespace, and we read one as a space for
  E2E too.

Checked against the released scripts, run on the published outputs: the same numbers (BLEU to the
two decimals the Perl script prints); tests reproduce them for a few inputs of each task.

The returned scales are those of the papers' tables: BLEU 0-100, the others as the scripts print them
(METEOR, ROUGE-L and TER as fractions, NIST and CIDEr-D unscaled).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .coco import cider_d, meteor, ptb_tokenize, rouge_l
from .mteval import bleu as mteval_bleu, mteval_tokens, nist

__all__ = ["UnknownMetricError", "E2E_METRICS", "GENERATION_EVAL_METRICS", "REFERENCES_KEPT", "lora_normalize",
           "word_tokens", "ter", "e2e_suite", "generation_eval_suite", "Grouped", "group_by_input", "select_metrics"]

E2E_METRICS = ("BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr")
GENERATION_EVAL_METRICS = ("BLEU", "METEOR", "TER")
REFERENCES_KEPT = 6  # gpt2_decode.py --ref_num 6 / eval.py -nr 6
_NON_WORD = re.compile(r"(\W)")


class UnknownMetricError(ValueError):
    """A metric name that the task's suite does not compute."""


@dataclass(frozen=True)
class Grouped:
    """Outputs and references with the references of identical inputs merged into one segment."""

    hyps: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]
    inputs: int  # test inputs before grouping
    disagreeing: int  # segments whose merged inputs had different outputs (the last one is scored)


def group_by_input(hyps: Sequence[str], sources: Sequence[str], references: Sequence[Sequence[str]]) -> Grouped:
    """Merge the references of inputs with the same source, in order of first appearance, as
    ``gpt2_decode.py`` does; a segment's output is that of its last input (the script overwrites)."""
    if not len(hyps) == len(sources) == len(references):
        raise ValueError(f"{len(hyps)} outputs, {len(sources)} sources and {len(references)} reference lists "
                         f"do not line up")
    order: dict[str, int] = {}
    outs: list[list[str]] = []
    refs: list[list[str]] = []
    for hyp, source, group in zip(hyps, sources, references):
        if source not in order:
            order[source] = len(refs)
            outs.append([])
            refs.append([])
        outs[order[source]].append(hyp)
        refs[order[source]].extend(group)
    for index, group in enumerate(refs):
        if not group:
            raise ValueError(f"input {list(order)[index]!r} has no reference")
    return Grouped(hyps=tuple(o[-1] for o in outs), references=tuple(tuple(r) for r in refs),
                   inputs=len(hyps), disagreeing=sum(len(set(o)) > 1 for o in outs))


def _check(hyps: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hyps) != len(references):
        raise ValueError(f"{len(hyps)} outputs but {len(references)} reference lists")
    if not hyps:
        raise ValueError("no segments to score")
    for number, group in enumerate(references, start=1):
        if not group:
            raise ValueError(f"segment {number} has no reference")


def select_metrics(metrics: Sequence[str] | str | None, available: Sequence[str]) -> tuple[str, ...]:
    """The asked-for metrics in the suite's order (all when None); an unknown name raises
    :class:`UnknownMetricError` listing the suite's metrics."""
    if metrics is None:
        return tuple(available)
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise UnknownMetricError(f"unknown metric(s) {unknown}; this suite computes {', '.join(available)}")
    return tuple(m for m in available if m in metrics)


def e2e_suite(hyps: Sequence[str], references: Sequence[Sequence[str]],
              metrics: Sequence[str] | None = None) -> dict[str, float]:
    """The E2E challenge metrics of grouped outputs and references (see the module docstring)."""
    _check(hyps, references)
    wanted = select_metrics(metrics, E2E_METRICS)
    hyps = [" ".join(h.split()) for h in hyps]  # the script reads stripped lines; a line break is a space
    scores: dict[str, float] = {}
    if "BLEU" in wanted or "NIST" in wanted:
        hyp_tokens = [mteval_tokens(h) for h in hyps]
        ref_tokens = [[mteval_tokens(r) for r in group] for group in references]
        if "BLEU" in wanted:
            scores["BLEU"] = mteval_bleu(hyp_tokens, ref_tokens)
        if "NIST" in wanted:
            scores["NIST"] = nist(hyp_tokens, ref_tokens)
    coco_metrics = [m for m in wanted if m in ("METEOR", "ROUGE-L", "CIDEr")]
    if coco_metrics:
        ids = [f"inst-{i}" for i in range(len(hyps))]  # the script's COCO image ids
        refs = _ptb_references(tuple(tuple(group) for group in references))
        outs = {i: tokens[0] for i, tokens in ptb_tokenize({i: [h] for i, h in zip(ids, hyps)}).items()}
        if "METEOR" in coco_metrics:
            scores["METEOR"] = meteor(refs, outs)
        if "ROUGE-L" in coco_metrics:
            scores["ROUGE-L"] = rouge_l(refs, outs)
        if "CIDEr" in coco_metrics:
            scores["CIDEr"] = cider_d(refs, outs)
    return {m: scores[m] for m in wanted}


@functools.lru_cache(maxsize=4)
def _ptb_references(references: tuple[tuple[str, ...], ...]) -> dict[str, list[str]]:
    """The references through the PTB tokenizer, once per process (the same for every E2E run); the
    script tokenizes references and outputs in two separate calls too."""
    return ptb_tokenize({f"inst-{i}": list(group) for i, group in enumerate(references)})


def lora_normalize(text: str) -> str:
    """``gpt2_decode.py --lower --tokenize``: lower case, a space around every non-word character,
    whitespace collapsed."""
    return " ".join(" ".join(_NON_WORD.split(text.lower())).split())


def word_tokens(text: str) -> str:
    """NLTK's word tokenizer on one line, tokens joined by spaces (what ``eval.py`` gives METEOR and TER)."""
    import nltk

    return " ".join(nltk.word_tokenize(text, preserve_line=True))


def ter(hyp: Sequence[str], ref: Sequence[str]) -> float:
    """Translation edit rate of the word list ``hyp`` against ``ref`` by the algorithm of ``pyter3``
    (the TER that ``eval.py`` imports), with its edit distance computed by ``rapidfuzz``.

    Greedy: while some shift lowers the word-level Levenshtein distance, apply the best one (the
    largest gain; among equal gains the lexicographically largest shifted word list, as pyter's
    sort picks); the candidates move the longest matching run starting at each pair of positions
    ``i != j`` with ``hyp[i] == ref[j]`` to index ``j`` of the remaining words. TER = (shifts +
    final distance) / len(ref). A test checks it against pyter3 itself, which is much slower."""
    from rapidfuzz.distance import Levenshtein

    words, ref = list(hyp), list(ref)
    if not ref:
        raise ZeroDivisionError("TER against an empty reference")
    distance = Levenshtein.distance(words, ref)
    shifts = 0
    while True:
        best = None
        for i, j, length in _matching_runs(words, ref):
            shifted = words[:i] + words[i + length:]
            shifted[j:j] = words[i:i + length]
            candidate = (distance - Levenshtein.distance(shifted, ref), shifted)
            if best is None or candidate > best:
                best = candidate
        if best is None or best[0] <= 0:
            return (shifts + distance) / len(ref)
        shifts += 1
        distance -= best[0]
        words = best[1]


def _matching_runs(words: list[str], ref: list[str]):
    """(i, j, length) for every i != j with words[i] == ref[j]: the longest run of equal words from there."""
    for i, word in enumerate(words):
        for j, other in enumerate(ref):
            if i != j and word == other:
                length = 1
                while i + length < len(words) and j + length < len(ref) and words[i + length] == ref[j + length]:
                    length += 1
                yield i, j, length


def _ter(hyp: str, ref: str) -> float:
    if len(ref) == 0:
        return 1.0  # eval.py: an empty reference counts as TER 1
    return ter(hyp.split(), ref.split())


@dataclass(frozen=True)
class _PreparedReferences:
    """The reference side of ``eval.py``, the same for every run of a task: computed once per process."""

    streams: tuple[tuple[str, ...], ...]  # the 6 reference files, after the LoRA preprocessing
    tokenized: tuple[tuple[str, ...], ...]  # per segment, its distinct references after NLTK's tokenizer
    bleu: Any  # a sacrebleu BLEU scorer holding the references' n-gram statistics


@functools.lru_cache(maxsize=4)
def _prepare(references: tuple[tuple[str, ...], ...]) -> _PreparedReferences:
    from sacrebleu.metrics import BLEU

    refs = [[lora_normalize(group[k] if k < len(group) else group[0]) for k in range(REFERENCES_KEPT)]
            for group in references]
    streams = tuple(tuple(group[k] for group in refs) for k in range(REFERENCES_KEPT))
    # A repeated padding reference is sent once to METEOR and TER: TER takes the minimum, and the METEOR
    # jar keeps the first reference with the highest score (a later one must score strictly higher).
    tokenized = tuple(tuple(dict.fromkeys(word_tokens(r) for r in group)) for group in refs)
    bleu = BLEU(tokenize="13a", lowercase=False, smooth_method="none", force=True, references=list(streams))
    return _PreparedReferences(streams=streams, tokenized=tokenized, bleu=bleu)


def generation_eval_suite(hyps: Sequence[str], references: Sequence[Sequence[str]],
                          metrics: Sequence[str] | None = None) -> dict[str, float]:
    """BLEU, METEOR and TER of grouped WebNLG or DART outputs (see the module docstring)."""
    _check(hyps, references)
    wanted = select_metrics(metrics, GENERATION_EVAL_METRICS)
    prepared = _prepare(tuple(tuple(group) for group in references))
    outs = [lora_normalize(h) for h in hyps]
    scores: dict[str, float] = {}
    if "BLEU" in wanted:
        scores["BLEU"] = float(prepared.bleu.corpus_score(outs, None).score)
    if "METEOR" in wanted or "TER" in wanted:
        outs_tok = [word_tokens(h) for h in outs]
        if "METEOR" in wanted:
            ids = [str(i) for i in range(len(outs_tok))]
            scores["METEOR"] = meteor(dict(zip(ids, (list(g) for g in prepared.tokenized))),
                                           dict(zip(ids, outs_tok)))
        if "TER" in wanted:
            per_segment = [min(_ter(h, r) for r in group) for h, group in zip(outs_tok, prepared.tokenized)]
            scores["TER"] = sum(per_segment) / len(per_segment)
    return {m: scores[m] for m in wanted}
