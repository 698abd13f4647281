"""Iterative magnitude pruning (chapter 08): the schedule, shrinking masks and FLOP accounting."""

from __future__ import annotations


import pytest
import torch

from spdf_lib.flops import inference_flops_per_token
from spdf_lib.model import GPT, get_config
from spdf_lib.profiles import PruningSettings
from spdf_lib.pruning import sparsity_schedule, zeros_schedule
from spdf_lib.runs import PruningRun
from spdf_lib.sparsity import magnitude_prune_, masks, sparsity_report

CONFIG = get_config("smoke-large", vocab_size=64, block_size=32)
SETTINGS = PruningSettings(iterations=8, fraction_per_iteration=0.2, retrain_tokens=0)


def _selected_sparsity(model) -> float:
    report = sparsity_report(model)
    return float(report[(report["kind"] == "group") & (report["name"] == "all")]["actual"].iloc[0])


def test_zeros_schedule_prunes_a_fifth_of_what_remains():
    zeros = zeros_schedule(1000, 0.2, 3)
    assert zeros == [0, 200, 360, 488]


def test_schedule_reaches_about_83_percent_in_8_iterations():
    schedule = sparsity_schedule(CONFIG, SETTINGS)
    assert len(schedule) == 9 and schedule[0] == 0.0
    assert schedule[-1] == pytest.approx(1 - 0.8 ** 8, abs=1e-3)
    assert all(b > a for a, b in zip(schedule, schedule[1:]))


def test_achieved_sparsity_equals_schedule_and_masks_only_shrink():
    torch.manual_seed(0)
    model = GPT(CONFIG)
    schedule = sparsity_schedule(CONFIG, SETTINGS)
    previous = None
    for iteration in range(1, SETTINGS.iterations + 1):
        magnitude_prune_(model, SETTINGS.fraction_per_iteration)
        with torch.no_grad():  # stand-in for retraining: move the surviving weights
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        from spdf_lib.sparsity import mask_weights_

        mask_weights_(model)
        current = masks(model)
        assert _selected_sparsity(model) == schedule[iteration]  # exactly, not approximately
        if previous is not None:
            for name, mask in current.items():
                assert not (mask & ~previous[name]).any(), f"{name}: a pruned weight came back"
        previous = {k: v.clone() for k, v in current.items()}


def test_reported_flops_equal_the_flop_model():
    from spdf_lib.pruning import measure

    torch.manual_seed(0)
    model = GPT(CONFIG)
    for _ in range(3):
        magnitude_prune_(model, 0.2)
    batch = torch.randint(0, CONFIG.vocab_size, (2, 17))
    row = measure(model, CONFIG, [(batch[:, :-1], batch[:, 1:])], torch.device("cpu"))
    assert row["inference_flops_per_token"] == inference_flops_per_token(CONFIG, row["sparsity"])
    assert row["params_nonzero"] < row["params_dense"]


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown pruning method 'random'"):
        PruningRun(base=None, method="random", settings=SETTINGS)
