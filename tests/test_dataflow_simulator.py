"""The dataflow simulator (spdf_lib.dataflow.simulator, chapter 07): exact counts against brute force and
nn.Linear, cycles and load imbalance, sweeps without masks, a GPT block against the FLOP model and a real
forward pass, CSV export, and clear errors."""

from __future__ import annotations

import csv
import io
import math

import pytest
import torch

from spdf_lib import dataflow as df
from spdf_lib.flops import forward_flops_per_token
from spdf_lib.model import GPT, get_config
from spdf_lib.sparsity import SparsitySpec, random_mask, sparsify

SMALL = df.DataflowMachine(name="test-grid", pe_rows=4, pe_cols=3)


def sparse_weight(out_f, in_f, density, gen):
    w = torch.randn(out_f, in_f, generator=gen)
    return w * random_mask((out_f, in_f), 1.0 - density, gen)


def brute_force_pe_macs(x, w, machine):
    """Per-PE multiply-adds by explicit loops: the independent oracle for the vectorised counts."""
    m = df.block_mapping(w.shape[0], w.shape[1], machine)
    macs = torch.zeros(machine.pe_rows, machine.pe_cols, dtype=torch.int64)
    act = (x.reshape(-1, w.shape[1]) != 0).sum(0)
    for i, k in (w != 0).nonzero().tolist():
        macs[i // m.block_rows, k // m.block_cols] += int(act[k])
    return macs


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (33, 64, 48), (16, 200, 129)])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 0.75, 0.99, 1.0])
def test_equals_dense_matmul_and_nn_linear(shape, density):
    tokens, in_f, out_f = shape
    gen = torch.Generator().manual_seed(hash((shape, density)) % 2**31)
    x = torch.randn(tokens, in_f, generator=gen)
    w = sparse_weight(out_f, in_f, density, gen)
    y, rep = df.simulate_linear(x, w, SMALL)
    reference = (x.double() @ w.double().T)
    err = float((y.double() - reference).norm() / reference.norm().clamp_min(1e-300))
    assert err <= 1e-5
    # STONNE's habit: the simulated layer against a real nn.Linear sharing its weights.
    lin = torch.nn.Linear(in_f, out_f, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
        torch.testing.assert_close(y, lin(x), rtol=1e-5, atol=1e-6)
    assert rep.nonzero_weights == int((w != 0).sum())
    assert rep.actual_macs == tokens * rep.nonzero_weights
    assert rep.algorithmic_macs == tokens * in_f * out_f
    assert rep.skipped_macs == rep.algorithmic_macs - rep.actual_macs


def test_leading_dimensions_are_tokens():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, generator=gen)
    w = sparse_weight(5, 8, 0.5, gen)
    y, rep = df.simulate_linear(x, w, SMALL)
    assert y.shape == (2, 3, 5) and rep.tokens == 6
    torch.testing.assert_close(y, x @ w.T)


def test_counts_with_zero_rows_columns_and_zero_activations():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(9, 30, generator=gen)
    x[:, [0, 7, 29]] = 0.0  # these activations are never sent
    x[3, 5] = 0.0
    w = sparse_weight(22, 30, 0.6, gen)
    w[[0, 5, 21], :] = 0.0  # all-zero output rows
    w[:, [2, 3, 28]] = 0.0  # all-zero input columns
    y, rep = df.simulate_linear(x, w, SMALL)
    torch.testing.assert_close(y, x @ w.T)
    expected = brute_force_pe_macs(x, w, SMALL)
    assert torch.equal(rep.cycles_per_pe, expected)  # macs_per_cycle = 1: cycles are MACs
    exact = int(((x != 0).double() @ (w != 0).double().T).sum())
    assert rep.actual_macs == exact == int(expected.sum())
    assert rep.nonzero_activations == int((x != 0).sum())
    assert rep.total_cycles == int(expected.max()) + SMALL.fill_cycles


def test_all_zero_weight_costs_only_the_fill():
    y, rep = df.simulate_linear(torch.randn(4, 12), torch.zeros(10, 12), SMALL)
    assert torch.count_nonzero(y) == 0
    assert rep.actual_macs == 0 and rep.skipped_macs == rep.algorithmic_macs
    assert rep.total_cycles == SMALL.fill_cycles and rep.utilization == 0.0 and rep.load_imbalance == 1.0


def test_load_imbalance_is_the_busiest_pe():
    w = torch.zeros(8, 6)
    w[0:2, 0:2] = 1.0  # PE (0, 0) holds every nonzero
    _, rep = df.simulate_linear(torch.ones(5, 6), w, SMALL)
    assert rep.max_pe_cycles == 4 * 5
    assert rep.total_cycles == 20 + SMALL.fill_cycles
    assert rep.load_imbalance == pytest.approx(20 / (20 / rep.pes_used))


def test_macs_per_cycle_divides_cycles():
    gen = torch.Generator().manual_seed(3)
    w = sparse_weight(16, 16, 0.5, gen)
    x = torch.randn(7, 16, generator=gen)
    _, one = df.simulate_linear(x, w, SMALL)
    fast = df.DataflowMachine(pe_rows=4, pe_cols=3, macs_per_cycle=4)
    _, four = df.simulate_linear(x, w, fast)
    assert torch.equal(four.cycles_per_pe, (one.cycles_per_pe + 3) // 4)


def test_cycles_fall_as_density_falls():
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(64, 48, generator=gen)
    order = torch.randperm(w.numel(), generator=gen)
    x = torch.randn(16, 48, generator=gen)
    previous = None
    for density in (1.0, 0.8, 0.6, 0.4, 0.2, 0.05, 0.0):  # nested masks: each keeps a subset
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[order[: round(density * w.numel())]] = True
        _, rep = df.simulate_linear(x, w * mask.view_as(w), SMALL)
        if previous is not None:
            assert rep.actual_macs < previous.actual_macs
            assert rep.total_cycles <= previous.total_cycles
            assert torch.all(rep.cycles_per_pe <= previous.cycles_per_pe)
        previous = rep
    assert previous.total_cycles < df.simulate_linear(x, w, SMALL)[1].total_cycles


def test_dense_layer_matches_dense_cycles():
    _, rep = df.simulate_linear(torch.randn(3, 12), torch.randn(8, 12) + 10, SMALL)
    assert rep.total_cycles == rep.dense_total_cycles and rep.speedup_vs_dense == 1.0


def test_sweep_matches_materialised_masks():
    one_pe = df.DataflowMachine(pe_rows=1, pe_cols=1)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(10, 40, generator=gen)
    levels = [0.0, 0.5, 0.75, 0.95]
    swept = df.sweep_linear(30, 40, 10, levels, one_pe)
    for s, rep in zip(levels, swept):
        _, real = df.simulate_linear(x, sparse_weight(30, 40, 1.0 - s, gen) + 0.0, one_pe)
        assert rep.actual_macs == real.actual_macs == 10 * df.kept_weights(1200, s)
        assert rep.total_cycles == real.total_cycles
    # On a real grid the per-PE counts are nested and add up to the exact count.
    grid = df.sweep_linear(100, 90, 3, [0.0, 0.3, 0.6, 0.9], SMALL, seed=1)
    for a, b in zip(grid, grid[1:]):
        assert torch.all(b.cycles_per_pe <= a.cycles_per_pe) and b.total_cycles <= a.total_cycles
    assert [r.nonzero_weights for r in grid] == [df.kept_weights(9000, s) for s in (0.0, 0.3, 0.6, 0.9)]


def test_block_actual_macs_equal_flop_model():
    cfg = get_config("gpt3-xl")
    tokens = 32
    reports = df.sweep_block(cfg, tokens, (0.0, 0.5, 0.75))
    for s in (0.0, 0.5, 0.75):
        block = [r for r in reports if math.isclose(r.weight_density, 1 - s, rel_tol=1e-9)]
        assert [r.name for r in block] == list(df.BLOCK_LINEARS)
        flops = forward_flops_per_token(cfg, s).linear / cfg.n_layer * tokens
        assert df.block_totals(block)["actual_macs"] == flops / 2


def test_reports_by_level_regroups_a_block_sweep():
    levels = [0.0, 0.5, 0.9]
    cfg = get_config("smoke-small")
    grouped = df.reports_by_level(df.sweep_block(cfg, 4, levels, SMALL), len(levels))
    assert [[r.name for r in layers] for layers in grouped] == [list(df.BLOCK_LINEARS)] * len(levels)
    assert [layers[0].nonzero_weights for layers in grouped] == [df.kept_weights(3 * 32 * 32, s) for s in levels]
    with pytest.raises(ValueError, match="do not split into 5 sparsity levels"):
        df.reports_by_level(df.sweep_block(cfg, 4, levels, SMALL), 5)


def test_module_linears_against_the_real_forward():
    torch.manual_seed(0)
    model = GPT(get_config("smoke-small")).eval()
    sparsify(model, SparsitySpec(level=0.75))
    idx = torch.randint(0, 512, (2, 16))
    names = [f"transformer.h.0.{n}" for n in df.BLOCK_LINEARS]
    reports, worst = df.simulate_module_linears(model, lambda: model(idx), names, SMALL)
    assert worst <= 1e-5
    assert all(abs(r.weight_density - 0.25) < 0.01 for r in reports)
    with pytest.raises(ValueError, match="not nn.Linear"):
        df.simulate_module_linears(model, lambda: model(idx), ["transformer.ln_f"], SMALL)


def test_csv_export_has_one_row_per_layer(tmp_path):
    reports = df.sweep_linear(64, 32, 4, [0.0, 0.5], SMALL, name="fc")
    path = df.write_reports_csv(reports, tmp_path / "sub" / "layers.csv", extra={"profile": "smoke"})
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 2 and rows[0]["profile"] == "smoke" and rows[1]["name"] == "fc"
    assert set(df.REPORT_COLUMNS) <= set(rows[0]) and "cycles_per_pe" not in rows[0]
    assert int(rows[1]["actual_macs"]) == reports[1].actual_macs
    assert len(df.reports_frame(reports)) == 2


@pytest.mark.parametrize("make_call, match", [
    (lambda: df.simulate_linear(torch.randn(3, 5), torch.randn(4, 6)), "shape mismatch"),
    (lambda: df.simulate_linear(torch.randn(3, 5), torch.randn(4, 5, 1)), "2-D"),
    (lambda: df.simulate_linear(torch.tensor([[1.0, float("nan")]]), torch.randn(4, 2)), "x contains non-finite"),
    (lambda: df.simulate_linear(torch.randn(2, 2), torch.tensor([[1.0, float("inf")]])), "weight contains non-finite"),
    (lambda: df.simulate_linear(torch.randn(0, 2), torch.randn(3, 2)), "no tokens"),
    (lambda: df.simulate_linear(torch.randn(2, 2), torch.randn(3, 2).double()), "dtype"),
    (lambda: df.DataflowMachine(pe_rows=0), "no processing elements"),
    (lambda: df.DataflowMachine(pe_cols=-2), "no processing elements"),
    (lambda: df.DataflowMachine(clock_hz=0), "clock_hz"),
    (lambda: df.simulate_linear(torch.randn(2, 2), torch.randn(3, 2), machine="big"), "DataflowMachine"),
    (lambda: df.sweep_linear(8, 8, 0, [0.5]), "tokens"),
    (lambda: df.kept_weights(10, 1.5), "sparsity"),
])
def test_bad_input_is_a_clear_error(make_call, match):
    with pytest.raises(ValueError, match=match):
        make_call()


def test_an_overflowing_sum_is_not_taken_for_a_non_finite_input():
    # The finiteness check first sums the tensor; a sum that overflows must not be reported as NaN/inf.
    _, rep = df.simulate_linear(torch.randn(2, 2), torch.tensor([[3e38, 3e38]] * 3))
    assert rep.nonzero_weights == 6
