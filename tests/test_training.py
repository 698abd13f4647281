"""The training loop's schedule and its time accounting across resumed segments (chapter 04)."""

from __future__ import annotations

import pytest
import torch

from spdf_lib import training
from spdf_lib.model import GPT, get_config
from spdf_lib.training import OptimConfig, lr_at


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(lr=1e-3, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=1e-2)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 99))


def _batch(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, 64, (2, 8), generator=g)
    return x, x


def test_wall_time_sums_every_resumed_segment(tmp_path, monkeypatch):
    """A run stopped by its deadline and resumed reports the time of both segments, not the last one."""
    torch.manual_seed(0)
    model = GPT(get_config("smoke-small", vocab_size=64))
    cfg = OptimConfig(lr=1e-3, total_steps=6, warmup_steps=1)
    ckpt = tmp_path / "ckpt.pt"
    clock = iter([100.0, 110.0, 140.0, 1e12, 1e12, 1e12, 1e12, 1e12, 1e12])
    real = training.time.time
    monkeypatch.setattr(training.time, "time", lambda: next(clock, real()))
    with pytest.raises(training.DeadlineReached):
        training.train(model, batch_at=_batch, optim=cfg, device=torch.device("cpu"), checkpoint_path=ckpt,
                       checkpoint_every=100, deadline=120.0, progress=False)
    saved = training.store.load_torch(ckpt)
    assert saved["elapsed"] > 0
    monkeypatch.setattr(training.time, "time", real)
    log = training.train(model, batch_at=_batch, optim=cfg, device=torch.device("cpu"), checkpoint_path=ckpt,
                         checkpoint_every=100, progress=False)
    assert log["wall_s"] >= saved["elapsed"]
    assert log["tokens_per_s"] == pytest.approx(log["tokens"] / log["wall_s"])


def test_after_step_runs_a_dynamic_sparsity_update_inside_the_loop():
    """The loop's hook: RigL updates at its interval keep every tensor's exact number of zeros."""
    from spdf_lib import dynamic, sparsity

    torch.manual_seed(0)
    model = GPT(get_config("smoke-small", vocab_size=64))
    sparsity.sparsify(model, sparsity.SparsitySpec(level=0.75, seed=0))
    before = {name: int((~m).sum()) for name, m in sparsity.masks(model).items()}
    start = {name: m.clone() for name, m in sparsity.masks(model).items()}
    spec = dynamic.DynamicSpec(method="rigl", interval=2, fraction=0.3, end_step=8)
    calls = []
    hook = dynamic.hook(spec)

    def after_step(m, opt, step, batch):
        calls.append(step)
        return hook(m, opt, step, batch)

    training.train(model, batch_at=_batch, optim=OptimConfig(lr=1e-2, total_steps=8, warmup_steps=1),
                   device=torch.device("cpu"), progress=False, after_step=after_step)
    assert calls == list(range(1, 9))
    after = sparsity.masks(model)
    assert {name: int((~m).sum()) for name, m in after.items()} == before
    assert any(not torch.equal(start[n], after[n]) for n in after), "no mask moved"
    for name, m in after.items():
        assert torch.all(model.get_parameter(name)[~m] == 0)
