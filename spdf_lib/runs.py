"""What the experiment grid runs, as data: run descriptions and their planning (chapters 04-06, 08, 09).

Each run is a frozen dataclass that carries every setting that determines its result, resolved
once from the profile: the runners (``spdf_lib.runners``) never look a profile up again, and the
hash of a run (``run_key``) names it in the cache and in the committed results.

The grid of one profile:

1. pre-training: every model size x pre-training sparsity x pre-training seed;
2. learning-rate search: dense fine-tuning of the first pre-training seed's model of every
   (size, sparsity) on every task, with the first fine-tuning seed, at each rate of the search
   (``next_rates`` extends it past an end of the grid while the best validation loss sits there);
3. final runs at the chosen rate: every pre-trained model with the first fine-tuning seed, the first
   pre-training seed's model with every fine-tuning seed (it measures the fine-tuning spread), and
   the control at the highest sparsity that fine-tunes with the masks kept (first fine-tuning seed);
4. test evaluation of every final run, and of the search's runner-up rate (how much the result
   would move had the selection picked the neighbouring rate);
5. pruning (chapter 08): iterative magnitude pruning of the first dense large model and its
   baselines, and SPDF's static random mask at the same final sparsity.

A run's ``variant`` (``PRETRAIN_VARIANTS``) says which kind of pre-training it is: ``""`` the grid's
own (the Chinchilla length, with a static random mask where sparse), ``"isoflop"`` trained longer to the dense run's
FLOPs, ``"rigl"`` and ``"set"`` with a moving mask. The ``beyond`` stage (chapter 09, ``beyond_plan``)
plans more sizes and those variants, each fine-tuned and evaluated as above; with
``LRSearch(shared=True)`` the sparsities of a (size, task) choose one rate together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from . import __version__, store
from .profiles import LRSearch, PretrainSettings, Profile, PruningSettings

_NEW_FIELD = {store.OMIT_AT_DEFAULT: True}  # fields added after runs were published: keys unchanged at default

__all__ = [
    "STAGES", "BLEU_TASKS", "TokenizerSpec", "PretrainRun", "FinetuneOptim", "FinetuneRun", "EvalRun",
    "PruningRun", "run_key", "profile_of", "tokenizer_spec", "load_tokenizer", "planned_tokens",
    "pretraining_runs", "finetune_optim", "finetune_run", "search_runs", "next_rates", "chosen_lr",
    "runner_up_lr", "search_status", "final_runs_for", "eval_run", "dense_large_run", "pruning_runs",
    "random_static_run", "cell_of", "PRETRAIN_VARIANTS", "FinetunePlan", "grid_plan", "scaling_runs",
    "isoflop_runs", "dynamic_spec", "dynamic_runs", "beyond_plan", "pooled_losses",
]

STAGES = ("pretrain", "finetune", "eval", "prune", "beyond")
BLEU_TASKS = ("e2e", "webnlg", "dart")
PRETRAIN_VARIANTS = ("", "isoflop", "rigl", "set")  # the grid's static mask, then chapter 09's kinds


# ----------------------------------------------------------------------------- run descriptions

@dataclass(frozen=True)
class TokenizerSpec:
    """The BPE tokenizer every run of a profile uses (trained in chapter 03)."""

    vocab_size: int
    train_chars: int
    corpus_docs: int | None
    fingerprint: str  # of the trained tokenizer, checked when a runner loads it


@dataclass(frozen=True)
class PretrainRun:
    """One pre-training run (chapter 04)."""

    stage: ClassVar[str] = "pretrain"
    profile: str  # where its results are exported (tables/<profile>/runs/), never looked up
    size: str  # model preset name
    sparsity: float
    seed: int  # initialisation, mask draw and data order
    model: Any  # GPTConfig with the tokenizer's vocabulary
    settings: PretrainSettings
    tokens: int  # planned training tokens (whole steps)
    tokenizer: TokenizerSpec
    data: str  # fingerprint of the pre-training corpus
    # chapter 09: "" = the static mask at the Chinchilla length, "isoflop" = the static mask trained
    # until its FLOPs equal the dense model's, "rigl" / "set" = dynamic sparsity with ``dynamic``
    variant: str = field(default="", metadata=_NEW_FIELD)
    dynamic: Any = field(default=None, metadata=_NEW_FIELD)  # a dynamic.DynamicSpec for rigl / set

    def __post_init__(self):
        from .dynamic import METHODS, DynamicSpec

        if self.variant not in PRETRAIN_VARIANTS:
            raise ValueError(f"{self.size}: unknown sparsity method variant={self.variant!r}; choose one of "
                             f"{PRETRAIN_VARIANTS} ('' is the static mask)")
        if self.variant and not self.sparsity > 0:
            raise ValueError(f"{self.size}: variant {self.variant!r} needs a sparsity above 0, got {self.sparsity}")
        if self.variant in METHODS:
            if not isinstance(self.dynamic, DynamicSpec) or self.dynamic.method != self.variant:
                raise ValueError(f"{self.size}: variant {self.variant!r} needs dynamic=DynamicSpec(method="
                                 f"{self.variant!r}, ...), got {self.dynamic!r}")
        elif self.dynamic is not None:
            raise ValueError(f"{self.size}: dynamic={self.dynamic!r} is only for the variants {METHODS}")

    @property
    def run_id(self) -> str:
        tail = f"_{self.variant}" if self.variant else ""
        return f"{self.size}_s{round(self.sparsity * 100):02d}_p{self.seed}{tail}"

    @property
    def tokens_per_step(self) -> int:
        return self.settings.batch_size * self.settings.seq_len

    @property
    def steps(self) -> int:
        return self.tokens // self.tokens_per_step


@dataclass(frozen=True)
class FinetuneOptim:
    """Batching and AdamW settings of a fine-tuning run, built from the profile by ``finetune_optim``."""

    batch_size: int
    max_len: int
    weight_decay: float
    warmup_frac: float
    min_lr_ratio: float
    beta1: float
    beta2: float
    grad_clip: float


@dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning run of a pre-trained model on one task (chapter 05)."""

    stage: ClassVar[str] = "finetune"
    base: PretrainRun
    task: str
    epochs: int
    max_train_examples: int | None
    max_dev_examples: int
    lr: float
    seed: int
    keep_masks: bool  # True: the sparse fine-tuning control
    optim: FinetuneOptim
    data: str  # fingerprint of the task's files

    @property
    def run_id(self) -> str:
        mode = "sparseft" if self.keep_masks else "denseft"
        return f"{self.base.run_id}_{self.task}_{mode}_lr{self.lr:g}_f{self.seed}"


@dataclass(frozen=True)
class EvalRun:
    """Test-set evaluation of one fine-tuned model (chapter 06). The decoding and test-set settings
    live here, not in the fine-tuning run, so changing them re-runs only the evaluation."""

    stage: ClassVar[str] = "eval"
    finetune: FinetuneRun
    max_test_inputs: int | None
    max_new_tokens: int
    beam_size: int
    length_penalty: float
    no_repeat_ngram_size: int

    @property
    def run_id(self) -> str:
        return self.finetune.run_id

    @property
    def metric(self) -> str:
        return "BLEU" if self.finetune.task in BLEU_TASKS else "PPL"


@dataclass(frozen=True)
class PruningRun:
    """One pruning method applied to one dense pre-trained model (chapter 08)."""

    stage: ClassVar[str] = "prune"
    base: PretrainRun
    method: str
    settings: PruningSettings
    lr_ratio: float = 0.1  # retraining peak rate as a fraction of the pre-training peak

    def __post_init__(self):
        from .pruning import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown pruning method {self.method!r}; choose one of {METHODS}")

    @property
    def run_id(self) -> str:
        return f"{self.base.run_id}_prune_{self.method}"


@dataclass(frozen=True)
class FinetunePlan:
    """How a group of pre-trained models is fine-tuned: on which ``tasks``, with which learning-rate
    ``search`` (run on the ``first_seed`` pre-training seed's model with the first fine-tuning seed),
    which fine-tuning seeds the final runs use (all on the first model, the first on the others) and
    at which sparsity the masks-kept control runs (None: no control). Chapter 05's grid has one plan
    (``grid_plan``), chapter 09's longer and dynamic runs another (``beyond_plan``)."""

    tasks: tuple[str, ...]
    search: LRSearch
    first_seed: int
    finetune_seeds: tuple[int, ...]
    control_level: float | None = None


def run_key(run) -> str:
    """The hash that names a run in the cache and in committed results."""
    return store.stable_hash(run.stage, run, __version__)


def profile_of(run) -> str:
    """The profile whose results folder holds ``run``."""
    while not isinstance(run, PretrainRun):
        run = run.finetune if isinstance(run, EvalRun) else run.base
    return run.profile


def cell_of(run) -> tuple[str, float, str]:
    """(size, sparsity, task) of a fine-tuning or evaluation run."""
    ft = run.finetune if isinstance(run, EvalRun) else run
    return ft.base.size, ft.base.sparsity, ft.task


# ----------------------------------------------------------------------------- planning

def tokenizer_spec(profile: Profile) -> TokenizerSpec:
    """The profile's tokenizer, trained (or loaded from the cache) once, with its fingerprint."""
    tok = load_tokenizer(TokenizerSpec(profile.vocab_size, profile.tokenizer_train_chars,
                                       profile.pretrain.corpus_docs, fingerprint=""))
    return TokenizerSpec(profile.vocab_size, profile.tokenizer_train_chars, profile.pretrain.corpus_docs,
                         tok.fingerprint)


def load_tokenizer(spec: TokenizerSpec):
    """The tokenizer of ``spec``; a clear error when the cached one is not the planned one."""
    from .data import get_tokenizer

    tok = get_tokenizer(spec.vocab_size, spec.train_chars, limit_docs=spec.corpus_docs, verbose=False)
    if spec.fingerprint and tok.fingerprint != spec.fingerprint:
        raise ValueError(f"tokenizer {tok.fingerprint} is not the one the runs were planned with "
                         f"({spec.fingerprint}); delete the stale cache or plan again")
    return tok


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


def _pretrain_data_fingerprint() -> str:
    from .data import pretraining_fingerprint

    return store.stable_hash(pretraining_fingerprint("train"), pretraining_fingerprint("validation"))


def pretraining_runs(profile: Profile, tokenizer: TokenizerSpec | None = None) -> list[PretrainRun]:
    """Every (size, sparsity, pre-training seed) run of the profile."""
    spec = tokenizer or tokenizer_spec(profile)
    data_fp = _pretrain_data_fingerprint()
    return [_pretrain_run(profile, spec, data_fp, size, level, seed)
            for size in profile.sizes for level in profile.sparsity_levels for seed in profile.pretrain_seeds]


def _pretrain_run(profile: Profile, spec: TokenizerSpec, data_fp: str, size: str, sparsity: float, seed: int,
                  tokens: int | None = None, **variant) -> PretrainRun:
    """One pre-training run of the profile (the Chinchilla length unless ``tokens`` is given)."""
    from .model import get_config

    config = get_config(size, vocab_size=spec.vocab_size,
                        block_size=max(get_config(size).block_size, profile.pretrain.seq_len))
    return PretrainRun(profile=profile.name, size=size, sparsity=sparsity, seed=seed, model=config,
                       settings=profile.pretrain, tokens=planned_tokens(config, profile.pretrain) if tokens is None
                       else tokens, tokenizer=spec, data=data_fp, **variant)


def finetune_optim(profile: Profile, base: PretrainRun) -> FinetuneOptim:
    """The one place the fine-tuning optimiser settings are built from a profile."""
    ft = profile.finetune
    return FinetuneOptim(batch_size=ft.batch_size, max_len=min(ft.max_len, base.model.block_size),
                         weight_decay=ft.weight_decay, warmup_frac=ft.warmup_frac, min_lr_ratio=ft.min_lr_ratio,
                         beta1=ft.beta1, beta2=ft.beta2, grad_clip=ft.grad_clip)


def finetune_run(profile: Profile, base: PretrainRun, task: str, lr: float, seed: int,
                 keep_masks: bool = False) -> FinetuneRun:
    from .data import task_fingerprint

    settings = profile.task(task)
    return FinetuneRun(base=base, task=task, epochs=settings.epochs, max_train_examples=settings.max_train_examples,
                       max_dev_examples=settings.max_dev_examples, lr=lr, seed=seed, keep_masks=keep_masks,
                       optim=finetune_optim(profile, base), data=task_fingerprint(task))


def grid_plan(profile: Profile) -> FinetunePlan:
    """The fine-tuning of chapter 05's grid: every task, the profile's search and seeds, and the
    masks-kept control at the highest sparsity."""
    top = max(profile.sparsity_levels)
    return FinetunePlan(tasks=profile.task_names, search=profile.finetune.lr_search,
                        first_seed=profile.pretrain_seeds[0], finetune_seeds=profile.finetune_seeds,
                        control_level=top if profile.finetune.sparse_control and top > 0 else None)


def search_runs(profile: Profile, base: PretrainRun, task: str, lrs: Iterable[float],
                plan: FinetunePlan | None = None) -> list[FinetuneRun]:
    """The learning-rate search runs of one (model, task): the first fine-tuning seed at each rate."""
    plan = plan or grid_plan(profile)
    return [finetune_run(profile, base, task, lr, plan.finetune_seeds[0]) for lr in lrs]


def _ranked(losses: Mapping[float, float]) -> list[tuple[float, float]]:
    """(loss, lr) pairs, best first; a diverged run (NaN, inf) counts as infinitely bad."""
    return sorted((loss if math.isfinite(loss) else float("inf"), lr) for lr, loss in losses.items())


def chosen_lr(losses: Mapping[float, float]) -> float:
    """The rate with the lowest validation loss (ties: the smaller rate)."""
    if not losses:
        raise ValueError("no learning rate was tried")
    return _ranked(losses)[0][1]


def runner_up_lr(losses: Mapping[float, float]) -> float | None:
    """The rate with the second-lowest validation loss, or None with a single rate."""
    ranked = _ranked(losses)
    return ranked[1][1] if len(ranked) > 1 else None


def pooled_losses(cell_losses: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """The validation loss by rate averaged over several cells, at the rates every cell has tried
    (``LRSearch.shared``: one rate for all sparsities of a size and task); a diverged run counts as
    infinitely bad, so a rate that diverged anywhere is never chosen."""
    cells = [dict(c) for c in cell_losses]
    if not cells:
        return {}
    common = set(cells[0]).intersection(*cells[1:])
    return {lr: sum(c[lr] if math.isfinite(c[lr]) else float("inf") for c in cells) / len(cells)
            for lr in sorted(common)}


def _extensions(lrs: Iterable[float], search: LRSearch) -> tuple[int, int]:
    """How many rates below and above the initial grid have been tried."""
    lrs = list(lrs)
    return sum(lr < min(search.grid) for lr in lrs), sum(lr > max(search.grid) for lr in lrs)


def next_rates(losses: Mapping[float, float], search: LRSearch) -> tuple[float, ...]:
    """Rates still to try: none while the best rate is interior; else the next one past the end
    where the best sits, unless the bound of ``search.max_extensions`` is reached. A pure function."""
    missing = tuple(lr for lr in search.grid if lr not in losses)
    if missing:
        return missing
    if len(losses) < 2:
        return ()
    best, lrs = chosen_lr(losses), sorted(losses)
    below, above = _extensions(lrs, search)
    if best == lrs[0] and below < search.max_extensions:
        return (_round(lrs[0] / search.factor),)
    if best == lrs[-1] and above < search.max_extensions:
        return (_round(lrs[-1] * search.factor),)
    return ()


def _round(lr: float) -> float:
    """Three significant digits, so that extended rates have short, stable names (``lr0.009``)."""
    return float(f"{lr:.3g}")


def search_status(losses: Mapping[float, float], search: LRSearch) -> str:
    """'interior', 'bound hit (lowest rate)', 'bound hit (highest rate)', 'single rate' or 'incomplete'."""
    if next_rates(losses, search):
        return "incomplete"
    if len(losses) < 2:
        return "single rate"
    best, lrs = chosen_lr(losses), sorted(losses)
    if best == lrs[0]:
        return "bound hit (lowest rate)"
    if best == lrs[-1]:
        return "bound hit (highest rate)"
    return "interior"


def final_runs_for(profile: Profile, bases: Iterable[PretrainRun], task: str, lr: float,
                   plan: FinetunePlan | None = None) -> list[FinetuneRun]:
    """The final runs of one (size, sparsity, task) cell at the chosen rate: every pre-trained model
    with the first fine-tuning seed, the first model with every fine-tuning seed, and the masks-kept
    control (first fine-tuning seed) at the plan's control sparsity (chapter 05: the highest)."""
    plan = plan or grid_plan(profile)
    runs = []
    for base in bases:
        # every fine-tuning seed on the first pre-trained model (it measures the fine-tuning spread),
        # the first fine-tuning seed on the others (they measure the pre-training spread)
        seeds = plan.finetune_seeds if base.seed == plan.first_seed else plan.finetune_seeds[:1]
        for seed in seeds:
            runs.append(finetune_run(profile, base, task, lr, seed))
        if plan.control_level is not None and base.sparsity == plan.control_level:
            runs.append(finetune_run(profile, base, task, lr, plan.finetune_seeds[0], keep_masks=True))
    return runs


def eval_run(profile: Profile, run: FinetuneRun) -> EvalRun:
    ft, task = profile.finetune, profile.task(run.task)
    return EvalRun(finetune=run, max_test_inputs=task.max_test_inputs, max_new_tokens=task.max_new_tokens,
                   beam_size=ft.beam_size, length_penalty=ft.length_penalty,
                   no_repeat_ngram_size=ft.no_repeat_ngram_size)


def dense_large_run(profile: Profile, bases: Iterable[PretrainRun]) -> PretrainRun:
    """The first pre-training seed's dense large model (the start of chapter 08's pruning)."""
    return next(b for b in bases if b.size == profile.sizes[-1] and b.sparsity == 0.0
                and b.seed == profile.pretrain_seeds[0])


def pruning_runs(profile: Profile, bases: Iterable[PretrainRun]) -> list[PruningRun]:
    """Iterative pruning and its one-shot baselines on the dense large model (chapter 08)."""
    from .pruning import METHODS

    base = dense_large_run(profile, bases)
    return [PruningRun(base=base, method=method, settings=profile.pruning) for method in METHODS]


def random_static_run(profile: Profile, bases: Iterable[PretrainRun]) -> PretrainRun:
    """SPDF's static random mask at the final sparsity of iterative pruning (chapter 08's baseline)."""
    from .pruning import sparsity_schedule

    base = dense_large_run(profile, bases)
    return dataclasses.replace(base, sparsity=sparsity_schedule(base.model, profile.pruning)[-1])


# ----------------------------------------------------------------------------- chapter 09

def _beyond(profile: Profile):
    if profile.beyond is None:
        raise ValueError(f"profile {profile.name!r} has no chapter 09 settings (Profile.beyond is None)")
    return profile.beyond


def scaling_runs(profile: Profile, tokenizer: TokenizerSpec | None = None) -> list[PretrainRun]:
    """Chapter 09's size study: every size of the family x level x seed, static masks, the Chinchilla
    length (the runs of the profile's own sizes are the grid's, with the grid's keys)."""
    b = _beyond(profile)
    spec = tokenizer or tokenizer_spec(profile)
    data_fp = _pretrain_data_fingerprint()
    return [_pretrain_run(profile, spec, data_fp, size, level, seed)
            for size in b.family for level in b.levels for seed in b.scaling_seeds]


def isoflop_runs(profile: Profile, tokenizer: TokenizerSpec | None = None) -> list[PretrainRun]:
    """Static-mask runs of ``beyond.size`` trained until their training FLOPs (chapter 02's
    convention) equal those of the dense Chinchilla-length run of that size."""
    from .flops import isoflop_tokens, training_flops

    b = _beyond(profile)
    spec = tokenizer or tokenizer_spec(profile)
    data_fp = _pretrain_data_fingerprint()
    dense = _pretrain_run(profile, spec, data_fp, b.size, 0.0, b.isoflop_seeds[0])
    seq = profile.pretrain.seq_len
    target = training_flops(dense.model, dense.tokens, 0.0, seq_len=seq)
    runs = []
    for level in b.isoflop_levels:
        tokens = isoflop_tokens(dense.model, level, dense.tokens, target, dense.tokens_per_step, seq_len=seq)
        runs += [_pretrain_run(profile, spec, data_fp, b.size, level, seed, tokens=tokens, variant="isoflop")
                 for seed in b.isoflop_seeds]
    return runs


def dynamic_spec(profile: Profile, method: str, seed: int, steps: int):
    """The ``DynamicSpec`` of a chapter 09 run of ``steps`` optimizer steps; an unknown ``method``,
    an interval of 0 or a fraction outside (0, 1) is an error naming the parameter."""
    from .dynamic import DynamicSpec

    d = _beyond(profile).dynamic
    return DynamicSpec(method=method, interval=d.interval, fraction=d.fraction,
                       end_step=max(d.interval + 1, int(d.end_frac * steps)), seed=seed)


def dynamic_runs(profile: Profile, tokenizer: TokenizerSpec | None = None) -> list[PretrainRun]:
    """RigL and SET runs of ``beyond.size`` at ``beyond.dynamic.level``: the static run's tokens."""
    b = _beyond(profile)
    spec = tokenizer or tokenizer_spec(profile)
    data_fp = _pretrain_data_fingerprint()
    runs = []
    for method in b.dynamic.methods:
        for seed in b.dynamic_seeds:
            static = _pretrain_run(profile, spec, data_fp, b.size, b.dynamic.level, seed)
            runs.append(dataclasses.replace(static, variant=method,
                                            dynamic=dynamic_spec(profile, method, seed, static.steps)))
    return runs


def beyond_plan(profile: Profile) -> FinetunePlan:
    """How chapter 09's longer and dynamic runs are fine-tuned: ``beyond.task`` with its own search
    and seeds, no masks-kept control."""
    b = _beyond(profile)
    first = min(set(b.isoflop_seeds) | set(b.dynamic_seeds))
    return FinetunePlan(tasks=(b.task,), search=b.lr_search, first_seed=first, finetune_seeds=b.finetune_seeds)
