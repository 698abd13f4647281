"""FLOP and parameter accounting under one documented convention (chapter 02; chapter 08 for memory).

The convention
--------------
One multiply-accumulate is 2 FLOPs. The forward pass of one token through a GPT costs

* ``2 x (1 - s) x W``: the sparsifiable linears (QKV, attention output, both FFN matrices), whose
  ``W = n_layer x (4 d^2 + 2 d d_ff)`` weights are a fraction ``s`` zero; a zero weight is a skipped
  multiply, as on hardware that accelerates unstructured sparsity;
* ``4 x n_layer x T x d``: attention scores ``Q K^T`` and the weighted sum of values, counted over
  the full ``T x T`` square (no discount for the causal mask), with ``T`` the sequence length;
* ``2 x d x V``: the LM head, always dense.

Biases, LayerNorms, GELU, softmax and embedding look-ups are left out (they are a fraction of a
percent). Training costs 3 x forward per token (the backward pass is about twice the forward), so
``training_flops = 3 x forward x tokens``; an SPDF pipeline is sparse pre-training plus dense
fine-tuning. With GPT-3 XL and ~26.3B pre-training tokens (20 per parameter) this convention gives
2.49x fewer FLOPs at 75% sparsity before fine-tuning, against the published 2.5x (60% fewer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .model import GPTConfig, get_config, num_params
from .sparsity import n_masked

# Published headline of the Cerebras blog post "Accelerating Large GPT Training with Sparse Pre-Training
# and Dense Fine-Tuning": 2.5x fewer training FLOPs in its first version (28 November 2022), 60% fewer
# in its March 2023 update, at
# https://www.cerebras.net/blog/accelerating-large-gpt-training-with-sparse-pre-training-and-dense-fine-tuning/
PUBLISHED_REDUCTION_75 = 2.5
PUBLISHED_SAVING_75 = 0.60

CHINCHILLA_TOKENS_PER_PARAM = 20  # the paper's pre-training schedule: ~20 tokens per parameter

# Fine-tuning on Curation Corpus at full scale is not published; this is our assumption. Curation
# Corpus has about 40,000 article/summary pairs; we count one epoch with every example occupying a
# full 2048-token sequence (padded), 81.9M tokens, 0.31% of GPT-3 XL's pre-training tokens.
# Chapter 02 shows how the reduction depends on this number; the blog's remark that pre-training
# is "on the order of 25x" fine-tuning would, under this convention, give 2.36x instead of 2.5x.
CURATION_CORPUS_EXAMPLES = 40_000
CURATION_FINETUNE_SEQ_LEN = 2048
CURATION_FINETUNE_EPOCHS = 1
CURATION_FINETUNE_TOKENS = CURATION_CORPUS_EXAMPLES * CURATION_FINETUNE_SEQ_LEN * CURATION_FINETUNE_EPOCHS


@dataclass(frozen=True)
class ForwardFlops:
    """Forward FLOPs per token by component (chapter 02)."""

    qkv: float
    attn_out: float
    ffn: float
    attention: float  # scores and weighted values
    lm_head: float

    @property
    def linear(self) -> float:
        """The sparsifiable part: QKV + attention output + FFN."""
        return self.qkv + self.attn_out + self.ffn

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.lm_head

    def as_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "total": self.total}


def _check_sparsity(sparsity: float) -> float:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def sparsifiable_weights(config: GPTConfig) -> int:
    """Weights SPDF sparsifies: ``n_layer x (4 d^2 + 2 d d_ff)`` (QKV, attention output, FFN)."""
    d = config.n_embd
    return config.n_layer * (4 * d * d + 2 * d * config.d_ff)


def forward_flops_per_token(config: GPTConfig, sparsity: float = 0.0, seq_len: int | None = None) -> ForwardFlops:
    """Forward FLOPs of one token at ``sparsity`` in the sparsifiable linears (chapter 02).

    ``seq_len`` (default ``config.block_size``) sets the attention term.
    """
    keep = 1.0 - _check_sparsity(sparsity)
    d, L, ff = config.n_embd, config.n_layer, config.d_ff
    T = config.block_size if seq_len is None else seq_len
    if T <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len!r}")
    return ForwardFlops(
        qkv=2.0 * L * 3 * d * d * keep,
        attn_out=2.0 * L * d * d * keep,
        ffn=2.0 * L * 2 * d * ff * keep,
        attention=4.0 * L * T * d,
        lm_head=2.0 * d * config.vocab_size,
    )


def inference_flops_per_token(config: GPTConfig, sparsity: float = 0.0, seq_len: int | None = None) -> float:
    """Forward FLOPs per token: what inference costs (chapter 08)."""
    return forward_flops_per_token(config, sparsity, seq_len).total


def training_flops(config: GPTConfig, tokens: float, sparsity: float = 0.0, seq_len: int | None = None) -> float:
    """Training FLOPs for ``tokens`` tokens: 3 x forward x tokens (chapter 02)."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens!r}")
    return 3.0 * forward_flops_per_token(config, sparsity, seq_len).total * tokens


def dense_gradient_flops(config: GPTConfig, tokens: float, seq_len: int | None = None) -> float:
    """FLOPs of dynamic sparsity's dense-gradient passes (RigL, chapter 09): one dense forward and
    backward over ``tokens`` tokens, counted as dense training."""
    return training_flops(config, tokens, 0.0, seq_len)


def isoflop_tokens(config: GPTConfig, sparsity: float, own_tokens: int, target_flops: float, tokens_per_step: int,
                   seq_len: int | None = None) -> int:
    """Training tokens (whole steps of ``tokens_per_step``, rounded to the nearest) at which a run at
    ``sparsity`` spends ``target_flops`` (chapter 09: sparse models pre-trained until their training
    FLOPs equal the dense model's). A target below the FLOPs of the run's own ``own_tokens`` is an
    error: an iso-FLOP run is never shorter than the run it extends."""
    if tokens_per_step <= 0:
        raise ValueError(f"tokens_per_step must be positive, got {tokens_per_step!r}")
    own = training_flops(config, own_tokens, sparsity, seq_len)
    if not target_flops >= own:
        raise ValueError(f"iso-FLOP target_flops={target_flops:.4g} is below the run's own training FLOPs "
                         f"{own:.4g} ({own_tokens} tokens at sparsity {sparsity}): choose a target at least "
                         f"as large")
    per_step = training_flops(config, tokens_per_step, sparsity, seq_len)
    return max(1, round(target_flops / per_step)) * tokens_per_step


def chinchilla_tokens(config: GPTConfig, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> int:
    """Pre-training tokens of the Chinchilla schedule: tokens per parameter x all parameters."""
    return int(tokens_per_param * num_params(config))


@dataclass(frozen=True)
class PipelineFlops:
    """Training FLOPs of a pre-training + fine-tuning pipeline (chapter 02)."""

    pretrain: float
    finetune: float

    @property
    def total(self) -> float:
        return self.pretrain + self.finetune


def spdf_flops(config: GPTConfig, pretrain_tokens: float, finetune_tokens: float, sparsity: float,
               pretrain_seq_len: int | None = None, finetune_seq_len: int | None = None) -> PipelineFlops:
    """Sparse pre-training at ``sparsity``, then dense fine-tuning (sparsity 0 = the dense baseline)."""
    return PipelineFlops(pretrain=training_flops(config, pretrain_tokens, sparsity, pretrain_seq_len),
                         finetune=training_flops(config, finetune_tokens, 0.0, finetune_seq_len))


def flop_reduction(config: GPTConfig, pretrain_tokens: float, finetune_tokens: float, sparsity: float,
                   pretrain_seq_len: int | None = None, finetune_seq_len: int | None = None) -> float:
    """Dense pipeline FLOPs / SPDF pipeline FLOPs (how many times fewer; 2.5 is the paper's figure)."""
    dense = spdf_flops(config, pretrain_tokens, finetune_tokens, 0.0, pretrain_seq_len, finetune_seq_len)
    sparse = spdf_flops(config, pretrain_tokens, finetune_tokens, sparsity, pretrain_seq_len, finetune_seq_len)
    return dense.total / sparse.total


def paper_pipeline(sparsity: float, model: str = "gpt3-xl",
                   finetune_tokens: float = CURATION_FINETUNE_TOKENS) -> PipelineFlops:
    """Figure 2's setting: Chinchilla pre-training on the Pile, fine-tuning on Curation Corpus."""
    config = get_config(model)
    return spdf_flops(config, chinchilla_tokens(config), finetune_tokens, sparsity)


# --------------------------------------------------------------------------------------------------
# Parameters in memory (chapter 08): dense count vs nonzero count


@dataclass(frozen=True)
class ParamMemory:
    """Parameters a model must store densely vs the nonzero ones a sparse format must store."""

    dense: int
    nonzero: int

    @property
    def reduction(self) -> float:
        return self.dense / self.nonzero

    def bytes(self, bytes_per_param: float = 2.0) -> tuple[float, float]:
        """(dense, nonzero) in bytes; 2 bytes per value for bf16 (index overhead not counted)."""
        return self.dense * bytes_per_param, self.nonzero * bytes_per_param


def param_memory(config: GPTConfig, sparsity: float = 0.0) -> ParamMemory:
    """Analytic counts for ``GPT(config)`` with every sparsifiable weight at ``sparsity`` (exact
    per-tensor counts ``floor(s x numel)``, as :func:`spdf_lib.sparsity.sparsify` zeroes)."""
    s = _check_sparsity(sparsity)
    d, ff = config.n_embd, config.d_ff
    per_layer = [3 * d * d, d * d, d * ff, ff * d]  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    zeros = config.n_layer * sum(n_masked(s, n) for n in per_layer)
    total = num_params(config)
    return ParamMemory(dense=total, nonzero=total - zeros)


def model_param_memory(model) -> ParamMemory:
    """Counts measured on a model: unique parameters, and those that are not exactly zero."""
    net = getattr(model, "_orig_mod", model)
    params = list(net.parameters())  # unique: the tied LM head is counted once
    return ParamMemory(dense=sum(p.numel() for p in params),
                       nonzero=sum(int((p != 0).sum()) for p in params))


__all__ = [
    "PUBLISHED_REDUCTION_75", "PUBLISHED_SAVING_75", "CHINCHILLA_TOKENS_PER_PARAM", "CURATION_CORPUS_EXAMPLES",
    "CURATION_FINETUNE_SEQ_LEN", "CURATION_FINETUNE_EPOCHS", "CURATION_FINETUNE_TOKENS", "ForwardFlops",
    "sparsifiable_weights", "forward_flops_per_token", "inference_flops_per_token", "training_flops",
    "dense_gradient_flops", "isoflop_tokens",
    "chinchilla_tokens", "PipelineFlops", "spdf_flops", "flop_reduction", "paper_pipeline", "ParamMemory",
    "param_memory", "model_param_memory",
]
