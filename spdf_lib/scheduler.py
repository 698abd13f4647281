"""The one scheduler: every run of the grid, each started as soon as the runs it needs are done.

Chapters and the command line (``python -m spdf_lib.experiments``) both call ``run``. A run whose
result is committed under ``tables/`` or cached is reused; any other run is computed, in this process
(``workers=1``, with progress bars) or in ``workers`` processes sharing one GPU. The dependencies:

* a pre-trained model of the first pre-training seed starts its learning-rate search on every task;
* a cell's search extends past an end of its grid while its best rate sits there (``runs.next_rates``;
  with ``LRSearch(shared=True)`` the sparsities of a (size, task) decide on their averaged losses)
  and, once decided, starts the final runs of every pre-trained model of the cell (as each of those
  finishes pre-training) and the evaluation of the runner-up rate;
* every final fine-tuning run starts its test evaluation;
* the first dense large model starts chapter 08's pruning runs;
* with the ``beyond`` stage, chapter 09's sizes and pre-training variants (``runs.beyond_plan``) join
  the same queue, fine-tuned and evaluated by the same rules.

Among the runs that are ready, pre-training goes first (the first pre-training seed before the
others, larger models before smaller ones, at most ``profile.pretrain_workers`` at once: they fill
the GPU), then the learning-rate search (it gates everything after it), then final runs, pruning and
evaluations; with ``profile.side_workers``, at most that many of those run while a pre-training runs
or waits. After ``deadline`` nothing new starts and the running runs checkpoint, so a later call
resumes. On a machine with several GPUs the workers form one group per GPU, each group seeing its
GPU only (``spdf_lib.placement``; ``gpus`` or ``SPDF_GPUS`` choose the GPUs): ``workers`` and
``profile.pretrain_workers`` count per GPU, and a run goes to the least busy GPU with room for it.
A profile that cannot be computed here (``gpu`` without a GPU) is rendered from its
committed results only; if any is missing the call stops with ``results.MissingResultsError``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from . import placement, results, runs as R
from .profiles import Profile
from .runners import RUNNERS

__all__ = ["run", "needs_gpu", "SearchCell"]


@dataclass
class SearchCell:
    """The learning-rate search of one (size, sparsity, task) cell: validation loss by rate."""

    size: str
    sparsity: float
    task: str
    plan: R.FinetunePlan
    variant: str = ""
    losses: dict[float, float] = field(default_factory=dict)
    requested: set[float] = field(default_factory=set)
    base: R.PretrainRun | None = None  # the model the search fine-tunes, once it is pre-trained
    group: tuple = ()  # the cells that choose one rate together (``LRSearch.shared``), this one among them
    chosen: float | None = None
    runner_up: float | None = None
    status: str = "incomplete"
    pooled: dict[float, float] | None = None  # the group's averaged losses the choice was made on (shared)

    def as_dict(self) -> dict:
        return {"size": self.size, "sparsity": self.sparsity, "task": self.task,
                **({"variant": self.variant} if self.variant else {}),
                "losses": dict(sorted(self.losses.items())), "chosen": self.chosen, "runner_up": self.runner_up,
                "status": self.status, **({"pooled": dict(sorted(self.pooled.items()))} if self.pooled else {})}


def needs_gpu(profile: Profile) -> bool:
    """True for the published ``gpu`` profile on a machine without CUDA (it is rendered, not computed)."""
    return profile.name == "gpu" and not torch.cuda.is_available()


def _work(run) -> float:
    """A rough cost of ``run`` (tokens x width^2 x depth), used only to start long runs first."""
    if isinstance(run, R.EvalRun):
        return _work(run.finetune) * 0.05
    base = run if isinstance(run, R.PretrainRun) else run.base
    size = base.model.n_layer * base.model.n_embd ** 2
    if isinstance(run, R.PretrainRun):
        return float(run.tokens) * size
    if isinstance(run, R.FinetuneRun):
        return float(run.epochs * (run.max_train_examples or 40_000) * 100) * size
    return float(run.settings.retrain_tokens * run.settings.iterations) * size


def _prepare_data(profile: Profile, spec: R.TokenizerSpec) -> None:
    """Tokenize the pre-training corpus once, before worker processes would each do it."""
    from .data import pretraining_tokens

    tok = R.load_tokenizer(spec)
    for split in ("train", "validation"):
        pretraining_tokens(tok, split, limit_docs=profile.pretrain.corpus_docs, verbose=False)


def _worker(job):
    stage, run, deadline, threads = job
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from .training import DeadlineReached

    try:
        return run.run_id, RUNNERS[stage](run, device, deadline=deadline, progress=False)
    except DeadlineReached:
        return run.run_id, None


class _Inline:
    """A stand-in for a process pool that runs each job when it is submitted (one worker)."""

    def __init__(self, progress: bool):
        self.progress = progress

    def submit(self, fn, job):
        from concurrent.futures import Future

        from .training import DeadlineReached

        stage, run, deadline, _ = job
        future = Future()
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            future.set_result((run.run_id, RUNNERS[stage](run, device, deadline=deadline, progress=self.progress)))
        except DeadlineReached:
            future.set_result((run.run_id, None))
        except BaseException as err:  # re-raised by future.result(), as a process pool would
            future.set_exception(err)
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run(profile: Profile, tables_dir: Path, *, stages: Iterable[str] = ("pretrain", "finetune", "eval"),
        workers: int | None = None, deadline: float | None = None, progress: bool = True,
        gpus: str | None = None) -> dict:
    """Run (or load) every run the ``stages`` need; returns results by stage and run id, and the
    learning-rate search of every cell under ``"lr_search"`` (a list of ``SearchCell.as_dict()``).
    ``workers`` runs side by side per GPU (default: the profile's); ``gpus``: which GPUs, ``all`` or
    indices such as ``0,1`` (default: ``SPDF_GPUS``, else every GPU; see ``spdf_lib.placement``)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    stages = tuple(stages)
    unknown = set(stages) - set(R.STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {R.STAGES}")
    tables_dir = Path(tables_dir)
    compute = not needs_gpu(profile)
    spec = R.tokenizer_spec(profile)
    bases = R.pretraining_runs(profile, spec)
    grid = bool(set(stages) - {"beyond"})
    want_ft, want_eval = "finetune" in stages or "eval" in stages, "eval" in stages
    pre = list(bases) + [R.random_static_run(profile, bases)] if grid else []  # chapter 08's baseline too
    # how each pre-trained model is fine-tuned, by run id (none: pre-training only)
    plans: dict[str, R.FinetunePlan] = {}
    evaluated: set[str] = set()  # pre-trained models whose final fine-tunes are evaluated on the test set
    if want_ft:
        plans |= {b.run_id: R.grid_plan(profile) for b in bases}
        evaluated |= {b.run_id for b in bases} if want_eval else set()
    if "beyond" in stages:  # chapter 09: the size study, then the longer and the dynamic runs, fine-tuned
        tuned = R.isoflop_runs(profile, spec) + R.dynamic_runs(profile, spec)
        pre += R.scaling_runs(profile, spec) + tuned
        plans |= {b.run_id: R.beyond_plan(profile) for b in tuned}
        evaluated |= {b.run_id for b in tuned}
    many = profile.workers if workers is None else max(1, workers)
    groups = placement.worker_groups(placement.grid_gpus(gpus, torch.cuda.device_count() if torch.cuda.is_available()
                                                         else 0), os.environ.get("CUDA_VISIBLE_DEVICES"))
    inline = many * len(groups) == 1 and groups[0].gpu in (None, 0)
    out: dict[str, dict[str, dict]] = {stage: {} for stage in R.STAGES if stage != "beyond"}
    cells: dict[tuple, SearchCell] = {}  # (size, sparsity, variant, task) -> its learning-rate search
    searches: dict[tuple, list[SearchCell]] = {}  # the cells that choose their rate together
    cell_bases: dict[tuple, list] = {}  # (size, sparsity, variant) -> its pre-trained models
    for b in pre:
        plan = plans.get(b.run_id)
        if plan is None or b in cell_bases.get((b.size, b.sparsity, b.variant), []):
            continue
        cell_bases.setdefault((b.size, b.sparsity, b.variant), []).append(b)
        if b.seed == plan.first_seed:
            for t in plan.tasks:
                # the cells that decide together: one, or every sparsity of a (size, task) with LRSearch.shared
                group = (b.size, b.variant, t) if plan.search.shared else (b.size, b.sparsity, b.variant, t)
                cell = cells[(b.size, b.sparsity, b.variant, t)] = SearchCell(b.size, b.sparsity, t, plan, b.variant,
                                                                              group=group)
                searches.setdefault(group, []).append(cell)
    finals: set[str] = set()
    seen: set[str] = set()
    missing: list = []
    ready: list[tuple] = []
    order = itertools.count()

    def priority(run) -> tuple:
        if isinstance(run, R.PretrainRun):
            # runs that gate fine-tuning first, the first seed before the others, long runs first
            return (0, int(run.run_id not in plans), run.seed, -_work(run))
        if isinstance(run, R.FinetuneRun):
            return (1 if run.run_id not in finals else 2, 0, 0, -_work(run))
        return (3, 0, 0, -_work(run))

    def add(run) -> None:
        key = f"{run.stage}/{run.run_id}"
        if key in seen:
            return
        seen.add(key)
        found, source = results.find(run, tables_dir)
        if found is not None:
            results.note_source(run, source)
            done(run, found)
        elif not compute:
            missing.append(run)
        else:
            heapq.heappush(ready, (*priority(run), next(order), run))

    def start_finals(cell: SearchCell, base: R.PretrainRun) -> None:
        for r in R.final_runs_for(profile, [base], cell.task, cell.chosen, cell.plan):
            finals.add(r.run_id)
            if r.run_id in out["finetune"]:
                if base.run_id in evaluated:
                    add(R.eval_run(profile, r))
            else:
                add(r)

    def decide(cell: SearchCell, losses: dict) -> None:
        cell.chosen, cell.runner_up = R.chosen_lr(losses), R.runner_up_lr(losses)
        cell.status = R.search_status(losses, cell.plan.search)
        cell.pooled = dict(losses) if cell.plan.search.shared else None
        group = cell_bases[(cell.size, cell.sparsity, cell.variant)]
        for base in group:
            if base.run_id in out["pretrain"]:
                start_finals(cell, base)
        base = next(b for b in group if b.seed == cell.plan.first_seed)
        if base.run_id in evaluated and cell.runner_up is not None:
            add(R.eval_run(profile, R.finetune_run(profile, base, cell.task, cell.runner_up,
                                                    cell.plan.finetune_seeds[0])))

    def request(cell: SearchCell, base: R.PretrainRun, lrs) -> None:
        cell.base = base
        cell.requested.update(lrs)
        for r in R.search_runs(profile, base, cell.task, lrs, cell.plan):
            add(r)

    def advance(group: list[SearchCell]) -> None:
        """Once every cell of a group has the losses of every rate it asked for: extend the search
        (every cell of the group) or decide it (every cell), on the group's pooled losses."""
        if any(c.base is None or not c.requested <= set(c.losses) for c in group):
            return
        losses = R.pooled_losses([c.losses for c in group]) if len(group) > 1 else dict(group[0].losses)
        more = R.next_rates(losses, group[0].plan.search)
        for c in group:
            if more:
                request(c, c.base, more)
            else:
                decide(c, losses)

    def done(run, result: dict) -> None:
        out[run.stage][run.run_id] = result
        if isinstance(run, R.PretrainRun):
            if "prune" in stages and run in bases and run == R.dense_large_run(profile, bases):
                for r in R.pruning_runs(profile, bases):
                    add(r)
            plan = plans.get(run.run_id)
            if plan is None:
                return
            for task in plan.tasks:
                cell = cells[(run.size, run.sparsity, run.variant, task)]
                if cell.chosen is not None:
                    start_finals(cell, run)
                elif run.seed == plan.first_seed:
                    request(cell, run, plan.search.grid)
        elif isinstance(run, R.FinetuneRun):
            cell = cells.get((run.base.size, run.base.sparsity, run.base.variant, run.task))
            is_search = (cell is not None and run.base.seed == cell.plan.first_seed
                         and run.seed == cell.plan.finetune_seeds[0] and not run.keep_masks
                         and run.lr in cell.requested and cell.chosen is None)
            if is_search:
                cell.losses[run.lr] = result["dev_loss"]
                advance(searches[cell.group])
            elif run.run_id in finals and run.base.run_id in evaluated:
                add(R.eval_run(profile, run))

    from tqdm import tqdm

    bar = tqdm(desc=f"{profile.name} runs", unit="run", disable=not progress or not inline, mininterval=5.0)
    # a pre-training will run: tokenize the corpus once, before worker processes would each do it
    if compute and any(results.committed_result(r, tables_dir) is None and results.cached_result(r) is None
                       for r in pre):
        _prepare_data(profile, spec)
    threads = max(1, (os.cpu_count() or 2) // (many * len(groups)))
    spawn = multiprocessing.get_context("spawn")
    # one pool per GPU, its processes shown only that GPU (CUDA_VISIBLE_DEVICES set as each starts)
    pools = [_Inline(progress)] if inline else [
        ProcessPoolExecutor(many, mp_context=spawn, initializer=placement.pin_worker, initargs=(g.visible,))
        for g in groups]
    running: dict = {}  # future -> (run, index of its group)
    with contextlib.ExitStack() as stack:
        for pool in pools:
            stack.enter_context(pool)
        for r in pre:
            add(r)
        while ready or running:
            held = []  # pre-training beyond profile.pretrain_workers per GPU waits (it fills the GPU)
            while ready and len(running) < many * len(pools) and (deadline is None or time.time() < deadline):
                item = heapq.heappop(ready)
                r = item[-1]
                k = placement.pick_group(
                    [sum(g == j for _, g in running.values()) for j in range(len(pools))],
                    [sum(g == j and isinstance(x, R.PretrainRun) for x, g in running.values()) for j in range(len(pools))],
                    is_pretraining=isinstance(r, R.PretrainRun), slots=many, pretrain_slots=max(1, profile.pretrain_workers),
                    side_slots=None if profile.side_workers is None else min(profile.side_workers, many),
                    pretraining_waits=profile.side_workers is not None
                    and any(isinstance(x[-1], R.PretrainRun) for x in (*ready, *held)))
                if k is None:
                    held.append(item)
                    continue
                bar.set_postfix_str(r.run_id, refresh=False)
                running[pools[k].submit(_worker, (r.stage, r, deadline, threads))] = (r, k)
            for item in held:
                heapq.heappush(ready, item)
            if not running:
                break  # past the deadline with runs still waiting: a later call resumes them
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                r, _ = running.pop(future)
                run_id, result = future.result()
                stamp = time.strftime("%H:%M:%S")
                if result is None:
                    print(f"[{stamp}] deadline: {r.stage} {run_id} checkpointed", flush=True)
                    continue
                results.export(r, result, tables_dir)
                results.note_source(r, "computed")
                if not inline:
                    print(f"[{stamp}] done {r.stage} {run_id}", flush=True)
                bar.update(1)
                done(r, result)
    bar.close()
    if missing:
        names = ", ".join(f"{r.stage}/{r.run_id}" for r in missing[:5])
        raise results.MissingResultsError(
            f"{len(missing)} results of profile {profile.name!r} are neither committed under "
            f"{tables_dir / profile.name / 'runs'} (with this code's keys) nor cached, and this profile is "
            f"computed on a CUDA GPU: {names}{' ...' if len(missing) > 5 else ''}. Re-run it on a GPU "
            f"(README, 'The published gpu run') or render another profile.")
    out["lr_search"] = [c.as_dict() for c in cells.values() if c.losses]
    return out
