"""Placement of the grid's worker processes on the GPUs of one machine (spdf_lib.placement), on the CPU."""

from __future__ import annotations

import multiprocessing
import os
import sys
import types
from concurrent.futures import ProcessPoolExecutor

import pytest

from spdf_lib import placement
from spdf_lib.placement import Group, grid_gpus, parse_gpus, pick_group, worker_groups


def test_every_visible_gpu_by_default_and_a_list_of_indices_on_request():
    assert parse_gpus(None, 4) == parse_gpus("", 4) == parse_gpus(" all ", 4) == (0, 1, 2, 3)
    assert parse_gpus("2, 0", 4) == (2, 0)
    assert parse_gpus(None, 0) == ()  # no GPU: the CPU


@pytest.mark.parametrize("value, available, message", [
    ("two", 4, "not a list of GPU indices"),
    ("-1", 4, "not a list of GPU indices"),
    ("0,,1", 4, "not a list of GPU indices"),
    ("1.5", 4, "not a list of GPU indices"),
    ("cuda:0", 4, "not a list of GPU indices"),
    ("\u00b2", 4, "not a list of GPU indices"),
    ("1,1", 4, "names a GPU twice"),
    ("4", 4, "there is no GPU 4; PyTorch sees 4 GPU(s), indices 0 to 3"),
    ("0,7,9", 2, "there is no GPU 7, 9"),
    ("0", 0, "PyTorch sees none"),
])
def test_a_bad_value_names_the_variable_and_what_is_wrong(value, available, message):
    with pytest.raises(ValueError, match=rf"^SPDF_GPUS='{value}'") as err:
        parse_gpus(value, available)
    assert message in str(err.value)


def test_the_flag_wins_over_the_environment_and_errors_name_their_source():
    env = {"SPDF_GPUS": "1"}
    assert grid_gpus(None, 2, env) == (1,)
    assert grid_gpus("0", 2, env) == (0,)
    assert grid_gpus(None, 2, {}) == (0, 1)
    with pytest.raises(ValueError, match="^--gpus='5'"):
        grid_gpus("5", 2, env)
    with pytest.raises(ValueError, match="^SPDF_GPUS='x'"):
        grid_gpus(None, 2, {"SPDF_GPUS": "x"})


def test_one_group_per_gpu_each_seeing_one_device_and_one_cpu_group_without_gpus():
    assert worker_groups(()) == (Group(None, None),)
    assert worker_groups((0,)) == (Group(0, "0"),)
    assert worker_groups((0, 1, 2)) == (Group(0, "0"), Group(1, "1"), Group(2, "2"))
    # indices count the GPUs the parent sees: with CUDA_VISIBLE_DEVICES=4,6 GPU 1 is device 6
    assert worker_groups((1, 0), "4, 6") == (Group(1, "6"), Group(0, "4"))
    assert placement.visible_devices(0, "GPU-1a2b") == "GPU-1a2b"
    with pytest.raises(ValueError, match="not among the 2"):
        placement.visible_devices(2, "4,6")


def _place(n_groups: int, jobs: list[bool], slots: int, pretrain_slots: int) -> list[int | None]:
    """Where each job of ``jobs`` (True: a pre-training) goes when all are submitted at once."""
    running, pretraining, placed = [0] * n_groups, [0] * n_groups, []
    for is_pre in jobs:
        k = pick_group(running, pretraining, is_pretraining=is_pre, slots=slots, pretrain_slots=pretrain_slots)
        placed.append(k)
        if k is not None:
            running[k] += 1
            pretraining[k] += is_pre
    return placed


def test_runs_spread_evenly_over_the_gpus():
    placed = _place(4, [False] * 10, slots=3, pretrain_slots=1)
    assert placed == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert _place(4, [False] * 13, slots=3, pretrain_slots=1)[-1] is None  # 12 slots, the 13th waits
    # pre-training first, at most pretrain_slots per GPU: 4 on 2 GPUs with 2 each, the fifth waits,
    # and the fine-tuning runs after them fill the remaining slots evenly
    placed = _place(2, [True] * 5 + [False] * 5, slots=4, pretrain_slots=2)
    assert placed == [0, 1, 0, 1, None, 0, 1, 0, 1, None]


def test_a_finished_run_frees_its_gpu_for_the_next():
    running, pretraining = [2, 1, 2], [1, 0, 1]
    assert pick_group(running, pretraining, is_pretraining=True, slots=2, pretrain_slots=1) == 1
    assert pick_group([2, 2, 2], [1, 1, 1], is_pretraining=False, slots=2, pretrain_slots=1) is None
    assert pick_group([1, 1], [1, 0], is_pretraining=False, slots=2, pretrain_slots=1) == 1  # fewer pre-training


def test_one_gpu_takes_everything_on_gpu_0_and_no_gpu_runs_on_the_cpu():
    (only,) = worker_groups(parse_gpus(None, 1))
    assert only == Group(0, "0")
    assert set(_place(1, [True, False, False, False], slots=4, pretrain_slots=1)) == {0}
    (cpu,) = worker_groups(parse_gpus(None, 0))
    assert cpu.gpu is None and cpu.visible is None


def test_balance_holds_over_many_arrivals_and_departures():
    """Runs arrive and finish in a fixed pseudo-random order: every placement goes to a least-loaded
    group with room, and the loads never differ by more than the one the last departure opened."""
    import random

    rng = random.Random(0)
    running, pretraining, live = [0] * 3, [0] * 3, []
    for _ in range(500):
        if live and rng.random() < 0.45:
            k, is_pre = live.pop(rng.randrange(len(live)))
            running[k] -= 1
            pretraining[k] -= is_pre
            continue
        is_pre = rng.random() < 0.3
        k = pick_group(running, pretraining, is_pretraining=is_pre, slots=4, pretrain_slots=2)
        if k is None:
            assert all(r == 4 or (is_pre and p == 2) for r, p in zip(running, pretraining))
            continue
        with_room = [j for j in range(3) if running[j] < 4 and (not is_pre or pretraining[j] < 2)]
        assert running[k] == min(running[j] for j in with_room)
        running[k] += 1
        pretraining[k] += is_pre
        live.append((k, is_pre))
    assert max(running) <= 4 and max(pretraining) <= 2


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="one count per group"):
        pick_group([0, 0], [0], is_pretraining=False, slots=1, pretrain_slots=1)
    with pytest.raises(ValueError, match="at least 1"):
        pick_group([0], [0], is_pretraining=False, slots=0, pretrain_slots=1)


def test_a_pinned_worker_process_sees_only_its_gpu():
    """The initializer the scheduler gives each group's pool, in a real spawned process."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=placement.pin_worker, initargs=("3",)) as pool:
        assert pool.submit(os.getenv, "CUDA_VISIBLE_DEVICES").result(timeout=120) == "3"


def test_pinning_after_cuda_started_is_an_error(monkeypatch):
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match="already initialised"):
        placement.pin_worker("0")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    placement.pin_worker(None)  # the CPU group leaves the environment alone
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_side_slots_cap_other_runs_only_while_pre_training_runs_or_waits():
    # one GPU, 12 slots, 4 pre-training: 4 fine-tunes beside the pre-trainings, no more
    running, pretraining = [8], [4]
    assert pick_group(running, pretraining, is_pretraining=False, slots=12, pretrain_slots=4, side_slots=4) is None
    assert pick_group([7], [4], is_pretraining=False, slots=12, pretrain_slots=4, side_slots=4) == 0
    # the cap does not touch the pre-trainings themselves
    assert pick_group([8], [3], is_pretraining=True, slots=12, pretrain_slots=4, side_slots=4) == 0
    # a pre-training waiting to start counts although none runs
    assert pick_group([4], [0], is_pretraining=False, slots=12, pretrain_slots=4, side_slots=4,
                      pretraining_waits=True) is None
    # once no pre-training runs or waits, every slot is open again
    assert pick_group([11], [0], is_pretraining=False, slots=12, pretrain_slots=4, side_slots=4) == 0
    # without the cap, the old rule
    assert pick_group([8], [4], is_pretraining=False, slots=12, pretrain_slots=4) == 0
    # per GPU: the GPU that is not pre-training takes the run
    assert pick_group([5, 6], [4, 0], is_pretraining=False, slots=12, pretrain_slots=4, side_slots=1) == 1
    with pytest.raises(ValueError, match="side_slots"):
        pick_group([0], [0], is_pretraining=False, slots=1, pretrain_slots=1, side_slots=-1)


def test_a_profiles_side_workers_must_fit_in_its_workers():
    import dataclasses

    from spdf_lib.profiles import SMOKE

    assert dataclasses.replace(SMOKE, workers=4, side_workers=2).side_workers == 2
    for bad in (-1, 5):
        with pytest.raises(ValueError, match="side_workers"):
            dataclasses.replace(SMOKE, workers=4, side_workers=bad)
    with pytest.raises(ValueError, match="workers and pretrain_workers"):
        dataclasses.replace(SMOKE, workers=0)
