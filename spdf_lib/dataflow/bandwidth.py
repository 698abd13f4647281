"""Why the memory has to be on-chip: bandwidth by BLAS level, and a GPU roofline (chapter 07).

The argument of Sean Lie's Cerebras blog post "Harnessing the Power of Sparsity for Large GPT AI
Models" (28 November 2022, https://www.cerebras.net/blog/harnessing-the-power-of-sparsity-for-large-gpt-ai-models):

* a sparse GEMM is one AXPY per nonzero weight;
* running AXPY at full speed needs a memory bandwidth only on-chip SRAM next to every core gives;
* with dataflow execution (compute triggered by arriving data, zeros filtered at the sender) fewer
  FLOPs become less time (the simulator, :mod:`spdf_lib.dataflow.simulator`, counts that part).

Here: the arithmetic intensity of GEMM, GEMV and AXPY (:func:`blas_ops`), the bandwidth each needs
to run at full compute (:func:`required_bandwidth`), and a roofline model of dense, unstructured and
2:4 kernels on a GPU (:func:`gpu_linear_time`, :func:`gpu_block_speedup`) whose peaks are parameters
(:class:`GPUModel`, an H100 SXM5 by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .simulator import DataflowMachine, as_machine, block_linear_shapes, kept_weights


@dataclass(frozen=True)
class MemorySystem:
    """Peak compute and the bandwidth of the memory the operands live in (chapter 07)."""

    name: str
    memory: str  # e.g. "off-chip DRAM (HBM3)" or "on-chip SRAM"
    peak_flops: float
    bandwidth: float  # bytes/s
    source: str


@dataclass(frozen=True)
class GPUModel:
    """Datasheet figures of a GPU for the roofline model (chapter 07).

    Defaults: NVIDIA H100 SXM5, from the NVIDIA H100 Tensor Core GPU datasheet and the Hopper
    architecture whitepaper (2022): 989.4 TFLOP/s dense BF16 on tensor cores, 1978.9 TFLOP/s with
    2:4 sparsity, 133.8 TFLOP/s BF16 on the CUDA cores (what an unstructured sparse kernel can use),
    3.35 TB/s HBM3. Peaks are parameters, never constants buried in code: pass your own GPU.
    """

    name: str = "H100 SXM5 (datasheet)"
    dense_flops: float = 989.4e12
    semi_structured_flops: float = 1978.9e12
    simt_flops: float = 133.8e12
    dram_bandwidth: float = 3.35e12
    bytes_per_value: int = 2
    bytes_per_index: int = 4
    source: str = "NVIDIA H100 Tensor Core GPU datasheet / Hopper whitepaper, SXM5"

    def memory_system(self) -> MemorySystem:
        return MemorySystem(self.name, "off-chip DRAM (HBM3)", self.dense_flops, self.dram_bandwidth, self.source)


def dataflow_memory_system(machine: DataflowMachine | None = None) -> MemorySystem:
    """The dataflow machine's compute and SRAM bandwidth as a :class:`MemorySystem`."""
    m = as_machine(machine)
    return MemorySystem(m.name, "on-chip SRAM", m.peak_flops, m.memory_bandwidth,
                        "illustrative parameters of DataflowMachine (no published figures used)")


@dataclass(frozen=True)
class BlasOp:
    """One BLAS-level operation: FLOPs, compulsory bytes moved, and their ratio (FLOP/byte)."""

    level: str
    description: str
    flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes


def blas_ops(n: int = 2048, bytes_per_value: int = 2) -> list[BlasOp]:
    """GEMM, GEMV and AXPY at size ``n``, and the sparse GEMM seen as one AXPY per nonzero (chapter 07).

    Bytes are compulsory traffic: every operand read once and every result written once. GEMM
    ``C += A B`` (n x n): 2n^3 FLOPs, 4n^2 values (C is read and written). GEMV ``y += A x``: 2n^2
    FLOPs, n^2 + 3n values. AXPY ``y += a x``: 2n FLOPs, 3n values. A sparse GEMM streams one AXPY of
    length ``n`` (tokens) per nonzero weight, so per nonzero it has exactly AXPY's intensity.
    """
    if n < 1 or bytes_per_value < 1:
        raise ValueError(f"n={n} and bytes_per_value={bytes_per_value} must be >= 1")
    b = bytes_per_value
    return [
        BlasOp("GEMM", f"C += A B, {n}x{n} (BLAS 3)", 2.0 * n**3, 4.0 * n * n * b),
        BlasOp("GEMV", f"y += A x, {n}x{n} (BLAS 2)", 2.0 * n * n, (n * n + 3.0 * n) * b),
        BlasOp("AXPY", f"y += a x, length {n} (BLAS 1)", 2.0 * n, 3.0 * n * b),
        BlasOp("sparse GEMM", f"one AXPY of length {n} per nonzero weight", 2.0 * n, 3.0 * n * b),
    ]


def required_bandwidth(op: BlasOp, peak_flops: float) -> float:
    """Bytes/s needed to keep ``peak_flops`` busy on ``op``: peak / arithmetic intensity."""
    return peak_flops / op.intensity


def bandwidth_table(systems: Sequence[MemorySystem], n: int = 2048, bytes_per_value: int = 2):
    """Required vs available bandwidth for every BLAS level and system, as a DataFrame (chapter 07)."""
    import pandas as pd

    rows = []
    for sys in systems:
        for op in blas_ops(n, bytes_per_value):
            need = required_bandwidth(op, sys.peak_flops)
            rows.append({"system": sys.name, "memory": sys.memory, "level": op.level,
                         "intensity_flop_per_byte": op.intensity, "peak_tflops": sys.peak_flops / 1e12,
                         "required_tb_s": need / 1e12, "available_tb_s": sys.bandwidth / 1e12,
                         "fraction_of_peak": min(1.0, sys.bandwidth / need)})
    return pd.DataFrame(rows)


def gpu_linear_time(tokens: int, out_features: int, in_features: int, sparsity: float, gpu: GPUModel,
                    kernel: str) -> float:
    """Roofline time in seconds of ``y = x W^T`` on ``gpu``: max(FLOPs / peak, bytes / bandwidth).

    kernels (chapter 07):

    * ``dense``: tensor cores at ``dense_flops``; reads W and x once, writes y once.
    * ``unstructured``: an optimistic CSR kernel: only the nonzeros' FLOPs on the CUDA cores
      (``simt_flops``, no tensor cores for unstructured patterns); reads values + indices, x and y once.
    * ``axpy``: the sparse GEMM as the blog describes it, one AXPY of length ``tokens`` per nonzero,
      each streaming its activation and output columns from DRAM (no reuse): the pessimistic bound.
    * ``2:4``: semi-structured sparse tensor cores at ``semi_structured_flops`` (50% sparsity only).
    """
    t, n, k = tokens, out_features, in_features
    b = gpu.bytes_per_value
    nnz = kept_weights(n * k, sparsity)
    if kernel == "dense":
        flops, traffic, peak = 2.0 * t * n * k, (n * k + t * k + t * n) * b, gpu.dense_flops
    elif kernel == "unstructured":
        flops = 2.0 * t * nnz
        traffic = nnz * (b + gpu.bytes_per_index) + (n + 1) * gpu.bytes_per_index + (t * k + t * n) * b
        peak = gpu.simt_flops
    elif kernel == "axpy":
        flops, traffic, peak = 2.0 * t * nnz, nnz * 3.0 * t * b, gpu.simt_flops
    elif kernel == "2:4":
        if abs(sparsity - 0.5) > 1e-9:
            raise ValueError(f"2:4 kernels run at sparsity 0.5 only, got {sparsity}")
        # Values (half the weights) plus 2-bit metadata per kept value.
        flops, traffic = 2.0 * t * n * k, (n * k // 2) * b + n * k // 8 + (t * k + t * n) * b
        peak = gpu.semi_structured_flops
    else:
        raise ValueError(f"kernel={kernel!r}: choose dense, unstructured, axpy or 2:4")
    return max(flops / peak, traffic / gpu.dram_bandwidth)


def gpu_roofline_speedup(tokens: int, out_features: int, in_features: int, sparsity: float,
                         gpu: GPUModel | None = None, kernel: str = "unstructured") -> float:
    """Speed-up of a sparse kernel over the dense tensor-core kernel under the roofline (chapter 07)."""
    g = gpu or GPUModel()
    dense = gpu_linear_time(tokens, out_features, in_features, 0.0, g, "dense")
    return dense / gpu_linear_time(tokens, out_features, in_features, sparsity, g, kernel)


def gpu_block_speedup(config, tokens: int, sparsity: float, gpu: GPUModel | None = None,
                      kernel: str = "unstructured") -> float:
    """Roofline speed-up of one GPT block's four sparsified linears over dense, their times added up
    (the layers run one after another). ``config`` is a :class:`spdf_lib.model.GPTConfig` (chapter 07)."""
    g = gpu or GPUModel()
    shapes = [(out_f, in_f) for _, out_f, in_f in block_linear_shapes(config)]
    dense = sum(gpu_linear_time(tokens, out_f, in_f, 0.0, g, "dense") for out_f, in_f in shapes)
    return dense / sum(gpu_linear_time(tokens, out_f, in_f, sparsity, g, kernel) for out_f, in_f in shapes)


__all__ = ["MemorySystem", "GPUModel", "dataflow_memory_system", "BlasOp", "blas_ops", "required_bandwidth",
           "bandwidth_table", "gpu_linear_time", "gpu_roofline_speedup", "gpu_block_speedup"]
