"""Speed of batched beam search: ``spdf_lib.model.generate`` as chapter 05 decodes DART and E2E.

A randomly initialised ``gpu-large`` GPT (vocabulary 8192) continues N random prompts of 20 to 80
tokens, as DART's are (``--prompt-lengths 380,447`` for the longest that a 512-token fine-tuning
allows), with beam 4, at most 64 new tokens, no repeated 4-gram and length penalty 0.9, for several
decode batch sizes. A random model rarely emits EOS early, so nearly every prompt runs to its
limit: this is the slow end of real decoding. Prints prompts per second, milliseconds per decode
step (a step advances every row of a batch by one token: the prompt pass gives the first token,
each ``_Decoder.step``, which this script counts, one more) and the peak GPU memory. On CUDA the
model runs under bf16 autocast, as ``decode_texts`` runs it; ``generate`` itself decodes 256
prompts a batch there and 64 on the CPU unless told otherwise. Examples::

    python benchmarks/bench_decode.py                                  # CPU, 32 prompts
    python benchmarks/bench_decode.py --prompts 2048 --batch-sizes 64,256,512
    python benchmarks/bench_decode.py --prompts 1024 --batch-sizes 256,512 --prompt-lengths 380,447
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from spdf_lib import model as model_module
from spdf_lib.model import GPT, get_config, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prompts", type=int, default=None, help="number of prompts (default 2048 CUDA, 32 CPU)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 64,256,512 CUDA, 8,32 CPU)")
    parser.add_argument("--prompt-lengths", default="20,80", help="shortest,longest prompt in tokens")
    parser.add_argument("--preset", default="gpu-large")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--no-repeat-ngram", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=0.9)
    parser.add_argument("--eos", type=int, default=2, help="EOS id (pad is 0)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per batch size; the best is shown")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    n = args.prompts or (2048 if cuda else 32)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("64,256,512" if cuda else "8,32")).split(",")]
    torch.manual_seed(args.seed)
    model = GPT(get_config(args.preset, vocab_size=args.vocab)).to(device).eval()
    g = torch.Generator().manual_seed(args.seed)
    lo, hi = (int(x) for x in args.prompt_lengths.split(","))
    lengths = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    prompts = [torch.randint(3, args.vocab, (k,), generator=g).tolist() for k in lengths]
    kw = dict(max_new_tokens=args.max_new_tokens, eos_id=args.eos, pad_id=0, beam_size=args.beam,
              length_penalty=args.length_penalty, no_repeat_ngram_size=args.no_repeat_ngram)

    def run(ps, batch_size):
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        with ctx:
            out = generate(model, ps, batch_size=batch_size, **kw)
        if cuda:
            torch.cuda.synchronize()
        return out

    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if cuda else ''}, "
          f"preset {args.preset}, vocab {args.vocab}, {n} prompts, beam {args.beam}, "
          f"prompts of {lo}-{hi} tokens, max_new_tokens {args.max_new_tokens}, torch {torch.__version__}")
    print(f"{'batch':>6} {'seconds':>9} {'prompts/s':>10} {'ms/step':>8} {'steps':>6} "
          f"{'new tok/prompt':>15} {'peak GiB':>9}")
    steps = 0  # decoder steps of the last run: calls of _Decoder.step, plus one per batch (prompt pass)
    plain_step = model_module._Decoder.step

    def counted_step(self, *a, **k):
        nonlocal steps
        steps += 1
        return plain_step(self, *a, **k)

    model_module._Decoder.step = counted_step
    for bs in batch_sizes:
        run(prompts[:min(bs, n)], bs)  # warm-up: kernels, allocator
        best = None
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            steps = -(-n // bs)
            t0 = time.perf_counter()
            out = run(prompts, bs)
            seconds = time.perf_counter() - t0
            best = seconds if best is None else min(best, seconds)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
        print(f"{bs:>6} {best:>9.2f} {n / best:>10.1f} {1000 * best / steps:>8.2f} {steps:>6} "
              f"{sum(map(len, out)) / n:>15.1f} {peak:>9.2f}")


if __name__ == "__main__":
    main()
