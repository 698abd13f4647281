"""Chapter 05's view of the learning-rate search (spdf_lib.report): the figure and the note, per
cell and with one rate shared by the sparsities of a size and task."""

from __future__ import annotations

import dataclasses
import math

import matplotlib

matplotlib.use("Agg")

from spdf_lib import report, runs as R  # noqa: E402
from spdf_lib.profiles import SMOKE  # noqa: E402

RATES = (1e-3, 2e-3, 4e-3, 8e-3)


def _cells(shared: bool) -> list[dict]:
    cells = []
    for level, best in ((0.0, 8e-3), (0.75, 1e-3)):
        losses = {lr: 1.0 + abs(math.log(lr / best)) for lr in RATES}
        cells.append({"size": "smoke-small", "sparsity": level, "task": "e2e", "losses": losses,
                      "chosen": R.chosen_lr(losses), "runner_up": R.runner_up_lr(losses), "status": "interior"})
    if shared:
        pooled = R.pooled_losses([c["losses"] for c in cells])
        for c in cells:
            c.update(chosen=R.chosen_lr(pooled), runner_up=R.runner_up_lr(pooled), pooled=pooled)
    return cells


def _rings(ax) -> list:
    return [line for line in ax.get_lines() if line.get_markersize() == 10]


def test_per_cell_every_sparsity_rings_its_own_rate():
    ax = report.lr_search_figure(_cells(False), ["smoke-small"], ["e2e"]).axes[0]
    assert sorted(float(r.get_xdata()[0]) for r in _rings(ax)) == [1e-3, 8e-3]
    assert "mean of the sparsities" not in [line.get_label() for line in ax.get_lines()]


def test_a_shared_rate_is_ringed_once_on_the_averaged_curve():
    cells = _cells(True)
    ax = report.lr_search_figure(cells, ["smoke-small"], ["e2e"]).axes[0]
    mean = next(line for line in ax.get_lines() if line.get_label() == "mean of the sparsities")
    assert list(mean.get_xdata()) == list(RATES)
    assert list(mean.get_ydata()) == [cells[0]["pooled"][lr] for lr in RATES]
    (ring,) = _rings(ax)
    assert float(ring.get_xdata()[0]) == cells[0]["chosen"] and ring.get_color() == "black"


def test_the_note_says_when_the_rate_is_shared():
    shared = dataclasses.replace(SMOKE, finetune=dataclasses.replace(
        SMOKE.finetune, lr_search=dataclasses.replace(SMOKE.finetune.lr_search, shared=True)))
    assert report.lr_search_note(_cells(True), shared).startswith("The sparsities of each size and task share")
    assert report.lr_search_note(_cells(False), SMOKE).startswith("Each cell chooses its own rate. Of the 2 cells")
