"""Fine-tuning throughput of several runs side by side on one GPU (chapter 05's runs, the gpu profile).

Fine-tuning batches are short (32 examples of tens of tokens), so one run's step is bound by the host
launching kernels, not by the GPU; the gpu profile therefore trains several runs at once in separate
processes. This benchmark times ``spdf_lib.training.train`` (eager, bf16 autocast, as fine-tuning runs)
on random batches shaped like E2E's, in 1, 4, 8, ... processes at once, and prints the steps/s summed
over processes: the number of worker processes to give ``--workers``.

    python benchmarks/bench_finetune_concurrency.py --processes 1,4,8,12,16 --seconds 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from spdf_lib.model import IGNORE_INDEX


def _batches(vocab: int, batch: int, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random batches with E2E-like lengths (40 to 90 tokens), targets on the second half only."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(40, 91, (1,), generator=g))
        x = torch.randint(0, vocab, (batch, length), generator=g)
        y = torch.roll(x, -1, dims=1)
        y[:, : length // 2] = IGNORE_INDEX
        out.append((x, y))
    return out


def _worker(args) -> tuple[int, float]:
    preset, vocab, batch, seconds, seed, start_at, threads = args
    from spdf_lib import training
    from spdf_lib.model import GPT, get_config

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = GPT(get_config(preset, vocab_size=vocab))
    batches = _batches(vocab, batch, 64, seed)
    marks: list[float] = []

    def batch_at(step):
        marks.append(time.perf_counter())
        return batches[step % len(batches)]

    # warm-up (CUDA context, kernels), then wait for every process so the timed windows overlap
    training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-4, total_steps=20, warmup_steps=1),
                   device=device, progress=False)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    while time.time() < start_at:
        time.sleep(0.01)
    marks.clear()
    deadline = time.time() + seconds
    try:
        training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-4, total_steps=10**7, warmup_steps=1),
                       device=device, progress=False, deadline=deadline)
    except training.DeadlineReached:
        pass
    sync()
    return len(marks) - 1, marks[-1] - marks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu-large")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--processes", default="1,4,8,12")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per process count")
    args = parser.parse_args()
    cores = mp.cpu_count()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (a dry run: the figures are for a GPU)"
    print(f"device {name}; torch {torch.__version__}; {cores} CPU cores; preset "
          f"{args.preset}, batch {args.batch}, E2E-like lengths 40-90; {args.seconds:g} s timed per setting")
    print(f"{'processes':>9} {'steps/s each':>13} {'steps/s total':>14} {'vs 1 process':>13}")
    single = None
    for n in (int(v) for v in args.processes.split(",")):
        start_at = time.time() + 20.0 + 1.5 * n  # enough for every process to start and warm up
        jobs = [(args.preset, args.vocab, args.batch, args.seconds, i, start_at, max(1, cores // n)) for i in range(n)]
        with mp.get_context("spawn").Pool(n) as pool:
            rates = [steps / wall for steps, wall in pool.map(_worker, jobs)]
        total = sum(rates)
        single = single or total
        print(f"{n:>9} {total / n:>13.1f} {total:>14.1f} {total / single:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
