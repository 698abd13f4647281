"""Data-parallel pre-training on several processes: ``torch.distributed`` and DDP, started by ``torchrun``.

One pre-training run of the grid (``spdf_lib.runs.PretrainRun``) computed by ``N`` processes, the
way nanoGPT's ``train.py`` does it (https://github.com/karpathy/nanoGPT)::

    torchrun --nproc-per-node 2 -m spdf_lib.distributed --profile smoke --size smoke-small --sparsity 0.75 --seed 0

Without ``torchrun`` (``python -m spdf_lib.distributed ...``) the same code runs as one process. The
rules that keep the run the run of the grid, whatever the number of processes (ranks):

* **One global batch.** Step ``k`` trains on ``data.packed_batch(tokens, k, batch_size, seq_len,
  seed)``, the batch one process would take; rank ``r`` of ``N`` computes on rows ``r*B/N`` to
  ``(r+1)*B/N - 1`` of it, and DDP averages the gradients of the ranks in ``backward``. Every row is
  a full sequence of targets, so the mean of the ranks' mean losses is the mean loss of the batch
  and the averaged gradient is its gradient. The batch must split into equal parts: ``N`` has to
  divide ``batch_size`` (checked before anything starts).
* **Identical masks and weights.** Every rank seeds the initialisation and draws the masks from the
  run's seed (``sparsity.sparsify``); a check compares them across ranks before the first step.
  Masked gradients are zeroed after DDP's all-reduce, so every rank applies the same update and the
  masked weights stay exactly zero on every rank. The mask buffers are not re-broadcast at every
  step (they never change). The final weights are compared across ranks.
* **Rank 0 writes.** Only rank 0 writes checkpoints, the model and the result, into the run's cache
  folder (``results.run_dir``), where the scheduler (``spdf_lib.scheduler``) finds them: a grid run
  after a ``torchrun`` pre-training reuses its result like any cached one.
* **Resume with any number of ranks.** A checkpoint holds one copy of the weights and optimizer
  state, the step and the log of the whole batch: nothing in it belongs to a rank. It stores the
  world size it was written with; resuming with another world size is allowed exactly when the global
  batch is unchanged, i.e. the checkpoint's batch size, sequence length and step count are the run's
  (a checkpoint that disagrees is refused before any step: ``IncompatibleCheckpointError``). The new
  world size must divide the batch like any other.
* **A deadline stops every rank at the same step** (``--minutes``): the ranks agree on it at every
  step (an all-reduce of one number, which on CUDA makes the host wait for the step), rank 0
  checkpoints, and a later call resumes. Without ``--minutes`` a stopped job resumes from its last
  periodic checkpoint (every ``checkpoint_every`` steps).

On CUDA each rank uses the GPU of its local rank (``torchrun`` starts one process per GPU), in bf16,
with the model compiled by ``torch.compile`` (without CUDA graphs: the all-reduce of the gradients
runs in DDP's hooks, outside any captured graph). On the CPU the ranks run in fp32, eagerly. The
backend is ``--backend`` (default: ``nccl`` on CUDA, ``gloo`` on the CPU). NVLink multicast stays
off (``NCCL_NVLS_ENABLE=0`` and ``TORCH_SYMM_MEM_DISABLE_MULTICAST=1`` unless set otherwise).

The weights of a run on ``N`` ranks agree with those of one process within floating-point rounding,
not bit for bit: the gradient is summed over ranks in another order than over the rows of one batch,
and float addition is not associative (``tests/test_distributed.py`` states the tolerance).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Mapping, Sequence

import torch

from . import results, runners, store, training
from .runs import PretrainRun

__all__ = [
    "BACKENDS", "NCCL_SAFE_ENV", "World", "IncompatibleCheckpointError", "world_from_env", "rows_per_rank",
    "choose_device", "choose_backend", "checkpoint_meta", "check_checkpoint", "RankRows", "select_runs",
    "pretrain", "main",
]

BACKENDS = ("gloo", "nccl")
# NVLink multicast (NVLS) and symmetric-memory multicast stay off in every process this module runs
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class IncompatibleCheckpointError(ValueError):
    """A checkpoint was written with another global batch than the run's; it cannot be resumed."""


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``world_size`` processes, on ``device``.

    ``backend`` is None for one process started without ``torchrun`` (no process group)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    device: torch.device
    backend: str | None

    @property
    def launched(self) -> bool:
        return self.backend is not None

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def world_from_env(env: Mapping[str, str]) -> tuple[int, int, int, int]:
    """(rank, local_rank, world_size, local_world_size) from the variables ``torchrun`` sets;
    (0, 0, 1, 1) when none is set. A partial or inconsistent set is a ValueError."""
    present = [name for name in _TORCHRUN_VARS if name in env]
    if not present:
        return 0, 0, 1, 1
    if len(present) != len(_TORCHRUN_VARS):
        missing = sorted(set(_TORCHRUN_VARS) - set(present))
        raise ValueError(f"environment sets {', '.join(present)} but not {', '.join(missing)}: start the "
                         f"processes with torchrun (torchrun --nproc-per-node N -m spdf_lib.distributed ...)")
    try:
        rank, world, local = (int(env[name]) for name in _TORCHRUN_VARS)
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers, got "
                         + ", ".join(f"{n}={env.get(n)!r}" for n in (*_TORCHRUN_VARS, "LOCAL_WORLD_SIZE"))) from None
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world <= world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, "
                         f"LOCAL_RANK={local}, LOCAL_WORLD_SIZE={local_world}")
    return rank, local, world, local_world


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def rows_per_rank(batch_size: int, world_size: int) -> int:
    """Rows of the global batch each rank computes; a ValueError when the batch does not split evenly."""
    if world_size < 1:
        raise ValueError(f"world size must be at least 1, got {world_size}")
    if batch_size % world_size:
        raise ValueError(f"the global batch of {batch_size} sequences (the profile's pretrain.batch_size) does "
                         f"not split evenly over {world_size} ranks: every rank must take the same number "
                         f"of rows. Use a number of processes that divides {batch_size}: "
                         f"{', '.join(map(str, _divisors(batch_size)))}")
    return batch_size // world_size


def choose_device(requested: str, cuda_available: bool) -> str:
    """'cuda' or 'cpu' for ``--device`` ('auto': CUDA when available)."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not cuda_available:
        raise ValueError("--device cuda: this machine has no CUDA GPU visible to PyTorch; use --device cpu")
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    return requested


def choose_backend(requested: str | None, device_type: str, cuda_available: bool) -> str:
    """The process-group backend: ``requested``, or nccl on CUDA and gloo on the CPU. NCCL needs CUDA."""
    backend = requested or ("nccl" if device_type == "cuda" else "gloo")
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "nccl" and not cuda_available:
        raise ValueError("--backend nccl needs CUDA GPUs and this machine has none visible to PyTorch: "
                         "use --backend gloo (the default on the CPU)")
    if backend == "nccl" and device_type != "cuda":
        raise ValueError("--backend nccl communicates CUDA tensors: use it with --device cuda (or auto), "
                         "or --backend gloo with --device cpu")
    return backend


def checkpoint_meta(run: PretrainRun, world_size: int) -> dict:
    """What a checkpoint of ``run`` records about how it was written."""
    s = run.settings
    return {"world_size": world_size, "global_batch": s.batch_size, "seq_len": s.seq_len,
            "total_steps": run.steps, "run_id": run.run_id}


def check_checkpoint(meta: Mapping, run: PretrainRun, world_size: int, path: Path) -> str:
    """Accept a checkpoint of ``run`` for a resume on ``world_size`` ranks, or raise
    IncompatibleCheckpointError naming the file and the disagreement. Returns a line for the log.

    A checkpoint without meta was written by the single-process loop (``runners.do_pretrain``) of this
    run's folder, with this run's batch on one process. Any world size that divides the global batch
    may resume a checkpoint whose global batch (sequences x sequence length) and step count are the
    run's; the world size it was written with does not matter, since no state belongs to a rank."""
    expected = checkpoint_meta(run, world_size)
    written = int(meta.get("world_size", 1))
    for name in ("global_batch", "seq_len", "total_steps"):
        if name in meta and meta[name] != expected[name]:
            raise IncompatibleCheckpointError(
                f"{path}: checkpoint written with {name}={meta[name]} (on {written} ranks), but run "
                f"{run.run_id} has {name}={expected[name]}: the global batch of a resumed run must stay the "
                f"same. Delete the checkpoint to start the run over, or resume it with the settings it was "
                f"written with.")
    rows_per_rank(expected["global_batch"], world_size)
    if written != world_size:
        return f"resuming a checkpoint written on {written} rank(s) on {world_size} (same global batch)"
    return ""


class RankRows:
    """The step of one rank: its rows of the global batch through ``module`` (DDP), returning the mean
    loss of the whole batch for the log while ``backward`` goes through this rank's own loss.

    The returned loss is ``own + (batch_mean - own).detach()``: its value is the mean of every rank's
    loss (one all-reduce of a scalar per step, so the logged loss and the checkpointed log are those of
    the whole batch, whatever the number of ranks) and its gradient is that of this rank's loss; DDP
    averages the gradients of the ranks in ``backward``."""

    def __init__(self, module, rank: int, world_size: int):
        self.module, self.rank, self.world_size = module, rank, world_size

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        import torch.distributed as dist

        rows = rows_per_rank(x.shape[0], self.world_size)
        mine = slice(self.rank * rows, (self.rank + 1) * rows)
        logits, loss = self.module(x[mine], y[mine])
        mean = loss.detach().float().clone()
        dist.all_reduce(mean)  # a sum: gloo has no average
        mean /= self.world_size
        return logits, loss + (mean - loss.detach())


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _same_everywhere(world: World, value, what: str) -> None:
    """Raise (on every rank) unless ``value`` is the same on every rank."""
    if not world.launched or world.world_size == 1:
        return
    import torch.distributed as dist

    gathered = [None] * world.world_size
    dist.all_gather_object(gathered, value)
    differ = [r for r, v in enumerate(gathered) if v != gathered[0]]
    if differ:
        raise RuntimeError(f"{what} differ between rank 0 and rank(s) {differ}: every rank must run the same "
                           f"code and settings")


def _from_rank0(world: World, value):
    """``value`` as rank 0 has it, on every rank."""
    if not world.launched or world.world_size == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _agree_any(world: World):
    """``flag`` of any rank, shared by all: one all-reduce (max) of one number."""
    import torch.distributed as dist

    def agree(flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=world.device if world.backend == "nccl" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    return agree


def _wrap(world: World):
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    # the masks never change after they are drawn: no broadcast of the buffers at every step
    params = inspect.signature(DDP).parameters
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
                      else {"broadcast_buffers": False})

    def wrap(model):
        if world.device.type == "cuda":
            model = torch.compile(model)  # compiled first, then DDP, as nanoGPT does
            return RankRows(DDP(model, device_ids=[world.device.index], **no_buffer_sync), world.rank, world.world_size)
        return RankRows(DDP(model, **no_buffer_sync), world.rank, world.world_size)

    return wrap


def pretrain(run: PretrainRun, world: World, *, deadline: float | None = None, progress: bool = True) -> dict | None:
    """Pre-train ``run`` as rank ``world.rank`` (or resume it); rank 0 returns the result (the fields
    of ``runners.do_pretrain`` and ``data_parallel``), the other ranks None. A cached result is
    returned without training. Raises DeadlineReached (every rank, at the same step) at ``deadline``."""
    from .checkpoint import save_model
    from .data import packed_batch
    from .runs import run_key
    from .sparsity import masks

    if run.dynamic is not None:
        raise ValueError(f"{run.run_id}: dynamic sparsity ({run.variant}) is not data-parallel here: each rank "
                         f"would move its mask on its own rows, and the masks would diverge")
    cached = results.cached_result(run) if world.is_writer else None
    if _from_rank0(world, cached is not None):
        return cached
    s = run.settings
    rows_per_rank(s.batch_size, world.world_size)
    train_tokens, valid_tokens = runners._pretraining_streams(run)
    model = runners.initial_model(run)
    _same_everywhere(world, (run_key(run), _digest(masks(model))), "the run or its sparsity masks")
    valid = runners.validation_batches(valid_tokens, s, s.eval_batches)
    d = results.run_dir(run)
    notes: list[str] = []

    def check_resume(meta: Mapping, path: Path) -> None:
        note = check_checkpoint(meta, run, world.world_size, path)
        if note:
            notes.append(note)
            if world.is_writer:
                print(f"pretrain {run.run_id}: {note}", flush=True)

    parallel = training.Parallel(
        wrap=_wrap(world) if world.launched else None, writes_checkpoints=world.is_writer,
        checkpoint_meta=checkpoint_meta(run, world.world_size), check_resume=check_resume,
        agree=_agree_any(world) if world.launched else None)
    log = training.train(
        model, batch_at=lambda step: packed_batch(train_tokens, step, s.batch_size, s.seq_len, run.seed),
        optim=runners.pretrain_optim(run), device=world.device, checkpoint_path=d / "checkpoint.pt",
        checkpoint_every=s.checkpoint_every, evaluate=lambda: training.mean_loss(model, valid, world.device),
        eval_every=s.eval_every, deadline=deadline, compile_model=world.device.type == "cuda" and not world.launched,
        desc=f"pretrain {run.run_id} [{world.world_size} rank{'s' if world.world_size > 1 else ''}]",
        progress=progress and world.is_writer, parallel=parallel)
    _same_everywhere(world, _digest(dict(model.state_dict())), "the final weights")
    if not world.is_writer:
        return None
    save_model(d / "model.pt", model.cpu())
    return results.finish(run, {  # the fields of runners.do_pretrain, and how this run was computed
        **runners.pretrain_result(run, log, train_tokens, model),
        "data_parallel": {"world_size": world.world_size, "backend": world.backend,
                          "rows_per_rank": s.batch_size // world.world_size, "resumed": notes},
    })


def select_runs(candidates: Sequence[PretrainRun], sizes=None, sparsities=None, seeds=None) -> list[PretrainRun]:
    """The runs of ``candidates`` whose size, sparsity and seed are among the given ones (None: any).
    A value that no candidate has is a ValueError listing the values there are."""
    chosen = list(candidates)
    for name, wanted, of in (("size", sizes, lambda r: r.size),
                             ("sparsity", sparsities, lambda r: round(r.sparsity, 6)),
                             ("seed", seeds, lambda r: r.seed)):
        if wanted is None:
            continue
        wanted = [round(float(w), 6) for w in wanted] if name == "sparsity" else list(wanted)
        have = sorted({of(r) for r in candidates}, key=str)
        unknown = [w for w in wanted if w not in have]
        if unknown:
            raise ValueError(f"no pre-training run has {name} {', '.join(map(str, unknown))}; the profile's runs "
                             f"have {name} {', '.join(map(str, have))}")
        chosen = [r for r in chosen if of(r) in wanted]
    if not chosen:
        raise ValueError("no pre-training run has every value asked for (--size, --sparsity, --seed)")
    return chosen


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m spdf_lib.distributed",
        description="Pre-train runs of the grid with data parallelism (start with torchrun --nproc-per-node N).")
    p.add_argument("--profile", required=True, help="smoke, cpu or gpu")
    p.add_argument("--size", nargs="+", default=None, help="model presets (default: every size of the profile)")
    p.add_argument("--sparsity", nargs="+", type=float, default=None, help="sparsity levels (default: all)")
    p.add_argument("--seed", nargs="+", type=int, default=None, help="pre-training seeds (default: all)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cuda or cpu")
    p.add_argument("--backend", default=None, help="gloo or nccl (default: nccl on CUDA, gloo on the CPU)")
    p.add_argument("--cache", default=None, help="cache folder (default: $SPDF_CACHE or <repo>/.cache/spdf)")
    p.add_argument("--tables-dir", default=None,
                   help="also export the results under TABLES_DIR/<profile>/runs/pretrain (default: the scheduler "
                        "exports them when it reuses them)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop every rank at one step, with a checkpoint, after this many minutes; run again to resume "
                        "(the ranks agree on it at every step: on CUDA one host sync per step)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _error(world_size: int, rank: int, err: BaseException) -> int:
    prefix = f"[rank {rank}/{world_size}] " if world_size > 1 else ""
    print(f"{prefix}error: {err}", file=sys.stderr, flush=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """The command line; returns 0 when every run is done, 2 on bad input, 3 at the deadline."""
    args = _parser().parse_args(argv)
    for name, value in NCCL_SAFE_ENV.items():
        os.environ.setdefault(name, value)
    rank = world_size = 0
    try:
        rank, local_rank, world_size, local_world = world_from_env(os.environ)
        from .profiles import get_profile

        profile = get_profile(args.profile)
        store.force_requested()
        cuda = torch.cuda.is_available()
        device_type = choose_device(args.device, cuda)
        launched = "RANK" in os.environ  # started by torchrun (or with its variables)
        backend = choose_backend(args.backend, device_type, cuda)  # checked even for one process
        if not launched:
            backend = None  # one process: no process group
        if device_type == "cpu" and profile.name == "gpu":
            raise ValueError("profile 'gpu' is computed on CUDA GPUs; none is used here (--device cpu or no GPU)")
        if device_type == "cuda" and local_world > torch.cuda.device_count():
            raise ValueError(f"{local_world} processes on this machine but {torch.cuda.device_count()} GPU(s) "
                             f"visible: start at most one process per GPU (torchrun --nproc-per-node)")
        rows_per_rank(profile.pretrain.batch_size, world_size)
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be at least 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        if args.cache:
            os.environ["SPDF_CACHE"] = str(Path(args.cache).expanduser().resolve())
    except ValueError as err:
        return _error(world_size or 1, rank, err)
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    world = World(rank, local_rank, world_size, local_world, device, backend)
    deadline = None if args.minutes is None else time.time() + 60 * args.minutes
    if launched:
        import torch.distributed as dist

        # a generous timeout: rank 0 may tokenize the corpus while the others wait at a barrier
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=60),
                                **({"device_id": device} if device.type == "cuda" else {}))
    try:
        with contextlib.ExitStack() as stack:
            failure = None
            if world.is_writer:  # one build at a time per cache (and tables folder)
                folders = [(store.cache_root(), "cache folder")]
                if args.tables_dir:
                    folders.append((Path(args.tables_dir), "tables dir"))
                try:
                    stack.enter_context(store.build_lock(folders))
                except store.BuildLockedError as err:
                    failure = str(err)
            failure = _from_rank0(world, failure)
            if failure:
                raise RuntimeError(failure)
            runs = _plan(profile, world)
            selected = select_runs(runs, args.size, args.sparsity, args.seed)
            for run in selected:
                result = pretrain(run, world, deadline=deadline, progress=not args.quiet)
                if world.is_writer:
                    if args.tables_dir:
                        results.export(run, result, Path(args.tables_dir))
                    log, computed = result["log"], result.get("data_parallel", {}).get("world_size", 1)
                    print(json.dumps({"run_id": run.run_id, "world_size": world_size, "backend": backend,
                                      "val_loss": round(result["val_loss"], 4), "tokens": log["tokens"],
                                      "tokens_per_s": round(log["tokens_per_s"], 1), "computed_on_ranks": computed}),
                          flush=True)
    except training.DeadlineReached as err:
        if world.is_writer:
            print(f"deadline: {err}", flush=True)
        return 3
    except (ValueError, RuntimeError) as err:
        return _error(world_size, rank, err)
    finally:
        if launched:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


def _plan(profile, world: World) -> list[PretrainRun]:
    """Every pre-training run the scheduler would run for ``profile`` (chapter 08's baseline included).
    Rank 0 trains the tokenizer and tokenizes the corpus first when they are not cached; the other
    ranks then read them from the cache."""
    from . import runs as R

    def plan():
        spec = R.tokenizer_spec(profile)
        bases = R.pretraining_runs(profile, spec)
        runners._pretraining_streams(bases[0])
        return [*bases, R.random_static_run(profile, bases)]

    if not world.launched or world.world_size == 1:
        return plan()
    import torch.distributed as dist

    runs = plan() if world.is_writer else None
    dist.barrier()
    return runs if world.is_writer else plan()


if __name__ == "__main__":
    sys.exit(main())
