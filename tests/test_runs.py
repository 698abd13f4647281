"""Run definitions and planning (spdf_lib.runs): the learning-rate search and what a run's key holds."""

from __future__ import annotations

import dataclasses

import pytest

from spdf_lib import runs
from spdf_lib.profiles import LRSearch, get_profile

from conftest import needs_data  # noqa: E402  (task fingerprints read the data files)

SEARCH = LRSearch(grid=(1e-3, 2e-3, 4e-3), factor=2.0, max_extensions=2)


def test_search_tries_the_grid_first():
    assert runs.next_rates({}, SEARCH) == (1e-3, 2e-3, 4e-3)
    assert runs.next_rates({1e-3: 1.0}, SEARCH) == (2e-3, 4e-3)


def test_interior_optimum_stops_the_search():
    losses = {1e-3: 1.2, 2e-3: 1.0, 4e-3: 1.1}
    assert runs.next_rates(losses, SEARCH) == ()
    assert runs.search_status(losses, SEARCH) == "interior"
    assert (runs.chosen_lr(losses), runs.runner_up_lr(losses)) == (2e-3, 4e-3)


def test_optimum_at_an_edge_extends_past_it_until_the_bound():
    losses = {1e-3: 1.2, 2e-3: 1.1, 4e-3: 1.0}
    assert runs.next_rates(losses, SEARCH) == (8e-3,)
    losses[8e-3] = 0.9
    assert runs.next_rates(losses, SEARCH) == (0.016,)
    losses[0.016] = 0.8
    assert runs.next_rates(losses, SEARCH) == ()
    assert runs.search_status(losses, SEARCH) == "bound hit (highest rate)"
    low = {5e-4: 0.9, 1e-3: 1.0, 2e-3: 1.1, 4e-3: 1.2}
    assert runs.next_rates(low, SEARCH) == (2.5e-4,)


def test_a_diverged_rate_is_never_chosen():
    losses = {1e-3: 1.2, 2e-3: float("nan"), 4e-3: float("inf")}
    assert runs.chosen_lr(losses) == 1e-3
    assert runs.next_rates(losses, SEARCH) == (5e-4,)


def test_a_single_rate_is_reported_as_no_search():
    one = LRSearch(grid=(1e-3,), max_extensions=0)
    assert runs.next_rates({1e-3: 1.0}, one) == ()
    assert runs.search_status({1e-3: 1.0}, one) == "single rate"


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": ()}, "positive learning rates"), ({"grid": (1e-3, -1.0)}, "positive"),
    ({"grid": (2e-3, 1e-3)}, "strictly increasing"), ({"grid": (1e-3,), "factor": 1.0}, "factor must be above 1"),
    ({"grid": (1e-3,), "max_extensions": -1}, "max_extensions")])
def test_bad_search_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRSearch(**kwargs)


def test_a_profile_needs_distinct_seeds_and_a_dense_baseline():
    smoke = get_profile("smoke")
    with pytest.raises(ValueError, match="pretrain_seeds"):
        dataclasses.replace(smoke, pretrain_seeds=())
    with pytest.raises(ValueError, match="finetune_seeds"):
        dataclasses.replace(smoke, finetune_seeds=(0, 0))
    with pytest.raises(ValueError, match="dense baseline"):
        dataclasses.replace(smoke, sparsity_levels=(0.5, 0.75))


def _base(profile):
    spec = runs.TokenizerSpec(profile.vocab_size, profile.tokenizer_train_chars, profile.pretrain.corpus_docs, "fp")
    from spdf_lib.model import get_config

    return runs.PretrainRun(profile=profile.name, size=profile.sizes[0], sparsity=0.5, seed=1,
                            model=get_config(profile.sizes[0]), settings=profile.pretrain, tokens=1024,
                            tokenizer=spec, data="d")


def test_decoding_settings_change_the_evaluation_key_only():
    profile = get_profile("smoke")
    ft = runs.FinetuneRun(base=_base(profile), task="e2e", epochs=1, max_train_examples=8, max_dev_examples=4,
                          lr=1e-3, seed=0, keep_masks=False, optim=runs.finetune_optim(profile, _base(profile)),
                          data="t")
    ev = runs.EvalRun(finetune=ft, max_test_inputs=6, max_new_tokens=12, beam_size=2, length_penalty=0.9,
                      no_repeat_ngram_size=3)
    longer = dataclasses.replace(ev, max_new_tokens=24)
    assert runs.run_key(longer) != runs.run_key(ev)
    assert runs.run_key(longer.finetune) == runs.run_key(ev.finetune)
    assert ft.run_id == "smoke-small_s50_p1_e2e_denseft_lr0.001_f0"


@needs_data
def test_final_runs_cover_every_pretrained_model_and_the_first_with_every_fine_tuning_seed():
    profile = get_profile("gpu")
    bases = [dataclasses.replace(_base(profile), size=profile.sizes[-1], sparsity=0.75, seed=s)
             for s in profile.pretrain_seeds]
    planned = runs.final_runs_for(profile, bases, "e2e", 1e-3)
    dense = {(r.base.seed, r.seed) for r in planned if not r.keep_masks}
    first = profile.pretrain_seeds[0]
    assert dense == ({(first, f) for f in profile.finetune_seeds}
                     | {(p, profile.finetune_seeds[0]) for p in profile.pretrain_seeds})
    control = {(r.base.seed, r.seed) for r in planned if r.keep_masks}
    assert control == {(p, profile.finetune_seeds[0]) for p in profile.pretrain_seeds}
