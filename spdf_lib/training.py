"""One training loop for pre-training (chapter 04) and fine-tuning (chapter 05).

The loop is a function of a *batch schedule*: ``batch_at(step) -> (x, y)`` is a pure function of the
step, so a run that is interrupted resumes from its last checkpoint and ends with exactly the same
weights as an uninterrupted one (bit-identical on the CPU). Masks hold through training: gradients
of masked weights are zeroed before ``optimizer.step()`` with one fused ``torch._foreach_mul_``.
With a zero gradient AdamW's moments of a masked entry stay zero and its decoupled weight decay
multiplies zero, so the weight stays exactly zero; the weights are re-zeroed anyway at every
checkpoint and at the end, as a guard that costs nothing per step. Which phase a run is, sparse
pre-training or dense fine-tuning, the loop does not know: ``spdf_lib.runners`` sparsifies the model
of a pre-training run before the loop and densifies the model of a fine-tuning run.

The module also holds what the loop is configured with: :class:`OptimConfig` and :func:`lr_at`
(linear warm-up, then cosine decay to a floor), :func:`make_optimizer` (AdamW, no decay on biases and
norms) and :func:`mean_loss`.

On CUDA the model runs under bf16 autocast and, for pre-training, ``torch.compile`` with CUDA graphs
(``mode="reduce-overhead"``: the shapes never change, and a tiny model's step is otherwise bound by
the host launching kernels one by one). The host never waits for the GPU inside a step: batches are
copied from pinned memory without blocking, and the logged losses come back through non-blocking
copies that are read once they have landed. On the CPU the model runs in fp32, eagerly.

The same loop runs each process of data-parallel pre-training (``spdf_lib.distributed``): a
:class:`Parallel` passed as ``parallel`` wraps the step (DDP over the rank's rows of the batch),
lets one process write the checkpoints that every process resumes from, records and checks what the
checkpoint was written with, and makes every process stop at the same step at a deadline. Without
it (the default) the loop is exactly the single-process loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

from . import sparsity, store
from .model import IGNORE_INDEX

__all__ = [
    "DeadlineReached", "OptimConfig", "Parallel", "lr_at", "make_optimizer", "autocast", "mean_loss",
    "to_device", "train",
]



class DeadlineReached(RuntimeError):
    """A run stopped at its wall-clock deadline after writing a checkpoint; re-run to resume."""


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and cosine decay to ``min_lr_ratio * lr`` (chapter 04)."""

    lr: float
    total_steps: int
    warmup_steps: int
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0

    def __post_init__(self):
        if self.total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {self.total_steps} "
                             "(is the token budget 0 or smaller than one batch?)")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")


@dataclass(frozen=True)
class Parallel:
    """How one process of a data-parallel run takes part in :func:`train` (``spdf_lib.distributed``).

    ``wrap(model)`` returns the step function called as ``step(x, y) -> (logits, loss)`` on the whole
    batch of the step; it computes on this process's rows (e.g. through DDP, whose backward averages
    the gradients of all processes) and returns the loss of the whole batch for the log.
    ``writes_checkpoints``: only one process (rank 0) writes; every process resumes from its file.
    ``checkpoint_meta`` is stored in every checkpoint under ``"meta"``; ``check_resume(meta, path)``
    sees the stored meta (``{}`` for a checkpoint written without it) before anything is loaded, and
    raises to refuse the checkpoint. ``agree(flag)`` turns each process's "past my deadline" into one
    decision shared by all (called once per step, only when a deadline is set), so that every
    process stops at the same step.
    """

    wrap: Callable[[torch.nn.Module], Callable] | None = None
    writes_checkpoints: bool = True
    checkpoint_meta: Mapping = field(default_factory=dict)
    check_resume: Callable[[Mapping, Path], None] | None = None
    agree: Callable[[bool], bool] | None = None


def lr_at(step: int, cfg: OptimConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): a pure function, plotted in chapter 04."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (incl. embeddings), none on biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = bool(params) and params[0].is_cuda
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere (the CPU runs in fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              device: torch.device) -> float:
    """Token-weighted mean cross-entropy over all non-ignored targets of ``batches``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        n = int((y != IGNORE_INDEX).sum())
        if n == 0:
            continue
        with autocast(device):
            _, loss = model(x, y)
        total += float(loss) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("no target tokens to evaluate (empty validation set?)")
    return total / count


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; from the CPU to CUDA through pinned memory, so the copy does not block the host
    (a copy from pageable memory waits for every kernel queued before it)."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class _LossLog:
    """Means of the per-step losses, brought to the host without stalling the GPU.

    ``add`` keeps a step's loss on the device; ``flush`` averages the kept losses there and starts a
    non-blocking copy of the mean into pinned host memory; ``collect`` appends, in order, every mean
    whose copy has landed (``wait=True``: all of them) to the log. Only checkpoints, evaluations and
    the end wait, so the host can queue the next steps while the GPU works.
    """

    def __init__(self, log: dict, device: torch.device, pending: list[float]):
        self.log, self.device = log, device
        self.pending = [torch.tensor(v, dtype=torch.float32, device=device) for v in pending]
        self.in_flight: list[tuple[int, torch.Tensor, object]] = []

    def add(self, loss: torch.Tensor) -> None:
        # a copy: under CUDA graphs the loss tensor is overwritten by the next step
        self.pending.append(loss.detach().float().clone())

    def flush(self, step_done: int) -> None:
        if not self.pending:
            return
        mean = torch.stack(self.pending).mean()
        self.pending.clear()
        if self.device.type == "cuda":
            host = torch.empty((), dtype=torch.float32, pin_memory=True)
            host.copy_(mean, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.in_flight.append((step_done, host, event))
        else:
            self.in_flight.append((step_done, mean, None))

    def collect(self, wait: bool = False) -> None:
        while self.in_flight:
            step_done, value, event = self.in_flight[0]
            if event is not None and not wait and not event.query():
                return
            if event is not None:
                event.synchronize()
            self.log["train_step"].append(step_done)
            self.log["train_loss"].append(float(value))
            self.in_flight.pop(0)

    def pending_values(self) -> list[float]:
        return [float(p) for p in self.pending]


def _checkpoint_state(model, optimizer, step: int, log: dict, pending: list | None = None,
                      elapsed: float = 0.0, meta: Mapping | None = None) -> dict:
    state = {"model": {k.removeprefix("_orig_mod."): v for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "step": step, "log": log,
             "torch_rng": torch.get_rng_state(), "pending": list(pending or []), "elapsed": float(elapsed)}
    if meta is not None:
        state["meta"] = dict(meta)
    return state


def train(model: torch.nn.Module, *, batch_at: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
          optim: OptimConfig, device: torch.device, checkpoint_path: Path | None = None,
          checkpoint_every: int = 500, evaluate: Callable[[], float] | None = None, eval_every: int = 0,
          deadline: float | None = None, compile_model: bool = False, desc: str = "train",
          progress: bool = True, log_every: int = 10, parallel: Parallel | None = None,
          after_step: Callable[[torch.nn.Module, torch.optim.Optimizer, int, tuple], object] | None = None) -> dict:
    """Run ``optim.total_steps`` optimizer steps, resuming from ``checkpoint_path`` when it exists.

    Returns a log: ``train_loss`` (mean over each ``log_every`` steps, with ``train_step``),
    ``val_loss`` with ``val_step`` (``evaluate()`` every ``eval_every`` steps and at the end),
    ``tokens`` (target tokens seen), ``wall_s`` (training time summed over every resumed segment, up
    to each segment's last checkpoint) and ``tokens_per_s`` (``tokens`` over ``wall_s``).
    ``deadline`` (a ``time.time()`` value) makes the loop checkpoint and raise DeadlineReached.
    ``parallel`` makes this call one process of a data-parallel run (see :class:`Parallel`).
    ``after_step(model, optimizer, steps_done, batch)`` runs after every optimizer step (dynamic
    sparsity updates its masks there: ``spdf_lib.dynamic.hook``).
    """
    from tqdm import tqdm

    model.to(device)
    optimizer = make_optimizer(model, optim)
    log = {"train_step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens": 0}
    start, restored_pending, elapsed_before = 0, [], 0.0
    writes = parallel is None or parallel.writes_checkpoints
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        try:
            state = store.load_torch(checkpoint_path)
        except store.CorruptCacheError as err:
            print(f"ignoring damaged checkpoint, starting over: {err}")
        else:
            if parallel is not None and parallel.check_resume is not None:
                parallel.check_resume(state.get("meta", {}), Path(checkpoint_path))
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            start, log = state["step"], state["log"]
            restored_pending = state.get("pending", [])
            elapsed_before = float(state.get("elapsed", 0.0))
            print(f"{desc}: resumed from step {start} of {optim.total_steps}")
    # CUDA graphs replay the whole compiled step; on the CPU there is nothing to gain from them
    cuda_graphs = compile_model and device.type == "cuda"
    step_fn = torch.compile(model, mode="reduce-overhead" if cuda_graphs else None) if compile_model else model
    if parallel is not None and parallel.wrap is not None:
        step_fn = parallel.wrap(step_fn)
    model.train()
    losses = _LossLog(log, device, restored_pending)
    t0, tokens_here = time.time(), 0
    bar = tqdm(total=optim.total_steps, initial=start, desc=desc, disable=not progress, leave=False,
               mininterval=2.0)

    def show_progress() -> None:
        if log["train_loss"]:
            bar.set_postfix(loss=f"{log['train_loss'][-1]:.3f}",
                            tok_s=f"{tokens_here / max(1e-9, time.time() - t0):,.0f}", refresh=False)

    for step in range(start, optim.total_steps):
        x, y = batch_at(step)
        n_tokens = int((y != IGNORE_INDEX).sum())  # counted on the host: no device sync per step
        x, y = to_device(x, device), to_device(y, device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, optim)
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device):
            _, loss = step_fn(x, y)
        loss.backward()
        sparsity.mask_grads_(model)
        if optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        optimizer.step()  # masked weights stay exactly 0: zero gradient, zero moments, decay of 0 is 0
        optimizer.zero_grad(set_to_none=True)
        if after_step is not None:  # e.g. spdf_lib.dynamic.hook(spec): RigL / SET mask updates
            after_step(model, optimizer, step + 1, (x, y))
        losses.add(loss)
        log["tokens"] += n_tokens
        tokens_here += n_tokens
        done = step + 1
        if done % log_every == 0:
            losses.flush(done)
            losses.collect()
            show_progress()
        bar.update(1)
        if evaluate is not None and eval_every and done % eval_every == 0 and done < optim.total_steps:
            losses.collect(wait=True)
            log["val_step"].append(done)
            log["val_loss"].append(evaluate())
        at_checkpoint = checkpoint_path is not None and done % checkpoint_every == 0
        past_deadline = deadline is not None and time.time() > deadline and done < optim.total_steps
        if deadline is not None and parallel is not None and parallel.agree is not None:
            past_deadline = parallel.agree(past_deadline) and done < optim.total_steps
        if at_checkpoint or (past_deadline and checkpoint_path is not None):
            if at_checkpoint:
                losses.flush(done)  # a deadline checkpoint keeps the losses pending: the resumed log is the same
            losses.collect(wait=True)
            sparsity.mask_weights_(model)  # a guard, off the per-step path (see the module docstring)
            if writes:
                store.save_torch(_checkpoint_state(model, optimizer, done, log, losses.pending_values(),
                                                   elapsed_before + time.time() - t0,
                                                   None if parallel is None else parallel.checkpoint_meta),
                                 checkpoint_path)
        if past_deadline:
            bar.close()
            raise DeadlineReached(f"{desc}: stopped at step {done} of {optim.total_steps}; re-run to resume")
    bar.close()
    losses.flush(optim.total_steps)
    losses.collect(wait=True)
    sparsity.mask_weights_(model)
    if evaluate is not None:
        log["val_step"].append(optim.total_steps)
        log["val_loss"].append(evaluate())
    wall = elapsed_before + time.time() - t0
    log["wall_s"] = wall
    log["tokens_per_s"] = log["tokens"] / wall if wall > 0 else float("nan")
    return log
