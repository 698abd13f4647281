"""The bandwidth model (spdf_lib.dataflow.bandwidth, chapter 07): arithmetic intensity by BLAS level, the
bandwidth each needs, and the GPU roofline of dense, unstructured and 2:4 kernels."""

from __future__ import annotations

import pytest

from spdf_lib import dataflow as df


def test_blas_intensity_and_required_bandwidth():
    ops = {op.level: op for op in df.blas_ops(2048, 2)}
    assert ops["GEMM"].intensity > ops["GEMV"].intensity > ops["AXPY"].intensity
    assert ops["AXPY"].intensity == pytest.approx(2 / (3 * 2))
    assert ops["sparse GEMM"].intensity == ops["AXPY"].intensity
    gpu = df.GPUModel()
    assert df.required_bandwidth(ops["GEMM"], gpu.dense_flops) < gpu.dram_bandwidth  # dense GEMM runs at peak
    assert df.required_bandwidth(ops["AXPY"], gpu.dense_flops) > 100 * gpu.dram_bandwidth
    machine = df.DataflowMachine()
    # The SRAM is sized for exactly one AXPY operand set per multiply-add.
    assert df.required_bandwidth(ops["AXPY"], machine.peak_flops) == pytest.approx(machine.memory_bandwidth)
    table = df.bandwidth_table([gpu.memory_system(), df.dataflow_memory_system(machine)])
    assert len(table) == 8 and table["fraction_of_peak"].between(0, 1).all()


def test_gpu_roofline():
    shape = (2048, 8192, 2048)
    assert df.gpu_roofline_speedup(*shape, 0.0, kernel="dense") == pytest.approx(1.0)
    levels = (0.5, 0.75, 0.9, 0.95)
    optimistic = [df.gpu_roofline_speedup(*shape, s) for s in levels]
    pessimistic = [df.gpu_roofline_speedup(*shape, s, kernel="axpy") for s in levels]
    assert optimistic == sorted(optimistic)
    assert all(p < o for p, o in zip(pessimistic, optimistic))
    assert all(o < 1 / (1 - s) for o, s in zip(optimistic, levels))  # never beats the ideal
    assert 1.0 < df.gpu_roofline_speedup(*shape, 0.5, kernel="2:4") <= 2.0 + 1e-3  # datasheet rounding


@pytest.mark.parametrize("make_call, match", [
    (lambda: df.gpu_linear_time(8, 8, 8, 0.75, df.GPUModel(), "2:4"), "0.5"),
    (lambda: df.gpu_linear_time(8, 8, 8, 0.5, df.GPUModel(), "magic"), "kernel"),
])
def test_bad_kernel_or_level_is_a_clear_error(make_call, match):
    with pytest.raises(ValueError, match=match):
        make_call()


def test_gpu_block_speedup_lies_between_its_layers_speedups():
    from spdf_lib.model import get_config

    cfg, gpu = get_config("gpt3-xl"), df.GPUModel()
    for kernel, s in (("unstructured", 0.75), ("axpy", 0.9), ("2:4", 0.5)):
        layers = [df.gpu_roofline_speedup(8192, o, i, s, gpu, kernel) for _, o, i in df.block_linear_shapes(cfg)]
        block = df.gpu_block_speedup(cfg, 8192, s, gpu, kernel)
        assert min(layers) * (1 - 1e-12) <= block <= max(layers) * (1 + 1e-12)  # a mean of the layers'
    assert df.gpu_block_speedup(cfg, 8192, 0.0, gpu, "dense") == pytest.approx(1.0)
