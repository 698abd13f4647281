#!/usr/bin/env python
"""Benchmark of the dataflow simulator (spdf_lib.dataflow, chapter 07).

Target: simulating a GPT-3 XL FFN weight (8192 x 2048, 75% sparse) on 256 tokens takes at most
2 s on 2 CPU cores and at most 4 GB of memory. Prints the figures and exits 1 if a target is missed.

    .venv/bin/python benchmarks/bench_dataflow.py
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from spdf_lib import dataflow as df
from spdf_lib.model import get_config
from spdf_lib.sparsity import random_mask

TIME_LIMIT_S = 2.0
MEMORY_LIMIT_GB = 4.0


def peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux: the whole process's peak, torch import included (conservative).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    out_f, in_f, tokens, sparsity = 8192, 2048, 256, 0.75
    t0 = time.perf_counter()
    weight = torch.randn(out_f, in_f, generator=gen) * random_mask((out_f, in_f), sparsity, gen)
    x = torch.randn(tokens, in_f, generator=gen)
    setup_s = time.perf_counter() - t0

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        y, rep = df.simulate_linear(x, weight, name="mlp.c_fc")
        times.append(time.perf_counter() - t0)
    sim_s = statistics.median(times)

    t0 = time.perf_counter()
    levels = [i / 20 for i in range(20)]  # 0 to 95% in steps of 5%
    block = df.sweep_block(get_config("gpt3-xl"), tokens, levels)
    sweep_s = time.perf_counter() - t0
    mem_gb = peak_rss_gb()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, machine {df.DEFAULT_MACHINE.name} "
          f"{df.DEFAULT_MACHINE.pe_rows}x{df.DEFAULT_MACHINE.pe_cols}")
    print(f"setup (weight + exact-count 75% mask): {setup_s:.2f} s")
    print(f"simulate_linear 8192x2048 at 75%, 256 tokens: median {sim_s:.3f} s over {args.repeats} "
          f"(all: {', '.join(f'{t:.3f}' for t in times)}); target <= {TIME_LIMIT_S} s")
    print(f"  actual MACs {rep.actual_macs:,} of {rep.algorithmic_macs:,}; total cycles {rep.total_cycles:,}; "
          f"speedup vs dense {rep.speedup_vs_dense:.2f}x; utilisation {rep.utilization:.1%}")
    print(f"sweep_block GPT-3 XL, {len(levels)} sparsity levels x 4 layers: {sweep_s:.3f} s")
    print(f"peak resident memory of the process: {mem_gb:.2f} GB; target <= {MEMORY_LIMIT_GB} GB")
    ok = sim_s <= TIME_LIMIT_S and mem_gb <= MEMORY_LIMIT_GB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
