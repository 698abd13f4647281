#!/usr/bin/env python
"""Time dense vs unstructured-sparse (CSR) vs 2:4 semi-structured matmuls at GPT-3 XL layer shapes.

The measured side of chapter 07: what today's kernels make of weight sparsity. It needs only torch
and the standard library besides ``spdf_lib.sparsity`` (itself torch only), read from this checkout,
so it runs on a GPU machine without installing the rest of the book's environment.

For each GPT-3 XL linear layer (d_model 2048, FFN 8192) it times ``y = x W^T`` with

* ``dense``: ``F.linear(x, W)`` per dtype (float32 on CPU; bfloat16, float16 and float32 on CUDA);
* ``csr``: ``torch.sparse.mm(W_csr, x^T)`` with ``W_csr = W.to_sparse_csr()`` at 50/75/90/95%
  unstructured random sparsity (the book's exact-count mask, ``spdf_lib.sparsity.random_mask``);
* ``2:4``: ``to_sparse_semi_structured(W)`` (two nonzeros in every four along the input dimension,
  i.e. 50%) called as ``F.linear(x, W24)`` and as ``torch.mm(W24, x^T)``, with both the cuSPARSELt
  and the CUTLASS backend. CUDA only: on a CPU the attempt is recorded with its error message.

Each kernel: warm-up calls, then the median of ``--repeats`` timed calls (CUDA events on GPU,
``time.perf_counter`` on CPU). Every sparse result is checked against the dense one (``rel_err``).
A kernel that is unsupported or fails is recorded in ``status`` instead of stopping the run.

    python scripts/measure_sparse_kernels.py --device cpu --sizes small --out tables/kernels/sparse_kernels_cpu.csv
    python scripts/measure_sparse_kernels.py --device cuda --sizes xl --out tables/kernels/sparse_kernels_h100.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # spdf_lib from this checkout
from spdf_lib.sparsity import random_mask  # noqa: E402

# (name, out_features, in_features) of the four sparsified linears of a GPT-3 XL block.
GPT3_XL_LAYERS = (("attn.c_attn", 6144, 2048), ("attn.c_proj", 2048, 2048),
                  ("mlp.c_fc", 8192, 2048), ("mlp.c_proj", 2048, 8192))
# Tokens per matmul: "xl" is 4 sequences of GPT-3 XL's 2048 context; "small" keeps a CPU run short.
TOKENS = {"small": 128, "xl": 8192}
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
DTYPES = {"cpu": ("float32",), "cuda": ("bfloat16", "float16", "float32")}
CSR_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "bfloat16")}
SEMI_DTYPES = {"cpu": ("bfloat16",), "cuda": ("bfloat16", "float16")}
# (backend, call) pairs tried for 2:4; on a CPU one attempt per layer records why it cannot run.
SEMI_VARIANTS = {"cpu": (("cusparselt", "linear"),),
                 "cuda": (("cusparselt", "linear"), ("cusparselt", "mm"), ("cutlass", "linear"), ("cutlass", "mm"))}

COLUMNS = ("device", "device_name", "torch", "cuda", "threads", "load_avg_1min", "date", "layer", "tokens",
           "out_features", "in_features", "dtype", "kernel", "variant", "sparsity", "nonzero_weights", "median_ms", "min_ms",
           "repeats", "dense_equiv_tflops", "speedup_vs_dense", "speedup_vs_best_dense", "rel_err", "status")


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nested_masks(shape, sparsities, generator):
    """One exact-count random mask per sparsity (True = kept), nested: each level's mask is drawn by
    :func:`spdf_lib.sparsity.random_mask` from a generator in the same state, so the weights kept at a
    higher sparsity are a subset of those kept at a lower one. ``generator`` advances by one draw."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return {s: random_mask(shape, s, torch.Generator().manual_seed(seed)) for s in sparsities}


def two_four_mask(weight):
    """Keep the 2 largest-magnitude weights of every group of 4 along the input dimension."""
    out_f, in_f = weight.shape
    groups = weight.abs().reshape(out_f, in_f // 4, 4)
    keep = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(out_f, in_f)


def time_call(fn, device, warmup, repeats):
    """(median ms, min ms) of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def rel_err(result, reference):
    result, reference = result.float(), reference.float()
    return float((result - reference).norm() / reference.norm().clamp_min(1e-30))


def measure(args) -> list[dict]:
    dev = args.device
    tokens = args.tokens or TOKENS[args.sizes]
    gen = torch.Generator().manual_seed(args.seed)
    common = {"device": dev, "device_name": device_name(dev), "torch": torch.__version__,
              "cuda": torch.version.cuda or "", "threads": torch.get_num_threads(),
              "date": datetime.date.today().isoformat(), "tokens": tokens}
    rows = []

    def record(layer, out_f, in_f, dtype, kernel, variant, sparsity, nnz, fn, reference):
        # Other work on the machine slows CPU timings: keep the 1-minute load average with each row.
        row = {**common, "load_avg_1min": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "",
               "layer": layer, "out_features": out_f, "in_features": in_f, "dtype": dtype,
               "kernel": kernel, "variant": variant, "sparsity": sparsity, "nonzero_weights": nnz,
               "repeats": args.repeats}
        try:
            result = fn()
            if reference is not None:
                row["rel_err"] = f"{rel_err(result, reference):.2e}"
            med, best = time_call(fn, dev, args.warmup, args.repeats)
            row.update(median_ms=f"{med:.4f}", min_ms=f"{best:.4f}",
                       dense_equiv_tflops=f"{2.0 * tokens * out_f * in_f / (med * 1e-3) / 1e12:.3f}", status="ok")
        except Exception as exc:  # record what failed, keep measuring the rest
            row["status"] = f"unsupported: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        rows.append(row)
        print(f"{layer:12s} {dtype:9s} {kernel:5s} s={sparsity:<5} {variant:38s} "
              f"{row.get('median_ms', '-'):>10} ms  {row['status'][:70]}", flush=True)
        del fn
        return row

    for layer, out_f, in_f in GPT3_XL_LAYERS:
        w_full = torch.randn(out_f, in_f, generator=gen) / in_f ** 0.5
        x_full = torch.randn(tokens, in_f, generator=gen)
        masks = nested_masks((out_f, in_f), SPARSITIES, gen)
        for dtype_name in DTYPES[dev]:
            dt = getattr(torch, dtype_name)
            w, x = w_full.to(dev, dt), x_full.to(dev, dt)
            record(layer, out_f, in_f, dtype_name, "dense", "F.linear(x, W)", 0.0, out_f * in_f,
                   lambda: F.linear(x, w), None)
        for dtype_name in CSR_DTYPES[dev]:
            dt = getattr(torch, dtype_name)
            x = x_full.to(dev, dt)
            xt = x.t().contiguous()
            for s in SPARSITIES:
                w_sparse = (w_full * masks[s]).to(dev, dt)
                reference = F.linear(x.float(), w_sparse.float()).t()
                try:
                    w_csr = w_sparse.to_sparse_csr()
                    fn = lambda: torch.sparse.mm(w_csr, xt)  # noqa: E731
                except Exception as exc:
                    fn = _raiser(exc)
                record(layer, out_f, in_f, dtype_name, "csr", "sparse.mm(W_csr, x^T)", s,
                       int(masks[s].sum()), fn, reference)
                del w_sparse
        w24_full = w_full * two_four_mask(w_full)
        for dtype_name in SEMI_DTYPES[dev]:
            dt = getattr(torch, dtype_name)
            x = x_full.to(dev, dt)
            xt = x.t().contiguous()
            w24 = w24_full.to(dev, dt)
            reference = F.linear(x.float(), w24.float())
            for backend, call in SEMI_VARIANTS[dev]:
                try:
                    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

                    SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
                    ws = to_sparse_semi_structured(w24)
                    fn = (lambda: F.linear(x, ws)) if call == "linear" else (lambda: torch.mm(ws, xt))
                except Exception as exc:
                    fn = _raiser(exc)
                variant = f"F.linear(x, W24) {backend}" if call == "linear" else f"mm(W24, x^T) {backend}"
                record(layer, out_f, in_f, dtype_name, "2:4", variant, 0.5, out_f * in_f // 2, fn,
                       reference if call == "linear" else reference.t())
        if dev == "cuda":
            torch.cuda.empty_cache()

    # Speed-ups against the dense kernel of the same dtype and the fastest dense kernel of the layer.
    for row in rows:
        dense = {r["dtype"]: float(r["median_ms"]) for r in rows
                 if r["layer"] == row["layer"] and r["kernel"] == "dense" and r["status"] == "ok"}
        if row["status"] != "ok" or not dense:
            continue
        ms = float(row["median_ms"])
        if row["dtype"] in dense:
            row["speedup_vs_dense"] = f"{dense[row['dtype']] / ms:.4f}"
        row["speedup_vs_best_dense"] = f"{min(dense.values()) / ms:.4f}"
    return rows


def _raiser(exc):
    def fn():
        raise exc
    return fn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--sizes", choices=tuple(TOKENS), default="small",
                        help=f"tokens per matmul: {TOKENS}")
    parser.add_argument("--tokens", type=int, default=None, help="override the tokens of --sizes")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 5 on CPU, 30 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1 on CPU, 5 on CUDA)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA GPU is visible")
    if args.tokens is not None and args.tokens < 1:
        parser.error(f"--tokens {args.tokens} must be >= 1")
    args.repeats = args.repeats or (30 if args.device == "cuda" else 5)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.device == "cuda" else 1)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be >= 1")
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    rows = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + f".tmp{os.getpid()}")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in COLUMNS} for row in rows)
    os.replace(tmp, args.out)  # atomic: a crashed run never leaves half a table
    print(f"wrote {len(rows)} rows to {args.out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
