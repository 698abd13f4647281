"""What other runs on the same GPU cost a pre-training: the figure behind ``Profile.side_workers``.

The gpu profile trains up to ``profile.pretrain_workers`` models while fine-tunes and evaluations run
beside them in other processes (``spdf_lib.scheduler``). Processes on one GPU share it by turns, so
every side run takes GPU time from the pre-trainings, which gate everything after them; chapter 06
shows a run of the grid that, with more side work done, had fewer of its pre-trainings finished after
two commands than the published run.
This benchmark measures the trade-off. One pre-training (the book's loop, ``spdf_lib.training.train``,
compiled on CUDA) runs for the whole benchmark; beside it, in timed phases, ``k`` side processes run
one kind of side work, on random data shaped like the grid's:

* ``finetune``: fine-tuning steps of E2E-like batches (``bench_finetune_concurrency.py``'s worker);
* ``decode``: beam search as the evaluations decode (``spdf_lib.model.generate``, beam 4, at most 64
  new tokens, 64 prompts of 20 to 80 tokens per call).

Before the pre-training starts, one side process of each kind runs alone, for its rate alone (with
the thread count the phases give each process). The pre-training's rate is read between points
where it waited for the GPU (every 25 steps), over the window every side process of a phase was
working, and a phase whose side processes started late says so. For
every phase it prints the pre-training's tokens/s against its own phases with nothing beside it,
the side work done per second, and the sum of both in units of one run alone (pre-training ratio
plus side rate over the side rate alone): above 1, sharing the GPU gets more done than running the
same work one run at a time; the pre-training ratio says how much the runs that gate the grid were
slowed to get it. One pre-training with ``gpu-small`` side runs is a simplification of the grid, which
runs up to four pre-trainings and side runs of both sizes (``--side-preset gpu-large`` for the other).

    python benchmarks/bench_contention.py                                  # the gpu profile's shapes
    python benchmarks/bench_contention.py --preset smoke-small --side-preset smoke-small --seconds 3 \\
        --counts 1 --vocab 512 --seq 64 --batch 8                          # a dry run on the CPU
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import torch



SYNC_EVERY = 25  # pre-training steps between two time stamps


class _Stop(Exception):
    """Raised inside the pre-training's batch function when the benchmark is over."""


def _pretrain(preset: str, level: float, vocab: int, batch: int, seq: int, threads: int, ready, stop, out) -> None:
    """Train until ``stop`` is set; report the wall-clock time of every step's start through ``out``
    (after ``ready`` has been set, once the loop is compiled and warm)."""
    from spdf_lib import training
    from spdf_lib.model import GPT, get_config
    from spdf_lib.sparsity import SparsitySpec, sparsify

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = GPT(get_config(preset, vocab_size=vocab))
    if level > 0:
        sparsify(model, SparsitySpec(level=level, seed=0))
    g = torch.Generator().manual_seed(0)
    batches = [(x, torch.roll(x, -1, dims=1)) for x in (torch.randint(0, vocab, (batch, seq), generator=g)
                                                       for _ in range(8))]
    marks: list[float] = []

    def batch_at(step):
        if stop.is_set():
            raise _Stop
        if step % SYNC_EVERY == 0:  # wait for the GPU, so that the time stamps the work done
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks.append(time.time())
        if step == 3 * SYNC_EVERY:
            ready.set()  # compiled and past the first steps
        return batches[step % len(batches)]

    try:
        training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-4, total_steps=10**8, warmup_steps=10),
                       device=device, compile_model=device.type == "cuda", progress=False, desc="bench")
    except _Stop:
        pass
    out.put(marks)


def _side(job) -> tuple[int, float, float, float]:
    """One side process: warm up, wait for ``start_at``, then work for ``seconds``; returns (units done
    in the window, window seconds, time its work started, time it ended). Units: fine-tuning steps, or
    prompts decoded."""
    kind, preset, vocab, seconds, seed, start_at, threads = job
    from spdf_lib import training
    from spdf_lib.model import GPT, generate, get_config

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = GPT(get_config(preset, vocab_size=vocab)).to(device)
    g = torch.Generator().manual_seed(seed)
    if kind == "finetune":
        from bench_finetune_concurrency import _batches  # E2E-like lengths, targets on the second half

        batches = _batches(vocab, 64, 32, seed)
        marks: list[float] = []

        def batch_at(step):
            marks.append(time.time())
            return batches[step % len(batches)]

        training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-4, total_steps=10, warmup_steps=1),
                       device=device, progress=False)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        while time.time() < start_at:
            time.sleep(0.01)
        marks.clear()
        try:
            training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-4, total_steps=10**7,
                                                                                warmup_steps=1),
                           device=device, progress=False, deadline=start_at + seconds)
        except training.DeadlineReached:
            pass
        if len(marks) < 2:
            return 0, seconds, start_at, start_at + seconds
        return len(marks) - 1, marks[-1] - marks[0], marks[0], marks[-1]
    if kind != "decode":
        raise ValueError(f"side kind must be finetune or decode, got {kind!r}")
    prompts = [torch.randint(0, vocab, (int(torch.randint(20, 81, (1,), generator=g)),), generator=g).tolist()
               for _ in range(64)]
    model.eval()

    def decode():
        with training.autocast(device):
            generate(model, prompts, max_new_tokens=64, eos_id=0, pad_id=1, beam_size=4, length_penalty=0.9,
                     no_repeat_ngram_size=4)

    decode()  # warm-up
    while time.time() < start_at:
        time.sleep(0.01)
    done, t0 = 0, time.time()
    while time.time() < start_at + seconds:
        decode()
        done += len(prompts)
    t1 = time.time()
    return done, t1 - t0, t0, t1


def _phase(pool_size: int, kind: str, preset: str, vocab: int, seconds: float, warmup: float, threads: int):
    """Run ``pool_size`` side processes of ``kind`` at once; (start, end, units/s in total) over the
    window in which every one of them was working, and how late the last one started (s)."""
    start_at = time.time() + warmup + 1.0 * pool_size
    jobs = [(kind, preset, vocab, seconds, i, start_at, threads) for i in range(pool_size)]
    with mp.get_context("spawn").Pool(pool_size) as pool:
        done = pool.map(_side, jobs)
    first, last = max(d[2] for d in done), min(d[3] for d in done)
    return first, last, sum(units / wall for units, wall, _, _ in done), max(0.0, first - start_at)


def _rate(marks: list[float], start: float, end: float, tokens_per_step: int) -> float:
    """Tokens/s between the first and the last time stamp inside [start, end] (``SYNC_EVERY`` steps apart)."""
    inside = [t for t in marks if start <= t <= end]
    if len(inside) < 2:
        return float("nan")
    return (len(inside) - 1) * SYNC_EVERY * tokens_per_step / (inside[-1] - inside[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu-large", help="the pre-training's model")
    parser.add_argument("--level", type=float, default=0.75, help="the pre-training's sparsity")
    parser.add_argument("--side-preset", default="gpu-small", help="the side runs' model")
    parser.add_argument("--kinds", default="finetune,decode")
    parser.add_argument("--counts", default="4,8", help="side processes per phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per phase")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds for side processes to start and warm up")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    counts = [int(c) for c in args.counts.split(",") if c]
    cores = os.cpu_count() or 1
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (a dry run: the figures are for a GPU)"
    print(f"device {name}; torch {torch.__version__}; {cores} CPU cores; pre-training {args.preset} at "
          f"{args.level:.0%} sparsity, batch {args.batch} x {args.seq}; side runs {args.side_preset}; "
          f"{args.seconds:g} s per phase", flush=True)
    threads = {k: max(1, cores // (k + 1)) for k in counts}
    alone = {kind: _phase(1, kind, args.side_preset, args.vocab, args.seconds, args.warmup,
                          threads[max(counts)])[2] for kind in kinds}
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    pre = ctx.Process(target=_pretrain, args=(args.preset, args.level, args.vocab, args.batch, args.seq,
                                              max(1, cores // 4), ready, stop, out))
    pre.start()
    t0 = time.time()
    while not ready.wait(timeout=1.0):
        if not pre.is_alive() or time.time() - t0 > 600:
            stop.set()
            raise SystemExit(f"the pre-training process {'stopped' if not pre.is_alive() else 'did not warm up'} "
                             f"(exit code {pre.exitcode}) before the first phase")
    t = time.time()
    windows = [("none", 0, t, t + args.seconds, 0.0, 0.0)]
    time.sleep(args.seconds)
    for kind in kinds:
        for k in counts:
            windows.append((kind, k, *_phase(k, kind, args.side_preset, args.vocab, args.seconds, args.warmup,
                                             threads[max(counts)])))
    t = time.time()
    windows.append(("none", 0, t, t + args.seconds, 0.0, 0.0))
    time.sleep(args.seconds)
    stop.set()
    marks = out.get(timeout=600)
    pre.join(timeout=60)
    out.close()
    tokens = args.batch * args.seq
    rates = [_rate(marks, start, end, tokens) for _, _, start, end, _, _ in windows]
    quiet = [r for (kind, *_), r in zip(windows, rates) if kind == "none" and r == r]
    if not quiet:
        raise SystemExit("no time stamps of the pre-training fell inside its quiet windows: lengthen --seconds")
    base = sum(quiet) / len(quiet)
    print("pre-training with nothing beside it, before and after the phases: "
          + ", ".join(f"{r / 1e6:.2f}" for r in quiet) + " M tokens/s")
    units = {"finetune": "steps/s", "decode": "prompts/s"}
    print("side alone (1 process, no pre-training): " + "; ".join(f"{k} {alone[k]:.1f} {units[k]}" for k in kinds))
    print(f"{'side work':>9} {'processes':>9} {'pre-train M tok/s':>18} {'vs none':>8} {'side total':>17} "
          f"{'work, runs-alone units':>23}")
    for (kind, k, start, end, side, late), rate in zip(windows, rates):
        ratio = rate / base
        work = ratio + (side / alone[kind] if alone.get(kind) else 0.0 if kind not in alone else float("nan"))
        side_text = f"{side:.1f} {units.get(kind, '')}".strip() if k else "-"
        note = f"  (side runs started {late:.1f} s late; {end - start:.1f} s measured)" if late > 1.0 else ""
        print(f"{kind:>9} {k:>9} {rate / 1e6:>18.2f} {ratio:>7.2f}x {side_text:>17} {work:>22.2f}x{note}", flush=True)


if __name__ == "__main__":
    main()
