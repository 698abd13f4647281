#!/usr/bin/env python
"""Benchmark of the data layer (spdf_lib.data: the tokenizer and the token stream; chapter 03).

Targets, on 2 CPU cores: loading and tokenizing the whole pre-training training split (about 300
million characters) takes at most 5 minutes the first time, and at most 10 s when read back from
the cache in a new process. Tokenizer training is timed and printed separately. The first-time
figures are measured in an empty temporary cache (``SPDF_CACHE``), so nothing cached earlier helps.
Prints the figures and exits 1 if a target is missed.

    .venv/bin/python benchmarks/bench_data.py                 # the gpu profile's tokenizer, whole corpus
    .venv/bin/python benchmarks/bench_data.py --profile cpu   # that profile's vocabulary and corpus slice
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_TIME_LIMIT_S = 300.0
FROM_CACHE_LIMIT_S = 10.0

# Run in a fresh process: reads the tokenizer and the token stream back from the cache.
_FROM_CACHE = """
import json, sys, time
start = time.perf_counter()
from spdf_lib import data
imported = time.perf_counter()
args = json.loads(sys.argv[1])
tok = data.get_tokenizer(args["vocab"], args["chars"], limit_docs=args["limit"], verbose=False)
tokens = data.pretraining_tokens(tok, "train", limit_docs=args["limit"], verbose=False)
done = time.perf_counter()
print(json.dumps({"tokens": int(len(tokens)), "import_s": imported - start, "load_s": done - imported}))
"""


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="gpu", help="profile whose vocabulary, tokenizer sample and corpus "
                                                         "slice to use (default gpu: the whole corpus)")
    parser.add_argument("--threads", type=int, default=2, help="threads for the Rust tokenizer (RAYON_NUM_THREADS)")
    parser.add_argument("--keep-cache", action="store_true", help="keep the temporary cache directory")
    args = parser.parse_args(argv)

    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    # A killed benchmark still removes its temporary cache (SIGTERM becomes SystemExit -> finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cache = Path(tempfile.mkdtemp(prefix="spdf-bench-data-"))
    os.environ["SPDF_CACHE"] = str(cache)

    from spdf_lib import data
    from spdf_lib.profiles import get_profile

    profile = get_profile(args.profile)
    limit = profile.pretrain.corpus_docs
    vocab, chars = profile.vocab_size, profile.tokenizer_train_chars
    print(f"profile {profile.name}: vocabulary {vocab:,}, tokenizer sample {chars:,} characters, "
          f"corpus {'whole' if limit is None else f'first {limit:,} documents per corpus'}; "
          f"{args.threads} tokenizer threads; empty cache {cache}")
    try:
        t0 = time.perf_counter()
        corpus = data.load_pretraining("train", limit_docs=limit)
        t_load = time.perf_counter() - t0
        summary = data.pretraining_summary("train", limit)

        t0 = time.perf_counter()
        tok = data.get_tokenizer(vocab, chars, limit_docs=limit, verbose=False)
        t_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        tokens = data.pretraining_tokens(tok, "train", limit_docs=limit, verbose=True)
        t_tokenize = time.perf_counter() - t0  # the corpus is already in memory: encoding and caching only

        first_time = t_load + t_tokenize
        print(f"load (Arrow conversion, Gutenberg stripping, interleaving): {t_load:7.1f} s "
              f"for {corpus.num_rows:,} documents, {summary['characters'] / 1e6:,.1f} M characters")
        print(f"tokenizer training ({chars / 1e6:,.0f} M characters, vocabulary {tok.vocab_size:,}):  {t_train:7.1f} s")
        print(f"tokenize + write cache:                                       {t_tokenize:7.1f} s "
              f"-> {len(tokens):,} tokens ({summary['characters'] / t_tokenize / 1e6:.2f} M characters/s, "
              f"{len(tokens) / t_tokenize / 1e3:,.0f} k tokens/s)")
        print(f"FIRST TIME load + tokenize:                                   {first_time:7.1f} s "
              f"(target <= {FIRST_TIME_LIMIT_S:.0f} s); with tokenizer training {first_time + t_train:.1f} s; "
              f"peak RSS {peak_rss_gb():.2f} GB")

        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _FROM_CACHE,
                              json.dumps({"vocab": vocab, "chars": chars, "limit": limit})],
                             check=True, capture_output=True, text=True, env=os.environ.copy())
        wall = time.perf_counter() - t0
        cached = json.loads(out.stdout.strip().splitlines()[-1])
        if cached["tokens"] != len(tokens):
            print(f"FAIL: the cached stream has {cached['tokens']:,} tokens, expected {len(tokens):,}")
            return 1
        from_cache = cached["load_s"]
        print(f"FROM CACHE (new process: tokenizer + token stream):           {from_cache:7.1f} s "
              f"(target <= {FROM_CACHE_LIMIT_S:.0f} s); imports {cached['import_s']:.1f} s, "
              f"process wall {wall:.1f} s")
    finally:
        if not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)

    ok = first_time <= FIRST_TIME_LIMIT_S and from_cache <= FROM_CACHE_LIMIT_S
    print("PASS" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
