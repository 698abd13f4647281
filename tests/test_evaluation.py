"""Corpus BLEU with every reference of each input (chapter 06)."""

from __future__ import annotations

import pytest

from spdf_lib.evaluation import corpus_bleu


def test_bleu_uses_every_reference_of_each_input():
    hyps = ["the cat sat on the mat", "a dog barked loudly"]
    one_ref = corpus_bleu(hyps, [["a cat sat on a mat"], ["the dog barked loudly"]])
    more_refs = corpus_bleu(hyps, [["a cat sat on a mat", "the cat sat on the mat"], ["the dog barked loudly"]])
    assert more_refs > one_ref
    assert corpus_bleu(hyps, [[h] for h in hyps]) == pytest.approx(100.0)


def test_bleu_rejects_mismatched_or_empty_references():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_bleu(["a"], [[]])
