"""Cost of keeping masks in the training loop: one training step with and without mask upkeep.

The same sparse model is trained with three loops, interleaved in rounds so that clock drift hits
all of them alike:

* ``plain``: forward, backward, AdamW step (masks not maintained: the baseline);
* ``fused``: plus ``mask_grads_`` after backward and ``mask_weights_`` after the step
  (``torch._foreach_mul_`` over cached lists, what spdf_lib.training does);
* ``loop``: plus the same masking written as a Python loop over parameters (for comparison).

On CUDA the step runs under bf16 autocast with a compiled model and fused AdamW, as the ``gpu``
profile trains. The overhead target for ``gpu-large`` is at most 3%. Examples::

    python benchmarks/bench_mask_upkeep.py                       # CPU, a small preset
    python benchmarks/bench_mask_upkeep.py --preset gpu-large --batch 64 --seq 512 --vocab 8192
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spdf_lib.model import GPT, get_config, generate
from spdf_lib.sparsity import SparsitySpec, mask_grads_, mask_weights_, masks, sparsify, unwrap


def loop_upkeep(model: torch.nn.Module, after_step: bool) -> None:
    """The unfused version: one multiply per masked tensor."""
    net = unwrap(model)
    for module in net.modules():
        mask = module._buffers.get("weight_mask")
        if mask is None:
            continue
        if after_step:
            with torch.no_grad():
                module.weight.mul_(mask)
        elif module.weight.grad is not None:
            module.weight.grad.mul_(mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="model preset (default: gpu-large on CUDA, cpu-large on CPU)")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 64 CUDA, 8 CPU)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default 512 CUDA, 128 CPU)")
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20 CUDA, 3 CPU)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per variant (default 10 CUDA, 1 CPU)")
    parser.add_argument("--no-compile", action="store_true", help="on CUDA, run eagerly")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    preset = args.preset or ("gpu-large" if cuda else "cpu-large")
    batch = args.batch or (64 if cuda else 8)
    seq = args.seq or (512 if cuda else 128)
    cfg = get_config(preset, vocab_size=args.vocab or None, block_size=max(get_config(preset).block_size, seq))
    steps = args.steps or (20 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    use_compile = cuda and not args.no_compile

    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    sparsify(model, SparsitySpec(level=args.sparsity))
    step_fn = torch.compile(model) if use_compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=cuda)
    x = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)
    y = torch.roll(x, -1, dims=1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step(variant: str) -> None:
        with autocast:
            _, loss = step_fn(x, y)
        loss.backward()
        if variant == "fused":
            mask_grads_(step_fn)  # the compile wrapper is accepted as well as the module
        elif variant == "loop":
            loop_upkeep(step_fn, after_step=False)
        optimizer.step()
        if variant == "fused":
            mask_weights_(step_fn)
        elif variant == "loop":
            loop_upkeep(step_fn, after_step=True)
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    variants = ("plain", "fused", "loop")
    t0 = time.perf_counter()
    for v in variants:
        for _ in range(warmup):
            step(v)
    sync()
    print(f"warm-up (incl. compilation): {time.perf_counter() - t0:.1f} s")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                step(v)
            sync()
            times[v].append((time.perf_counter() - start) / steps)

    n_masked = sum(int((~m).sum()) for m in masks(model).values())
    print(f"device {device} ({torch.cuda.get_device_name(device) if cuda else torch.get_num_threads()} "
          f"{'' if cuda else 'threads'}), torch {torch.__version__}, compile={use_compile}, "
          f"autocast={'bf16' if cuda else 'off'}")
    print(f"preset {preset}: {model.num_params():,} parameters, {len(masks(model))} masked tensors, "
          f"{n_masked:,} masked entries ({args.sparsity:.0%}); batch {batch} x seq {seq}; "
          f"{args.rounds} rounds x {steps} steps")
    base = statistics.median(times["plain"])
    print(f"{'variant':<8}{'median ms/step':>16}{'min ms/step':>14}{'tokens/s':>14}{'overhead':>10}")
    for v in variants:
        med = statistics.median(times[v])
        print(f"{v:<8}{med * 1e3:>16.2f}{min(times[v]) * 1e3:>14.2f}{batch * seq / med:>14,.0f}"
              f"{(med / base - 1) * 100:>9.1f}%")
    # the masks held
    for name, mask in masks(model).items():
        assert torch.all(model.get_parameter(name)[~mask] == 0), name
    print("check: masked weights are exactly zero after all steps")
    # the decoding path on the same device and precision (KV cache, left padding, beam search)
    prompts = [torch.randint(0, cfg.vocab_size, (n,)).tolist() for n in (5, 17, 40, 9)]
    t0 = time.perf_counter()
    with autocast:
        outs = generate(model, prompts, max_new_tokens=24, eos_id=0, pad_id=1, beam_size=4, length_penalty=0.9,
                        no_repeat_ngram_size=4)
    sync()
    print(f"check: generate (beam 4, {len(prompts)} prompts) ran in {time.perf_counter() - t0:.2f} s; "
          f"output lengths {[len(o) for o in outs]}")


if __name__ == "__main__":
    main()
