"""What chapter 07 builds from the simulator, the roofline model and the measured kernels.

The chapter's cells call the simulator and the models themselves; this module holds what it builds
around them: the tables it shows, the block sweep set against chapter 02's FLOP model, the grid-size
sweep, the four speed-up curves of one GPT block (:class:`SpeedupCurves`), and the sentences the
chapter writes about them. Every number in those sentences is computed here from the arguments;
none is typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .bandwidth import GPUModel
from .simulator import DataflowMachine, LayerReport, block_totals, reports_by_level, reports_frame, sweep_block


def pct(x: float) -> str:
    """A fraction as a whole percentage: ``0.75`` -> ``"75%"``."""
    return f"{100 * x:.0f}%"


def _cell(value) -> str:
    """A table cell: thousands separators for counts, 4 significant digits for ratios."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


# ------------------------------------------------------------------------------------------- tables

def machine_table(machine: DataflowMachine) -> pd.DataFrame:
    """The machine's parameters and what follows from them (peak, SRAM bandwidth, pipeline fill)."""
    rows = [(f"{name}", _cell(value)) for name, value in vars(machine).items()]
    rows += [("PEs", f"{machine.n_pes:,}"),
             ("peak", f"{machine.peak_flops / 1e12:.1f} TFLOP/s (a multiply-add = 2 FLOPs)"),
             ("SRAM bandwidth", f"{machine.memory_bandwidth / 1e12:.1f} TB/s ({machine.words_per_mac} words of "
                                f"{machine.bytes_per_value} bytes per multiply-add, every PE, every cycle)"),
             ("pipeline fill", f"{machine.fill_cycles} cycles (one hop per PE across the grid diameter)")]
    return pd.DataFrame(rows, columns=["parameter", "value"])


def counter_table(report: LayerReport) -> pd.DataFrame:
    """Every counter of one layer report, one per row."""
    return pd.DataFrame([(k, _cell(v)) for k, v in report.as_dict().items()], columns=["counter", "value"])


SWEEP_COLUMNS = ("sparsity", "nonzero_weights", "actual_macs", "skipped_macs", "max_pe_cycles", "total_cycles",
                 "load_imbalance", "utilization", "speedup_vs_dense")
SWEEP_FORMATS = {"sparsity": "{:.0%}", "load_imbalance": "{:.3f}", "utilization": "{:.1%}",
                 "speedup_vs_dense": "{:.2f}x", "nonzero_weights": "{:,}", "actual_macs": "{:,}",
                 "skipped_macs": "{:,}", "max_pe_cycles": "{:,}", "total_cycles": "{:,}"}


def sweep_table(reports: Sequence[LayerReport], sparsities: Sequence[float]) -> pd.DataFrame:
    """A layer's reports at every sparsity level, the columns the chapter discusses."""
    return reports_frame(reports).assign(sparsity=list(sparsities))[list(SWEEP_COLUMNS)]


BLOCK_COLUMNS = ("sparsity", "actual_macs", "flop_model_macs", "relative_gap", "total_cycles", "utilization",
                 "speedup_vs_dense")
BLOCK_FORMATS = {"sparsity": "{:.0%}", "actual_macs": "{:,}", "flop_model_macs": "{:,.0f}", "relative_gap": "{:.1e}",
                 "total_cycles": "{:,}", "utilization": "{:.1%}", "speedup_vs_dense": "{:.2f}x"}


def block_table(reports: Sequence[LayerReport], sparsities: Sequence[float],
                flop_model_macs: Sequence[float]) -> pd.DataFrame:
    """One row per sparsity level: the block's totals (:func:`block_totals` of :func:`sweep_block`'s
    reports) beside the multiply-adds the FLOP model counts, and their relative gap."""
    if len(flop_model_macs) != len(sparsities):
        raise ValueError(f"{len(flop_model_macs)} FLOP-model counts for {len(sparsities)} sparsity levels")
    rows = []
    for s, layers, expected in zip(sparsities, reports_by_level(reports, len(sparsities)), flop_model_macs):
        totals = block_totals(layers)
        rows.append({"sparsity": s, **totals, "flop_model_macs": expected,
                     "relative_gap": abs(totals["actual_macs"] - expected) / expected})
    return pd.DataFrame(rows)


MEASURED_FORMATS = {"sparsity": "{:.0%}", "dense_ms": "{:.3f}", "sparse_ms": "{:.3f}", "speedup": "{:.3f}x"}
BANDWIDTH_FORMATS = {"intensity_flop_per_byte": "{:.3g}", "peak_tflops": "{:.1f}", "required_tb_s": "{:.3g}",
                     "available_tb_s": "{:.3g}", "fraction_of_peak": "{:.2%}"}


# ------------------------------------------------------------------------------------------- sweeps

def grid_sweep(config, tokens: int, sparsities: Sequence[float], machine: DataflowMachine,
               grids: Sequence[int]) -> dict[int, list[float]]:
    """Simulated whole-block speed-up over dense at every sparsity level, for square grids of
    ``g x g`` PEs (the same machine otherwise): grid side -> one speed-up per level."""
    return {g: [block_totals(layers)["speedup_vs_dense"]
                for layers in reports_by_level(sweep_block(config, tokens, sparsities, machine.with_grid(g)),
                                               len(sparsities))]
            for g in grids}


@dataclass(frozen=True)
class SpeedupCurves:
    """Speed-up over dense of one GPT block at each sparsity level, four ways (chapter 07).

    ``ideal`` = 1 / (1 - s); ``simulated`` = the dataflow machine's; ``roofline_one_pass`` and
    ``roofline_axpy`` = the GPU roofline's unstructured kernel reading every operand once, and run as
    one AXPY per nonzero (the two edges of a band); ``roofline_2_4`` = the 2:4 kernel at 50%.
    """

    sparsities: tuple[float, ...]
    simulated: tuple[float, ...]
    roofline_one_pass: tuple[float, ...]
    roofline_axpy: tuple[float, ...]
    roofline_2_4: float
    roofline_tokens: int
    machine: DataflowMachine
    gpu: GPUModel

    def __post_init__(self):
        for name in ("sparsities", "simulated", "roofline_one_pass", "roofline_axpy"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not len(self.sparsities) == len(self.simulated) == len(self.roofline_one_pass) == len(self.roofline_axpy):
            raise ValueError("SpeedupCurves: every curve needs one value per sparsity level")

    @property
    def ideal(self) -> tuple[float, ...]:
        return tuple(1.0 / (1.0 - s) for s in self.sparsities)

    def at(self, curve: str, sparsity: float) -> float:
        """The value of one curve (a field name, or ``"ideal"``) at one of the sparsity levels."""
        index = next((i for i, s in enumerate(self.sparsities) if math.isclose(s, sparsity)), None)
        if index is None:
            raise ValueError(f"sparsity {sparsity} is not one of the levels {self.sparsities}")
        return getattr(self, curve)[index]


# ------------------------------------------------------------------------------------------ prose

def layer_markdown(layer: LayerReport, rel_err: float, machine: DataflowMachine) -> str:
    """What one simulated layer shows: the check against ``nn.Linear``, the skipped work, and why the
    machine falls short of the ideal speed-up."""
    return (
        f"The simulated layer matches `nn.Linear` to a relative error of {rel_err:.1e}. Of the "
        f"{layer.algorithmic_macs:,} multiply-adds the dense layer would do, the machine does "
        f"{layer.actual_macs:,} ({pct(layer.actual_macs / layer.algorithmic_macs)}) and skips "
        f"{layer.skipped_macs:,}. The ideal speed-up at this density is {1 / layer.weight_density:.2f}x; the "
        f"machine gets {layer.speedup_vs_dense:.2f}x, because its busiest PE holds {layer.load_imbalance:.2f} times "
        f"the mean number of nonzeros (random masks do not spread evenly over {layer.pes_used:,} blocks of "
        f"{layer.out_features * layer.in_features // layer.pes_used:,} weights) and the pipeline fill adds "
        f"{layer.fill_cycles} cycles. Utilisation is {pct(layer.utilization)}; the largest PE needs "
        f"{layer.max_pe_sram_bytes:,} bytes of its {machine.sram_bytes_per_pe:,}-byte SRAM for weights.")


def block_markdown(table: pd.DataFrame, exact_levels: Sequence[float]) -> str:
    """How closely the simulated block's multiply-adds follow the FLOP model."""
    return (
        f"Across the {len(table)} sparsity levels the simulated block's actual MACs differ from the FLOP model's "
        f"by at most a relative {table['relative_gap'].max():.1e}: exact-count masks zero `floor(s x numel)` "
        f"weights, the FLOP model counts `(1 - s) x numel` kept ones, so the two differ by the rounding of at most "
        f"one weight per matrix, and not at all where `s x numel` is a whole number (here at "
        f"{', '.join(pct(s) for s in exact_levels)}).")


def forward_markdown(preset: str, config, level: float, error: float, totals: dict, flop_model_macs: float) -> str:
    """What the simulated linears of a real forward pass show."""
    zeros = "no" if totals["actual_macs"] == flop_model_macs else "some"
    return (
        f"In a real forward pass through one `{preset}`-width block (d = {config.n_embd}, FFN {config.d_ff}) at "
        f"{pct(level)} sparsity, the four simulated linears reproduce the modules' outputs to a relative error of "
        f"{error:.1e}; they perform {totals['actual_macs']:,} multiply-adds against {flop_model_macs:,.0f} from the "
        f"FLOP model (the activations after LayerNorm and GELU contain {zeros} exact zeros to skip).")


def bandwidth_markdown(bandwidth: pd.DataFrame, gpu: GPUModel, machine: DataflowMachine) -> str:
    """What the bandwidth table says: dense GEMM fits a GPU's DRAM, AXPY does not; SRAM feeds AXPY."""
    def row(system: str, level: str):
        return bandwidth[(bandwidth["system"] == system) & (bandwidth["level"] == level)].iloc[0]

    gemm, axpy, own = row(gpu.name, "GEMM"), row(gpu.name, "AXPY"), row(machine.name, "AXPY")
    return (
        f"On the GPU a dense GEMM needs {gemm['required_tb_s']:.3g} TB/s to run at its {gpu.dense_flops / 1e12:.0f} "
        f"TFLOP/s peak, within the {gpu.dram_bandwidth / 1e12:.3g} TB/s its HBM delivers. An AXPY, and therefore a "
        f"sparse GEMM seen as one AXPY per nonzero, would need {axpy['required_tb_s']:,.0f} TB/s, "
        f"{axpy['required_tb_s'] / axpy['available_tb_s']:,.0f} times more; from DRAM it can run at "
        f"{axpy['fraction_of_peak']:.2%} of peak. The dataflow machine's SRAM, by construction, supplies the "
        f"{own['required_tb_s']:.3g} TB/s its own AXPYs need. Real GPUs keep reused operands in caches and "
        f"registers, which is why a good sparse kernel does better than this worst case; the next section "
        f"brackets the GPU between the two.")


def measurements_markdown(measurements: pd.DataFrame, source: Path) -> str:
    """Which kernel tables were read, from where, and how to add a GPU table when none is present."""
    if measurements.empty:
        text = "No kernel measurements are present."
    else:
        found = measurements.drop_duplicates(["source_file"])

        def repeats(name: str) -> str:
            if "repeats" not in measurements:
                return ""
            counts = sorted({int(n) for n in measurements.loc[measurements["source_file"] == name, "repeats"].dropna()})
            return f", each time the median of {'/'.join(map(str, counts))} timed calls" if counts else ""
        text = "Kernel measurements present: " + "; ".join(
            f"`{r.source_file}` ({r.device}: {r.device_name}, torch {r.torch}, {r.tokens} tokens per matmul"
            f"{repeats(r.source_file)})" for r in found.itertuples()) + (
            ". One measurement per kernel: the block times and speed-ups below carry no interval.")
    if measurements.empty or not (measurements["device"] == "cuda").any():
        text += (" No GPU table is present yet, so only the CPU is measured; run "
                 "`python scripts/measure_sparse_kernels.py --device cuda --sizes xl "
                 "--out tables/kernels/sparse_kernels_h100.csv` on a GPU to add one.")
    return f"{text} (Read from `{Path(source).relative_to(Path(source).parents[1])}`.)"


def _measured_at(measured: pd.DataFrame, kernel: str, sparsity: float, device: str) -> str:
    rows = measured[(measured["kernel"] == kernel) & np.isclose(measured["sparsity"], sparsity)
                    & (measured["device"] == device)]
    return ", ".join(f"{r.speedup:.2f}x on {r.device_name}" for r in rows.itertuples()) or "not measured"


def _gpu_band_sentence(curves: SpeedupCurves, measured: pd.DataFrame) -> str:
    """Do the GPU's measured CSR points fall inside the roofline band at the same sparsity and tokens?"""
    gpu_csr = measured[(measured["device"] == "cuda") & (measured["kernel"] == "csr")
                       & (measured["tokens"] == curves.roofline_tokens)]
    band = {round(s, 2): (lo, hi) for s, lo, hi in zip(curves.sparsities, curves.roofline_axpy,
                                                         curves.roofline_one_pass)}
    inside = [band[round(r.sparsity, 2)][0] <= r.speedup <= band[round(r.sparsity, 2)][1]
              for r in gpu_csr.itertuples() if round(r.sparsity, 2) in band]
    if inside and all(inside):
        return (f" On the GPU all {len(inside)} measured CSR points lie inside the roofline band: the real kernel "
                f"is slower than the one-pass bound but much faster than one AXPY per nonzero from DRAM, which "
                f"suggests its caches give it some, not full, reuse.")
    if inside:
        return f" On the GPU {sum(inside)} of {len(inside)} measured CSR points lie inside the roofline band."
    return " No GPU measurement at the roofline's token count is present to place against the band."


def _cpu_load_sentence(measurements: pd.DataFrame) -> str:
    """CPU timings are sensitive to other work on the machine: say how busy it was."""
    cpu = measurements[measurements["device"] == "cpu"] if not measurements.empty else measurements
    if not len(cpu) or "load_avg_1min" not in cpu or not cpu["load_avg_1min"].notna().any():
        return ""
    return (f" The CPU table was timed on {int(cpu['threads'].iloc[0])} threads with a 1-minute load average "
            f"between {cpu['load_avg_1min'].min():.1f} and {cpu['load_avg_1min'].max():.1f}; a load above the "
            f"thread count means other work shared the cores, so treat its times as rough.")


def findings_markdown(curves: SpeedupCurves, grid_speedups: Mapping[int, Sequence[float]],
                      grid_sparsities: Sequence[float], measured: pd.DataFrame, measurements: pd.DataFrame,
                      level: float = 0.75, high: float = 0.95) -> str:
    """The chapter's conclusions, every number computed: the simulated machine against the ideal at
    ``level`` and ``high`` sparsity, its loss by grid size, the GPU roofline, and the measured kernels.

    Raises ValueError when the grid sweep does not show the loss growing with the grid, which the
    text states.
    """
    g = list(grid_sparsities).index(level)
    grids = sorted(grid_speedups)
    if not all(grid_speedups[a][g] >= grid_speedups[b][g] for a, b in zip(grids, grids[1:])):
        raise ValueError(f"the simulated speed-up at {pct(level)} does not fall as the grid grows: {grid_speedups}")
    small, large = grids[0], grids[-1]
    one_pass = curves.roofline_one_pass
    breakeven = next((s for s, v in zip(curves.sparsities, one_pass) if v >= 1.0), None)
    beats = (f"; it only beats dense from {pct(breakeven)} sparsity on." if breakeven is not None
             else "; it never beats dense in this range.")
    measured_line = (
        f"* **Measured kernels** (block totals, fastest dense kernel as the baseline): CSR at {pct(level)} gives "
        f"{_measured_at(measured, 'csr', level, 'cpu')} and {_measured_at(measured, 'csr', level, 'cuda')}; at "
        f"{pct(high)} {_measured_at(measured, 'csr', high, 'cpu')} and {_measured_at(measured, 'csr', high, 'cuda')}. "
        f"2:4 at 50%, which PyTorch runs on CUDA GPUs only: {_measured_at(measured, '2:4', 0.5, 'cuda')}."
        + _gpu_band_sentence(curves, measured) + _cpu_load_sentence(measurements))
    return "\n".join([
        "## What this shows",
        "",
        f"* **The count is the easy part.** At {pct(level)} sparsity the FLOP count promises "
        f"{curves.at('ideal', level):.1f}x. The simulated dataflow machine turns it into "
        f"{curves.at('simulated', level):.2f}x for a whole block, and {curves.at('simulated', high):.1f}x of the ideal "
        f"{curves.at('ideal', high):.0f}x at {pct(high)}. What it loses is load imbalance: with a random mask some "
        f"PEs get more nonzeros than others and everyone waits for the busiest. The loss grows as each PE's share "
        f"shrinks: at {pct(level)}, {small}x{small} PEs reach {grid_speedups[small][g]:.2f}x and {large}x{large} PEs "
        f"{grid_speedups[large][g]:.2f}x. A real compiler can rebalance nonzeros across PEs; this model does not, "
        f"so it is a floor for the mapping it states.",
        f"* **A GPU needs its dense units.** In the roofline model an unstructured sparse kernel that loses the "
        f"tensor cores but reads every operand only once reaches {curves.at('roofline_one_pass', level):.2f}x at "
        f"{pct(level)} and {curves.at('roofline_one_pass', high):.2f}x at {pct(high)}{beats} Run as one AXPY per "
        f"nonzero from DRAM it reaches {curves.at('roofline_axpy', level):.3f}x at {pct(level)}. The 2:4 format "
        f"keeps the tensor cores and could give at most {curves.roofline_2_4:.2f}x, at 50% only.",
        measured_line,
        "",
        "So the blog's argument holds in this model: skipping zeros pays only where every operand of every "
        "multiply-add can be fetched at AXPY rate, which on-chip memory next to each PE provides and DRAM behind a "
        "GPU does not. The simulator also shows what the argument leaves out: a fine-grained machine needs the "
        "nonzeros spread evenly over its PEs to collect the full saving.",
    ])


__all__ = ["pct", "machine_table", "counter_table", "SWEEP_COLUMNS", "SWEEP_FORMATS", "sweep_table", "BLOCK_COLUMNS",
           "BLOCK_FORMATS", "block_table", "MEASURED_FORMATS", "BANDWIDTH_FORMATS", "grid_sweep", "SpeedupCurves",
           "layer_markdown", "block_markdown", "forward_markdown", "bandwidth_markdown", "measurements_markdown",
           "findings_markdown"]
