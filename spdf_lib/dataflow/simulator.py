"""A counting model of sparse matrix multiplication on a dataflow machine (chapter 07).

In the vocabulary of Sparseloop and SCALE-Sim: *algorithmic* MACs (what the dense layer would do),
*actual* MACs (what the machine does), *skipped* MACs (the difference), cycles per processing
element (PE), total cycles and utilisation.

The machine (:class:`DataflowMachine`) is a simplified, illustrative model, **not** a model of any
product: a 2-D grid of PEs, each with private SRAM and one multiply-add unit. The mapping is fixed
and stated in :func:`block_mapping`. :func:`simulate_linear` runs one ``nn.Linear``-shaped product
and counts it exactly; :func:`sweep_linear` and :func:`sweep_block` give the reports of a layer or
of a GPT block at many sparsity levels without drawing a mask per level; and
:func:`simulate_module_linears` checks the simulated layers against a real forward pass.
Everything is vectorised: counts come from reshapes, sums and ``bincount``-like reductions, never
from a Python loop over PEs or over nonzeros.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..sparsity import n_masked
from ..store import atomic_write_text

# --------------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataflowMachine:
    """A 2-D grid of processing elements (PEs) with local SRAM: the machine the simulator counts on.

    Explained in chapter 07. This is a deliberately simple model, not a model of any specific
    product. The source blog post gives no numbers for it, so every default below is illustrative
    (chosen to be round and of a plausible order of magnitude), and the chapter varies the grid size.

    What the model assumes:

    * each PE owns a block of the weight matrix (:func:`block_mapping`) and keeps only the nonzero
      weights of that block in its SRAM, as (value, column index) pairs;
    * activations stream in from the grid edge; a zero activation is never sent, and a zero weight is
      never stored, so neither is ever computed on;
    * every arriving nonzero activation ``x[t, k]`` triggers one multiply-add per nonzero weight the PE
      holds in column ``k``; a PE does ``macs_per_cycle`` multiply-adds per cycle;
    * partial sums flow along the grid to the output edge; the first result needs one hop per PE on
      the way (``fill_cycles_per_hop`` x grid diameter), after which the pipeline is full;
    * each multiply-add touches three words of SRAM (read weight, read and write the partial sum), which
      is the bandwidth an AXPY needs; the SRAM is assumed to supply it every cycle.
    """

    name: str = "wafer-like-grid"
    pe_rows: int = 128
    pe_cols: int = 128
    clock_hz: float = 1.0e9
    macs_per_cycle: int = 1  # per PE
    sram_bytes_per_pe: int = 48 * 1024
    bytes_per_value: int = 2  # 16-bit weights and activations
    bytes_per_index: int = 2  # column index stored next to each nonzero weight
    words_per_mac: int = 3  # SRAM accesses per multiply-add: weight, partial sum in, partial sum out
    fill_cycles_per_hop: int = 1

    def __post_init__(self):
        if int(self.pe_rows) < 1 or int(self.pe_cols) < 1:
            raise ValueError(f"DataflowMachine {self.name!r} has no processing elements: "
                             f"pe_rows={self.pe_rows}, pe_cols={self.pe_cols} (both must be >= 1)")
        for attr in ("clock_hz", "macs_per_cycle", "sram_bytes_per_pe", "bytes_per_value", "words_per_mac"):
            value = getattr(self, attr)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"DataflowMachine {self.name!r}: {attr}={value!r} must be a positive number")
        for attr in ("bytes_per_index", "fill_cycles_per_hop"):
            if getattr(self, attr) < 0:
                raise ValueError(f"DataflowMachine {self.name!r}: {attr}={getattr(self, attr)!r} must be >= 0")

    @property
    def n_pes(self) -> int:
        return int(self.pe_rows) * int(self.pe_cols)

    @property
    def fill_cycles(self) -> int:
        """Pipeline fill: one hop per PE across the grid diameter."""
        return int(self.fill_cycles_per_hop) * (int(self.pe_rows) + int(self.pe_cols) - 2)

    @property
    def peak_flops(self) -> float:
        """Peak FLOP/s, counting a multiply-add as 2 FLOPs."""
        return 2.0 * self.n_pes * self.macs_per_cycle * self.clock_hz

    @property
    def memory_bandwidth(self) -> float:
        """Aggregate SRAM bandwidth in bytes/s: every PE can feed its multiply-adds every cycle."""
        return float(self.n_pes * self.macs_per_cycle * self.words_per_mac * self.bytes_per_value * self.clock_hz)

    def with_grid(self, pe_rows: int, pe_cols: int | None = None) -> "DataflowMachine":
        """The same machine with another grid size (the chapter's grid-size sweep)."""
        cols = pe_rows if pe_cols is None else pe_cols
        return dataclasses.replace(self, name=f"{self.name} {pe_rows}x{cols}", pe_rows=pe_rows, pe_cols=cols)


DEFAULT_MACHINE = DataflowMachine()


def as_machine(machine: DataflowMachine | None) -> DataflowMachine:
    """``machine``, or :data:`DEFAULT_MACHINE` when it is None; a ValueError for anything else."""
    if machine is None:
        return DEFAULT_MACHINE
    if not isinstance(machine, DataflowMachine):
        raise ValueError(f"machine must be a DataflowMachine, got {type(machine).__name__}")
    return machine


# --------------------------------------------------------------------------------------------------
# Mapping and counting
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockMapping:
    """Which PE owns which weight: ``W[i, k]`` lives on PE ``(i // block_rows, k // block_cols)``.

    Output features (rows of ``weight``) are cut into ``used_rows`` contiguous blocks down the grid,
    input features (columns) into ``used_cols`` blocks across it. Activation column ``k`` is streamed
    to the PE column that owns it; partial sums of output ``i`` are reduced along PE row
    ``i // block_rows``. A layer smaller than the grid leaves PEs idle.
    """

    out_features: int
    in_features: int
    block_rows: int
    block_cols: int
    used_rows: int
    used_cols: int

    @property
    def pes_used(self) -> int:
        return self.used_rows * self.used_cols

    def block_sizes(self) -> np.ndarray:
        """Number of weights (zero or not) each used PE owns, int64 ``(used_rows, used_cols)``."""
        rows = np.full(self.used_rows, self.block_rows, dtype=np.int64)
        rows[-1] = self.out_features - self.block_rows * (self.used_rows - 1)
        cols = np.full(self.used_cols, self.block_cols, dtype=np.int64)
        cols[-1] = self.in_features - self.block_cols * (self.used_cols - 1)
        return rows[:, None] * cols[None, :]


def block_mapping(out_features: int, in_features: int, machine: DataflowMachine | None = None) -> BlockMapping:
    """The stated mapping of an ``(out_features, in_features)`` weight onto the PE grid (chapter 07)."""
    m = as_machine(machine)
    if out_features < 1 or in_features < 1:
        raise ValueError(f"weight shape ({out_features}, {in_features}) has no entries")
    block_rows = math.ceil(out_features / m.pe_rows)
    block_cols = math.ceil(in_features / m.pe_cols)
    return BlockMapping(out_features, in_features, block_rows, block_cols,
                        used_rows=math.ceil(out_features / block_rows),
                        used_cols=math.ceil(in_features / block_cols))


def _per_pe_counts(nonzero: torch.Tensor, act_nonzero: torch.Tensor,
                   mapping: BlockMapping) -> tuple[torch.Tensor, torch.Tensor]:
    """(nonzero weights, multiply-adds) per used PE, each ``(used_rows, used_cols)`` int64.

    ``nonzero`` is the weight's bool nonzero pattern; ``act_nonzero[k]`` counts the tokens whose
    activation in column ``k`` is nonzero (the only ones the sender forwards).
    """
    n_rows = mapping.used_rows * mapping.block_rows
    n_cols = mapping.used_cols * mapping.block_cols
    if (n_rows, n_cols) != tuple(nonzero.shape):
        # Pad to whole blocks so that the counts are one reshape and two sums.
        padded = torch.zeros((n_rows, n_cols), dtype=torch.bool)
        padded[: nonzero.shape[0], : nonzero.shape[1]] = nonzero
        nonzero = padded
        act = torch.zeros(n_cols, dtype=torch.int64)
        act[: act_nonzero.numel()] = act_nonzero
        act_nonzero = act
    # Nonzeros of every PE row's block in every input column: (used_rows, n_cols).
    per_column = nonzero.view(mapping.used_rows, mapping.block_rows, n_cols).sum(dim=1, dtype=torch.int64)
    blocks = (mapping.used_rows, mapping.used_cols, mapping.block_cols)
    weights = per_column.view(blocks).sum(dim=-1)
    # Each nonzero weight in column k fires once per nonzero activation arriving in column k.
    macs = (per_column * act_nonzero[None, :]).view(blocks).sum(dim=-1)
    return weights, macs


@dataclass(frozen=True)
class LayerReport:
    """What one linear layer costs on a :class:`DataflowMachine` (chapter 07).

    ``algorithmic_macs`` = tokens x out x in (the dense layer); ``actual_macs`` = multiply-adds the
    machine performs; ``skipped_macs`` = the difference. ``total_cycles`` = the busiest PE (load
    imbalance) + pipeline fill; ``dense_total_cycles`` is the same layer with nothing skipped on the
    same mapping, so ``speedup_vs_dense`` is the machine's own speed-up from sparsity.
    ``utilization`` = actual MACs / (all PEs x total cycles x MACs per cycle).
    """

    name: str
    machine: str
    tokens: int
    out_features: int
    in_features: int
    nonzero_weights: int
    weight_density: float
    nonzero_activations: int
    algorithmic_macs: int
    actual_macs: int
    skipped_macs: int
    pes_used: int
    max_pe_cycles: int
    mean_pe_cycles: float
    fill_cycles: int
    total_cycles: int
    dense_total_cycles: int
    speedup_vs_dense: float
    load_imbalance: float
    utilization: float
    macs_capacity: int  # multiply-adds all PEs could have done in total_cycles
    max_pe_sram_bytes: int
    fits_in_sram: bool
    time_s: float
    cycles_per_pe: torch.Tensor = field(repr=False, compare=False)  # (pe_rows, pe_cols) int64

    def as_dict(self) -> dict:
        """The scalar fields (the per-PE grid left out), for tables and CSV."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cycles_per_pe"}


REPORT_COLUMNS = tuple(f.name for f in dataclasses.fields(LayerReport) if f.name != "cycles_per_pe")


def _report(name: str, machine: DataflowMachine, mapping: BlockMapping, tokens: int,
            weights_pe: np.ndarray, macs_pe: np.ndarray, nonzero_activations: int) -> LayerReport:
    """Turn per-PE counts (int64 arrays over the used PEs) into a :class:`LayerReport`.

    The one place the cycle model lives. NumPy, not torch: these arrays are at most a few hundred
    thousand entries, where single-threaded NumPy has far less overhead per reduction.
    """
    cycles_used = (macs_pe + machine.macs_per_cycle - 1) // machine.macs_per_cycle  # ceil
    cycles = np.zeros((machine.pe_rows, machine.pe_cols), dtype=np.int64)
    cycles[: mapping.used_rows, : mapping.used_cols] = cycles_used
    max_cycles = int(cycles_used.max())
    mean_cycles = float(cycles_used.mean())
    total = max_cycles + machine.fill_cycles
    # Without skipping, the busiest PE is one with a full block (the first one always is).
    dense_total = math.ceil(mapping.block_rows * mapping.block_cols * tokens / machine.macs_per_cycle) \
        + machine.fill_cycles
    nnz = int(weights_pe.sum())
    actual = int(macs_pe.sum())
    algorithmic = tokens * mapping.out_features * mapping.in_features
    sram = int(weights_pe.max()) * (machine.bytes_per_value + machine.bytes_per_index)
    capacity = total * machine.n_pes * machine.macs_per_cycle
    return LayerReport(
        name=name, machine=machine.name, tokens=tokens,
        out_features=mapping.out_features, in_features=mapping.in_features,
        nonzero_weights=nnz, weight_density=nnz / (mapping.out_features * mapping.in_features),
        nonzero_activations=nonzero_activations,
        algorithmic_macs=algorithmic, actual_macs=actual, skipped_macs=algorithmic - actual,
        pes_used=mapping.pes_used, max_pe_cycles=max_cycles, mean_pe_cycles=mean_cycles,
        fill_cycles=machine.fill_cycles, total_cycles=total, dense_total_cycles=dense_total,
        speedup_vs_dense=dense_total / total if total else math.inf,
        # Equal work on every used PE gives 1.0; an all-zero layer is perfectly balanced too.
        load_imbalance=max_cycles / mean_cycles if mean_cycles > 0 else 1.0,
        utilization=actual / capacity if capacity else 0.0, macs_capacity=capacity,
        max_pe_sram_bytes=sram, fits_in_sram=sram <= machine.sram_bytes_per_pe,
        time_s=total / machine.clock_hz, cycles_per_pe=torch.from_numpy(cycles),
    )


def _check_finite(name: str, t: torch.Tensor) -> None:
    # A sum is one fast pass; only when it is not finite (a NaN/inf, or overflow) look closer.
    if not bool(torch.isfinite(t.sum(dtype=torch.float64))) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")


def simulate_linear(x: torch.Tensor, weight: torch.Tensor, machine: DataflowMachine | None = None,
                    *, name: str = "linear") -> tuple[torch.Tensor, LayerReport]:
    """Run ``y = x @ weight.T`` on the dataflow machine: the numeric result and its cost report.

    Explained in chapter 07. ``x`` is ``(..., in_features)`` (all leading dimensions are tokens),
    ``weight`` is ``(out_features, in_features)`` as in ``nn.Linear`` (no bias: add it yourself).
    Zero weights are never stored and zero activations never sent, so neither is computed on.

    ``y`` is computed as a plain matmul of the (already sparse) weight, which is numerically what the
    machine's multiply-adds of nonzeros produce (a zero term adds nothing). The counts are exact:
    ``actual_macs`` = sum over nonzero weights ``W[i, k]`` of the nonzero activations in column ``k``.

    >>> w = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 3.0]])
    >>> y, r = simulate_linear(torch.ones(4, 2), w, DataflowMachine(pe_rows=1, pe_cols=1))
    >>> y[0].tolist(), r.algorithmic_macs, r.actual_macs, r.skipped_macs
    ([1.0, 0.0, 5.0], 24, 12, 12)
    """
    m = as_machine(machine)
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise ValueError("x and weight must be torch tensors")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"shape mismatch: x has shape {tuple(x.shape)} but weight {tuple(weight.shape)} "
                         f"expects x[..., {weight.shape[1]}]")
    if not (x.is_floating_point() and weight.is_floating_point()):
        raise ValueError(f"x and weight must be floating point, got {x.dtype} and {weight.dtype}")
    if x.dtype != weight.dtype:
        raise ValueError(f"x and weight must share a dtype, got {x.dtype} and {weight.dtype}")
    if weight.shape[0] < 1 or weight.shape[1] < 1:
        raise ValueError(f"weight of shape {tuple(weight.shape)} has no entries")
    tokens = x.numel() // weight.shape[1]
    if tokens < 1:
        raise ValueError(f"x of shape {tuple(x.shape)} holds no tokens")
    _check_finite("x", x)
    _check_finite("weight", weight)
    mapping = block_mapping(weight.shape[0], weight.shape[1], m)

    x2 = x.reshape(tokens, weight.shape[1])
    y = (x2 @ weight.T).reshape(*x.shape[:-1], weight.shape[0])
    nonzero = (weight != 0).cpu()
    act_nonzero = (x2 != 0).sum(dim=0).cpu()
    weights_pe, macs_pe = _per_pe_counts(nonzero, act_nonzero, mapping)
    return y, _report(name, m, mapping, tokens, weights_pe.numpy(), macs_pe.numpy(), int(act_nonzero.sum()))


# --------------------------------------------------------------------------------------------------
# Sparsity sweeps without materialising masks
# --------------------------------------------------------------------------------------------------


def kept_weights(numel: int, sparsity: float) -> int:
    """Nonzeros left by an exact-count mask: ``numel - floor(sparsity * numel)`` (the book's convention,
    :func:`spdf_lib.sparsity.n_masked`)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity={sparsity!r} must lie in [0, 1]")
    return numel - n_masked(sparsity, numel)


def sweep_linear(out_features: int, in_features: int, tokens: int, sparsities: Sequence[float],
                 machine: DataflowMachine | None = None, *, seed: int = 0, name: str = "linear") -> list[LayerReport]:
    """Reports of one layer under nested uniformly random exact-count masks (dense activations).

    Explained in chapter 07. Instead of drawing a mask per level, it draws how many nonzeros each PE
    gets, which for a uniformly random exact-count mask is a multivariate hypergeometric draw over
    the PE blocks; thinning one draw to the next level keeps the masks nested (a random subset of a
    random subset is a random subset). This is the same distribution :func:`spdf_lib.sparsity.random_mask` gives,
    without materialising tens of millions of entries per level.
    """
    m = as_machine(machine)
    if tokens < 1:
        raise ValueError(f"tokens={tokens} must be >= 1")
    mapping = block_mapping(out_features, in_features, m)
    numel = out_features * in_features
    rng = np.random.default_rng(seed)
    counts = mapping.block_sizes().ravel()
    reports: dict[float, LayerReport] = {}
    for s in sorted(set(float(s) for s in sparsities)):  # loop over levels, not over PEs
        keep = kept_weights(numel, s)
        if keep < int(counts.sum()):
            counts = rng.multivariate_hypergeometric(counts, keep, method="marginals")
        weights_pe = counts.reshape(mapping.used_rows, mapping.used_cols)
        reports[s] = _report(name, m, mapping, tokens, weights_pe, weights_pe * tokens, tokens * in_features)
    return [reports[float(s)] for s in sparsities]


# --------------------------------------------------------------------------------------------------
# A transformer block
# --------------------------------------------------------------------------------------------------

BLOCK_LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def block_linear_shapes(config) -> list[tuple[str, int, int]]:
    """``(name, out_features, in_features)`` of the four sparsified linears of one GPT block.

    ``config`` is a :class:`spdf_lib.model.GPTConfig` (anything with ``n_embd`` and ``d_ff``).
    """
    d, ff = int(config.n_embd), int(config.d_ff)
    return [("attn.c_attn", 3 * d, d), ("attn.c_proj", d, d), ("mlp.c_fc", ff, d), ("mlp.c_proj", d, ff)]


def sweep_block(config, tokens: int, sparsities: Sequence[float], machine: DataflowMachine | None = None,
                *, seed: int = 0) -> list[LayerReport]:
    """Per-layer reports of one transformer block's linears at every sparsity level (chapter 07).

    The layers run one after another, each spread over the whole grid; see :func:`block_totals`.
    """
    reports = []
    for i, (name, out_f, in_f) in enumerate(block_linear_shapes(config)):
        reports += sweep_linear(out_f, in_f, tokens, sparsities, machine, seed=seed + i, name=name)
    return reports


def reports_by_level(reports: Sequence[LayerReport], n_levels: int) -> list[list[LayerReport]]:
    """Regroup :func:`sweep_block`'s layer-major reports into one list of the block's layers per level."""
    if n_levels < 1 or len(reports) % n_levels:
        raise ValueError(f"{len(reports)} reports do not split into {n_levels} sparsity levels")
    return [list(reports[i::n_levels]) for i in range(n_levels)]


def block_totals(reports: Iterable[LayerReport]) -> dict:
    """Sum a block's layer reports: MACs add up, and so do cycles (layers run in sequence)."""
    reports = list(reports)
    if not reports:
        raise ValueError("no layer reports to add up")
    total = sum(r.total_cycles for r in reports)
    dense = sum(r.dense_total_cycles for r in reports)
    nnz = sum(r.nonzero_weights for r in reports)
    numel = sum(r.out_features * r.in_features for r in reports)
    actual = sum(r.actual_macs for r in reports)
    capacity = sum(r.macs_capacity for r in reports)
    return {
        "layers": len(reports),
        "weight_density": nnz / numel,
        "algorithmic_macs": sum(r.algorithmic_macs for r in reports),
        "actual_macs": actual,
        "skipped_macs": sum(r.skipped_macs for r in reports),
        "total_cycles": total,
        "dense_total_cycles": dense,
        "speedup_vs_dense": dense / total if total else math.inf,
        "utilization": actual / capacity if capacity else 0.0,
    }


def simulate_module_linears(model: torch.nn.Module, forward: Callable[[], object], names: Sequence[str],
                            machine: DataflowMachine | None = None) -> tuple[list[LayerReport], float]:
    """Simulate the named ``nn.Linear`` modules of ``model`` on the inputs a real forward pass feeds them.

    Explained in chapter 07 (the STONNE habit: the simulated layer is checked against the real one).
    Forward hooks capture each module's input and output during ``forward()``; each input is then run
    through :func:`simulate_linear` with the module's weight (plus its bias) and compared with what the
    module itself returned. Returns the reports and the largest relative error seen.
    """
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules or not isinstance(modules[n], torch.nn.Linear)]
    if missing:
        raise ValueError(f"not nn.Linear modules of the model: {missing}")
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def capture(module, inputs, output):
            seen[name] = (inputs[0].detach(), output.detach())
        return capture

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            forward()
    finally:
        for h in handles:
            h.remove()
    reports, worst = [], 0.0
    for n in names:
        if n not in seen:
            raise ValueError(f"module {n!r} was not called by forward()")
        x, out = seen[n]
        lin = modules[n]
        y, rep = simulate_linear(x.float(), lin.weight.detach().float(), machine, name=n)
        if lin.bias is not None:
            y = y + lin.bias.detach().float()
        worst = max(worst, float((y - out.float()).norm() / out.float().norm().clamp_min(1e-30)))
        reports.append(rep)
    return reports, worst


# --------------------------------------------------------------------------------------------------
# Reports as tables
# --------------------------------------------------------------------------------------------------


def reports_to_csv_text(reports: Iterable[LayerReport], extra: dict | None = None) -> str:
    """Per-layer CSV (one row per report, SCALE-Sim style); ``extra`` columns are prepended."""
    extra = dict(extra or {})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*extra, *REPORT_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for r in reports:
        writer.writerow({**extra, **r.as_dict()})
    return buf.getvalue()


def write_reports_csv(reports: Iterable[LayerReport], path: Path, extra: dict | None = None) -> Path:
    """Write :func:`reports_to_csv_text` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, reports_to_csv_text(reports, extra))
    return path


def reports_frame(reports: Iterable[LayerReport]):
    """The reports as a pandas DataFrame (one row per layer report)."""
    import pandas as pd

    return pd.DataFrame([r.as_dict() for r in reports], columns=list(REPORT_COLUMNS))


__all__ = [
    "DataflowMachine", "DEFAULT_MACHINE", "as_machine", "BlockMapping", "block_mapping", "LayerReport",
    "REPORT_COLUMNS", "simulate_linear", "kept_weights", "sweep_linear", "BLOCK_LINEARS", "block_linear_shapes",
    "sweep_block", "reports_by_level", "block_totals", "simulate_module_linears", "reports_to_csv_text",
    "write_reports_csv", "reports_frame",
]
