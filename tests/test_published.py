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
    cells = len(profile.sizes) * len(profile.sparsity_levels) * len(profile.task_names)
    assert len(out["lr_search"]) == cells
    assert len(out["pretrain"]) == len(profile.sizes) * len(profile.sparsity_levels) * len(profile.pretrain_seeds) + 1
    on_disk = {p.stem for p in (TABLES / "gpu" / "runs" / "eval").glob("*.json")}
    assert on_disk == set(out["eval"]), "committed evaluations that no planned run uses, or the reverse"


def test_the_committed_gpu_manifest_matches_every_file():
    assert manifest.problems(TABLES, "gpu") == []
