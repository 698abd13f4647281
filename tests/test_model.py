"""The GPT model and its KV-cache generation, checked against a slow reference without a cache."""

import dataclasses
import math

import pytest
import torch

from spdf_lib.model import GPT, PRESETS, GPTConfig, ban_repeated_ngrams_, generate, get_config, num_params

TINY = GPTConfig(n_layer=2, n_head=2, n_embd=32, d_ff=64, block_size=64, vocab_size=40)


def tiny_model(seed: int = 0, config: GPTConfig = TINY, scale: float = 8.0) -> GPT:
    """A random model with peaked next-token distributions (larger weights than at init), so that
    decoding decisions are far from floating-point ties."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(scale)
    return model.eval()


def random_prompts(n: int, seed: int, vocab: int, lo: int = 1, hi: int = 9) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(0, vocab, (k,), generator=g).tolist() for k in lengths]


# ------------------------------------------------------------------------------ slow references

@torch.no_grad()
def _full_logprobs(model: GPT, seq: list[int]) -> torch.Tensor:
    logits, _ = model(torch.tensor([seq]))  # recompute everything: no cache, no padding
    return torch.log_softmax(logits[0, -1].float(), dim=-1)


def _banned(gen: list[int], n: int) -> set[int]:
    if n <= 0 or len(gen) < n:
        return set()
    prefix = tuple(gen[len(gen) - n + 1:])
    return {gen[i + n - 1] for i in range(len(gen) - n + 1) if tuple(gen[i:i + n - 1]) == prefix}


def ref_greedy(model, prompt, max_new, eos, ngram=0):
    gen = []
    limit = min(max_new, model.config.block_size - len(prompt))
    for _ in range(limit):
        lp = _full_logprobs(model, prompt + gen)
        for tok in _banned(gen, ngram):
            lp[tok] = -math.inf
        tok = int(lp.argmax())
        if tok == eos:
            break
        gen.append(tok)
    return gen


def ref_beam(model, prompt, max_new, eos, K, lp_pow, ngram=0):
    limit = min(max_new, model.config.block_size - len(prompt))
    beams = [([], 0.0)]
    finished = []  # (normalized score, tokens)

    def add(tokens, s, length):
        score = s / length ** lp_pow
        if len(finished) < K or score > min(f[0] for f in finished):
            finished.append((score, tokens))
            if len(finished) > K:
                finished.remove(min(finished, key=lambda f: f[0]))

    for t in range(limit):
        cands = []
        for gen, s in beams:
            lp = _full_logprobs(model, prompt + gen)
            for tok in _banned(gen, ngram):
                lp[tok] = -math.inf
            cands += [(s + v, gen, w) for w, v in enumerate(lp.tolist())]
        cands.sort(key=lambda c: -c[0])
        new = []
        for rank, (s, gen, w) in enumerate(cands[:2 * K]):
            if w == eos:
                if rank < K:
                    add(gen, s, t + 1)
            else:
                new.append((gen + [w], s))
                if len(new) == K:
                    break
        beams = new
        if t + 1 >= limit:
            for gen, s in beams:
                add(gen, s, t + 1)
            break
        best = max(s for _, s in beams)
        if len(finished) >= K and min(f[0] for f in finished) >= best / (t + 1) ** lp_pow:
            break
    return max(finished, key=lambda f: f[0])[1]


def eos_seen_midway(model, prompts, max_new) -> int:
    """A token that greedy decoding emits after a few steps for some prompt: used as EOS so that
    some rows stop early and others do not."""
    for p in prompts:
        gen = ref_greedy(model, p, max_new, eos=-1)
        if len(gen) > 3:
            return gen[3]
    raise AssertionError("no usable EOS candidate")


# ------------------------------------------------------------------------------ model

def test_presets_and_param_count():
    assert (PRESETS["gpt2-small"].n_layer, PRESETS["gpt2-small"].n_embd, PRESETS["gpt2-small"].n_head) == (12, 768, 12)
    xl = PRESETS["gpt3-xl"]
    assert (xl.n_layer, xl.n_embd, xl.n_head, xl.d_ff, xl.block_size) == (24, 2048, 16, 8192, 2048)
    assert 1.3e9 < num_params(xl) < 1.33e9  # "GPT-3 XL (1.3B)"
    assert 1.2e8 < num_params(PRESETS["gpt2-small"]) < 1.3e8  # 124M with a 2048 context
    for name in ("smoke-small", "smoke-large", "gpu-large"):
        cfg = PRESETS[name]
        model = GPT(cfg)
        assert model.num_params() == num_params(cfg)
        assert model.num_params(non_embedding=True) == num_params(cfg, non_embedding=True)
    assert get_config("cpu-large", vocab_size=123).vocab_size == 123
    with pytest.raises(ValueError, match="nope"):
        get_config("nope")


def test_get_config_replaces_fields_and_checks_them():
    one_block = get_config("gpt3-xl", n_layer=1, vocab_size=512)
    assert (one_block.n_layer, one_block.vocab_size, one_block.n_embd) == (1, 512, PRESETS["gpt3-xl"].n_embd)
    assert get_config("gpt3-xl") is PRESETS["gpt3-xl"] and PRESETS["gpt3-xl"].n_layer == 24  # the preset is unchanged
    with pytest.raises(ValueError, match="n_layers not a GPTConfig field"):
        get_config("gpt3-xl", n_layers=1)
    with pytest.raises(ValueError, match="n_head"):
        get_config("smoke-small", n_head=3)
    with pytest.raises(TypeError):
        PRESETS["mine"] = TINY  # the table of presets is read-only


def test_config_validation():
    with pytest.raises(ValueError, match="n_head"):
        dataclasses.replace(TINY, n_head=3)
    with pytest.raises(ValueError, match="n_layer"):
        dataclasses.replace(TINY, n_layer=0)


def test_parameter_names_and_tied_head():
    model = GPT(TINY)
    names = set(model.state_dict())
    for expected in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                     "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.ln_2.weight", "transformer.h.1.mlp.c_fc.weight",
                     "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"):
        assert expected in names
    assert model.lm_head.weight is model.transformer.wte.weight


def test_forward_shapes_loss_and_causality():
    model = tiny_model(scale=1.0)
    idx = torch.randint(0, TINY.vocab_size, (3, 10))
    targets = idx.clone()
    targets[:, :4] = -100
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 10, TINY.vocab_size)
    expected = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, TINY.vocab_size), idx[:, 4:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    # changing a later token leaves earlier logits unchanged
    idx2 = idx.clone()
    idx2[:, 7] = (idx2[:, 7] + 1) % TINY.vocab_size
    logits2, _ = model(idx2)
    torch.testing.assert_close(logits[:, :7], logits2[:, :7])
    assert model(idx)[1] is None


# ------------------------------------------------------------------------------ generation

def test_ngram_ban_helper():
    scores = torch.zeros(1, 10)
    history = torch.tensor([[1, 2, 3, 1, 2]])
    ban_repeated_ngrams_(scores, history, 3)  # "1 2" was followed by 3 -> ban 3
    assert torch.isinf(scores[0, 3]) and torch.isfinite(scores[0, [0, 1, 2, 4]]).all()
    scores = torch.zeros(1, 10)
    ban_repeated_ngrams_(scores, history, 1)  # unigrams: every seen token
    assert set(torch.isinf(scores[0]).nonzero().flatten().tolist()) == {1, 2, 3}


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_equals_reference_and_unbatched(seed):
    model = tiny_model(seed)
    prompts = random_prompts(7, seed, TINY.vocab_size)
    eos = eos_seen_midway(model, prompts, 12)
    batched = generate(model, prompts, max_new_tokens=12, eos_id=eos, pad_id=0, batch_size=4)
    for p, out in zip(prompts, batched):
        assert out == ref_greedy(model, p, 12, eos)
        assert out == generate(model, [p], max_new_tokens=12, eos_id=eos, pad_id=0)[0]
    assert any(len(o) < 12 for o in batched) and any(len(o) == 12 for o in batched)
    assert all(eos not in o for o in batched)


def test_greedy_no_repeat_ngram():
    model = tiny_model(2)
    prompts = random_prompts(5, 3, TINY.vocab_size)
    outs = generate(model, prompts, max_new_tokens=20, eos_id=1, pad_id=0, no_repeat_ngram_size=2)
    for p, out in zip(prompts, outs):
        assert out == ref_greedy(model, p, 20, 1, ngram=2)
        bigrams = list(zip(out, out[1:]))
        assert len(bigrams) == len(set(bigrams))


# (0, 2, 2.0): a case where stopping early (finished hypotheses that cannot be beaten) changes the result
@pytest.mark.parametrize("seed,K,lp,ngram", [(0, 2, 2.0, 0), (3, 3, 1.0, 0), (4, 4, 0.6, 0), (3, 3, 1.3, 2)])
def test_beam_equals_reference(seed, K, lp, ngram):
    model = tiny_model(seed)
    prompts = random_prompts(6, 100 + seed, TINY.vocab_size)
    eos = eos_seen_midway(model, prompts, 8)
    outs = generate(model, prompts, max_new_tokens=8, eos_id=eos, pad_id=0, beam_size=K, length_penalty=lp,
                    no_repeat_ngram_size=ngram, batch_size=4)
    for p, out in zip(prompts, outs):
        assert out == ref_beam(model, p, 8, eos, K, lp, ngram)
        assert out == generate(model, [p], max_new_tokens=8, eos_id=eos, pad_id=0, beam_size=K,
                               length_penalty=lp, no_repeat_ngram_size=ngram)[0]
        assert eos not in out
    if ngram:
        for out in outs:
            grams = list(zip(*[out[i:] for i in range(ngram)]))
            assert len(grams) == len(set(grams))


def test_length_penalty_changes_choice():
    """A high length penalty favours longer hypotheses: check the reference agrees on the effect."""
    model = tiny_model(5)
    prompts = random_prompts(8, 5, TINY.vocab_size)
    eos = eos_seen_midway(model, prompts, 10)
    short = generate(model, prompts, max_new_tokens=10, eos_id=eos, pad_id=0, beam_size=3, length_penalty=0.0)
    long = generate(model, prompts, max_new_tokens=10, eos_id=eos, pad_id=0, beam_size=3, length_penalty=3.0)
    assert sum(map(len, long)) >= sum(map(len, short))
    for p, a, b in zip(prompts, short, long):
        assert a == ref_beam(model, p, 10, eos, 3, 0.0)
        assert b == ref_beam(model, p, 10, eos, 3, 3.0)


def test_generation_respects_block_size_and_restores_mode():
    cfg = dataclasses.replace(TINY, block_size=12)
    model = tiny_model(0, cfg)
    model.train()
    prompts = [[1] * 10, [2, 3]]
    outs = generate(model, prompts, max_new_tokens=30, eos_id=cfg.vocab_size - 1, pad_id=0, beam_size=2)
    assert len(outs[0]) <= 2 and len(outs[1]) <= 10
    assert model.training
    with pytest.raises(ValueError, match="prompt 0"):
        generate(model, [[1] * 12], max_new_tokens=3, eos_id=1, pad_id=0)
    with pytest.raises(ValueError, match="eos_id"):
        generate(model, [[1]], max_new_tokens=3, eos_id=999, pad_id=0)


def test_beam_large_batch_equals_reference():
    """Many prompts in one batch, with per-prompt limits set by block_size (4 to 20 new tokens):
    prompts finish at different steps, by EOS, by the stopping rule or at their own limit, while
    the rest of the batch keeps decoding."""
    model = tiny_model(6)
    g = torch.Generator().manual_seed(6)
    lengths = torch.randint(30, 61, (40,), generator=g).tolist()
    prompts = [torch.randint(0, TINY.vocab_size, (k,), generator=g).tolist() for k in lengths]
    eos = eos_seen_midway(model, prompts, 20)
    kw = dict(max_new_tokens=20, eos_id=eos, pad_id=0, beam_size=3, length_penalty=1.1, no_repeat_ngram_size=3)
    outs = generate(model, prompts, batch_size=40, **kw)
    assert generate(model, prompts, batch_size=7, **kw) == outs
    for p, out in zip(prompts, outs):
        assert out == ref_beam(model, p, 20, eos, 3, 1.1, ngram=3)
    limits = [min(20, TINY.block_size - len(p)) for p in prompts]
    assert any(len(o) < lim for o, lim in zip(outs, limits))  # some stop before their limit
    assert any(len(o) == lim for o, lim in zip(outs, limits) if lim < 20)  # some end at a limit below 20
