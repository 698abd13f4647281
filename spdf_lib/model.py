"""A small GPT in the nanoGPT manner, and batched generation with a KV cache.

The model is the GPT-2 / GPT-3 decoder: pre-LayerNorm blocks, learned position embeddings, a GELU
MLP, PyTorch's ``scaled_dot_product_attention`` and an LM head tied to the token embedding.
Parameter names follow nanoGPT (``transformer.h.0.attn.c_attn.weight`` is the fused QKV projection),
so the four weights SPDF sparsifies are ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc`` and
``mlp.c_proj`` of every block. Chapter 01 explains which tensors are sparse and why; chapter 02
counts the FLOPs of each part; :func:`generate` decodes the downstream tasks' test outputs
(``spdf_lib.evaluation.decode_texts``, chapters 05-06).

Named architectures (the paper's GPT-2 small and GPT-3 XL, and the reduced sizes the book trains)
are read with :func:`get_config`, which also replaces fields (``get_config(name, vocab_size=...)``).

Shapes in comments: B batch, T sequence, C = n_embd, nh heads, hs = C // nh head size, V vocab.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# Targets with this value carry no loss (prompt and padding positions). Defined once, here, beside the
# loss that ignores them; the fine-tuning batches (spdf_lib.data.finetune) and the training loop use it.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class GPTConfig:
    """Architecture of a GPT (explained in chapter 01; FLOPs per part in chapter 02)."""

    n_layer: int
    n_head: int
    n_embd: int
    d_ff: int  # hidden width of the MLP (4 * n_embd in GPT-2 and GPT-3)
    block_size: int  # context length: number of learned positions
    vocab_size: int
    dropout: float = 0.0
    bias: bool = True  # biases in the linears and LayerNorms, as in GPT-2

    def __post_init__(self):
        for name in ("n_layer", "n_head", "n_embd", "d_ff", "block_size", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")


# Named architectures, read through get_config. The first two are the paper's models; their vocabulary
# is GPT-2's and they are only used for FLOP and parameter accounting (chapter 02). The reduced presets
# are what the book trains; their vocabulary is replaced at use time: get_config(name, vocab_size=...).
PRESETS: Mapping[str, GPTConfig] = MappingProxyType({
    "gpt2-small": GPTConfig(n_layer=12, n_head=12, n_embd=768, d_ff=3072, block_size=2048, vocab_size=50257),
    "gpt3-xl": GPTConfig(n_layer=24, n_head=16, n_embd=2048, d_ff=8192, block_size=2048, vocab_size=50257),
    "smoke-small": GPTConfig(n_layer=1, n_head=2, n_embd=32, d_ff=128, block_size=256, vocab_size=512),
    "smoke-large": GPTConfig(n_layer=2, n_head=2, n_embd=64, d_ff=256, block_size=256, vocab_size=512),
    "cpu-small": GPTConfig(n_layer=2, n_head=2, n_embd=64, d_ff=256, block_size=256, vocab_size=4096),
    "cpu-large": GPTConfig(n_layer=4, n_head=4, n_embd=128, d_ff=512, block_size=256, vocab_size=4096),
    "gpu-small": GPTConfig(n_layer=3, n_head=3, n_embd=144, d_ff=576, block_size=512, vocab_size=8192),
    "gpu-large": GPTConfig(n_layer=6, n_head=5, n_embd=320, d_ff=1280, block_size=512, vocab_size=8192),
    # chapter 09's size family around the gpu sizes: width about 50 per layer, d_ff = 4 d, heads of 48-64
    "gpu-l2d96": GPTConfig(n_layer=2, n_head=2, n_embd=96, d_ff=384, block_size=512, vocab_size=8192),
    "gpu-l4d192": GPTConfig(n_layer=4, n_head=4, n_embd=192, d_ff=768, block_size=512, vocab_size=8192),
    "gpu-l5d256": GPTConfig(n_layer=5, n_head=4, n_embd=256, d_ff=1024, block_size=512, vocab_size=8192),
    # and the smoke profile's (every code path of chapter 09 in seconds)
    "smoke-l1d16": GPTConfig(n_layer=1, n_head=1, n_embd=16, d_ff=64, block_size=256, vocab_size=512),
})


def get_config(name: str, vocab_size: int | None = None, **overrides) -> GPTConfig:
    """The preset ``name``: the one way to get a model configuration by name.

    ``vocab_size`` and any other :class:`GPTConfig` field passed as a keyword replace the preset's
    (e.g. ``get_config("gpt3-xl", n_layer=1)`` for one block of GPT-3 XL); the result is checked
    like any ``GPTConfig``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"get_config({name!r}): {', '.join(unknown)} not a GPTConfig field; "
                         f"choose from {', '.join(sorted(fields))}")
    return dataclasses.replace(PRESETS[name], **overrides) if overrides else PRESETS[name]


def num_params(config: GPTConfig, non_embedding: bool = False) -> int:
    """Number of unique parameters of ``GPT(config)``, counted from the architecture.

    The LM head is tied to the token embedding, so it adds nothing. ``non_embedding=True`` leaves out
    the token and position embeddings (the convention of Kaplan et al.). Chapter 02 uses the full
    count for the Chinchilla budget of 20 tokens per parameter.
    """
    C, F_, L, b = config.n_embd, config.d_ff, config.n_layer, int(config.bias)
    ln = C * (1 + b)  # weight (+ bias)
    per_block = (2 * ln
                 + C * 3 * C + b * 3 * C  # attn.c_attn (fused QKV)
                 + C * C + b * C  # attn.c_proj
                 + C * F_ + b * F_  # mlp.c_fc
                 + F_ * C + b * C)  # mlp.c_proj
    embeddings = config.vocab_size * C + config.block_size * C
    body = L * per_block + ln  # + ln_f
    return body if non_embedding else body + embeddings


# --------------------------------------------------------------------------------------------------
# The model


class CausalSelfAttention(nn.Module):
    """Causal multi-head attention: the fused QKV projection (``c_attn``) and the output projection
    (``c_proj``) are two of the four weight matrices of a block that SPDF masks."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v fused
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # attention output
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv: tuple | None = None) -> torch.Tensor:
        """``kv`` is None in training (causal attention over x), else ``(cache, layer, start, mask)``."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if kv is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
        else:
            cache, layer, start, mask = kv
            k, v = cache.write(layer, start, k, v)  # (B, nh, start + T, hs): everything seen so far
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # mask: (B, 1, T, start + T)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The feed-forward layer: up-projection (``c_fc``), GELU, down-projection (``c_proj``), the other
    two of the four weight matrices of a block that SPDF masks."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, d_ff) -> (B, T, C)


class Block(nn.Module):
    """One pre-norm transformer block: attention and feed-forward, each after a LayerNorm and added
    back to the residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv: tuple | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv)  # pre-LN: normalise the input of each sublayer
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer; ``forward(idx, targets) -> (logits, loss)`` (chapter 01)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix embeds and un-embeds
        self.sparsity_spec = None  # set by spdf_lib.sparsity.sparsify; saved in checkpoints
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so the residual stream's
        # variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Unique parameters (the tied LM head counted once); see :func:`num_params`."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits ``(B, T, V)`` and, when ``targets`` is given, the mean cross-entropy over the
        targets that are not ``IGNORE_INDEX``. No data-dependent Python branching: safe for
        torch.compile."""
        B, T = idx.size()
        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    def forward_cached(self, idx: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor,
                       cache: "KVCache", start: int) -> torch.Tensor:
        """Generation step: ``idx`` and ``pos`` are ``(B, T)``, ``mask`` is a boolean
        ``(B, 1, T, start + T)`` (True = may attend); keys and values are written to ``cache`` at
        ``[start, start + T)``. Returns the final hidden states ``(B, T, C)`` (after ``ln_f``)."""
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, (cache, layer, start, mask))
        return self.transformer.ln_f(x)


# --------------------------------------------------------------------------------------------------
# Generation (chapter 05): batched greedy and beam search with a key/value cache


class KVCache:
    """Pre-allocated keys and values of every layer, ``(B, nh, max_len, hs)`` each, filled left to
    right. The dtype is taken from the first write, so it follows autocast."""

    def __init__(self, n_layer: int, max_len: int):
        self.max_len = max_len
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor):
        B, nh, T, hs = k.shape
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(B, nh, self.max_len, hs)
            self.v[layer] = v.new_zeros(B, nh, self.max_len, hs)
        self.k[layer][:, :, start:start + T] = k
        self.v[layer][:, :, start:start + T] = v
        return self.k[layer][:, :, :start + T], self.v[layer][:, :, :start + T]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep (and duplicate) batch rows: beam search follows the surviving beams."""
        # one tensor at a time, so that the old one is freed before the next copy: memory peaks at
        # the cache plus one layer's keys, not at two caches
        for store in (self.k, self.v):
            for layer, t in enumerate(store):
                if t is not None:
                    store[layer] = t.index_select(0, rows)


class _Decoder:
    """Runs one batch of left-padded prompts through the model, one token at a time.

    Prompts are padded on the left so that every row's next token sits in the last column. Position
    ids count only real tokens (a prompt of length n uses positions 0..n-1 whatever its padding),
    and padded keys are masked out, so a row's result does not depend on the other rows.
    """

    def __init__(self, net: GPT, prompts: list[list[int]], pad_id: int, max_new: int):
        dev = next(net.parameters()).device
        self.net = net
        self.block_size = net.config.block_size
        B, L = len(prompts), max(len(p) for p in prompts)
        idx = torch.full((B, L), pad_id, dtype=torch.long)
        valid = torch.zeros((B, L), dtype=torch.bool)
        for i, p in enumerate(prompts):
            idx[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
            valid[i, L - len(p):] = True
        idx, valid = idx.to(dev), valid.to(dev)
        self.lengths = valid.sum(1)  # (B,) real prompt lengths
        # (B, L + max_new) which cached keys are real tokens; every generated one is, so the final
        # width is allocated once and a step only slices it
        self.key_valid = torch.cat([valid, valid.new_ones(B, max_new)], dim=1)
        self.cache = KVCache(net.config.n_layer, L + max_new)
        self.t = 0  # tokens generated so far
        self.L = L
        pos = (valid.long().cumsum(1) - 1).clamp(min=0)  # (B, L)
        causal = torch.ones(L, L, dtype=torch.bool, device=dev).tril()
        # every query may see itself: a padding row then has one finite score instead of none (NaN)
        mask = (causal[None] & valid[:, None, :]) | torch.eye(L, dtype=torch.bool, device=dev)[None]
        hidden = net.forward_cached(idx, pos, mask[:, None], self.cache, 0)  # (B, L, C)
        self.last_logits = net.lm_head(hidden[:, -1]).float()  # (B, V)

    def step(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Feed one token per row ``(R,)``; updates ``last_logits`` to ``(R, V)``. With ``rows``,
        first keep (and duplicate) those batch rows: beam search follows the surviving beams. The
        old logits are not reordered: the new ones replace them."""
        if rows is not None:
            self.cache.reorder(rows)
            self.lengths = self.lengths.index_select(0, rows)
            self.key_valid = self.key_valid.index_select(0, rows)
        # rows that already finished keep being fed padding; clamp so their positions stay valid
        pos = (self.lengths + self.t).clamp(max=self.block_size - 1)[:, None]  # (R, 1)
        mask = self.key_valid[:, None, None, :self.L + self.t + 1]  # (R, 1, 1, L + t + 1)
        hidden = self.net.forward_cached(tokens[:, None], pos, mask, self.cache, self.L + self.t)
        self.last_logits = self.net.lm_head(hidden[:, -1]).float()
        self.t += 1


def ban_repeated_ngrams_(scores: torch.Tensor, history: torch.Tensor, n: int) -> torch.Tensor:
    """Set to -inf the score of every token that would complete an n-gram already present in
    ``history`` (``(R, t)`` generated tokens, prompt excluded). In place; returns ``scores``."""
    R, t = history.shape
    if n <= 0 or t < n:
        return scores
    windows = history.unfold(1, n, 1)  # (R, t - n + 1, n): every n-gram generated so far
    prefix = history[:, t - n + 1:]  # (R, n - 1): the n-1 tokens the next one would extend
    hit = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # (R, t - n + 1)
    V = scores.size(1)
    banned = torch.where(hit, windows[:, :, -1], torch.full_like(windows[:, :, -1], V))
    flags = torch.zeros(R, V + 1, dtype=torch.bool, device=scores.device)
    flags.scatter_(1, banned, True)  # column V collects the non-hits and is dropped
    return scores.masked_fill_(flags[:, :V], float("-inf"))


def _stop_check_every(device: torch.device) -> int:
    """Steps between the checks whether every prompt is done. A check waits for the device to
    finish the queued work, which on a GPU stalls the next step's launches; decoding a few steps
    past the end costs less. Finished rows are frozen, so the result is the same either way."""
    return 1 if device.type == "cpu" else 4


def _greedy(net: GPT, prompts, max_new: list[int], eos_id: int, pad_id: int, ngram: int) -> list[list[int]]:
    T = max(max_new)
    dec = _Decoder(net, prompts, pad_id, T)
    dev = dec.last_logits.device
    B = len(prompts)
    limits = torch.tensor(max_new, device=dev)
    finished = torch.zeros(B, dtype=torch.bool, device=dev)
    out = torch.full((B, T), pad_id, dtype=torch.long, device=dev)  # fed tokens; padding once finished
    # tokens kept per row: a row stops for good at its first EOS or at its limit, so they are the
    # first n_out of its row of out
    n_out = torch.zeros(B, dtype=torch.long, device=dev)
    check_every = _stop_check_every(dev)
    for t in range(T):
        scores = ban_repeated_ngrams_(dec.last_logits, out[:, :t], ngram)
        nxt = scores.argmax(-1).masked_fill_(finished, pad_id)  # (B,)
        n_out += ~finished & (nxt != eos_id)
        out[:, t] = nxt
        finished = finished | (nxt == eos_id) | (t + 1 >= limits)
        if t + 1 == T or ((t + 1) % check_every == 0 and bool(finished.all())):
            break
        dec.step(nxt)
    return [row[:n] for row, n in zip(out.tolist(), n_out.tolist())]


def _beam(net: GPT, prompts, max_new: list[int], eos_id: int, pad_id: int, K: int, lp: float,
          ngram: int) -> list[list[int]]:
    """Beam search over a batch, every step a fixed number of tensor operations (no loop over
    prompts). Finished hypotheses live on the device: each prompt's best ``K`` so far, best first."""
    T = max(max_new)
    dec = _Decoder(net, prompts, pad_id, T)
    dev = dec.last_logits.device
    B, V = len(prompts), dec.last_logits.size(-1)
    limits = torch.tensor(max_new, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)  # a done prompt adds no hypotheses any more
    # Hypothesis scores are normalised and compared in float64, as Python floats are: a float32
    # division could break a near tie differently from the one-prompt reference. Empty slots: -inf.
    hyp_score = torch.full((B, K), float("-inf"), dtype=torch.float64, device=dev)
    hyp_tokens = torch.full((B, K, T), pad_id, dtype=torch.long, device=dev)  # padded after hyp_len
    hyp_len = torch.zeros(B, K, dtype=torch.long, device=dev)
    n_hyp = torch.zeros(B, dtype=torch.long, device=dev)  # hypotheses ever added, at most K
    first_row = torch.arange(B, device=dev)[:, None]  # times n_src: the row of a prompt's first beam
    n_src = 1  # beams per prompt before this step: one (the prompt) at the first step, then K
    scores = torch.zeros(B, 1, device=dev)  # (B, n_src) running sums of log-probs
    history = torch.full((B, T), pad_id, dtype=torch.long, device=dev)  # (B * n_src, T): t tokens, padding
    check_every = _stop_check_every(dev)
    for t in range(T):
        active = ~done
        logp = torch.log_softmax(dec.last_logits, dim=-1)  # (B * n_src, V)
        logp = ban_repeated_ngrams_(logp, history[:, :t], ngram)
        cand = (scores[:, :, None] + logp.view(B, n_src, V)).view(B, n_src * V)
        top_s, top_i = cand.topk(2 * K, dim=1)  # (B, 2K): enough to keep K beams after EOS ones
        top_src, top_tok = top_i // V, top_i % V
        is_eos = top_tok == eos_id
        # The new running beams: the first K non-EOS candidates in rank order. Each source beam has
        # one EOS candidate, so at most n_src <= K of the 2K are EOS and K others always exist.
        keep = is_eos.to(torch.uint8).argsort(dim=1, stable=True)[:, :K]  # (B, K)
        scores, src, tok = top_s.gather(1, keep), top_src.gather(1, keep), top_tok.gather(1, keep)
        rows = (first_row * n_src + src).view(-1)  # (B * K,) the source row of each new beam
        old_history = history.view(B, n_src, T)
        history = history.index_select(0, rows)
        history[:, t] = tok.view(-1)

        # New hypotheses: an EOS among the top K ranks (an EOS further down is not one, as in HF),
        # with its source beam's tokens; and at a prompt's length limit, all its new running beams.
        # Either way the length in the score counts t + 1 tokens (the EOS included).
        norm = (t + 1) ** lp
        eos_new = is_eos[:, :K] & active[:, None]  # (B, K)
        at_limit = active & (t + 1 >= limits)  # (B,)
        eos_tokens = old_history.gather(1, top_src[:, :K, None].expand(B, K, T))  # (B, K, T)
        pool_score = torch.cat([hyp_score,
                                torch.where(eos_new, top_s[:, :K].double() / norm, float("-inf")),
                                torch.where(at_limit[:, None], scores.double() / norm, float("-inf"))], dim=1)
        pool_tokens = torch.cat([hyp_tokens, eos_tokens, history.view(B, K, T)], dim=1)  # (B, 3K, T)
        pool_len = torch.cat([hyp_len, torch.full_like(hyp_len, t), torch.full_like(hyp_len, t + 1)], dim=1)
        # Keep the best K. The stable sort puts kept hypotheses before new ones of equal score, so an
        # exact tie does not replace a hypothesis, as in a one-at-a-time "add if better than the worst".
        best = pool_score.argsort(dim=1, descending=True, stable=True)[:, :K]  # (B, K)
        hyp_score = pool_score.gather(1, best)
        hyp_tokens = pool_tokens.gather(1, best[:, :, None].expand(B, K, T))
        hyp_len = pool_len.gather(1, best)
        n_hyp = (n_hyp + eos_new.sum(1) + K * at_limit).clamp(max=K)

        # The simple rule of Hugging Face's beam search (early_stopping=False): stop once K hypotheses
        # are finished and the best running beam, scored at its current length, is no better than
        # the worst of them. With length_penalty > 0 a longer beam could still overtake; we accept it.
        beaten = (n_hyp >= K) & (hyp_score[:, -1] >= scores.max(1).values.double() / norm)
        done = done | at_limit | beaten
        if t + 1 == T or ((t + 1) % check_every == 0 and bool(done.all())):
            break
        dec.step(tok.view(-1), rows)
        n_src = K
    return [row[:n] for row, n in zip(hyp_tokens[:, 0].tolist(), hyp_len[:, 0].tolist())]


# Attention kernels for decoding. cuDNN's, PyTorch's first choice for masked attention on recent
# GPUs, builds a graph on the CPU for every new shape, and the key length grows at every step: on
# an H100 that made a decode step ten times slower than without it (59.7 against 6.1 ms at 256
# prompts, tables/gpu/benchmarks/decode_attention_variants_h100.log). The CPU has no cuDNN; this
# changes nothing there.
_DECODE_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def default_decode_batch_size(device: torch.device) -> int:
    """Prompts per decode batch (each is ``beam_size`` rows). On a GPU a decode step of a small model
    takes longer to launch than to run: on an H100, gpu-large with beam 4 took 4.5 ms a step for 64
    prompts and 4.1 ms for 256, so prompts per second grew fourfold, and its memory peaked at 4.3
    GiB with prompts of up to 447 tokens (tables/gpu/benchmarks/decode_h100.log). On 2 CPU cores the
    batch size matters little (cpu-large, beam 2: 83 prompts/s at 64, 92 at 256), and 64 keeps the
    memory of a laptop run small."""
    return 256 if device.type == "cuda" else 64


@torch.no_grad()
def generate(model: nn.Module, prompts: list[list[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
             beam_size: int = 1, length_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
             batch_size: int | None = None) -> list[list[int]]:
    """Continue each prompt; return the generated tokens only (EOS not included), in prompt order.

    Greedy when ``beam_size == 1``, else beam search: ``beam_size`` running beams per prompt, a
    finished hypothesis (a beam that emits EOS, or any beam at the length limit) scores
    ``sum of log-probs / length ** length_penalty`` with length = generated tokens including the
    EOS, and a prompt stops when ``beam_size`` hypotheses are finished and the best running beam
    cannot beat the worst of them (the simple Hugging Face rule). ``no_repeat_ngram_size = n > 0``
    forbids any n-gram twice within the generated tokens; as in the LoRA NLG decoder that SPDF's
    fine-tuning follows, the prompt is not included (so copying a name from the table is allowed).

    A prompt of length n gets at most ``min(max_new_tokens, block_size - n)`` new tokens. Prompts
    are decoded in batches of ``batch_size`` (default: :func:`default_decode_batch_size`), sorted by
    length to limit padding; a batched result equals the one-prompt-at-a-time result up to
    floating-point rounding. Chapter 05 explains it.
    """
    net = getattr(model, "_orig_mod", model)  # generation runs eagerly: shapes change every step
    if not isinstance(net, GPT):
        raise ValueError(f"generate needs a GPT model, got {type(net).__name__}")
    block, V = net.config.block_size, net.config.vocab_size
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if beam_size < 1 or 2 * beam_size > V:
        raise ValueError(f"beam_size must be in [1, vocab_size / 2 = {V // 2}], got {beam_size}")
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size}")
    if batch_size is None:
        batch_size = default_decode_batch_size(next(net.parameters()).device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for token_id, name in ((eos_id, "eos_id"), (pad_id, "pad_id")):
        if not 0 <= token_id < V:
            raise ValueError(f"{name}={token_id} is outside the vocabulary [0, {V})")
    for i, p in enumerate(prompts):
        if not 0 < len(p) < block:
            raise ValueError(f"prompt {i} has {len(p)} tokens; it needs 1 to {block - 1} (block_size {block})")
    was_training = net.training
    net.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[int]] = [[] for _ in prompts]
    try:
        with sdpa_kernel(_DECODE_ATTENTION):
            for s in range(0, len(order), batch_size):
                ids = order[s:s + batch_size]
                chunk = [list(prompts[i]) for i in ids]
                limits = [min(max_new_tokens, block - len(p)) for p in chunk]
                if beam_size == 1:
                    outs = _greedy(net, chunk, limits, eos_id, pad_id, no_repeat_ngram_size)
                else:
                    outs = _beam(net, chunk, limits, eos_id, pad_id, beam_size, length_penalty,
                                 no_repeat_ngram_size)
                for i, o in zip(ids, outs):
                    results[i] = o
    finally:
        net.train(was_training)
    return results


__all__ = ["IGNORE_INDEX", "GPTConfig", "PRESETS", "get_config", "num_params", "CausalSelfAttention", "MLP", "Block",
           "GPT", "KVCache", "ban_repeated_ngrams_", "default_decode_batch_size", "generate"]
