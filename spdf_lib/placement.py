"""Independent runs of the grid spread over the GPUs of one machine: which worker runs on which GPU.

The scheduler (``spdf_lib.scheduler``) keeps one group of worker processes per GPU, each group of
``profile.workers`` processes (at most ``profile.pretrain_workers`` of them pre-training at once, as
on one GPU), so that ``N`` GPUs run ``N`` times as many runs side by side. Every worker of a group
sees exactly one device: its ``CUDA_VISIBLE_DEVICES`` is set when the process starts, before it
initialises CUDA, so the runners' ``torch.device("cuda")`` is that GPU. A new run goes to the group
with the fewest running runs that has room for it (:func:`pick_group`).

Which GPUs: the scheduler's ``gpus`` argument (``--gpus`` of ``python -m spdf_lib.experiments``),
else the environment variable ``SPDF_GPUS``, else every visible GPU. A value is ``all`` or a
comma-separated list of GPU indices as PyTorch numbers them (``0,1,3``; after any
``CUDA_VISIBLE_DEVICES`` of the calling process). Without a GPU the grid runs on the CPU, in one
group. Everything here except :func:`pin_worker` is a pure function.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["ENV", "Group", "parse_gpus", "grid_gpus", "worker_groups", "pick_group", "visible_devices",
           "pin_worker"]

ENV = "SPDF_GPUS"


def parse_gpus(value: str | None, available: int, source: str = ENV) -> tuple[int, ...]:
    """The GPU indices ``value`` names: None, ``""`` or ``"all"`` is every one of the ``available``
    GPUs; otherwise distinct indices separated by commas, each below ``available``. A ValueError
    names ``source`` (the flag or variable the value came from) and what is wrong."""
    if available < 0:
        raise ValueError(f"available must be 0 or more GPUs, got {available}")
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "all"):
        return tuple(range(available))
    parts = [p.strip() for p in text.split(",")]
    hint = f"use 'all' or GPU indices separated by commas (e.g. {source}=0,1)"
    if any(not (p.isascii() and p.isdigit()) for p in parts):  # also refuses '', '-1', '1.5', 'cuda:0'
        raise ValueError(f"{source}={value!r} is not a list of GPU indices: {hint}")
    gpus = tuple(int(p) for p in parts)
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"{source}={value!r} names a GPU twice: {hint}")
    if available == 0:
        raise ValueError(f"{source}={value!r} asks for GPUs but PyTorch sees none on this machine: unset {source} "
                         f"to run on the CPU")
    beyond = [g for g in gpus if g >= available]
    if beyond:
        raise ValueError(f"{source}={value!r}: there is no GPU {', '.join(map(str, beyond))}; PyTorch sees "
                         f"{available} GPU(s), indices 0 to {available - 1}")
    return gpus


def grid_gpus(flag: str | None, available: int, env: Mapping[str, str] | None = None) -> tuple[int, ...]:
    """The GPUs the grid uses: the ``flag`` value when given, else ``SPDF_GPUS``, else every GPU."""
    env = os.environ if env is None else env
    if flag is not None:
        return parse_gpus(flag, available, source="--gpus")
    return parse_gpus(env.get(ENV), available, source=ENV)


@dataclass(frozen=True)
class Group:
    """One group of worker processes: on GPU ``gpu`` (an index as PyTorch numbers the visible GPUs)
    with ``CUDA_VISIBLE_DEVICES=visible`` in its processes, or on the CPU (``gpu`` and ``visible`` None:
    the environment is left as it is)."""

    gpu: int | None
    visible: str | None


def visible_devices(gpu: int, parent: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` that shows a worker only GPU ``gpu`` of its parent, whose own
    ``CUDA_VISIBLE_DEVICES`` is ``parent`` (None or blank: every GPU, so index ``gpu`` is device ``gpu``)."""
    if parent is None or not parent.strip():
        return str(gpu)
    entries = [e.strip() for e in parent.split(",") if e.strip()]
    if not 0 <= gpu < len(entries):
        raise ValueError(f"GPU {gpu} is not among the {len(entries)} of CUDA_VISIBLE_DEVICES={parent!r}")
    return entries[gpu]


def worker_groups(gpus: Sequence[int], parent_visible: str | None = None) -> tuple[Group, ...]:
    """One group per GPU of ``gpus``, in that order; one CPU group when ``gpus`` is empty."""
    if not gpus:
        return (Group(None, None),)
    return tuple(Group(g, visible_devices(g, parent_visible)) for g in gpus)


def pick_group(running: Sequence[int], pretraining: Sequence[int], *, is_pretraining: bool, slots: int,
               pretrain_slots: int, side_slots: int | None = None, pretraining_waits: bool = False) -> int | None:
    """The group a new run goes to, or None when none has room for it now.

    ``running[k]`` runs are running in group ``k``, ``pretraining[k]`` of them pre-training. A group
    has room while it runs fewer than ``slots`` runs and, for a pre-training run, fewer than
    ``pretrain_slots`` pre-trainings. With ``side_slots``, a run that is not a pre-training also needs
    the group to run fewer than ``side_slots`` such runs whenever the group is pre-training or a
    pre-training ``pretraining_waits`` to start (``Profile.side_workers``). Among the groups with room
    the one running the fewest runs wins (then the fewest pre-trainings, then the lowest index), so
    the runs spread evenly."""
    if len(running) != len(pretraining) or not running:
        raise ValueError(f"running and pretraining must give one count per group, got {running} and {pretraining}")
    if slots < 1 or pretrain_slots < 1:
        raise ValueError(f"slots and pretrain_slots must be at least 1, got {slots} and {pretrain_slots}")
    if side_slots is not None and side_slots < 0:
        raise ValueError(f"side_slots must be 0 or more, got {side_slots}")

    def side_room(k: int) -> bool:
        return (side_slots is None or not (pretraining[k] or pretraining_waits)
                or running[k] - pretraining[k] < side_slots)

    room = [k for k in range(len(running))
            if running[k] < slots and (pretraining[k] < pretrain_slots if is_pretraining else side_room(k))]
    if not room:
        return None
    return min(room, key=lambda k: (running[k], pretraining[k], k))


def pin_worker(visible: str | None) -> None:
    """Initializer of a worker process (``ProcessPoolExecutor(initializer=pin_worker, initargs=(group.visible,))``):
    show the process only its group's GPU. It must run before the process initialises CUDA."""
    if visible is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("pin_worker: CUDA is already initialised in this process; CUDA_VISIBLE_DEVICES "
                           "must be set before the first CUDA call")
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
