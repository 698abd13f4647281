"""Pre-training throughput and model-FLOP utilization (MFU) of the book's training loop.

For each model preset it times, on random tokens, with the same optimizer and precision:
  baseline  a plain compiled dense loop (forward, backward, AdamW step; nothing else);
  dense     spdf_lib.training.train on the dense model;
  masked    spdf_lib.training.train on the model with 75% static sparsity (mask upkeep included);
  rigl/set  the same with dynamic sparsity (spdf_lib.dynamic) updating the masks every
            --dynamic-interval steps (chapter 09): the cost of the updates, RigL's dense gradient included.
It prints tokens/s, MFU (model FLOPs from spdf_lib.flops, dense count, over the hardware peak given
with --peak-tflops) and the ratios the book quotes: dense / baseline, masked / dense and, for the
dynamic loops, their cost over the static mask at the interval timed.

    python benchmarks/bench_pretrain_throughput.py --presets gpu-small,gpu-large --peak-tflops 989
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spdf_lib import training
from spdf_lib.flops import forward_flops_per_token
from spdf_lib.model import GPT, get_config
from spdf_lib.sparsity import SparsitySpec, sparsify


def random_batches(vocab: int, batch: int, seq: int, n: int, device):
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, vocab, (n, batch, seq + 1), generator=g)
    return [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _window_times(marks: list[float], steps: int) -> list[float]:
    """Seconds per step in each timed window (marks are the synchronized window boundaries)."""
    return [(b - a) / steps for a, b in zip(marks, marks[1:])]


def time_baseline(config, batches, steps, warmup, windows, device) -> list[float]:
    """Seconds per step of a bare compiled loop, per window: the reference the book's loop is held to."""
    torch.manual_seed(0)
    model = GPT(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device.type == "cuda")
    step_model = torch.compile(model) if device.type == "cuda" else model
    marks = []
    for i in range(warmup + windows * steps + 1):
        if i >= warmup and (i - warmup) % steps == 0:
            sync(device)
            marks.append(time.perf_counter())
            if len(marks) == windows + 1:
                break
        x, y = batches[i % len(batches)]
        with training.autocast(device):
            _, loss = step_model(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return _window_times(marks, steps)


def time_book_loop(config, batches, steps, warmup, windows, device, level: float, dynamic_method: str = "",
                   interval: int = 100) -> list[float]:
    """Seconds per step of spdf_lib.training.train (schedule, masks, logging included), per window;
    with ``dynamic_method`` ("rigl" or "set") the masks move every ``interval`` steps."""
    from spdf_lib import dynamic

    torch.manual_seed(0)
    model = GPT(config)
    if level > 0:
        sparsify(model, SparsitySpec(level=level, seed=0))
    total = warmup + windows * steps + 1
    after_step = None if not dynamic_method else dynamic.hook(
        dynamic.DynamicSpec(method=dynamic_method, interval=interval, fraction=0.3, end_step=total + 1))
    marks = []

    def batch_at(step):
        if step >= warmup and (step - warmup) % steps == 0:
            sync(device)
            marks.append(time.perf_counter())
        return batches[step % len(batches)]

    optim = training.OptimConfig(lr=1e-4, total_steps=total, warmup_steps=10)
    training.train(model, batch_at=batch_at, optim=optim, device=device, compile_model=device.type == "cuda",
                   progress=False, desc="bench", after_step=after_step)
    return _window_times(marks[:windows + 1], steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="gpu-small,gpu-large")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per loop and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of all loops")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="hardware peak for MFU (H100 SXM dense bf16: 989)")
    parser.add_argument("--loops", default="baseline,dense,masked", help="which loops to time (also rigl, set)")
    parser.add_argument("--dynamic-interval", type=int, default=20, help="steps between mask updates (rigl, set)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for name in args.presets.split(","):
        config = get_config(name, vocab_size=args.vocab, block_size=max(args.seq, get_config(name).block_size))
        batches = random_batches(args.vocab, args.batch, args.seq, 8, device)
        tokens = args.batch * args.seq
        flops_per_token = 3 * forward_flops_per_token(config, 0.0, seq_len=args.seq).total
        loops = args.loops.split(",")
        samples = {"baseline": [], "dense": [], "masked": [], "rigl": [], "set": []}
        # rounds interleave the three loops so that clock drift affects them alike; median of windows
        for _ in range(args.rounds):
            if "baseline" in loops:
                samples["baseline"] += time_baseline(config, batches, args.steps, args.warmup, args.windows, device)
            if "dense" in loops:
                samples["dense"] += time_book_loop(config, batches, args.steps, args.warmup, args.windows, device, 0.0)
            if "masked" in loops:
                samples["masked"] += time_book_loop(config, batches, args.steps, args.warmup, args.windows, device, 0.75)
            for method in ("rigl", "set"):
                if method in loops:
                    samples[method] += time_book_loop(config, batches, args.steps, args.warmup, args.windows, device,
                                                      0.75, method, args.dynamic_interval)
        nan = float("nan")
        base, dense, masked, rigl, set_ = (statistics.mean(samples[k]) if k in ("rigl", "set") and samples[k]
                                           else statistics.median(samples[k]) if samples[k] else nan
                                           for k in ("baseline", "dense", "masked", "rigl", "set"))
        for label, sec in (("baseline", base), ("dense", dense), ("masked 75%", masked), ("rigl 75%", rigl),
                           ("set 75%", set_)):
            if sec != sec:  # not timed
                continue
            tps = tokens / sec
            rows.append({"preset": name, "loop": label, "ms_per_step": 1e3 * sec, "tokens_per_s": tps,
                         "mfu": tps * flops_per_token / (args.peak_tflops * 1e12)})
        rows.append({"preset": name, "loop": "ratios", "dense_vs_baseline": base / dense,
                     "masked_slowdown_vs_dense": masked / dense - 1.0,
                     "rigl_slowdown_vs_masked": rigl / masked - 1.0, "set_slowdown_vs_masked": set_ / masked - 1.0,
                     "dynamic_interval": args.dynamic_interval})
    print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
          f"batch {args.batch} x seq {args.seq}; peak {args.peak_tflops} TFLOP/s; median of "
          f"{args.rounds} x {args.windows} windows of {args.steps} steps per loop")
    for r in rows:
        if r["loop"] == "ratios":
            print(f"{r['preset']:>10}  dense/baseline speed {r['dense_vs_baseline']:.3f}x   "
                  f"masked slower than dense by {100 * r['masked_slowdown_vs_dense']:+.1f}%")
            for method in ("rigl", "set"):
                if r[f"{method}_slowdown_vs_masked"] == r[f"{method}_slowdown_vs_masked"]:
                    print(f"{r['preset']:>10}  {method} (an update every {r['dynamic_interval']} steps) slower than "
                          f"the static mask by {100 * r[f'{method}_slowdown_vs_masked']:+.1f}%")
        else:
            print(f"{r['preset']:>10}  {r['loop']:<11} {r['ms_per_step']:8.2f} ms/step  "
                  f"{r['tokens_per_s'] / 1e6:7.3f} M tok/s  MFU {100 * r['mfu']:5.1f}%")
    if args.json:
        from spdf_lib.store import atomic_write_json

        atomic_write_json(args.json, {"device": str(device), "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
