"""Evaluation of fine-tuned models (chapters 05 and 06).

* Data-to-text (E2E, WebNLG, DART): the prompts decoded through :func:`spdf_lib.model.generate`
  (beam search with a KV cache lives in ``model.py``), then corpus BLEU with every reference of each
  input through ``sacrebleu`` (its default ``13a`` tokenization, mixed case).
* Summarization: perplexity of the reference summaries given their article (target tokens only).
* Pre-trained models: perplexity of the validation split of the pre-training corpus.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .training import autocast, mean_loss

__all__ = [
    "BLEU_TOKENIZATION", "corpus_bleu", "prompt_ids", "decode_texts", "perplexity",
]


BLEU_TOKENIZATION = "13a"


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU of ``hypotheses`` against all references of each input (lists of any length).

    sacrebleu wants one stream per reference position; inputs with fewer references get ``None``,
    which sacrebleu skips.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every input needs at least one reference")
    depth = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(depth)]
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams, tokenize=BLEU_TOKENIZATION).score)


def prompt_ids(tokenizer, source: str, max_source_tokens: int) -> list[int]:
    """``source <sep>`` as token ids, the source cut to its first ``max_source_tokens`` tokens."""
    return tokenizer.encode(source)[:max_source_tokens] + [tokenizer.sep_id]


@torch.no_grad()
def decode_texts(model, tokenizer, sources: Sequence[str], *, max_len: int, max_new_tokens: int,
                 beam_size: int, length_penalty: float, no_repeat_ngram_size: int,
                 device: torch.device, batch_size: int | None = None) -> list[str]:
    """Generate one output text per source with batched beam search (greedy when ``beam_size`` 1);
    ``batch_size`` None lets ``generate`` choose for the device."""
    from .model import generate

    max_source = max(1, max_len - max_new_tokens - 1)
    prompts = [prompt_ids(tokenizer, s, max_source) for s in sources]
    model.eval()
    with autocast(device):
        outputs = generate(model, prompts, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id,
                           pad_id=tokenizer.pad_id, beam_size=beam_size, length_penalty=length_penalty,
                           no_repeat_ngram_size=no_repeat_ngram_size, batch_size=batch_size)
    return [tokenizer.decode(ids).strip() for ids in outputs]


def perplexity(model, batches, device: torch.device) -> float:
    """exp of the token-weighted mean cross-entropy over the non-ignored targets of ``batches``."""
    return math.exp(mean_loss(model, batches, device))
