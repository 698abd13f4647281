"""A reading path through ``spdf_lib``: which module to open first, what it holds, and how long it is.

Chapter 00 shows it as a table. The path has four legs. The method itself comes first: the settings,
the model, the masks and the training step. Then how the grid is run and stored, then how results
are judged, and last the analysis and display modules that serve single chapters. The first two legs
are the core: a newcomer who reads them knows what every number of the book is computed from, and
the first alone is the method the paper describes, down to the functions that run one
pre-training or one fine-tuning. The
test suite checks that every module of the package is on the path exactly once, so the path cannot
leave a module out as the library grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["Stop", "READING_PATH", "METHOD", "GRID", "JUDGE", "SERVE", "PACKAGE", "package_modules", "lines_of",
           "reading_path", "leg_lines", "path_sentence"]

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Stop:
    """One stop on the path: a module (``name.py``) or a subpackage (``name/``), what it holds, and the
    chapter that explains it ("" where none does)."""

    leg: str
    module: str
    holds: str
    chapter: str = ""


METHOD, GRID, JUDGE, SERVE = ("the method", "running and storing the grid", "judging the results",
                              "analysis and display for single chapters")

READING_PATH: tuple[Stop, ...] = (
    Stop(METHOD, "profiles.py", "the smoke, cpu and gpu profiles as frozen data: every size, budget and seed", "00"),
    Stop(METHOD, "model.py", "the GPT and its presets, with the four maskable weight matrices of a block; "
                             "batched greedy and beam generation with a KV cache", "01, 06"),
    Stop(METHOD, "sparsity.py", "masks: draw, apply, keep during training, densify, prune", "01, 05, 08"),
    Stop(METHOD, "flops.py", "the FLOP convention: training and inference FLOPs of dense and sparse models; "
                             "parameter memory; iso-FLOP token counts", "02, 08, 09"),
    Stop(METHOD, "data/", "files to batches: readers, the four tasks, the pre-training corpus, the tokenizer, "
                        "fine-tuning examples and their batches, the packed pre-training stream", "03"),
    Stop(METHOD, "training.py", "the one loop for both phases: AdamW, warm-up and cosine decay, mask upkeep, "
                                "checkpoints, deadline", "04, 05"),
    Stop(METHOD, "runners.py", "one run of each stage: where pre-training sparsifies and fine-tuning densifies",
         "04, 05"),
    Stop(METHOD, "evaluation.py", "test prompts decoded through model.generate, corpus BLEU, perplexity",
         "05, 06"),
    Stop(GRID, "runs.py", "what the grid runs: frozen run descriptions whose hash is the cache key", "04-06"),
    Stop(GRID, "scheduler.py", "the one scheduler: which run next, in which process, resumable", "04"),
    Stop(GRID, "placement.py", "which GPU a run goes to"),
    Stop(GRID, "store.py", "atomic, checksummed writes and the cache's paths"),
    Stop(GRID, "checkpoint.py", "saving and loading models, weights only, checksummed"),
    Stop(GRID, "results.py", "results in the cache and committed under tables/"),
    Stop(GRID, "manifest.py", "the committed results' manifest, checked whenever one is read"),
    Stop(GRID, "outputs.py", "decoded test outputs on disk"),
    Stop(GRID, "experiments.py", "the command line of the scheduler"),
    Stop(GRID, "distributed.py", "one pre-training data-parallel over several GPUs (torchrun)"),
    Stop(GRID, "env.py", "provenance: the environment of a result and the header of a chapter"),
    Stop(JUDGE, "stats.py", "intervals for runs nested in pre-trained models", "06"),
    Stop(JUDGE, "verdicts.py", "Tables 1 and 2 and the rules of H1 to H3, fixed before any result", "06"),
    Stop(JUDGE, "replication.py", "how often a fresh run would reach the same verdicts, and the model's record", "06"),
    Stop(JUDGE, "reruns.py", "the grid run more than once: committed runs read back, judged again, compared", "06"),
    Stop(JUDGE, "rate_picks.py", "the learning rate each rule picks in each run, and how often a re-run swaps one",
         "06"),
    Stop(SERVE, "report.py", "what chapters 04 and 05 show, and the table writer every chapter uses", "04, 05"),
    Stop(SERVE, "findings.py", "chapter 06's comparisons with the paper, the set-up, summaries", "06"),
    Stop(SERVE, "metrics/", "the official E2E and WebNLG/DART metric suites", "06"),
    Stop(SERVE, "dataflow/", "the dataflow simulator, the bandwidth model and measured kernels", "07"),
    Stop(SERVE, "pruning.py", "iterative magnitude pruning", "08"),
    Stop(SERVE, "scaling.py", "chapter 09's size trend and iso-FLOP comparisons", "09"),
    Stop(SERVE, "dynamic.py", "RigL and SET mask updates", "09"),
    Stop(SERVE, "figures/", "the figures and display tables of chapters 00 to 03, 08 and 09"),
    Stop(SERVE, "guide.py", "this reading path", "00"),
    Stop(SERVE, "book/", "the chapter runner: executing, checking and rendering chapters"),
)


def package_modules(package: Path = PACKAGE) -> set[str]:
    """Every module (``name.py``, ``__init__.py`` left out) and subpackage (``name/``) of the package."""
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    return modules | {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def lines_of(module: str, package: Path = PACKAGE) -> int:
    """The number of lines of a module, or of every ``.py`` file of a subpackage."""
    path = package / module.rstrip("/")
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)


def reading_path(path: tuple[Stop, ...] = READING_PATH, package: Path = PACKAGE) -> pd.DataFrame:
    """The path as a table, in reading order: leg, module, lines, what it holds, the chapter that
    explains it, and the lines read so far."""
    missing = [s.module for s in path if not (package / s.module.rstrip("/")).exists()]
    if missing:
        raise FileNotFoundError(f"the reading path names modules that {package} does not have: {missing}")
    frame = pd.DataFrame([{"leg": s.leg, "module": s.module, "lines": lines_of(s.module, package),
                           "holds": s.holds, "chapter": s.chapter} for s in path])
    frame["lines so far"] = frame["lines"].cumsum()
    return frame


def leg_lines(frame: pd.DataFrame) -> dict[str, int]:
    """The lines of each leg of a :func:`reading_path` table, in reading order."""
    return {leg: int(n) for leg, n in frame.groupby("leg", sort=False)["lines"].sum().items()}


def path_sentence(frame: pd.DataFrame) -> str:
    """The path's lengths in words: each leg's lines, and the lines up to the end of the first two."""
    legs = leg_lines(frame)
    names = list(legs)
    text = "; ".join(f"{leg}, {n:,} lines" for leg, n in legs.items())
    core = sum(legs[n] for n in names[:2])
    return (f"The path has {len(frame)} stops and {int(frame['lines'].sum()):,} lines in {len(legs)} legs: {text}. "
            f"The first two legs, the core, are {core:,} lines.")
