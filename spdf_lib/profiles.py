"""Run profiles as data: how big every experiment of the book is at ``smoke``, ``cpu`` and ``gpu``.

A profile names the model presets (small first: the GPT-2 Small analog, then the GPT-3 XL analog),
the pre-training sparsity levels, the pre-training and fine-tuning seeds, the learning-rate search,
the tasks and every budget. Chapters take a profile name as their only knob; it is resolved once
(``get_profile``) and the planned runs (``spdf_lib.runs``) carry every setting they need, so no
runner looks a profile up again. Chapter 00 prints this table with the measured wall time of each
profile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data.files import TASKS  # defined once, beside the data it names

__all__ = [
    "PretrainSettings", "TaskSettings", "LRSearch", "FinetuneSettings", "PruningSettings", "DynamicSettings",
    "BeyondSettings", "Profile", "TASKS",
    "SMOKE", "CPU", "GPU", "PROFILES", "default_profile_name", "get_profile",
]



@dataclass(frozen=True)
class PretrainSettings:
    """Pre-training budget and optimiser (chapter 04).

    Tokens per run = ``tokens_per_param`` x total parameters (embeddings included, the Chinchilla
    count), capped at ``max_tokens`` when set, rounded down to whole optimizer steps.
    """

    tokens_per_param: float
    max_tokens: int | None
    seq_len: int
    batch_size: int  # sequences per optimizer step
    lr: float
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.02
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 200  # steps between validation-loss measurements
    eval_batches: int = 8
    checkpoint_every: int = 500  # steps between resumable checkpoints
    corpus_docs: int | None = None  # first N documents of each source (None: the whole corpus)


@dataclass(frozen=True)
class TaskSettings:
    """Fine-tuning and evaluation budget of one downstream task (chapters 05 and 06)."""

    name: str
    epochs: int
    max_train_examples: int | None = None  # None: the whole training split
    max_test_inputs: int | None = None  # None: the whole test split
    max_dev_examples: int = 500  # validation pairs used to pick the learning rate
    max_new_tokens: int = 64


@dataclass(frozen=True)
class LRSearch:
    """The fine-tuning learning-rate search of one (model, task) cell (chapter 05).

    The ``grid`` is tried first; when the lowest validation loss sits at an end of what was tried,
    the search adds the next rate beyond that end (the end times or divided by ``factor``), at most
    ``max_extensions`` times on each side. A cell that still ends at an edge is reported as having
    hit the bound. Selection uses the validation loss only, never a test metric. With ``shared`` the
    search and its extensions follow the validation loss averaged over a (size, task)'s sparsities.
    """

    grid: tuple[float, ...]
    factor: float = 2.0
    max_extensions: int = 2
    # True: the cells of one (size, task) share one rate, the lowest validation loss averaged over their
    # sparsity levels (``runs.pooled_losses``), so that a near-tie in one cell cannot give the dense and
    # the sparse model of a comparison different rates. The gpu grid uses it since its second published
    # run (chapter 06); its first published run and that run's re-run chose per cell.
    shared: bool = False

    def __post_init__(self):
        if not self.grid or any(not lr > 0 for lr in self.grid):
            raise ValueError(f"lr_search.grid must be positive learning rates, got {self.grid}")
        if tuple(sorted(set(self.grid))) != tuple(self.grid):
            raise ValueError(f"lr_search.grid must be strictly increasing, got {self.grid}")
        if not self.factor > 1:
            raise ValueError(f"lr_search.factor must be above 1, got {self.factor}")
        if self.max_extensions < 0:
            raise ValueError(f"lr_search.max_extensions must be 0 or more, got {self.max_extensions}")


@dataclass(frozen=True)
class FinetuneSettings:
    """Dense fine-tuning after the LoRA NLG setup, scaled down (chapter 05)."""

    tasks: tuple[TaskSettings, ...]
    batch_size: int
    lr_search: LRSearch
    max_len: int  # source + separator + target + EOS, in tokens
    weight_decay: float = 0.01
    warmup_frac: float = 0.06
    min_lr_ratio: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    beam_size: int = 4
    length_penalty: float = 0.9
    no_repeat_ngram_size: int = 4
    # also fine-tune the highest-sparsity models sparsely: FinetuneRun.keep_masks, so no densify
    sparse_control: bool = True


@dataclass(frozen=True)
class PruningSettings:
    """Iterative magnitude pruning of the dense large model (chapter 08)."""

    iterations: int = 8
    fraction_per_iteration: float = 0.2
    retrain_tokens: int = 0  # tokens of pre-training data between two pruning steps


@dataclass(frozen=True)
class DynamicSettings:
    """Dynamic sparsity in chapter 09 (``spdf_lib.dynamic``): RigL and SET at one level.

    Masks move every ``interval`` optimizer steps with the update fraction ``fraction`` decaying along
    a half cosine to 0 at ``end_frac`` of the run's steps (RigL's defaults: 0.3 and 75%).
    """

    methods: tuple[str, ...] = ("rigl", "set")
    level: float = 0.75
    interval: int = 100
    fraction: float = 0.3
    end_frac: float = 0.75

    def __post_init__(self):
        from .dynamic import METHODS

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"dynamic.methods must be among {METHODS}, got {self.methods!r}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"dynamic.level must be in (0, 1), got {self.level!r}")
        if not 0.0 < self.end_frac <= 1.0:
            raise ValueError(f"dynamic.end_frac must be in (0, 1], got {self.end_frac!r}")


@dataclass(frozen=True)
class BeyondSettings:
    """Chapter 09, the questions the paper leaves open, as its own stage (``--stages beyond``).

    ``family``: model presets of one shape family, smallest first, the profile's two sizes among
    them; each is pre-trained at every level of ``levels`` with every seed of ``scaling_seeds``
    (pre-training only). ``size``: the model of the longer (iso-FLOP) and the dynamic runs, which are
    fine-tuned on ``task`` with the ``lr_search`` and every seed of ``finetune_seeds`` (the first
    pre-training seed's model; the others with the first fine-tuning seed), as in chapter 05.
    """

    family: tuple[str, ...]
    levels: tuple[float, ...]
    scaling_seeds: tuple[int, ...]
    size: str
    isoflop_levels: tuple[float, ...]
    isoflop_seeds: tuple[int, ...]
    dynamic: DynamicSettings
    dynamic_seeds: tuple[int, ...]
    task: str
    finetune_seeds: tuple[int, ...]
    lr_search: LRSearch

    def __post_init__(self):
        if 0.0 not in self.levels:
            raise ValueError(f"beyond.levels must include the dense baseline 0.0, got {self.levels!r}")
        for name in ("scaling_seeds", "isoflop_seeds", "dynamic_seeds", "finetune_seeds"):
            seeds = getattr(self, name)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ValueError(f"beyond.{name} must be distinct seeds, got {seeds!r}")
        if any(not 0.0 < level < 1.0 for level in self.isoflop_levels):
            raise ValueError(f"beyond.isoflop_levels must be in (0, 1), got {self.isoflop_levels!r}")
        if self.size not in self.family:
            raise ValueError(f"beyond.size {self.size!r} must be one of beyond.family {self.family!r}")


@dataclass(frozen=True)
class Profile:
    """Everything that sets the size of a run of the book."""

    name: str
    description: str
    vocab_size: int
    tokenizer_train_chars: int
    sizes: tuple[str, ...]  # model presets, the GPT-2 Small analog first
    sparsity_levels: tuple[float, ...]
    pretrain_seeds: tuple[int, ...]  # every (size, sparsity) cell is pre-trained once per seed
    finetune_seeds: tuple[int, ...]  # every pre-trained model is fine-tuned once per seed
    pretrain: PretrainSettings
    finetune: FinetuneSettings
    pruning: PruningSettings
    beyond: BeyondSettings | None = None  # chapter 09 (None: the profile has no chapter 09 runs)
    workers: int = 1  # fine-tuning/evaluation runs side by side (processes sharing one GPU)
    pretrain_workers: int = 1  # pre-training runs side by side (larger models fill the GPU sooner)
    # other runs (fine-tuning, evaluation, pruning) side by side while a pre-training runs or waits to start;
    # None: up to ``workers`` (chapter 06: fine-tunes and evaluations can starve the pre-trainings)
    side_workers: int | None = None

    def __post_init__(self):
        if self.workers < 1 or self.pretrain_workers < 1:
            raise ValueError(f"profile {self.name!r}: workers and pretrain_workers must be at least 1, got "
                             f"{self.workers} and {self.pretrain_workers}")
        if self.side_workers is not None and not 0 <= self.side_workers <= self.workers:
            raise ValueError(f"profile {self.name!r}: side_workers must be None or between 0 and workers "
                             f"({self.workers}), got {self.side_workers}")
        for name in ("pretrain_seeds", "finetune_seeds"):
            seeds = getattr(self, name)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ValueError(f"profile {self.name!r}: {name} must be distinct seeds, got {seeds}")
        if 0.0 not in self.sparsity_levels:
            raise ValueError(f"profile {self.name!r}: sparsity_levels must include the dense baseline 0.0")
        if self.beyond is not None:
            missing = [size for size in self.sizes if size not in self.beyond.family]
            if missing:
                raise ValueError(f"profile {self.name!r}: beyond.family must contain the profile's sizes; "
                                 f"{missing} missing")
            if self.beyond.task not in self.task_names:
                raise ValueError(f"profile {self.name!r}: beyond.task {self.beyond.task!r} is not one of "
                                 f"the profile's tasks {self.task_names}")

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.finetune.tasks)

    def task(self, name: str) -> TaskSettings:
        for settings in self.finetune.tasks:
            if settings.name == name:
                return settings
        raise ValueError(f"task {name!r} is not part of profile {self.name!r}; it has {self.task_names}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)



SMOKE = Profile(
    name="smoke",
    description="tests and CI: every code path in minutes on 2 CPU cores; numbers mean nothing",
    vocab_size=512,
    tokenizer_train_chars=400_000,
    sizes=("smoke-small", "smoke-large"),
    sparsity_levels=(0.0, 0.5, 0.75),
    pretrain_seeds=(0, 1),
    finetune_seeds=(0,),
    pretrain=PretrainSettings(tokens_per_param=20.0, max_tokens=8 * 64 * 24, seq_len=64, batch_size=8,
                              lr=3e-3, eval_every=8, eval_batches=2, checkpoint_every=8, corpus_docs=4),
    finetune=FinetuneSettings(
        tasks=tuple(TaskSettings(name=t, epochs=1, max_train_examples=48, max_test_inputs=6,
                                 max_dev_examples=12, max_new_tokens=12) for t in TASKS),
        batch_size=8, lr_search=LRSearch(grid=(1e-3, 3e-3), factor=3.0, max_extensions=1), max_len=128,
        beam_size=2, no_repeat_ngram_size=3),
    pruning=PruningSettings(iterations=8, retrain_tokens=8 * 64 * 2),
    beyond=BeyondSettings(
        family=("smoke-l1d16", "smoke-small", "smoke-large"), levels=(0.0, 0.5, 0.75), scaling_seeds=(0, 1),
        size="smoke-large", isoflop_levels=(0.5, 0.75), isoflop_seeds=(0,),
        dynamic=DynamicSettings(interval=4, fraction=0.3, end_frac=0.75), dynamic_seeds=(0, 1), task="e2e",
        finetune_seeds=(0,), lr_search=LRSearch(grid=(1e-3, 3e-3), factor=3.0, max_extensions=1)),
)

CPU = Profile(
    name="cpu",
    description="a laptop: the whole book in under an hour on 2 cores; trends only, one seed, no verdicts",
    vocab_size=4096,
    tokenizer_train_chars=20_000_000,
    sizes=("cpu-small", "cpu-large"),
    sparsity_levels=(0.0, 0.5, 0.75),
    pretrain_seeds=(0,),
    finetune_seeds=(0,),
    pretrain=PretrainSettings(tokens_per_param=20.0, max_tokens=600_000, seq_len=128, batch_size=16,
                              lr=2e-3, eval_every=50, eval_batches=8, checkpoint_every=100,
                              corpus_docs=500),
    finetune=FinetuneSettings(
        tasks=(TaskSettings("e2e", epochs=1, max_train_examples=3000, max_test_inputs=100, max_dev_examples=200),
               TaskSettings("webnlg", epochs=1, max_train_examples=3000, max_test_inputs=100, max_dev_examples=200),
               TaskSettings("dart", epochs=1, max_train_examples=3000, max_test_inputs=100, max_dev_examples=200),
               TaskSettings("summarization", epochs=1, max_train_examples=400, max_test_inputs=60,
                            max_dev_examples=60)),
        batch_size=16, lr_search=LRSearch(grid=(1e-3,), max_extensions=0), max_len=256, beam_size=2),
    pruning=PruningSettings(iterations=8, retrain_tokens=40_000),
    beyond=BeyondSettings(
        family=("cpu-small", "cpu-large"), levels=(0.0, 0.75), scaling_seeds=(0,), size="cpu-large",
        isoflop_levels=(0.75,), isoflop_seeds=(0,), dynamic=DynamicSettings(methods=("rigl",), interval=20),
        dynamic_seeds=(0,), task="e2e", finetune_seeds=(0,), lr_search=LRSearch(grid=(1e-3,), max_extensions=0)),
)

GPU = Profile(
    name="gpu",
    description=("one H100/H200: about 20 tokens per parameter, 3 pre-training seeds (the first also "
                 "fine-tuned with a second seed), a learning-rate search with one rate per size and task, full test sets; "
                 "the published numbers"),
    vocab_size=8192,
    tokenizer_train_chars=100_000_000,
    sizes=("gpu-small", "gpu-large"),
    sparsity_levels=(0.0, 0.5, 0.75),
    pretrain_seeds=(0, 1, 2),
    finetune_seeds=(0, 1),
    pretrain=PretrainSettings(tokens_per_param=20.0, max_tokens=None, seq_len=512, batch_size=64,
                              lr=1.5e-3, eval_every=250, eval_batches=16, checkpoint_every=500),
    finetune=FinetuneSettings(
        tasks=(TaskSettings("e2e", epochs=1),
               TaskSettings("webnlg", epochs=2),
               TaskSettings("dart", epochs=3),
               TaskSettings("summarization", epochs=3, max_new_tokens=0)),
        batch_size=64,
        lr_search=LRSearch(grid=(2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3), factor=2.0, max_extensions=2, shared=True),
        max_len=512, beam_size=4),
    pruning=PruningSettings(iterations=8, retrain_tokens=4_000_000),
    beyond=BeyondSettings(
        family=("gpu-l2d96", "gpu-small", "gpu-l4d192", "gpu-l5d256", "gpu-large"), levels=(0.0, 0.5, 0.75),
        scaling_seeds=(0, 1), size="gpu-large", isoflop_levels=(0.5, 0.75), isoflop_seeds=(0,),
        dynamic=DynamicSettings(interval=100, fraction=0.3, end_frac=0.75), dynamic_seeds=(0, 1), task="e2e",
        finetune_seeds=(0, 1), lr_search=LRSearch(grid=(5e-4, 1e-3, 2e-3), factor=2.0, max_extensions=2)),
    workers=12,
    pretrain_workers=4,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, CPU, GPU)}


def default_profile_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu`` (the Makefile's default too)."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
                         f"(e.g. make book PROFILE=smoke)") from None
