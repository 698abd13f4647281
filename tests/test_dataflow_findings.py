"""What chapter 07 builds from the simulator (spdf_lib.dataflow.findings and .figures): the block table against
the FLOP model, the speed-up curves, the sentences built from them, and figures whose panels keep apart what
was measured at different token counts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests draw off-screen

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from spdf_lib import dataflow as df  # noqa: E402
from spdf_lib.dataflow import figures, findings  # noqa: E402
from spdf_lib.flops import forward_flops_per_token  # noqa: E402
from spdf_lib.model import get_config  # noqa: E402

SMALL = df.DataflowMachine(name="test-grid", pe_rows=4, pe_cols=3)
CFG = get_config("smoke-small")
LEVELS = [0.0, 0.5, 0.75, 0.95]


def _curves(simulated=None) -> findings.SpeedupCurves:
    gpu = df.GPUModel()
    return findings.SpeedupCurves(
        LEVELS, simulated or [1.0, 1.9, 3.5, 15.0],
        [df.gpu_block_speedup(CFG, 64, s, gpu) for s in LEVELS],
        [df.gpu_block_speedup(CFG, 64, s, gpu, kernel="axpy") for s in LEVELS],
        df.gpu_block_speedup(CFG, 64, 0.5, gpu, kernel="2:4"), 64, SMALL, gpu)


def _measured() -> pd.DataFrame:
    rows = [dict(device=device, device_name=name, torch="2", tokens=tokens, kernel=kernel, sparsity=s,
                 dense_ms=1.0, sparse_ms=1.0 / speedup, speedup=speedup)
            for device, name, tokens in (("cpu", "A CPU", 16), ("cuda", "A GPU", 64))
            for kernel, s, speedup in (("csr", 0.75, 0.5), ("csr", 0.95, 1.5), ("2:4", 0.5, 1.2))]
    return pd.DataFrame(rows)


def test_block_table_sets_the_simulated_block_against_the_flop_model():
    tokens = 8
    reports = df.sweep_block(CFG, tokens, LEVELS, SMALL)
    expected = [forward_flops_per_token(CFG, s).linear / CFG.n_layer * tokens / 2 for s in LEVELS]
    table = findings.block_table(reports, LEVELS, expected)
    assert list(table["sparsity"]) == LEVELS and list(table["layers"]) == [4] * len(LEVELS)
    assert list(table["actual_macs"]) == [df.block_totals(r)["actual_macs"] for r in df.reports_by_level(reports, 4)]
    gaps = (table["actual_macs"] - table["flop_model_macs"]).abs() / table["flop_model_macs"]
    assert list(table["relative_gap"]) == list(gaps) and table["relative_gap"].max() < 1e-2
    with pytest.raises(ValueError, match="3 FLOP-model counts for 4 sparsity levels"):
        findings.block_table(reports, LEVELS, expected[:3])


def test_grid_sweep_gives_one_speedup_per_level_and_grid():
    speedups = findings.grid_sweep(CFG, 4, LEVELS, SMALL, (1, 2, 4))
    assert sorted(speedups) == [1, 2, 4] and all(len(v) == len(LEVELS) for v in speedups.values())
    assert speedups[1][0] == 1.0  # dense on any grid: no speed-up
    one_pe = [df.block_totals(r)["speedup_vs_dense"]
              for r in df.reports_by_level(df.sweep_block(CFG, 4, LEVELS, SMALL.with_grid(1)), len(LEVELS))]
    assert speedups[1] == one_pe


def test_speedup_curves_know_their_levels():
    curves = _curves()
    assert curves.ideal == (1.0, 2.0, 4.0, pytest.approx(20.0))
    assert curves.at("simulated", 0.75) == 3.5 and curves.at("ideal", 0.5) == 2.0
    with pytest.raises(ValueError, match="not one of the levels"):
        curves.at("simulated", 0.3)
    with pytest.raises(ValueError, match="one value per sparsity level"):
        findings.SpeedupCurves(LEVELS, [1.0], [1.0] * 4, [1.0] * 4, 1.0, 64, SMALL, df.GPUModel())


def test_findings_are_computed_from_the_curves_and_refuse_a_claim_the_numbers_do_not_support():
    curves, measured = _curves(), _measured()
    grids = {32: [1.0, 1.9, 3.8, 17.0], 512: [1.0, 1.2, 1.5, 2.4]}
    text = findings.findings_markdown(curves, grids, LEVELS, measured, pd.DataFrame(), level=0.75, high=0.95)
    assert "4.0x" in text and "3.50x" in text and "15.0x of the ideal 20x" in text
    assert "32x32 PEs reach 3.80x and 512x512 PEs 1.50x" in text
    assert "0.50x on A CPU and 0.50x on A GPU" in text and "1.20x on A GPU" in text
    with pytest.raises(ValueError, match="does not fall as the grid grows"):
        findings.findings_markdown(curves, {32: [1.0, 1.2, 1.5, 2.4], 512: grids[32]}, LEVELS, measured,
                                   pd.DataFrame())


def test_measurements_sentence_says_how_to_add_a_gpu_table(tmp_path):
    source = tmp_path / "tables" / "kernels"
    empty = findings.measurements_markdown(pd.DataFrame(columns=["device"]), source)
    assert empty.startswith("No kernel measurements are present.") and "--device cuda" in empty
    assert empty.endswith("(Read from `tables/kernels`.)")
    both = findings.measurements_markdown(_measured().assign(source_file=lambda f: f["device"] + ".csv"), source)
    assert "`cpu.csv` (cpu: A CPU" in both and "`cuda.csv` (cuda: A GPU" in both and "--device cuda" not in both


def test_speedup_figure_gives_each_measured_device_its_own_panel_with_distinct_colours():
    fig = figures.speedup_figure(_curves(), _measured())
    axes = fig.axes
    assert len(axes) == 3  # the models, then one panel per (device, tokens)
    assert "16 tokens" in axes[1].get_title() and "64 tokens" in axes[2].get_title()
    for ax in axes:
        assert ax.get_xlabel() and ax.get_yscale() == "log"
        lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        colours = [line.get_color() for line in lines]
        assert len(set(colours)) == len(colours), ax.get_title()  # no two series share a colour
    fig.canvas.draw()
    width = fig.get_window_extent().width
    for ax in axes:
        box = ax.get_legend().get_window_extent()
        assert 0 <= box.x0 and box.x1 <= width  # the legend stays inside the figure
    plt.close(fig)


def test_bandwidth_and_grid_figures_keep_their_legends_inside_the_figure():
    gpu = df.GPUModel()
    systems = [gpu.memory_system(), df.dataflow_memory_system(SMALL)]
    drawn = [figures.bandwidth_figure(df.bandwidth_table(systems, n=64), systems, n=64, bytes_per_value=2),
             figures.grid_figure({2: [1.0, 1.8, 3.0, 9.0], 4: [1.0, 1.5, 2.5, 6.0]}, LEVELS, CFG, _curves())]
    for fig in drawn:
        fig.canvas.draw()
        (legend,) = fig.legends
        box, width = legend.get_window_extent(), fig.get_window_extent().width
        assert 0 <= box.x0 and box.x1 <= width
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>")
        plt.close(fig)
