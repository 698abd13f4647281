"""Dynamic sparsity: RigL and SET move a fixed number of connections at a fixed interval.

A static mask (:mod:`spdf_lib.sparsity`) decides once, at initialization, which entries of each
weight may ever be non-zero. Dynamic sparse training keeps the number of zeros of every tensor but
lets their positions move during training:

* **RigL** (Evci, Gale, Menick, Castro and Elsen, "Rigging the Lottery: Making All Tickets
  Winners", ICML 2020, https://arxiv.org/abs/1911.11134): every ``interval`` optimizer steps, and
  only before ``end_step``, each sparsified tensor drops the ``k`` active weights of smallest
  magnitude and activates the ``k`` inactive positions where the gradient of the loss with respect
  to the dense weight is largest. ``k = floor(f(t) * n_active)`` with the cosine-decayed update
  fraction ``f(t) = fraction / 2 * (1 + cos(pi * t / end_step))`` (:func:`update_fraction`).
* **SET** (Mocanu, Mocanu, Stone, Nguyen, Gibescu and Liotta, "Scalable training of artificial
  neural networks with adaptive sparse connectivity inspired by network science", Nature
  Communications 9, 2383, 2018, https://doi.org/10.1038/s41467-018-04316-3) drops the same way but
  activates positions drawn at random, so it needs no gradient. Here it shares RigL's interval and
  cosine schedule (the paper's SET drops a constant fraction every epoch), so the two differ only in
  how they grow.

The pieces:

* :class:`DynamicSpec` declares the method and its schedule as data.
* :func:`update_fraction`, :func:`is_update_step` and :func:`update_steps` are pure functions of the
  step (``t``, the number of optimizer steps done): updates happen at ``t = interval, 2 * interval,
  ...`` strictly below ``end_step``, where the fraction has not yet decayed to 0.
* :func:`n_swapped` and :func:`drop_grow_indices` choose, for one tensor, how many and which entries
  move. Growth is chosen among the positions that were inactive *before* the drop, so a grown
  position is never one dropped in the same update and every update moves exactly ``k`` weights
  out and ``k`` in. (The reference implementation, https://github.com/google-research/rigl,
  ``SparseRigLOptimizer`` in ``rigl/sparse_optimizers.py``, ranks the grow candidates after the
  drop, so there a just-dropped weight whose gradient is among the largest is kept, with its value
  and optimizer state; fewer than ``k`` connections then change.)
* :func:`dense_gradients` is the one dense-gradient pass RigL needs, one forward and backward on a
  batch, run only on update steps (SET never runs it).
* :func:`update_masks_` applies an update to a model and its optimizer in place: dropped weights
  become exactly 0 and masked, grown ones start at exactly 0 (the network's output does not change),
  and the optimizer state of both (AdamW's ``exp_avg`` and ``exp_avg_sq``) is reset to 0, as in the
  reference implementation. The masks are updated in place, so every tensor that holds them (the
  upkeep lists of :func:`spdf_lib.sparsity.mask_grads_`, a compiled step) sees the new topology.
* :func:`hook` wraps :func:`update_masks_` as the ``after_step(model, optimizer, step, batch)``
  callback of a training loop.

Where the reference algorithm skips the weight update on a step that updates the masks, here every
step trains and RigL's dense gradient is one extra pass on the batch of the update step; the run sees
the same tokens as a static one, and :func:`update_steps` counts the extra passes for the FLOP
budget. SET draws its positions from a generator seeded with ``(seed, step)``, so an update depends
only on the step and the model, and a resumed run repeats an uninterrupted one.

A note on AdamW: its step count is kept per tensor, not per entry, so a regrown entry with zeroed
moments is bias-corrected as if its moments had been accumulating for the whole run; its first
update is about ``(1 - beta1) / sqrt(1 - beta2)`` times the learning rate rather than the learning
rate, the same in the reference implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from . import sparsity
from .training import autocast, to_device

__all__ = [
    "METHODS", "DynamicSpec", "Update", "update_fraction", "is_update_step", "update_steps", "n_swapped",
    "drop_grow_indices", "dense_gradients", "update_masks_", "hook",
]

METHODS = ("rigl", "set")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DynamicSpec:
    """A dynamic-sparsity method and its schedule, as data.

    ``method``: "rigl" (grow where the dense gradient is largest) or "set" (grow at random).
    ``interval``: optimizer steps between two mask updates (RigL's delta T), a positive int.
    ``fraction``: the update fraction at step 0 (RigL's alpha), in (0, 1); it decays along a half
    cosine to 0 at ``end_step``.
    ``end_step``: the step from which the masks no longer change (RigL's T_end); it must exceed
    ``interval``, or no update would ever happen.
    ``seed``: seed of SET's random growth (a non-negative int; RigL does not use it).
    """

    method: str
    interval: int
    fraction: float
    end_step: int
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ValueError(f"DynamicSpec.method must be one of {METHODS}, got {self.method!r}")
        if not _is_int(self.interval) or self.interval < 1:
            raise ValueError(f"DynamicSpec.interval (optimizer steps between mask updates) must be a "
                             f"positive int, got {self.interval!r}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0.0 < float(self.fraction) < 1.0:
            raise ValueError(f"DynamicSpec.fraction (the update fraction at step 0) must be in (0, 1), "
                             f"got {self.fraction!r}")
        object.__setattr__(self, "fraction", float(self.fraction))
        if not _is_int(self.end_step) or self.end_step < 1:
            raise ValueError(f"DynamicSpec.end_step (the step from which masks stop changing) must be an "
                             f"int >= 1, got {self.end_step!r}")
        if self.end_step <= self.interval:
            raise ValueError(f"DynamicSpec.end_step={self.end_step} must exceed interval={self.interval}: "
                             f"updates happen at multiples of the interval below end_step, so none would")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"DynamicSpec.seed must be a non-negative int, got {self.seed!r}")

    def as_dict(self) -> dict:
        return {"method": self.method, "interval": self.interval, "fraction": self.fraction,
                "end_step": self.end_step, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "DynamicSpec":
        return cls(method=d["method"], interval=d["interval"], fraction=d["fraction"],
                   end_step=d["end_step"], seed=d["seed"])


@dataclass(frozen=True)
class Update:
    """What one update did: its ``step``, the update ``fraction`` f(step) and, per tensor name, the
    number of weights ``swapped`` (dropped, and as many grown)."""

    step: int
    fraction: float
    swapped: dict[str, int]


# --------------------------------------------------------------------------------------------------
# The schedule: pure functions of the step


def _check_step(step) -> None:
    if not _is_int(step) or step < 0:
        raise ValueError(f"step (optimizer steps done) must be a non-negative int, got {step!r}")


def update_fraction(step: int, spec: DynamicSpec) -> float:
    """The update fraction at ``step``: ``fraction / 2 * (1 + cos(pi * step / end_step))`` before
    ``end_step``, and 0 from ``end_step`` on (RigL's cosine decay)."""
    _check_step(step)
    if step >= spec.end_step:
        return 0.0
    return 0.5 * spec.fraction * (1.0 + math.cos(math.pi * step / spec.end_step))


def is_update_step(step: int, spec: DynamicSpec) -> bool:
    """Whether the masks are updated after ``step`` optimizer steps: a positive multiple of the
    interval, below ``end_step``."""
    _check_step(step)
    return 0 < step < spec.end_step and step % spec.interval == 0


def update_steps(spec: DynamicSpec, total_steps: int) -> list[int]:
    """The steps of a ``total_steps``-step run after which the masks are updated (for RigL, also the
    number of dense-gradient passes the run adds to its FLOP budget)."""
    _check_step(total_steps)
    return list(range(spec.interval, min(spec.end_step, total_steps + 1), spec.interval))


# --------------------------------------------------------------------------------------------------
# One tensor: how many entries move, and which


def n_swapped(fraction: float, n_active: int, n_inactive: int) -> int:
    """``k = floor(fraction * n_active)``, at most ``n_inactive`` (growth picks among the positions
    inactive before the update, so it cannot grow more than there are)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if n_active < 0 or n_inactive < 0:
        raise ValueError(f"n_active and n_inactive must be >= 0, got {n_active}, {n_inactive}")
    return min(sparsity.n_masked(fraction, n_active), n_inactive)


def drop_grow_indices(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor,
                      k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(drop, grow)`` of one update of one tensor.

    ``drop``: the ``k`` active entries (``mask`` True) of smallest ``|weight|``. ``grow``: the ``k``
    entries inactive *before* the drop with the largest ``grow_score`` (RigL: ``|dense gradient|``,
    SET: uniform random numbers). The two sets are disjoint. Ties are broken by ``torch.topk``.
    """
    if tuple(weight.shape) != tuple(mask.shape) or tuple(grow_score.shape) != tuple(mask.shape):
        raise ValueError(f"weight {tuple(weight.shape)}, mask {tuple(mask.shape)} and grow_score "
                         f"{tuple(grow_score.shape)} must have one shape")
    active = mask.reshape(-1).bool()
    n_active = int(active.sum())
    if not _is_int(k) or not 0 <= k <= min(n_active, active.numel() - n_active):
        raise ValueError(f"k must be an int in [0, min(active, inactive)] = [0, "
                         f"{min(n_active, active.numel() - n_active)}], got {k!r}")
    drop_score = weight.detach().reshape(-1).abs().float().masked_fill(~active, float("inf"))
    drop = torch.topk(drop_score, k, largest=False).indices
    score = grow_score.detach().reshape(-1).float().to(active.device).masked_fill(active, float("-inf"))
    grow = torch.topk(score, k).indices
    return drop, grow


# --------------------------------------------------------------------------------------------------
# The model: scores, and the update in place


def _masked_weights(net: nn.Module) -> list[tuple[str, nn.Linear]]:
    named = [(name, net.get_submodule(name.rpartition(".")[0])) for name in sparsity.masks(net)]
    if not named:
        raise ValueError("the model has no sparsity masks to update; call sparsity.sparsify(model, spec) first")
    return named


def dense_gradients(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gradient of the loss on ``batch`` with respect to every masked weight, at every entry
    (active or not): one forward and one backward pass, ``model(x, y) -> (logits, loss)``.

    Computed with ``torch.autograd.grad``, so the ``.grad`` of the parameters is left untouched;
    under bf16 autocast on CUDA, as the training step.
    """
    net = sparsity.unwrap(model)
    named = _masked_weights(net)
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(t) for t in batch)):
        raise ValueError("batch must be the (x, y) tensors of the step; RigL's dense gradient is computed on it")
    weights = [m.weight for _, m in named]
    device = weights[0].device
    x, y = (to_device(t, device) for t in batch)
    with torch.enable_grad():
        with autocast(device):
            _, loss = net(x, y)
        grads = torch.autograd.grad(loss, weights)
    return {name: g for (name, _), g in zip(named, grads)}


def _set_generator(seed: int, step: int) -> torch.Generator:
    """SET's generator for the update at ``step``: seeded from ``(seed, step)`` only."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def update_masks_(model: nn.Module, optimizer: torch.optim.Optimizer, spec: DynamicSpec, step: int,
                  batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> Update | None:
    """Update the masks of ``model`` after ``step`` optimizer steps, in place; None when ``step`` is
    not an update step (:func:`is_update_step`), in which case nothing is computed.

    Per masked tensor, ``k = n_swapped(update_fraction(step), n_active, n_inactive)`` weights are
    dropped and as many grown (:func:`drop_grow_indices`), so its number of zeros is unchanged.
    Dropped and grown weights are set to exactly 0, and every optimizer state tensor of the weight's
    shape (AdamW: ``exp_avg``, ``exp_avg_sq``) is zeroed at the inactive and the grown positions.
    RigL needs ``batch`` (the step's ``(x, y)``) for :func:`dense_gradients`; SET ignores it.
    """
    if not isinstance(spec, DynamicSpec):
        raise ValueError(f"spec must be a DynamicSpec, got {type(spec).__name__}")
    if not is_update_step(step, spec):
        return None
    net = sparsity.unwrap(model)
    named = _masked_weights(net)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for name, module in named:
        if id(module.weight) not in held:
            raise ValueError(f"the optimizer does not hold {name!r}; build it from this model's parameters")
    if spec.method == "rigl":
        if batch is None:
            raise ValueError("batch is required for method 'rigl': its dense gradient is computed on the step's (x, y)")
        scores = {name: g.abs() for name, g in dense_gradients(net, batch).items()}
    else:
        gen = _set_generator(spec.seed, step)
        scores = {name: torch.rand(module.weight.shape, generator=gen) for name, module in named}
    fraction = update_fraction(step, spec)
    swapped = {}
    with torch.no_grad():
        for name, module in named:
            weight, mask = module.weight, getattr(module, sparsity.MASK_BUFFER)
            active = mask.bool()
            n_active = int(active.sum())
            k = n_swapped(fraction, n_active, active.numel() - n_active)
            drop, grow = drop_grow_indices(weight, active, scores[name], k)
            flat = mask.view(-1)  # in place: the buffer keeps its identity
            flat[drop] = 0
            flat[grow] = 1
            weight.view(-1)[torch.cat([drop, grow])] = 0
            weight.mul_(mask)
            for value in optimizer.state.get(weight, {}).values():
                if torch.is_tensor(value) and value.shape == weight.shape:
                    value.mul_(mask)
                    value.view(-1)[grow] = 0
            swapped[name] = k
    return Update(step=step, fraction=fraction, swapped=swapped)


def hook(spec: DynamicSpec) -> Callable[[nn.Module, torch.optim.Optimizer, int, tuple], Update | None]:
    """``after_step(model, optimizer, step, batch)`` for a training loop: call it after the optimizer
    step with the number of steps done and the step's ``(x, y)``; it runs :func:`update_masks_`."""
    if not isinstance(spec, DynamicSpec):
        raise ValueError(f"spec must be a DynamicSpec, got {type(spec).__name__}")

    def after_step(model, optimizer, step, batch):
        return update_masks_(model, optimizer, spec, step, batch)

    return after_step
