"""The command line of the experiment grid: ``python -m spdf_lib.experiments --profile gpu``.

It runs (or resumes) every run of one profile through the scheduler the chapters use
(``spdf_lib.scheduler.run``), several runs side by side on one GPU, and prints how many results
each stage holds. The run definitions are in ``spdf_lib.runs``, the runners in ``spdf_lib.runners``,
the results on disk in ``spdf_lib.results``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import placement, scheduler, store
from .profiles import get_profile
from .runs import STAGES

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the SPDF experiment grid of one profile.")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--tables-dir", default=str(store.REPO_ROOT / "tables"))
    parser.add_argument("--workers", type=int, default=None, help="runs side by side per GPU (default: the profile's)")
    parser.add_argument("--side-workers", type=int, default=None,
                        help="at most this many runs other than pre-training side by side per GPU while a "
                             "pre-training runs or waits (default: the profile's side_workers)")
    parser.add_argument("--gpus", default=None, help="GPUs to spread the runs over: 'all' or indices such as 0,1 "
                                                     "(default: $SPDF_GPUS, else every GPU)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop (with checkpoints) after this many minutes; re-run to resume")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {STAGES}")
    parser.add_argument("--sizes", default=None,
                        help="only these of the profile's model sizes, comma-separated (a re-run of part of the "
                             "grid: its runs keep their keys)")
    args = parser.parse_args(argv)
    try:
        store.force_requested()  # an undocumented FORCE value stops here, before any work
        profile = get_profile(args.profile)
        if args.sizes:
            sizes = tuple(s for s in args.sizes.split(",") if s)
            unknown = [s for s in sizes if s not in profile.sizes]
            if unknown or not sizes:
                raise ValueError(f"--sizes {args.sizes!r}: choose among the profile's sizes {profile.sizes}")
            profile = dataclasses.replace(profile, sizes=sizes)
        if args.workers is not None or args.side_workers is not None:  # checked by Profile against each other
            profile = dataclasses.replace(profile, workers=profile.workers if args.workers is None else args.workers,
                                          side_workers=profile.side_workers if args.side_workers is None
                                          else args.side_workers)
        if scheduler.needs_gpu(profile):
            raise RuntimeError(f"profile {profile.name!r} is computed on a CUDA GPU and none is available here")
        import torch

        placement.grid_gpus(args.gpus, torch.cuda.device_count() if torch.cuda.is_available() else 0)  # a bad value stops here
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    t0 = time.time()
    try:
        with store.build_lock([(Path(args.tables_dir), "tables dir"), (store.cache_root(), "cache folder")]):
            out = scheduler.run(profile, Path(args.tables_dir), deadline=deadline,  # workers: in the profile
                                stages=tuple(s for s in args.stages.split(",") if s), progress=False, gpus=args.gpus)
    except (ValueError, RuntimeError) as err:  # store.BuildLockedError included
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = {stage: len(res) for stage, res in out.items() if stage in STAGES}
    edge = sum(c["status"].startswith("bound") for c in out["lr_search"])
    print(json.dumps({"profile": profile.name, "done": counts, "lr_cells": len(out["lr_search"]),
                      "lr_bound_hit": edge, "wall_s": round(time.time() - t0, 1), "workers": profile.workers,
                      "pretrain_workers": profile.pretrain_workers, "side_workers": profile.side_workers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
