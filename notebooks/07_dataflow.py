# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 Turning fewer FLOPs into less time: a dataflow model and real kernels

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %% [markdown]
# Chapter 02 counted the FLOPs that sparse pre-training saves: a zero weight is a multiply-add that
# need not happen. Whether that saving becomes *time* depends on the machine. The companion blog post
# on the hardware side makes two claims about it:
#
# > "a sparse GEMM is simply a collection of AXPY operations, with one operation for every non-zero
# > element. This level of memory bandwidth is the first key enabler for unstructured sparsity
# > acceleration."
# >
# > "We filter out all the zero data at the sender, so the receiver does not even see it. Only
# > non-zero data is sent, and that triggers all the computation."
# >
# > — Sean Lie, Cerebras blog, November 2022 (`paper/001_dd0400cd47305eae.txt`)
#
# This chapter makes that argument countable and then checks it against kernels that exist today:
#
# 1. a **simulator** of a simplified dataflow machine that counts, for a real weight matrix, the
#    multiply-adds it performs, how they spread over the processing elements and how many cycles
#    that takes (the counting vocabulary of Sparseloop and SCALE-Sim, and STONNE's habit of checking
#    the simulated layer against a real `nn.Linear`);
# 2. a **bandwidth model** by BLAS level: how many bytes per second GEMM, GEMV and AXPY need to run
#    at full speed, on a GPU with off-chip DRAM and on a machine whose operands sit in on-chip SRAM;
# 3. **speed-up versus sparsity** four ways: the ideal, the simulated dataflow machine, a GPU
#    roofline model, and measured sparse kernels on a CPU and (when its table is present) an H100.
#
# The machine in this chapter is a deliberately simple model, not a model of any product: its
# parameters are illustrative, and the chapter varies the one that matters most.

# %%
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from spdf_lib import dataflow as df
from spdf_lib.flops import forward_flops_per_token
from spdf_lib.model import GPT, PRESETS
from spdf_lib.sparsity import SparsitySpec, sparsify

# Tokens streamed through each layer, and how much of the chapter runs, by profile. Counts scale
# linearly with tokens; speed-ups and utilisation barely depend on them.
TOKENS = {"smoke": 64}.get(P.name, 256)
SPARSITIES = [round(0.05 * i, 2) for i in range(20)]  # 0% to 95%
GRIDS = (32, 64, 128, 256, 512)  # PE grid sizes for the load-imbalance sweep
GRID_SPARSITIES = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95]  # coarser: a 512x512 grid has 262,144 PEs to draw
ROOFLINE_TOKENS = 8192  # tokens per matmul of the GPU model: the H100 measurement's size
XL = PRESETS["gpt3-xl"]
out_dir = Path(tables_dir) / P.name
out_dir.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
machine = df.DEFAULT_MACHINE


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def fmt(value) -> str:
    """A table cell: thousands separators for counts, 4 significant digits for ratios."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def by_level(reports: list, n_levels: int = len(SPARSITIES)) -> list[list]:
    """Regroup sweep_block's layer-major reports into one list of four layers per sparsity level."""
    return [reports[i::n_levels] for i in range(n_levels)]


# %% [markdown]
# ## The machine
#
# A grid of processing elements (PEs), each with its own SRAM and one multiply-add unit. A weight
# matrix `W` (out x in, as in `nn.Linear`) is cut into blocks: output rows down the grid, input
# columns across it, so PE `(r, c)` owns one block and stores only that block's **nonzero** weights.
# Activations stream in from the edge; a zero activation is never sent. Every nonzero activation
# `x[t, k]` that reaches a PE triggers one multiply-add per nonzero weight the PE holds in column
# `k`. So a PE's work is exactly (its nonzeros) x (tokens) when activations are dense, and the layer
# is done when the **busiest** PE is done, plus the cycles it takes the first data to cross the grid.

# %% tags=["hide-input"]
display(Markdown("\n".join(
    ["| parameter | value |", "|---|---|"]
    + [f"| `{k}` | {v} |" for k, v in vars(machine).items()]
    + [f"| PEs | {machine.n_pes:,} |",
       f"| peak | {machine.peak_flops / 1e12:.1f} TFLOP/s (a multiply-add = 2 FLOPs) |",
       f"| SRAM bandwidth | {machine.memory_bandwidth / 1e12:.1f} TB/s "
       f"({machine.words_per_mac} words of {machine.bytes_per_value} bytes per multiply-add, every PE, every cycle) |",
       f"| pipeline fill | {machine.fill_cycles} cycles (one hop per PE across the grid diameter) |"]
)))

# %% [markdown]
# ## One GPT-3 XL layer, simulated and checked
#
# The first feed-forward matrix of GPT-3 XL (`mlp.c_fc`, 8192 x 2048) at 75% unstructured sparsity,
# with an exact-count random mask as in SPDF pre-training, and a batch of random activations. The
# simulator computes the output as a plain matmul of the sparse weight, which is numerically what the
# machine's multiply-adds of nonzeros produce (a zero term adds nothing); comparing it with a real
# `nn.Linear` that shares the weight therefore checks the plumbing (shapes, token dimensions, the
# weight the machine was given). The counts are the simulator's real output, and they are checked
# against an independent count: nonzero weights x tokens.

# %%
gen = torch.Generator().manual_seed(0)
out_f, in_f = XL.d_ff, XL.n_embd
weight = torch.randn(out_f, in_f, generator=gen) * 0.02 * df.random_mask((out_f, in_f), 0.75, gen)
x = torch.randn(TOKENS, in_f, generator=gen)

y, layer = df.simulate_linear(x, weight, machine, name="mlp.c_fc")
linear = torch.nn.Linear(in_f, out_f, bias=False)
with torch.no_grad():
    linear.weight.copy_(weight)
    reference = linear(x)
rel_err = float((y - reference).norm() / reference.norm())
assert rel_err <= 1e-5, rel_err
assert layer.actual_macs == TOKENS * int((weight != 0).sum())

display(Markdown("\n".join(
    ["| counter | value |", "|---|---|"]
    + [f"| {k} | {fmt(v)} |" for k, v in layer.as_dict().items()]
)))
display(Markdown(
    f"The simulated layer matches `nn.Linear` to a relative error of {rel_err:.1e}. Of the "
    f"{layer.algorithmic_macs:,} multiply-adds the dense layer would do, the machine does "
    f"{layer.actual_macs:,} ({pct(layer.actual_macs / layer.algorithmic_macs)}) and skips "
    f"{layer.skipped_macs:,}. The ideal speed-up at this density is "
    f"{1 / layer.weight_density:.2f}x; the machine gets {layer.speedup_vs_dense:.2f}x, because its busiest "
    f"PE holds {layer.load_imbalance:.2f} times the mean number of nonzeros (random masks do not spread "
    f"evenly over {layer.pes_used:,} blocks of {out_f * in_f // layer.pes_used:,} weights) and the pipeline "
    f"fill adds {layer.fill_cycles} cycles. Utilisation is {pct(layer.utilization)}; the largest PE needs "
    f"{layer.max_pe_sram_bytes:,} bytes of its {machine.sram_bytes_per_pe:,}-byte SRAM for weights."
))

# %%
fig, ax = plt.subplots(figsize=(6.5, 5))
image = ax.imshow(layer.cycles_per_pe.numpy(), cmap="viridis", interpolation="nearest")
fig.colorbar(image, ax=ax, label="busy cycles of the PE")
ax.set_xlabel("PE column (input-feature block)")
ax.set_ylabel("PE row (output-feature block)")
ax.set_title(f"mlp.c_fc at 75% sparsity, {TOKENS} tokens: work per PE\n"
             f"(the slowest PE sets the layer's time: {layer.max_pe_cycles:,} vs mean "
             f"{layer.mean_pe_cycles:,.0f} cycles)")
plt.show()

# %% [markdown]
# ## The same layer from dense to 95% sparse
#
# Drawing a 16.8-million-entry mask per level is the slow part, and unnecessary: for a uniformly
# random exact-count mask, the number of nonzeros that land in each PE's block follows a
# multivariate hypergeometric distribution, which `sweep_linear` samples directly. Thinning one draw
# to the next level keeps the masks nested, as if the same weights stayed pruned. (The tests check
# this against materialised masks.)

# %%
layer_sweep = df.sweep_linear(out_f, in_f, TOKENS, SPARSITIES, machine, name="mlp.c_fc")
df.write_reports_csv(layer_sweep, out_dir / "dataflow_layer_sweep.csv", extra={"profile": P.name})
layer_table = df.reports_frame(layer_sweep).assign(sparsity=SPARSITIES)
layer_table[["sparsity", "nonzero_weights", "actual_macs", "skipped_macs", "max_pe_cycles", "total_cycles",
             "load_imbalance", "utilization", "speedup_vs_dense"]].style.format(
    {"sparsity": "{:.0%}", "load_imbalance": "{:.3f}", "utilization": "{:.1%}", "speedup_vs_dense": "{:.2f}x",
     "nonzero_weights": "{:,}", "actual_macs": "{:,}", "skipped_macs": "{:,}", "max_pe_cycles": "{:,}",
     "total_cycles": "{:,}"}).hide(axis="index")

# %% [markdown]
# ## A whole GPT-3 XL block
#
# A transformer block has four sparsified linears: the fused QKV projection, the attention output
# projection and the two feed-forward matrices. The machine runs them one after another, each spread
# over the whole grid, so their cycles add up. (Attention scores and the weighted sum of values are
# products of two activations, dense in SPDF, and are left out here as they are from the sparse part
# of chapter 02's FLOP model.)
#
# Two checks tie the simulator to the rest of the book:
#
# * its **actual MACs for one block equal the FLOP model's sparse linear FLOPs divided by 2**, at
#   every sparsity level (chapter 02's `forward_flops_per_token(...).linear`, per layer);
# * run inside a real `GPT` from `spdf_lib.model`, sparsified with `spdf_lib.sparsity`, each
#   simulated linear reproduces what the module computed on the activations the forward pass fed it.

# %%
block_sweep = df.sweep_block(XL, TOKENS, SPARSITIES, machine)
df.write_reports_csv(block_sweep, out_dir / "dataflow_block_sweep.csv", extra={"profile": P.name})
block_rows, worst_gap = [], 0.0
for s, reps in zip(SPARSITIES, by_level(block_sweep)):
    totals = df.block_totals(reps)
    flop_model_macs = forward_flops_per_token(XL, s).linear / XL.n_layer * TOKENS / 2
    # Exact-count masks zero floor(s * numel) weights; the FLOP model uses (1 - s) * numel exactly,
    # so the two may differ by the rounding of at most one weight per matrix.
    gap = abs(totals["actual_macs"] - flop_model_macs) / flop_model_macs
    worst_gap = max(worst_gap, gap)
    block_rows.append({"sparsity": s, **totals, "flop_model_macs": flop_model_macs, "relative_gap": gap})
block_table = pd.DataFrame(block_rows)
assert worst_gap <= 4 * TOKENS / block_table["flop_model_macs"].min(), worst_gap
assert (block_table.loc[block_table["sparsity"].isin([0.0, 0.25, 0.5, 0.75]), "relative_gap"] == 0).all()
block_table[["sparsity", "actual_macs", "flop_model_macs", "relative_gap", "total_cycles", "utilization",
             "speedup_vs_dense"]].style.format(
    {"sparsity": "{:.0%}", "actual_macs": "{:,}", "flop_model_macs": "{:,.0f}", "relative_gap": "{:.1e}",
     "total_cycles": "{:,}", "utilization": "{:.1%}", "speedup_vs_dense": "{:.2f}x"}).hide(axis="index")

# %%
# The real forward pass: one block of a GPT at 75% sparsity. At the smoke profile a small preset
# stands in for GPT-3 XL's width so the chapter stays fast.
preset = P.sizes[-1] if P.name == "smoke" else "gpt3-xl"
cfg = dataclasses.replace(PRESETS[preset], n_layer=1, vocab_size=512)
model = GPT(cfg).eval()
sparsify(model, SparsitySpec(level=0.75, seed=0))
idx = torch.randint(0, cfg.vocab_size, (1, min(TOKENS, cfg.block_size)), generator=gen)
names = [f"transformer.h.0.{n}" for n in df.BLOCK_LINEARS]
forward_reports, forward_err = df.simulate_module_linears(model, lambda: model(idx), names, machine)
df.write_reports_csv(forward_reports, out_dir / "dataflow_block_forward.csv",
                     extra={"profile": P.name, "preset": preset})
assert forward_err <= 1e-5, forward_err
fwd = df.block_totals(forward_reports)
fwd_flops = forward_flops_per_token(cfg, 0.75).linear * idx.numel() / 2
display(Markdown(
    f"Across the {len(SPARSITIES)} sparsity levels the simulated block's actual MACs differ from the FLOP "
    f"model's by at most a relative {worst_gap:.1e} (exactly zero where `s x numel` is a whole number, "
    f"as at 25%, 50% and 75%). In a real forward pass through one `{preset}`-width block "
    f"(d = {cfg.n_embd}, FFN {cfg.d_ff}) at 75% sparsity, the four simulated linears reproduce the modules' "
    f"outputs to a relative error of {forward_err:.1e}; they perform {fwd['actual_macs']:,} multiply-adds "
    f"against {fwd_flops:,.0f} from the FLOP model (the activations after LayerNorm and GELU contain "
    f"{'no' if fwd['actual_macs'] == fwd_flops else 'some'} exact zeros to skip)."
))

# %% [markdown]
# ## Why the memory has to be on-chip: bandwidth by BLAS level
#
# A dense GEMM reuses every operand many times, so a little bandwidth feeds a lot of arithmetic. A
# GEMV touches each matrix entry once, an AXPY (`y += a x`) each vector entry once. A sparse GEMM done
# the way a dataflow machine does it, one AXPY over the tokens per nonzero weight, has exactly AXPY's
# arithmetic intensity. The bandwidth a machine needs to keep its arithmetic busy is its peak divided
# by that intensity. The GPU parameters are from NVIDIA's H100 SXM5 datasheet (`GPUModel`); the
# dataflow machine's SRAM is sized, by assumption, to feed one AXPY operand set per multiply-add.

# %%
gpu = df.GPUModel()
systems = [gpu.memory_system(), df.dataflow_memory_system(machine)]
bw = df.bandwidth_table(systems, n=XL.n_embd, bytes_per_value=2)
bw.style.format({"intensity_flop_per_byte": "{:.3g}", "peak_tflops": "{:.1f}", "required_tb_s": "{:.3g}",
                 "available_tb_s": "{:.3g}", "fraction_of_peak": "{:.2%}"}).hide(axis="index")

# %%
levels = list(dict.fromkeys(bw["level"]))
fig, ax = plt.subplots(figsize=(11, 4.8))
width = 0.38
colors = ("tab:red", "tab:blue")
for j, (sys_, color) in enumerate(zip(systems, colors)):
    rows = bw[bw["system"] == sys_.name].set_index("level").loc[levels]
    xs = np.arange(len(levels)) + (j - 0.5) * width
    ax.bar(xs, rows["required_tb_s"], width, color=color, alpha=0.8,
           label=f"{sys_.name}: needed at {sys_.peak_flops / 1e12:.0f} TFLOP/s")
    ax.axhline(sys_.bandwidth / 1e12, color=color, linestyle="--",
               label=f"{sys_.name}: available ({sys_.memory}, {sys_.bandwidth / 1e12:.3g} TB/s)")
ax.set_yscale("log")
ax.set_xticks(np.arange(len(levels)), [f"{lv}\n({bw[bw['level'] == lv]['intensity_flop_per_byte'].iloc[0]:.3g} FLOP/B)"
                                      for lv in levels])
ax.set_xlabel("operation (BLAS level) and its arithmetic intensity, 16-bit operands, n = 2048")
ax.set_ylabel("memory bandwidth to run at full compute (TB/s)")
ax.set_title("Bandwidth each BLAS level needs (bars) vs what the memory gives (dashed)")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
fig.tight_layout()
plt.show()

gemm = bw[(bw["system"] == gpu.name) & (bw["level"] == "GEMM")].iloc[0]
axpy = bw[(bw["system"] == gpu.name) & (bw["level"] == "AXPY")].iloc[0]
df_axpy = bw[(bw["system"] == machine.name) & (bw["level"] == "AXPY")].iloc[0]
display(Markdown(
    f"On the GPU a dense GEMM needs {gemm['required_tb_s']:.3g} TB/s to run at its "
    f"{gpu.dense_flops / 1e12:.0f} TFLOP/s peak, within the {gpu.dram_bandwidth / 1e12:.3g} TB/s its HBM "
    f"delivers. An AXPY, and therefore a sparse GEMM seen as one AXPY per nonzero, would need "
    f"{axpy['required_tb_s']:,.0f} TB/s, {axpy['required_tb_s'] / axpy['available_tb_s']:,.0f} times more; from "
    f"DRAM it can run at {axpy['fraction_of_peak']:.2%} of peak. The dataflow machine's SRAM, by construction, "
    f"supplies the {df_axpy['required_tb_s']:.3g} TB/s its own AXPYs need. Real GPUs keep reused operands in "
    f"caches and registers, which is why a good sparse kernel does better than this worst case; the next "
    f"section brackets the GPU between the two."
))

# %% [markdown]
# ## Speed-up versus sparsity, four ways
#
# For one GPT-3 XL block (the four linears, times added up):
#
# * **(a) ideal**: `1 / (1 - s)`, what the FLOP count promises;
# * **(b) simulated dataflow machine**: dense cycles / sparse cycles on the same grid, load imbalance
#   and pipeline fill included (a second figure repeats it for other grid sizes);
# * **(c) GPU roofline model** at 8192 tokens: the time of each matmul is the larger of
#   FLOPs / peak and bytes / bandwidth. The sparse kernel cannot use dense tensor cores, so its FLOPs
#   run on the CUDA cores. The upper edge of the band assumes it still reads each operand only once;
#   the lower edge runs it as the blog describes, one AXPY per nonzero streamed from DRAM. A 2:4
#   semi-structured kernel (sparse tensor cores) exists only at 50%.
# * **(d) measured**: dense vs `torch.sparse` CSR vs 2:4 kernels, timed by
#   `scripts/measure_sparse_kernels.py`; the tables it wrote are read from `tables/kernels/`.

# %%
ideal = [1 / (1 - s) for s in SPARSITIES]
simulated = block_table["speedup_vs_dense"].tolist()
shapes = [(o, i) for _, o, i in df.block_linear_shapes(XL)]


def roofline_block(s: float, kernel: str) -> float:
    dense = sum(df.gpu_linear_time(ROOFLINE_TOKENS, o, i, 0.0, gpu, "dense") for o, i in shapes)
    return dense / sum(df.gpu_linear_time(ROOFLINE_TOKENS, o, i, s, gpu, kernel) for o, i in shapes)


roof_hi = [roofline_block(s, "unstructured") for s in SPARSITIES]
roof_lo = [roofline_block(s, "axpy") for s in SPARSITIES]
roof_24 = roofline_block(0.5, "2:4")
grid_speedups = {g: [df.block_totals(reps)["speedup_vs_dense"] for reps in
                     by_level(df.sweep_block(XL, TOKENS, GRID_SPARSITIES, machine.with_grid(g)), len(GRID_SPARSITIES))]
                 for g in GRIDS}

measurements = df.load_kernel_measurements(tables_dir)
measured = df.measured_block_speedups(measurements)
source = df.kernel_tables_dir(tables_dir)

# %%
fig, ax = plt.subplots(figsize=(12, 5.5))
pct_s = [100 * s for s in SPARSITIES]
ax.plot(pct_s, ideal, "k-", label="(a) ideal 1/(1-s)")
ax.plot(pct_s, simulated, "o-", color="tab:blue", ms=3,
        label=f"(b) simulated dataflow machine ({machine.pe_rows}x{machine.pe_cols} PEs)")
ax.fill_between(pct_s, roof_lo, roof_hi, color="tab:red", alpha=0.15,
                label="(c) GPU roofline, unstructured: one-pass traffic (top) to one AXPY per nonzero (bottom)")
ax.plot(pct_s, roof_hi, "-", color="tab:red", lw=1)
ax.plot(pct_s, roof_lo, "-", color="tab:red", lw=1)
ax.plot([50], [roof_24], "D", color="tab:red", ms=7, label="(c) GPU roofline, 2:4 sparse tensor cores")
markers = {"csr": "s", "2:4": "^"}
device_colors = dict(zip(measured["device_name"].unique(), ("tab:green", "tab:purple", "tab:orange", "tab:brown")))
for (device_name, device, tokens), g in measured.groupby(["device_name", "device", "tokens"]):
    for kernel, k in g.groupby("kernel"):
        ax.plot(100 * k["sparsity"], k["speedup"], markers.get(kernel, "x"), ls="--", ms=8, mfc="none", mew=1.5,
                color=device_colors[device_name],
                label=f"(d) measured {kernel}, {device_name} ({device}, {tokens} tokens)")
ax.axhline(1.0, color="grey", lw=0.8)
ax.set_yscale("log")
ax.set_xlabel("weight sparsity of the block's linears (%)")
ax.set_ylabel("speed-up over dense (x, log scale)")
ax.set_title("One GPT-3 XL block: speed-up from unstructured weight sparsity")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
fig.tight_layout()
plt.show()

# %% [markdown]
# The simulated machine's shortfall from the ideal is load imbalance, and it depends on how many
# weights each PE owns. The same block on grids from 32x32 to 512x512 PEs:

# %%
fig, ax2 = plt.subplots(figsize=(8, 5))
for g, sp in grid_speedups.items():
    ax2.plot([100 * s for s in GRID_SPARSITIES], sp, "o-", ms=3,
             label=f"{g}x{g} PEs ({XL.d_ff * XL.n_embd // (g * g):,} FFN weights per PE)")
ax2.plot(pct_s, ideal, "k--", lw=0.8, label="ideal")
ax2.set_yscale("log")
ax2.set_xlabel("weight sparsity (%)")
ax2.set_ylabel("simulated speed-up over dense (x, log scale)")
ax2.set_title("Simulated dataflow machine, one GPT-3 XL block: the smaller each PE's share,\n"
              "the larger the load imbalance")
ax2.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
if measurements.empty:
    devices_text = "No kernel measurements are present."
else:
    found = measurements.drop_duplicates(["source_file"])[["source_file", "device", "device_name", "torch", "tokens"]]
    devices_text = "Kernel measurements present: " + "; ".join(
        f"`{r.source_file}` ({r.device}: {r.device_name}, torch {r.torch}, {r.tokens} tokens per matmul)"
        for r in found.itertuples()) + "."
has_gpu = (not measurements.empty) and (measurements["device"] == "cuda").any()
if not has_gpu:
    devices_text += (" No GPU table is present yet, so curve (d) shows the CPU only; run "
                     "`python scripts/measure_sparse_kernels.py --device cuda --sizes xl "
                     "--out tables/kernels/sparse_kernels_h100.csv` on a GPU to add one.")
display(Markdown(f"{devices_text} (Read from `{source.relative_to(source.parents[1])}`.)"))
if not measured.empty:
    display(measured.style.format({"sparsity": "{:.0%}", "dense_ms": "{:.3f}", "sparse_ms": "{:.3f}",
                                   "speedup": "{:.3f}x"}).hide(axis="index"))

# %%
i75, i95 = SPARSITIES.index(0.75), SPARSITIES.index(0.95)
g75 = GRID_SPARSITIES.index(0.75)
best_grid = max(GRIDS, key=lambda g: grid_speedups[g][g75])
worst_grid = min(GRIDS, key=lambda g: grid_speedups[g][g75])
# The prose below says the loss grows as the grid grows (each PE's share shrinks): check it.
assert all(grid_speedups[a][g75] >= grid_speedups[b][g75] for a, b in zip(GRIDS, GRIDS[1:]))


def measured_at(kernel: str, s: float, device: str) -> str:
    rows = measured[(measured["kernel"] == kernel) & np.isclose(measured["sparsity"], s)
                    & (measured["device"] == device)]
    return ", ".join(f"{r.speedup:.2f}x on {r.device_name}" for r in rows.itertuples()) or "not measured"


breakeven = next((s for s, v in zip(SPARSITIES, roof_hi) if v >= 1.0), None)
# Where GPU measurements exist: do they fall inside the roofline band at the same sparsity?
gpu_csr = measured[(measured["device"] == "cuda") & (measured["kernel"] == "csr")]
band = {s: (lo, hi) for s, lo, hi in zip(SPARSITIES, roof_lo, roof_hi)}
inside = [band[round(r.sparsity, 2)][0] <= r.speedup <= band[round(r.sparsity, 2)][1]
          for r in gpu_csr.itertuples() if round(r.sparsity, 2) in band]
if inside and all(inside):
    gpu_sentence = (f" On the GPU all {len(inside)} measured CSR points lie inside the roofline band: the real "
                    f"kernel is slower than the one-pass bound but much faster than one AXPY per nonzero from "
                    f"DRAM, which suggests its caches give it some, not full, reuse.")
elif inside:
    gpu_sentence = f" On the GPU {sum(inside)} of {len(inside)} measured CSR points lie inside the roofline band."
else:
    gpu_sentence = " No GPU measurement is present to place against the roofline band."
# CPU timings are sensitive to other work on the machine: say how busy it was.
cpu_rows = measurements[measurements["device"] == "cpu"] if not measurements.empty else measurements
if len(cpu_rows) and "load_avg_1min" in cpu_rows and cpu_rows["load_avg_1min"].notna().any():
    cpu_sentence = (f" The CPU table was timed on {int(cpu_rows['threads'].iloc[0])} threads with a 1-minute load "
                    f"average between {cpu_rows['load_avg_1min'].min():.1f} and {cpu_rows['load_avg_1min'].max():.1f}; "
                    f"a load above the thread count means other work shared the cores, so treat its "
                    f"times as rough.")
else:
    cpu_sentence = ""
display(Markdown("\n".join([
    "## What this shows",
    "",
    f"* **The count is the easy part.** At 75% sparsity the FLOP count promises {ideal[i75]:.1f}x. The "
    f"simulated dataflow machine turns it into {simulated[i75]:.2f}x for a whole block, and "
    f"{simulated[i95]:.1f}x of the ideal {ideal[i95]:.0f}x at 95%. What it loses is load imbalance: with a "
    f"random mask some PEs get more nonzeros than others and everyone waits for the busiest. The loss "
    f"grows as each PE's share shrinks: at 75%, {worst_grid}x{worst_grid} PEs reach "
    f"{grid_speedups[worst_grid][g75]:.2f}x and {best_grid}x{best_grid} PEs {grid_speedups[best_grid][g75]:.2f}x. "
    f"A real compiler can rebalance nonzeros across PEs; this model does not, so it is a floor for "
    f"the mapping it states.",
    f"* **A GPU needs its dense units.** In the roofline model an unstructured sparse kernel that loses the "
    f"tensor cores but reads every operand only once reaches {roof_hi[i75]:.2f}x at 75% and "
    f"{roof_hi[i95]:.2f}x at 95%"
    + (f"; it only beats dense from {pct(breakeven)} sparsity on." if breakeven is not None else
       "; it never beats dense in this range.")
    + f" Run as one AXPY per nonzero from DRAM it reaches {roof_lo[i75]:.3f}x at 75%. The 2:4 format keeps "
    f"the tensor cores and could give at most {roof_24:.2f}x, at 50% only.",
    f"* **Measured kernels** (block totals, fastest dense kernel as the baseline): CSR at 75% gives "
    f"{measured_at('csr', 0.75, 'cpu')} and {measured_at('csr', 0.75, 'cuda')}; at 95% "
    f"{measured_at('csr', 0.95, 'cpu')} and {measured_at('csr', 0.95, 'cuda')}. 2:4 at 50%, which PyTorch "
    f"runs on CUDA GPUs only: {measured_at('2:4', 0.5, 'cuda')}." + gpu_sentence + cpu_sentence,
    "",
    "So the blog's argument holds in this model: skipping zeros pays only where every operand of "
    "every multiply-add can be fetched at AXPY rate, which on-chip memory next to each PE provides and "
    "DRAM behind a GPU does not. The simulator also shows what the argument leaves out: a fine-grained "
    "machine needs the nonzeros spread evenly over its PEs to collect the full saving.",
])))
