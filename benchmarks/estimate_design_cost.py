"""What more pre-trained models per cell would cost: the published grid's work, scaled to other designs.

Chapter 06's replication forecast asks for more pre-trained models per cell than the ``gpu`` profile
has. This script estimates what such a design would take on the GPU the published run used, from
that run alone (no GPU needed):

* the work of the published grid's pre-training and fine-tuning runs, each counted as the seconds
  it takes alone on an idle GPU (pre-training tokens at its size's rate alone, fine-tuning steps at
  its size's rate alone; the references of ``bench_grid_throughput.py``);
* the work one more pre-trained model adds to a (size, sparsity) of Tables 1 and 2: its pre-training
  and its final fine-tunes, the mean over the grid's models after the first (the first also carries the
  learning-rate search, which a new model does not);
* the estimated wall time of a design with ``n`` models per cell: the published commands' wall time
  scaled by the work, so at the same sharing of the GPU and with evaluations and pruning growing in
  the same proportion. It is arithmetic on single measurements, not a measurement: no spread.

Run: ``python benchmarks/estimate_design_cost.py --alone-pretrain tables/gpu/benchmarks/contention_11e4311/
pretrain_alone.json --alone-finetune tables/gpu/benchmarks/finetune_alone_h200.log,tables/gpu/benchmarks/
contention_11e4311/finetune_alone_small.log``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grid_throughput import command_windows, finetune_alone_rates, pretrain_alone_rates  # noqa: E402


def run_work(stages: dict, pre_rate: dict, ft_rate: dict) -> dict[tuple[str, float, object], float]:
    """Seconds alone per (size, sparsity, pre-training seed): the model's pre-training and every fine-tune
    of it (search runs included), for the grid's own runs (chapter 09's variants left out)."""
    from spdf_lib import verdicts as V

    work: dict = {}
    for r in stages["pretrain"]:
        if not V.variant_of(r) and r["size"] in pre_rate:
            key = (r["size"], float(r["sparsity"]), r["seed"])
            work[key] = work.get(key, 0.0) + r["tokens"] / pre_rate[r["size"]]
    for r in stages["finetune"]:
        if not V.variant_of(r) and r["size"] in ft_rate:
            key = (r["size"], float(r["sparsity"]), r["pretrain_seed"])
            work[key] = work.get(key, 0.0) + r["steps"] / ft_rate[r["size"]]
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="tables", help="the tables root")
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--alone-pretrain", required=True, help="JSON of bench_pretrain_throughput.py --json")
    parser.add_argument("--alone-finetune", required=True, help="logs of bench_finetune_concurrency.py "
                                                                "--processes 1, comma-separated (one per preset)")
    parser.add_argument("--models", default="3,4,5,6", help="pre-trained models per cell to estimate")
    parser.add_argument("--budget-s", type=float, default=1500.0, help="the wall-time budget to compare with")
    args = parser.parse_args()
    from spdf_lib import reruns
    from spdf_lib.profiles import get_profile

    profile = get_profile(args.profile)
    stages = reruns.load_committed(Path(args.tables), profile.name)
    pre_rate = pretrain_alone_rates(Path(args.alone_pretrain))
    ft_rate = finetune_alone_rates([Path(p) for p in args.alone_finetune.split(",")])
    sizes = [s for s in profile.sizes if s in pre_rate and s in ft_rate]
    missing = [s for s in profile.sizes if s not in sizes]
    if missing:
        raise SystemExit(f"no rate alone for {', '.join(missing)}: pass references for every size of {profile.name}")
    work = run_work(stages, pre_rate, ft_rate)
    windows = command_windows(Path(args.tables) / profile.name / "logs" / "command_times.txt")
    wall = sum(end - start for start, end in windows)
    total = sum(work.values())
    first = profile.pretrain_seeds[0]
    levels = {float(lv) for lv in profile.sparsity_levels}  # the cells of Tables 1 and 2, not chapter 08's baseline
    groups = sorted({(s, lv) for s, lv, _ in work if lv in levels})
    extra = {}
    for size, level in groups:
        later = [w for (s, lv, seed), w in work.items() if (s, lv) == (size, level) and seed != first]
        extra[(size, level)] = sum(later) / len(later) if later else float("nan")
    now = len(profile.pretrain_seeds)
    print(f"published grid ({profile.name}, {now} pre-trained models per cell): {total:,.0f} s of pre-training and "
          f"fine-tuning work alone in {wall:,.0f} s of commands ({total / wall:.2f}x one run alone)")
    for size in sizes:
        per = [extra[(s, lv)] for s, lv in groups if s == size]
        print(f"  one more {size} model per cell adds {sum(per):,.0f} s alone over its {len(per)} sparsities "
              f"({', '.join(f'{x:.0f}' for x in per)} s each)")
    for n in (int(x) for x in args.models.split(",")):
        added = (n - now) * sum(extra.values())
        estimate = wall * (total + added) / total
        verdict = "within" if estimate <= args.budget_s else "over"
        print(f"{n} models per cell: {total + added:,.0f} s of work alone, about {estimate:,.0f} s "
              f"({estimate / 60:.1f} min) of commands at the published sharing; {verdict} {args.budget_s:,.0f} s")
    print("an estimate from single measurements, without a spread: evaluations and pruning are assumed to grow "
          "with the rest, and the sharing of the GPU to stay as it was")


if __name__ == "__main__":
    main()
