"""The experiment grid behind Tables 1-2 and Figure 4 (chapters 04, 05 and 06).

Stages, each a list of frozen run descriptions that are pure data:

1. pre-training: every model size x pre-training sparsity (one pre-training seed);
2. learning-rate grid: dense fine-tuning of every pre-trained model on every task with seed 0 and
   each learning rate of the profile's grid; the rate with the lowest validation loss is kept;
3. final runs: every remaining seed at the chosen rate, plus the control at the highest sparsity
   that fine-tunes with the masks kept (same rate as its dense fine-tuning);
4. test evaluation of every final run (BLEU with beam search, or summary perplexity).

Every run is cached under its config hash (``spdf_lib.store``) and its result is exported to
``tables/<profile>/runs/<stage>/<run_id>.json``; a result committed there is reused as it is, which is
how a CPU re-run of the book shows the published ``gpu`` numbers. ``python -m spdf_lib.experiments``
runs the stages from the command line, several runs side by side on one GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable

import torch

from . import __version__, store
from .profiles import PretrainSettings, Profile, TaskSettings, get_profile

STAGES = ("pretrain", "finetune", "eval", "prune")
BLEU_TASKS = ("e2e", "webnlg", "dart")


# ----------------------------------------------------------------------------- run descriptions

@dataclass(frozen=True)
class PretrainRun:
    """One pre-training run (chapter 04)."""

    stage: ClassVar[str] = "pretrain"
    profile: str
    size: str  # model preset name
    sparsity: float
    seed: int
    model: Any  # GPTConfig with the tokenizer's vocabulary
    settings: PretrainSettings
    tokens: int  # planned training tokens (whole steps)
    tokenizer: str  # tokenizer fingerprint
    data: str  # fingerprint of the pre-training corpus

    @property
    def run_id(self) -> str:
        return f"{self.size}_s{round(self.sparsity * 100):02d}"

    @property
    def tokens_per_step(self) -> int:
        return self.settings.batch_size * self.settings.seq_len

    @property
    def steps(self) -> int:
        return self.tokens // self.tokens_per_step


@dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning run of a pre-trained model on one task (chapter 05)."""

    stage: ClassVar[str] = "finetune"
    base: PretrainRun
    task: TaskSettings
    lr: float
    seed: int
    keep_masks: bool  # True: the sparse fine-tuning control
    batch_size: int
    max_len: int
    weight_decay: float
    warmup_frac: float
    data: str  # fingerprint of the task's files

    @property
    def run_id(self) -> str:
        mode = "sparseft" if self.keep_masks else "denseft"
        return f"{self.base.run_id}_{self.task.name}_{mode}_lr{self.lr:g}_seed{self.seed}"


@dataclass(frozen=True)
class EvalRun:
    """Test-set evaluation of one fine-tuned model (chapter 06)."""

    stage: ClassVar[str] = "eval"
    finetune: FinetuneRun
    beam_size: int
    length_penalty: float
    no_repeat_ngram_size: int

    @property
    def run_id(self) -> str:
        return self.finetune.run_id

    @property
    def metric(self) -> str:
        return "BLEU" if self.finetune.task.name in BLEU_TASKS else "PPL"


def stage_of(run) -> str:
    return run.stage


def run_key(run) -> str:
    """The hash that names a run in the cache and in committed results."""
    return store.stable_hash(stage_of(run), run, __version__)


# ----------------------------------------------------------------------------- planning

def tokenizer_for(profile: Profile):
    """The profile's tokenizer (the one chapter 03 trains and every later chapter reuses)."""
    from .tokenizer import get_tokenizer

    return get_tokenizer(profile.vocab_size, profile.tokenizer_train_chars, limit_docs=profile.pretrain.corpus_docs,
                         verbose=False)


def _pretrain_data_fingerprint() -> str:
    from .data import pretraining_fingerprint

    return store.stable_hash(pretraining_fingerprint("train"), pretraining_fingerprint("validation"))


def _task_data_fingerprint(task: str) -> str:
    from .data import task_fingerprint

    return task_fingerprint(task)


def planned_tokens(config, settings: PretrainSettings) -> int:
    """Tokens of one pre-training run: tokens per parameter x parameters, capped, whole steps."""
    from .model import num_params

    wanted = settings.tokens_per_param * num_params(config)
    if settings.max_tokens is not None:
        wanted = min(wanted, settings.max_tokens)
    per_step = settings.batch_size * settings.seq_len
    if not wanted > 0:
        raise ValueError(f"token budget of {wanted} tokens (tokens_per_param={settings.tokens_per_param}, "
                         f"max_tokens={settings.max_tokens}): pre-training needs a positive budget")
    return max(1, int(wanted // per_step)) * per_step


def pretraining_runs(profile: Profile, tokenizer=None) -> list[PretrainRun]:
    """Every (size, sparsity) pre-training run of the profile, large models first."""
    from .model import PRESETS

    tok = tokenizer or tokenizer_for(profile)
    data_fp = _pretrain_data_fingerprint()
    runs = []
    for size in profile.sizes:
        config = dataclasses.replace(PRESETS[size], vocab_size=tok.vocab_size,
                                     block_size=max(PRESETS[size].block_size, profile.pretrain.seq_len))
        for level in profile.sparsity_levels:
            runs.append(PretrainRun(profile=profile.name, size=size, sparsity=level, seed=0, model=config,
                                    settings=profile.pretrain, tokens=planned_tokens(config, profile.pretrain),
                                    tokenizer=tok.fingerprint, data=data_fp))
    return runs


def finetune_run(profile: Profile, base: PretrainRun, task: str, lr: float, seed: int,
                 keep_masks: bool = False) -> FinetuneRun:
    ft = profile.finetune
    return FinetuneRun(base=base, task=profile.task(task), lr=lr, seed=seed, keep_masks=keep_masks,
                       batch_size=ft.batch_size, max_len=min(ft.max_len, base.model.block_size),
                       weight_decay=ft.weight_decay, warmup_frac=ft.warmup_frac,
                       data=_task_data_fingerprint(task))


def grid_runs(profile: Profile, bases: Iterable[PretrainRun]) -> list[FinetuneRun]:
    """Seed-0 dense fine-tuning at every learning rate of the grid."""
    return [finetune_run(profile, base, task, lr, profile.seeds[0])
            for base in bases for task in profile.task_names for lr in profile.finetune.lr_grid]


def chosen_lr(profile: Profile, base: PretrainRun, task: str, grid_results: dict[str, dict]) -> float:
    """The grid's learning rate with the lowest validation loss (ties: the smaller rate)."""
    scored = []
    for lr in profile.finetune.lr_grid:
        result = grid_results[finetune_run(profile, base, task, lr, profile.seeds[0]).run_id]
        loss = result["dev_loss"]
        scored.append((loss if math.isfinite(loss) else float("inf"), lr))
    return min(scored)[1]


def final_runs_for(profile: Profile, base: PretrainRun, task: str, grid_results: dict[str, dict]) -> list[FinetuneRun]:
    """The final runs of one pre-trained model and task: every seed at the chosen rate, and the
    masks-kept control when the model has the profile's highest sparsity."""
    top = max(profile.sparsity_levels)
    control = profile.finetune.sparse_control and base.sparsity == top and top > 0
    lr = chosen_lr(profile, base, task, grid_results)
    runs = []
    for seed in profile.seeds:
        runs.append(finetune_run(profile, base, task, lr, seed))
        if control:
            runs.append(finetune_run(profile, base, task, lr, seed, keep_masks=True))
    return runs


def final_runs(profile: Profile, bases: Iterable[PretrainRun], grid_results: dict[str, dict]) -> list[FinetuneRun]:
    """Every seed at the chosen rate, and the masks-kept control at the highest sparsity."""
    return [run for base in bases for task in profile.task_names
            for run in final_runs_for(profile, base, task, grid_results)]


def eval_run(profile: Profile, run: FinetuneRun) -> EvalRun:
    ft = profile.finetune
    return EvalRun(finetune=run, beam_size=ft.beam_size, length_penalty=ft.length_penalty,
                   no_repeat_ngram_size=ft.no_repeat_ngram_size)


# ----------------------------------------------------------------------------- executing one run

def run_dir(run) -> Path:
    return store.cache_root() / stage_of(run) / run_key(run)


def _finish(run, result: dict) -> dict:
    from .env import environment

    result = {"run_id": run.run_id, "stage": stage_of(run), "key": run_key(run), "spdf_lib": __version__,
              "environment": environment(), "config": store._canonical(run), **result}
    store.write_json_entry(run_dir(run) / "result.json", result)
    # The last checkpoint goes only now: a run killed before its result was stored resumes from it.
    (run_dir(run) / "checkpoint.pt").unlink(missing_ok=True)
    (run_dir(run) / "checkpoint.pt.sha256").unlink(missing_ok=True)
    return result


_intact_models: dict[tuple[str, int, int], bool] = {}


def _model_intact(path: Path) -> bool:
    """True when ``path`` and its checksum sidecar exist and agree (memoized by size and mtime)."""
    sidecar = Path(str(path) + ".sha256")
    if not (path.exists() and sidecar.exists()):
        return False
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _intact_models:
        _intact_models[memo] = store.sha256_file(path) == sidecar.read_text().strip()
    return _intact_models[memo]


def _cached_result(run) -> dict | None:
    path = run_dir(run) / "result.json"
    if path.exists() and not store.force_recompute(path):
        try:
            result = store.read_json_verified(path)
        except store.CorruptCacheError:
            return None
        if stage_of(run) in ("pretrain", "finetune") and not _model_intact(path.parent / "model.pt"):
            return None  # the model a later stage loads is damaged or gone: recompute it
        return result
    return None


def _eval_batches(tokens, settings: PretrainSettings, n: int):
    from .data import packed_batch

    return [packed_batch(tokens, i, settings.batch_size, settings.seq_len, seed=10_000) for i in range(n)]


def do_pretrain(run: PretrainRun, device: torch.device, deadline: float | None = None,
                progress: bool = True) -> dict:
    """Pre-train one model (or resume it) and return its result (chapter 04)."""
    from . import training
    from .checkpoint import save_model
    from .data import packed_batch, passes_for, pretraining_tokens
    from .flops import training_flops
    from .model import GPT
    from .sparsity import SparsitySpec, sparsify

    cached = _cached_result(run)
    if cached is not None:
        return cached
    profile = get_profile(run.profile)
    tok = tokenizer_for(profile)
    if tok.fingerprint != run.tokenizer:
        raise ValueError(f"{run.run_id}: tokenizer {tok.fingerprint} is not the one the run was planned with "
                         f"({run.tokenizer}); delete the stale cache or re-plan")
    train_tokens = pretraining_tokens(tok, "train", limit_docs=run.settings.corpus_docs)
    valid_tokens = pretraining_tokens(tok, "validation", limit_docs=run.settings.corpus_docs)
    torch.manual_seed(run.seed)
    model = GPT(run.model)
    if run.sparsity > 0:
        sparsify(model, SparsitySpec(level=run.sparsity, seed=run.seed))
    s = run.settings
    optim = training.OptimConfig(lr=s.lr, total_steps=run.steps, warmup_steps=max(1, int(s.warmup_frac * run.steps)),
                                 min_lr_ratio=s.min_lr_ratio, weight_decay=s.weight_decay, beta1=s.beta1,
                                 beta2=s.beta2, grad_clip=s.grad_clip)
    valid_batches = _eval_batches(valid_tokens, s, s.eval_batches)
    d = run_dir(run)
    log = training.train(
        model, batch_at=lambda step: packed_batch(train_tokens, step, s.batch_size, s.seq_len, run.seed),
        optim=optim, device=device, checkpoint_path=d / "checkpoint.pt", checkpoint_every=s.checkpoint_every,
        evaluate=lambda: training.mean_loss(model, valid_batches, device), eval_every=s.eval_every,
        deadline=deadline, compile_model=device.type == "cuda", desc=f"pretrain {run.run_id}", progress=progress)
    save_model(d / "model.pt", model.cpu())
    val_loss = log["val_loss"][-1]
    return _finish(run, {
        "size": run.size, "sparsity": run.sparsity, "tokens": log["tokens"], "steps": run.steps,
        "corpus_tokens": int(len(train_tokens)),
        "passes": passes_for(log["tokens"], train_tokens, s.seq_len),
        "val_loss": val_loss, "val_ppl": math.exp(val_loss), "log": log,
        "training_flops": training_flops(run.model, log["tokens"], run.sparsity, seq_len=s.seq_len),
    })


def _task_examples(tok, run: FinetuneRun):
    from .data import encode_finetune, load_task

    task = run.task
    train = load_task(task.name, "train", limit=task.max_train_examples)  # a fixed seeded subset
    dev = load_task(task.name, "validation", limit=task.max_dev_examples)
    return encode_finetune(tok, train, run.max_len), encode_finetune(tok, dev, run.max_len)


def _batches_of(examples, batch_size: int):
    from .data import finetune_batches

    return list(finetune_batches(examples, batch_size, seed=0, epoch=0))


def do_finetune(run: FinetuneRun, device: torch.device, deadline: float | None = None,
                progress: bool = True) -> dict:
    """Fine-tune a pre-trained model (dense unless ``keep_masks``) and return its result (chapter 05)."""
    from . import training
    from .checkpoint import load_model, save_model
    from .data import finetune_batches
    from .flops import training_flops
    from .sparsity import densify

    cached = _cached_result(run)
    if cached is not None:
        return cached
    base_model = run_dir(run.base) / "model.pt"
    if not base_model.exists():
        raise FileNotFoundError(f"{run.run_id}: pre-trained model {base_model} is missing; "
                                f"run the pre-training stage (chapter 04) first")
    model = load_model(base_model)
    if not run.keep_masks:
        densify(model)
    tok = tokenizer_for(get_profile(run.base.profile))
    train_examples, dev_examples = _task_examples(tok, run)
    epochs = [list(finetune_batches(train_examples, run.batch_size, seed=run.seed, epoch=e))
              for e in range(run.task.epochs)]
    schedule = [batch for epoch in epochs for batch in epoch]
    dev_batches = _batches_of(dev_examples, run.batch_size)
    torch.manual_seed(run.seed)
    optim = training.OptimConfig(lr=run.lr, total_steps=len(schedule),
                                 warmup_steps=max(1, int(run.warmup_frac * len(schedule))), min_lr_ratio=0.0,
                                 weight_decay=run.weight_decay, beta1=0.9, beta2=0.999, grad_clip=1.0)
    d = run_dir(run)
    log = training.train(model, batch_at=schedule.__getitem__, optim=optim, device=device,
                         checkpoint_path=d / "checkpoint.pt", checkpoint_every=max(50, len(schedule) // 4),
                         evaluate=lambda: training.mean_loss(model, dev_batches, device), eval_every=0,
                         deadline=deadline, desc=f"finetune {run.run_id}", progress=progress)
    save_model(d / "model.pt", model.cpu())
    dev_loss = log["val_loss"][-1]
    # every position of every example is computed, prompts included (the loss covers targets only)
    processed = run.task.epochs * sum(len(ex.input_ids) for ex in train_examples)
    return _finish(run, {
        "size": run.base.size, "sparsity": run.base.sparsity, "task": run.task.name, "lr": run.lr,
        "seed": run.seed, "keep_masks": run.keep_masks, "dev_loss": dev_loss, "dev_ppl": math.exp(dev_loss),
        "train_examples": len(train_examples), "steps": len(schedule), "tokens": log["tokens"],
        "log": log, "processed_tokens": processed,
        "training_flops": training_flops(run.base.model, processed, run.base.sparsity if run.keep_masks else 0.0,
                                         seq_len=run.max_len),
    })


def do_eval(run: EvalRun, device: torch.device, deadline: float | None = None, progress: bool = True) -> dict:
    """Evaluate a fine-tuned model on its test set; decoded outputs are stored beside the result."""
    from .checkpoint import load_model
    from .data import as_pairs, encode_finetune, load_task
    from .evaluation import corpus_bleu, decode_texts, perplexity

    cached = _cached_result(run)
    if cached is not None:
        return cached
    ft = run.finetune
    model_path = run_dir(ft) / "model.pt"
    if not model_path.exists():
        raise FileNotFoundError(f"{run.run_id}: fine-tuned model {model_path} is missing; run the fine-tuning "
                                f"stage (chapter 05) first")
    model = load_model(model_path).to(device)
    tok = tokenizer_for(get_profile(ft.base.profile))
    test = load_task(ft.task.name, "test", limit=ft.task.max_test_inputs)
    t0 = time.time()
    d = run_dir(run)
    if run.metric == "BLEU":
        hyps = decode_texts(model, tok, test["source"], max_len=ft.max_len, max_new_tokens=ft.task.max_new_tokens,
                            beam_size=run.beam_size, length_penalty=run.length_penalty,
                            no_repeat_ngram_size=run.no_repeat_ngram_size, device=device)
        value = corpus_bleu(hyps, test["references"])
        store.atomic_write_bytes(d / "outputs.txt.gz", gzip.compress("\n".join(hyps).encode() + b"\n", mtime=0))
    else:
        examples = encode_finetune(tok, as_pairs(test), ft.max_len)
        value = perplexity(model, _batches_of(examples, ft.batch_size), device)
    return _finish(run, {
        "size": ft.base.size, "sparsity": ft.base.sparsity, "task": ft.task.name, "seed": ft.seed,
        "lr": ft.lr, "keep_masks": ft.keep_masks, "metric": run.metric, "value": value,
        "test_inputs": len(test), "wall_s": time.time() - t0,
    })


def _do_prune(run, device, deadline=None, progress=True):
    from .pruning import do_prune

    return do_prune(run, device, deadline=deadline, progress=progress)


RUNNERS = {"pretrain": do_pretrain, "finetune": do_finetune, "eval": do_eval, "prune": _do_prune}


# ----------------------------------------------------------------------------- results on disk

def published_dir(tables_dir: Path, profile: str, stage: str) -> Path:
    return Path(tables_dir) / profile / "runs" / stage


def committed_result(run, tables_dir: Path) -> dict | None:
    """A result exported to ``tables/`` earlier, if it belongs to exactly this run (same key)."""
    path = published_dir(tables_dir, _profile_of(run), stage_of(run)) / f"{run.run_id}.json"
    if not path.exists():
        return None
    try:
        result = store.read_json_verified(path)
    except store.CorruptCacheError:
        return None
    return result if result.get("key") == run_key(run) else None


def _profile_of(run) -> str:
    while not isinstance(run, PretrainRun):
        run = run.finetune if isinstance(run, EvalRun) else run.base
    return run.profile


def export(run, result: dict, tables_dir: Path) -> None:
    """Write a run's result (and decoded outputs) under ``tables/<profile>/runs/<stage>/``."""
    out = published_dir(tables_dir, _profile_of(run), stage_of(run))
    store.atomic_write_json(out / f"{run.run_id}.json", result)
    outputs = run_dir(run) / "outputs.txt.gz"
    if isinstance(run, EvalRun) and outputs.exists():
        store.atomic_write_bytes(out / f"{run.run_id}.outputs.txt.gz", outputs.read_bytes())


def _worker(job):
    stage, run, deadline, threads = job
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from .training import DeadlineReached

    try:
        return run.run_id, RUNNERS[stage](run, device, deadline=deadline, progress=False)
    except DeadlineReached:
        return run.run_id, None


def execute(runs: list, *, tables_dir: Path, workers: int = 1, deadline: float | None = None,
            allow_compute: bool = True, progress: bool = True) -> dict[str, dict]:
    """Results of ``runs`` by run id: committed ones reused, missing ones computed (side by side
    in ``workers`` processes), every new result exported. Runs stopped by the deadline are absent."""
    results: dict[str, dict] = {}
    todo = []
    for run in runs:
        committed = committed_result(run, tables_dir)
        found = committed or _cached_result(run)
        if found is not None:
            results[run.run_id] = found
            if committed is None:
                export(run, found, tables_dir)
        else:
            todo.append(run)
    if not todo:
        return results
    if not allow_compute:
        # A published profile that cannot be recomputed here (gpu on a CPU): show what was
        # committed and name what is missing, rather than fail or silently drop it.
        MISSING.setdefault(stage_of(todo[0]), []).extend(r.run_id for r in todo)
        print(f"{len(todo)} {stage_of(todo[0])} results of profile {_profile_of(todo[0])!r} are neither committed "
              f"under {published_dir(tables_dir, _profile_of(todo[0]), stage_of(todo[0]))} nor cached; "
              f"they are reported as missing (this profile is computed on a GPU: see the README)")
        return results
    stage = stage_of(todo[0])
    if workers <= 1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        from tqdm import tqdm

        # one bar: per-run bars only when there is a single (long) run, else the outer bar names the run
        bar = tqdm(todo, desc=f"{stage} runs", disable=not progress or len(todo) == 1, mininterval=5.0)
        for run in bar:
            bar.set_postfix_str(run.run_id, refresh=False)
            results[run.run_id] = RUNNERS[stage](run, device, deadline=deadline, progress=progress and len(todo) == 1)
            export(run, results[run.run_id], tables_dir)
        return results
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 2) // workers)
    jobs = [(stage, run, deadline, threads) for run in todo]
    by_id = {run.run_id: run for run in todo}
    with mp.get_context("spawn").Pool(workers) as pool:
        for run_id, result in pool.imap_unordered(_worker, jobs):
            if result is not None:
                results[run_id] = result
                export(by_id[run_id], result, tables_dir)
                print(f"[{time.strftime('%H:%M:%S')}] done {stage} {run_id}", flush=True)
            else:
                print(f"[{time.strftime('%H:%M:%S')}] deadline: {stage} {run_id} checkpointed", flush=True)
    return results


MISSING: dict[str, list[str]] = {}  # runs of a published profile that were never computed


def _needs_gpu(profile: Profile) -> bool:
    return profile.name == "gpu" and not torch.cuda.is_available()


def dense_large_run(profile: Profile, bases: Iterable[PretrainRun]) -> PretrainRun:
    return next(b for b in bases if b.size == profile.sizes[-1] and b.sparsity == 0.0)


def pruning_runs(profile: Profile, bases: Iterable[PretrainRun]) -> list:
    """Iterative pruning and its one-shot baselines on the dense large model (chapter 08)."""
    from .pruning import METHODS, PruningRun

    base = dense_large_run(profile, bases)
    return [PruningRun(base=base, method=method, settings=profile.pruning) for method in METHODS]


def random_static_run(profile: Profile, bases: Iterable[PretrainRun]) -> PretrainRun:
    """SPDF's static random mask at the final sparsity of iterative pruning (chapter 08's baseline)."""
    from .pruning import sparsity_schedule

    base = dense_large_run(profile, bases)
    return dataclasses.replace(base, sparsity=sparsity_schedule(base.model, profile.pruning)[-1])


def _prepare_data(profile: Profile) -> None:
    """Tokenize the pre-training corpus once, before worker processes would each do it."""
    from .data import pretraining_tokens

    tok = tokenizer_for(profile)
    for split in ("train", "validation"):
        pretraining_tokens(tok, split, limit_docs=profile.pretrain.corpus_docs, verbose=False)


EVAL_COST = {"summarization": 0, "e2e": 1, "webnlg": 2, "dart": 3}  # test-set decoding, relative


def _work(run) -> float:
    """A rough cost of computing ``run`` (tokens times the model's width squared times depth), used
    only to start long runs first."""
    if isinstance(run, EvalRun):
        return _work(run.finetune) * 0.05 * (1 + EVAL_COST.get(run.finetune.task.name, 0))
    base = run if isinstance(run, PretrainRun) else run.base
    size = base.model.n_layer * base.model.n_embd ** 2
    if isinstance(run, PretrainRun):
        return float(run.tokens) * size
    if isinstance(run, FinetuneRun):
        return float(run.task.epochs * (run.task.max_train_examples or 40_000) * 100) * size
    return float(run.settings.retrain_tokens * run.settings.iterations) * size  # a pruning run


def _pretraining_plan(profile: Profile, tables_dir: Path, stages: tuple[str, ...],
                      compute: bool) -> tuple[list[PretrainRun], list[PretrainRun]]:
    """Check ``stages``; return the pre-trained models the tables use and every pre-training the
    stages need (plus the pruning baseline). When ``compute`` and any of them is neither committed
    nor cached, the corpus is tokenized first, once, before worker processes would each do it."""
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {STAGES}")
    bases = pretraining_runs(profile)
    pre = bases + ([random_static_run(profile, bases)] if "prune" in stages else [])
    if compute and any(committed_result(r, tables_dir) is None and _cached_result(r) is None for r in pre):
        _prepare_data(profile)
    return bases, pre


def run_all(profile: Profile, tables_dir: Path, *, workers: int | None = None, deadline: float | None = None,
            stages: tuple[str, ...] = ("pretrain", "finetune", "eval"),
            progress: bool = True) -> dict[str, dict[str, dict]]:
    """Run (or load) the stages in order; returns results by stage and run id. A stage whose inputs
    are incomplete (deadline) is left out, and a later call resumes."""
    allow = not _needs_gpu(profile)
    bases, pre = _pretraining_plan(profile, tables_dir, stages, compute=allow)
    many = profile.workers if workers is None else workers
    kw = dict(tables_dir=tables_dir, deadline=deadline, allow_compute=allow, progress=progress)
    out: dict[str, dict[str, dict]] = {}
    pre.sort(key=lambda r: -_work(r))  # longest first in the pool
    out["pretrain"] = execute(pre, workers=min(many, profile.pretrain_workers), **kw)
    if allow and len(out["pretrain"]) < len(pre):
        return out
    if "prune" in stages:
        out["prune"] = execute(pruning_runs(profile, bases), workers=many, **kw)
    if "finetune" not in stages:
        return out
    grid = grid_runs(profile, bases)
    grid_results = execute(grid, workers=many, **kw)
    out["finetune"] = grid_results
    if len(grid_results) < len(grid):
        return out  # the learning rates cannot be chosen yet
    finals = final_runs(profile, bases, grid_results)
    out["finetune"] = {**grid_results, **execute(finals, workers=many, **kw)}
    if "eval" not in stages or (allow and any(r.run_id not in out["finetune"] for r in finals)):
        return out
    # cheapest tasks first: a run stopped by its deadline then leaves the fewest cells empty
    evals = sorted((eval_run(profile, r) for r in finals), key=lambda e: EVAL_COST.get(e.finetune.task.name, 9))
    out["eval"] = execute(evals, workers=many, **kw)
    return out


class _Inline:
    """A stand-in for a process pool that runs each job when it is submitted (one worker)."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_graph(profile: Profile, tables_dir: Path, *, workers: int | None = None, deadline: float | None = None,
              stages: tuple[str, ...] = STAGES) -> dict[str, dict[str, dict]]:
    """The runs of ``run_all``, each started as soon as the runs it needs are done.

    ``run_all`` finishes a stage before it starts the next; on one GPU shared by ``workers``
    processes that leaves most of them idle at every stage's tail (the small models' fine-tuning
    waits for the large models' pre-training, every evaluation for the last fine-tuning). Here a
    model's learning-rate grid starts when its pre-training ends, the final seeds of a (model, task)
    when its grid is complete, and each test evaluation when its fine-tuning ends. Among the runs
    that are ready, stages nearer the start of the chain go first and, within a stage, longer runs.
    Results, caching and exports are those of ``execute``; after ``deadline`` nothing new starts and
    the running runs checkpoint, so a later call resumes. Used by ``python -m spdf_lib.experiments``.
    """
    import heapq
    import itertools
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if _needs_gpu(profile):
        raise RuntimeError(f"profile {profile.name!r} is computed on a CUDA GPU and none is available here")
    bases, pre = _pretraining_plan(profile, tables_dir, stages, compute=True)
    many = profile.workers if workers is None else workers
    out: dict[str, dict[str, dict]] = {stage: {} for stage in ("pretrain", "prune", "finetune", "eval")}
    grid_of = {(b.run_id, t): [finetune_run(profile, b, t, lr, profile.seeds[0]) for lr in profile.finetune.lr_grid]
               for b in bases for t in profile.task_names}
    finals: dict[str, FinetuneRun] = {}  # planned final runs by id (their evaluation follows them)
    rank = {"pretrain": 0, "finetune": 1, "prune": 1, "eval": 2}
    ready: list[tuple] = []  # heap of (stage rank, -work, order of arrival, run)
    order = itertools.count()
    running: dict = {}
    threads = max(1, (os.cpu_count() or 2) // max(1, many))

    def add(run) -> None:
        found = committed_result(run, tables_dir)
        if found is None:
            found = _cached_result(run)
            if found is not None:
                export(run, found, tables_dir)
        if found is not None:
            done(run, found)
        else:
            heapq.heappush(ready, (rank[stage_of(run)], -_work(run), next(order), run))

    def done(run, result: dict) -> None:
        stage = stage_of(run)
        out[stage][run.run_id] = result
        if stage == "pretrain" and run in bases:
            if "prune" in stages and run == dense_large_run(profile, bases):
                for r in pruning_runs(profile, bases):
                    add(r)
            if "finetune" in stages:
                for task in profile.task_names:
                    for r in grid_of[(run.run_id, task)]:
                        add(r)
        elif stage == "finetune":
            key = (run.base.run_id, run.task.name)
            grid = grid_of.get(key, [])
            if run in grid and all(r.run_id in out["finetune"] for r in grid):
                for r in final_runs_for(profile, run.base, run.task.name, out["finetune"]):
                    finals[r.run_id] = r
                    if r.run_id in out["finetune"]:
                        if "eval" in stages:
                            add(eval_run(profile, r))
                    else:
                        add(r)
            elif run.run_id in finals and run not in grid and "eval" in stages:
                add(eval_run(profile, run))

    pool = ProcessPoolExecutor(many, mp_context=multiprocessing.get_context("spawn")) if many > 1 else _Inline()
    with pool:
        for run in pre:
            add(run)
        while ready or running:
            held = []  # pre-training runs beyond profile.pretrain_workers at once wait (they fill the GPU)
            while ready and len(running) < many and (deadline is None or time.time() < deadline):
                item = heapq.heappop(ready)
                run = item[-1]
                pretraining = sum(isinstance(r, PretrainRun) for r in running.values())
                if isinstance(run, PretrainRun) and pretraining >= max(1, profile.pretrain_workers):
                    held.append(item)
                    continue
                running[pool.submit(_worker, (stage_of(run), run, deadline, threads))] = run
            for item in held:
                heapq.heappush(ready, item)
            if not running:
                break  # past the deadline with runs still waiting: a later call resumes them
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                run = running.pop(future)
                run_id, result = future.result()
                stamp = time.strftime("%H:%M:%S")
                if result is None:
                    print(f"[{stamp}] deadline: {stage_of(run)} {run_id} checkpointed", flush=True)
                    continue
                export(run, result, tables_dir)
                print(f"[{stamp}] done {stage_of(run)} {run_id}", flush=True)
                done(run, result)
    return {stage: results for stage, results in out.items() if results or stage in stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the SPDF experiment grid of one profile.")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--tables-dir", default=str(store.REPO_ROOT / "tables"))
    parser.add_argument("--workers", type=int, default=None, help="runs side by side (default: the profile's)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop (with checkpoints) after this many minutes; re-run to resume")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {STAGES}")
    args = parser.parse_args(argv)
    try:
        profile = get_profile(args.profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    t0 = time.time()
    try:
        out = run_graph(profile, Path(args.tables_dir), workers=args.workers, deadline=deadline,
                        stages=tuple(args.stages.split(",")))
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = {stage: len(results) for stage, results in out.items()}
    print(json.dumps({"profile": profile.name, "done": counts, "wall_s": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
