"""Shared pytest fixtures for the SPDF companion book."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

# Tests read local files only; any hidden call to the Hugging Face Hub must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder that holds the Makefile)."""
    return REPO_ROOT


CHAPTER_TEMPLATE = '''\
# %% [markdown]
# # {number} {title}

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
{body}
'''


@pytest.fixture
def write_chapter(tmp_path: Path):
    """Write a tiny percent-format chapter ``notebooks/NN_name.py`` under ``tmp_path``; returns its path.

    ``body`` is the code of the cell that follows the parameters cell (the chapter's cell 3).
    """
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir(exist_ok=True)

    def write(stem: str, body: str = "print(profile, tables_dir)", title: str = "A chapter") -> Path:
        path = notebooks / f"{stem}.py"
        path.write_text(CHAPTER_TEMPLATE.format(number=stem[:2], title=title, body=textwrap.dedent(body)),
                        encoding="utf-8")
        return path

    return write


SMOKE_WALLS = pytest.StashKey[dict]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After the run, list how long each chapter took at the smoke profile (tests/test_chapters_smoke.py)."""
    walls = config.stash.get(SMOKE_WALLS, None)
    if not walls:
        return
    terminalreporter.section("chapter wall times at profile smoke")
    for stem, (wall, state) in walls.items():
        terminalreporter.write_line(f"{stem:<28} {state:<7} {wall:8.1f} s")
    terminalreporter.write_line(f"{'total':<28} {'':<7} {sum(w for w, _ in walls.values()):8.1f} s")


def _has_data() -> bool:
    from spdf_lib import data

    try:
        data.data_root(verbose=False)
        return True
    except data.DataNotFoundError:
        return False


# Tests that read the real data sets are skipped, not failed, on a checkout without them.
needs_data = pytest.mark.skipif(not _has_data(), reason="data directory not available (see chapter 03)")


def install_fake_runners(monkeypatch, tmp_path: Path, dev_loss) -> list:
    """Replace the scheduler's runners by instant fakes (results in a cache under ``tmp_path``) and
    return the list of runs they were called with, in order. A fine-tuning run's dev loss is
    ``dev_loss(run)``; the other stages store an empty result."""
    from spdf_lib import results, scheduler

    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    calls = []

    def runner(run, device, deadline=None, progress=True):
        calls.append(run)
        base = getattr(run, "base", None)
        out = {"size": getattr(base, "size", None)}
        if run.stage == "finetune":
            out.update({"dev_loss": dev_loss(run), "lr": run.lr})
        return results.finish(run, out)

    monkeypatch.setattr(scheduler, "RUNNERS", {s: runner for s in ("pretrain", "finetune", "eval", "prune")})
    return calls
