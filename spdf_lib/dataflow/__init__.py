"""Turning fewer FLOPs into less time: a dataflow simulator, a bandwidth model and measured kernels.

Explained in chapter 07, after Sean Lie's Cerebras blog post "Harnessing the Power of Sparsity for
Large GPT AI Models" (28 November 2022). The package has one module per side of the argument:

* :mod:`~spdf_lib.dataflow.simulator`: a counting model of sparse matrix multiplication on a grid
  of processing elements with local SRAM (:class:`DataflowMachine`, :func:`simulate_linear`): the
  multiply-adds it performs and skips, their spread over the PEs, and the cycles that takes;
* :mod:`~spdf_lib.dataflow.bandwidth`: the bandwidth GEMM, GEMV and AXPY need to run at full
  compute, and a roofline model of dense, unstructured and 2:4 kernels on a GPU (:class:`GPUModel`);
* :mod:`~spdf_lib.dataflow.kernels`: the reader of the measured kernel tables that
  ``scripts/measure_sparse_kernels.py`` writes under ``tables/kernels/``;
* :mod:`~spdf_lib.dataflow.findings` and :mod:`~spdf_lib.dataflow.figures`: what chapter 07 builds
  from those numbers (tables, the speed-up curves, its figures and the sentences about them). They
  import pandas and matplotlib, so they are imported on their own, not here.

The names of the first three modules are importable from ``spdf_lib.dataflow`` itself
(``from spdf_lib import dataflow as df; df.simulate_linear(x, w)``).
"""

from __future__ import annotations

from .bandwidth import (BlasOp, GPUModel, MemorySystem, bandwidth_table, blas_ops, dataflow_memory_system,
                        gpu_block_speedup, gpu_linear_time, gpu_roofline_speedup, required_bandwidth)
from .kernels import kernel_tables_dir, load_kernel_measurements, measured_block_speedups
from .simulator import (BLOCK_LINEARS, DEFAULT_MACHINE, REPORT_COLUMNS, BlockMapping, DataflowMachine, LayerReport,
                        block_linear_shapes, block_mapping, block_totals, kept_weights, reports_by_level,
                        reports_frame, reports_to_csv_text, simulate_linear, simulate_module_linears, sweep_block,
                        sweep_linear, write_reports_csv)

__all__ = [
    # simulator
    "DataflowMachine", "DEFAULT_MACHINE", "BlockMapping", "block_mapping", "LayerReport", "REPORT_COLUMNS",
    "simulate_linear", "kept_weights", "sweep_linear", "BLOCK_LINEARS", "block_linear_shapes", "sweep_block",
    "reports_by_level", "block_totals", "simulate_module_linears", "reports_to_csv_text", "write_reports_csv",
    "reports_frame",
    # bandwidth
    "MemorySystem", "GPUModel", "dataflow_memory_system", "BlasOp", "blas_ops", "required_bandwidth",
    "bandwidth_table", "gpu_linear_time", "gpu_roofline_speedup", "gpu_block_speedup",
    # kernels
    "kernel_tables_dir", "load_kernel_measurements", "measured_block_speedups",
]
