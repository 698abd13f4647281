"""The committed gpu run is the one the current code plans: nothing orphaned, nothing unverified.

The published numbers are found by key. A change to a run's configuration, the library version or
the data would orphan them, and the book would silently lose its published results; a change to a
committed file would put numbers in the book that no run produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spdf_lib import manifest, results, runs, scheduler
from spdf_lib.profiles import get_profile

from conftest import needs_data  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "tables"


@needs_data
def test_every_planned_gpu_run_is_committed_under_its_current_key(monkeypatch):
    committed = json.loads(next((TABLES / "gpu" / "runs" / "pretrain").glob("*.json")).read_text())
    fields = {k: v for k, v in committed["config"]["tokenizer"].items() if not k.startswith("__")}
    spec = runs.TokenizerSpec(**fields)  # the tokenizer itself is checked when it is loaded
    monkeypatch.setattr(runs, "tokenizer_spec", lambda profile: spec)
    monkeypatch.setattr(scheduler.R, "tokenizer_spec", lambda profile: spec)
    monkeypatch.setattr(scheduler, "needs_gpu", lambda profile: True)  # never compute: committed or missing
    try:
        out = scheduler.run(get_profile("gpu"), TABLES, stages=runs.STAGES, progress=False)
    except results.MissingResultsError as err:
        pytest.fail(f"the committed gpu run is incomplete for the current code: {err}")
    profile = get_profile("gpu")
    tuned = runs.isoflop_runs(profile, spec) + runs.dynamic_runs(profile, spec)
    cells = len(profile.sizes) * len(profile.sparsity_levels) * len(profile.task_names)
    assert len(out["lr_search"]) == cells + len({(r.sparsity, r.variant) for r in tuned})  # chapter 09's cells
    grid = runs.pretraining_runs(profile, spec)
    planned = {r.run_id for r in grid + [runs.random_static_run(profile, grid)] + runs.scaling_runs(profile, spec)
               + tuned}
    assert set(out["pretrain"]) == planned
    for stage in ("pretrain", "eval"):
        on_disk = {p.stem for p in (TABLES / "gpu" / "runs" / stage).glob("*.json")}
        assert on_disk == set(out[stage]), f"committed {stage} results that no planned run uses, or the reverse"


def test_the_committed_gpu_manifest_matches_every_file():
    assert manifest.problems(TABLES, "gpu") == []


def _complete_grid_run(monkeypatch, folder: Path, sizes: tuple[str, ...], per_cell: bool = True):
    """The scheduler's plan of the gpu grid, with one learning rate per cell (``per_cell``) or the
    profile's shared rates, read from a committed further run in ``folder`` (never computed): its
    pre-trainings, fine-tunes and evaluations."""
    import dataclasses

    from spdf_lib import reruns

    assert manifest.problems(folder, "gpu") == []
    committed = json.loads(next((folder / "gpu" / "runs" / "pretrain").glob("*.json")).read_text())
    spec = runs.TokenizerSpec(**{k: v for k, v in committed["config"]["tokenizer"].items() if not k.startswith("__")})
    monkeypatch.setattr(runs, "tokenizer_spec", lambda profile: spec)
    monkeypatch.setattr(scheduler.R, "tokenizer_spec", lambda profile: spec)
    monkeypatch.setattr(scheduler, "needs_gpu", lambda profile: True)
    gpu = get_profile("gpu")
    profile = dataclasses.replace(reruns.percell(gpu) if per_cell else gpu, sizes=sizes)
    try:
        out = scheduler.run(profile, folder, stages=("pretrain", "finetune", "eval"), progress=False)
    except results.MissingResultsError as err:
        pytest.fail(f"the committed run in {folder} is incomplete for the current code: {err}")
    assert len(out["lr_search"]) == len(profile.sizes) * len(profile.sparsity_levels) * len(profile.task_names)
    return out


@needs_data
def test_the_committed_rerun_of_the_small_grid_is_complete_under_the_current_keys(monkeypatch):
    """Chapter 06's re-run check reads a second run of the gpu-small grid (another H200, empty cache),
    searched with one rate per cell like the first published run."""
    rerun = TABLES / "gpu" / "rerun"
    out = _complete_grid_run(monkeypatch, rerun, ("gpu-small",))
    assert {p.stem for p in (rerun / "gpu" / "runs" / "eval").glob("*.json")} == set(out["eval"])


@needs_data
def test_the_first_published_run_is_complete_under_the_current_keys_with_one_rate_per_cell(monkeypatch):
    """Chapter 06 compares the published run with the first one, which chose a rate per cell."""
    first = TABLES / "gpu" / "percell_run"
    out = _complete_grid_run(monkeypatch, first, tuple(get_profile("gpu").sizes))
    on_disk = {p.stem for p in (first / "gpu" / "runs" / "eval").glob("*.json")}
    assert set(out["eval"]) <= on_disk  # the pruning stage's evaluations are committed with it too
    assert {r["environment"]["commit"] for r in out["eval"].values()} == {"6e61162"}


@needs_data
def test_the_published_runs_complete_rerun_is_complete_under_the_current_keys_with_shared_rates(monkeypatch):
    """Chapter 06 judges the published run's verdicts against a complete re-run of its grid under the
    same profile, from an empty cache, at a later commit: every grid result, each search of a size and
    task trying the same rates at every sparsity."""
    folder = TABLES / "gpu" / "shared_rerun"
    assert manifest.problems(folder, "gpu") == []
    out = _complete_grid_run(monkeypatch, folder, tuple(get_profile("gpu").sizes), per_cell=False)
    on_disk = {p.stem for p in (folder / "gpu" / "runs" / "eval").glob("*.json")}
    assert set(out["eval"]) <= on_disk  # the pruning stage's evaluations are committed with it too
    assert {r["environment"]["commit"] for r in out["eval"].values()} == {"b6061ec"}
    published = scheduler.run(get_profile("gpu"), TABLES, stages=("pretrain", "finetune", "eval"), progress=False)
    assert set(out["eval"]) == set(published["eval"])  # the same keys as the published run
    for cell in out["lr_search"]:
        assert cell["status"] == "interior", cell
