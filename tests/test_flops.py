"""The FLOP convention reproduces the published GPT-3 XL figure and agrees with the real model."""

import pytest
import torch

from spdf_lib.flops import (CURATION_FINETUNE_TOKENS, PUBLISHED_REDUCTION_75, PUBLISHED_SAVING_75, chinchilla_tokens,
                            flop_reduction, forward_flops_per_token, inference_flops_per_token, model_param_memory,
                            paper_pipeline, param_memory, sparsifiable_weights, spdf_flops, training_flops)
from spdf_lib.model import GPT, get_config, num_params
from spdf_lib.sparsity import SparsitySpec, sparsify

XL = get_config("gpt3-xl")


def test_published_reduction_within_one_percent():
    tokens = chinchilla_tokens(XL)
    assert abs(tokens - 26.3e9) / 26.3e9 < 0.005  # "about 26.3B tokens"
    ratio = flop_reduction(XL, tokens, CURATION_FINETUNE_TOKENS, 0.75)
    assert abs(ratio - PUBLISHED_REDUCTION_75) / PUBLISHED_REDUCTION_75 < 0.01
    dense, sparse = paper_pipeline(0.0), paper_pipeline(0.75)
    assert abs((1 - sparse.total / dense.total) - PUBLISHED_SAVING_75) < 0.01  # "60% fewer"
    assert dense.pretrain > 20 * dense.finetune  # pre-training dominates
    assert 1.0 < flop_reduction(XL, tokens, CURATION_FINETUNE_TOKENS, 0.5) < ratio


def test_forward_components_match_the_documented_numbers():
    f = forward_flops_per_token(XL)
    assert abs(f.total / 1e9 - 3.02) < 0.01 and abs(forward_flops_per_token(XL, 0.75).total / 1e9 - 1.21) < 0.01
    assert f.linear == 2 * sparsifiable_weights(XL)
    assert f.attention == 4 * 24 * 2048 * 2048 and f.lm_head == 2 * 2048 * 50257
    half = forward_flops_per_token(XL, 0.5)
    assert half.linear == f.linear / 2 and half.attention == f.attention and half.lm_head == f.lm_head
    assert training_flops(XL, 10, 0.5) == 3 * 10 * half.total
    assert inference_flops_per_token(XL, 0.5) == half.total
    with pytest.raises(ValueError, match="sparsity"):
        forward_flops_per_token(XL, 1.0)


def test_pipeline_fine_tuning_is_dense():
    p = spdf_flops(XL, 100, 10, 0.75)
    assert p.finetune == training_flops(XL, 10, 0.0) and p.pretrain == training_flops(XL, 100, 0.75)
    assert flop_reduction(XL, 100, 0, 0.0) == 1.0


def test_linear_flops_agree_with_the_model():
    """2 x (multiplies by nonzero weights) of the sparsifiable linears, counted on a real model."""
    cfg = get_config("smoke-large", vocab_size=100)
    model = GPT(cfg)
    sparsify(model, SparsitySpec(level=0.75))
    nonzero = sum(int((model.get_parameter(f"transformer.h.{i}.{m}.weight") != 0).sum())
                  for i in range(cfg.n_layer) for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert forward_flops_per_token(cfg, 0.75).linear == pytest.approx(2 * nonzero, rel=1e-9)


def test_parameter_memory():
    pm = param_memory(XL, 0.84)  # the iterative-pruning post: 4.3x fewer parameters in memory
    assert pm.dense == num_params(XL) and 4.2 < pm.reduction < 4.45
    assert 2.9 < inference_flops_per_token(XL) / inference_flops_per_token(XL, 0.84) < 3.1  # "3x fewer"
    cfg = get_config("smoke-small", vocab_size=64)
    model = GPT(cfg)
    assert model_param_memory(model).dense == num_params(cfg)
    sparsify(model, SparsitySpec(level=0.5))
    with torch.no_grad():  # biases are zero at init; give them values so nonzero counts are exact
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.fill_(0.1)
    assert model_param_memory(model).nonzero == param_memory(cfg, 0.5).nonzero
