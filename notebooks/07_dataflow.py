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
#
# Chapter 02 counted the FLOPs that sparse pre-training saves: a zero weight is a multiply-add that
# need not happen. Whether that saving becomes *time* depends on the machine. This chapter shows:
#
# - a **simulator** of a simplified dataflow machine that counts, for a real weight matrix, the
#   multiply-adds it performs and skips, how they spread over its processing elements, and how many
#   cycles that takes; the counts are checked against `nn.Linear`, against chapter 02's FLOP model
#   and inside a real forward pass;
# - why such a machine needs its memory **on-chip**: the bandwidth GEMM, GEMV and AXPY need to run
#   at full speed, on a GPU with off-chip DRAM and on the dataflow machine;
# - **speed-up versus sparsity four ways** for one GPT-3 XL block: the ideal, the simulated machine,
#   a GPU roofline model, and sparse kernels measured on a CPU and on a GPU;
# - what **load imbalance** costs the dataflow machine as its grid grows.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
from spdf_lib.env import chapter_header

P = chapter_header(profile)

# %% [markdown]
# The companion blog post on the hardware side makes two claims about it:
#
# > "a sparse GEMM is simply a collection of AXPY operations, with one operation for every non-zero
# > element. This level of memory bandwidth is the first key enabler for unstructured sparsity
# > acceleration."
# >
# > "We filter out all the zero data at the sender, so the receiver does not even see it. Only
# > non-zero data is sent, and that triggers all the computation."
# >
# > — [Sean Lie, Cerebras blog, November 2022](#bib-lie-sparsity)
#
# The simulator uses the counting vocabulary of Sparseloop and SCALE-Sim (algorithmic, actual and
# skipped multiply-adds, cycles per processing element) and STONNE's habit of checking the
# simulated layer against a real one. Its machine is a deliberately simple model, not a model of
# any product: its parameters are illustrative, and the chapter varies the one that matters most.

# %%
from pathlib import Path

import torch
from IPython.display import Markdown, display

from spdf_lib import dataflow as df
from spdf_lib.dataflow import figures as dff
from spdf_lib.dataflow import findings
from spdf_lib.figures import show_table
from spdf_lib.flops import forward_flops_per_token
from spdf_lib.model import GPT, get_config
from spdf_lib.sparsity import SparsitySpec, random_mask, sparsify

# Tokens streamed through each layer, by profile. Counts scale linearly with tokens; speed-ups and
# utilisation barely depend on them.
TOKENS = {"smoke": 64}.get(P.name, 256)
LEVEL, HIGH = 0.75, 0.95  # the sparsity of SPDF's headline result, and a high one
SPARSITIES = [round(0.05 * i, 2) for i in range(20)]  # dense to 95% sparse
GRIDS = (32, 64, 128, 256, 512)  # PE grid sizes for the load-imbalance sweep
GRID_SPARSITIES = [0.0, 0.25, 0.5, LEVEL, 0.9, HIGH]  # coarser: a 512x512 grid has 262,144 PEs to draw
XL = get_config("gpt3-xl")
ROOFLINE_TOKENS = 4 * XL.block_size  # four GPT-3 XL sequences per matmul, as the GPU kernel table measures
out_dir = Path(tables_dir) / P.name
out_dir.mkdir(parents=True, exist_ok=True)
machine = df.DEFAULT_MACHINE

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
show_table(findings.machine_table(machine))

# %% [markdown]
# ## One GPT-3 XL layer, simulated and checked
#
# The first feed-forward matrix of GPT-3 XL (`mlp.c_fc`, `d_ff x n_embd`) at SPDF's headline
# sparsity, with an exact-count random mask as in pre-training, and a batch of random activations.
# The simulator computes the output as a plain matmul of the sparse weight, which is numerically what
# the machine's multiply-adds of nonzeros produce (a zero term adds nothing); comparing it with a
# real `nn.Linear` that shares the weight therefore checks the plumbing (shapes, token dimensions,
# the weight the machine was given). The counts are the simulator's own output, and they are
# checked against an independent count: nonzero weights x tokens.

# %%
gen = torch.Generator().manual_seed(0)
out_f, in_f = XL.d_ff, XL.n_embd
weight = torch.randn(out_f, in_f, generator=gen) * 0.02 * random_mask((out_f, in_f), LEVEL, gen)
x = torch.randn(TOKENS, in_f, generator=gen)

y, layer = df.simulate_linear(x, weight, machine, name="mlp.c_fc")

linear = torch.nn.Linear(in_f, out_f, bias=False)
with torch.no_grad():
    linear.weight.copy_(weight)
    reference = linear(x)
rel_err = float((y - reference).norm() / reference.norm())
assert rel_err <= 1e-5, rel_err
assert layer.actual_macs == TOKENS * int((weight != 0).sum())  # nonzero weights x tokens
assert layer.skipped_macs == layer.algorithmic_macs - layer.actual_macs

# %% tags=["hide-input"]
display(show_table(findings.counter_table(layer)))
display(Markdown(findings.layer_markdown(layer, rel_err, machine)))

# %% tags=["hide-input"]
dff.pe_work_figure(layer, LEVEL);

# %% [markdown]
# Figure 7.1: Work per processing element for `mlp.c_fc` of GPT-3 XL at the chapter's sparsity
# level: the colour of a cell is the number of cycles that PE is busy. A random mask gives some
# blocks more nonzeros than others, and the layer takes as long as the busiest PE (the title gives
# its cycles and the mean).
#
# ## The same layer from dense to almost all zeros
#
# Drawing a mask of the whole matrix per level is the slow part, and unnecessary: for a uniformly
# random exact-count mask, the number of nonzeros that land in each PE's block follows a
# multivariate hypergeometric distribution, which `sweep_linear` samples directly. Thinning one draw
# to the next level keeps the masks nested, as if the same weights stayed pruned. (The tests check
# this against materialised masks.)

# %%
layer_sweep = df.sweep_linear(out_f, in_f, TOKENS, SPARSITIES, machine, name="mlp.c_fc")
df.write_reports_csv(layer_sweep, out_dir / "dataflow_layer_sweep.csv", extra={"profile": P.name})

# %% tags=["hide-input"]
show_table(findings.sweep_table(layer_sweep, SPARSITIES), findings.SWEEP_FORMATS)

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
# - its **actual MACs for one block equal the FLOP model's sparse linear FLOPs divided by two**, at
#   every sparsity level (chapter 02's `forward_flops_per_token(...).linear`, per layer);
# - run inside a real `GPT` from `spdf_lib.model`, sparsified with `spdf_lib.sparsity`, each
#   simulated linear reproduces what the module computed on the activations the forward pass fed it.

# %%
block_sweep = df.sweep_block(XL, TOKENS, SPARSITIES, machine)
df.write_reports_csv(block_sweep, out_dir / "dataflow_block_sweep.csv", extra={"profile": P.name})
# Chapter 02's FLOP model: linear FLOPs per token of one block, times tokens, two FLOPs per multiply-add.
flop_model_macs = [forward_flops_per_token(XL, s).linear / XL.n_layer * TOKENS / 2 for s in SPARSITIES]
block_table = findings.block_table(block_sweep, SPARSITIES, flop_model_macs)

# Exact-count masks zero floor(s * numel) weights, the FLOP model counts (1 - s) * numel kept ones:
# they may differ by the rounding of one weight per matrix, and agree exactly where s * numel is whole.
matrix_sizes = [o * i for _, o, i in df.block_linear_shapes(XL)]
whole = [s for s in SPARSITIES if all(float(s * n).is_integer() for n in matrix_sizes)]
assert block_table["relative_gap"].max() <= len(matrix_sizes) * TOKENS / block_table["flop_model_macs"].min()
assert (block_table[block_table["sparsity"].isin(whole)]["relative_gap"] == 0).all()

# %% tags=["hide-input"]
display(show_table(block_table[list(findings.BLOCK_COLUMNS)], findings.BLOCK_FORMATS))
display(Markdown(findings.block_markdown(block_table, whole)))

# %%
# The real forward pass: one block of a GPT at the chapter's sparsity level. At the smoke profile a
# small preset stands in for GPT-3 XL's width so the chapter stays fast.
preset = P.sizes[-1] if P.name == "smoke" else "gpt3-xl"
cfg = get_config(preset, n_layer=1, vocab_size=512)
torch.manual_seed(0)  # the block's initial weights: the same page on every render
model = GPT(cfg).eval()
sparsify(model, SparsitySpec(level=LEVEL, seed=0))
idx = torch.randint(0, cfg.vocab_size, (1, min(TOKENS, cfg.block_size)), generator=gen)
names = [f"transformer.h.0.{n}" for n in df.BLOCK_LINEARS]
forward_reports, forward_err = df.simulate_module_linears(model, lambda: model(idx), names, machine)
assert forward_err <= 1e-5, forward_err
forward_flop_model_macs = forward_flops_per_token(cfg, LEVEL).linear * idx.numel() / 2
df.write_reports_csv(forward_reports, out_dir / "dataflow_block_forward.csv",
                     extra={"profile": P.name, "preset": preset})

# %% tags=["hide-input"]
display(Markdown(findings.forward_markdown(preset, cfg, LEVEL, forward_err, df.block_totals(forward_reports),
                                           forward_flop_model_macs)))

# %% [markdown]
# ## Why the memory has to be on-chip: bandwidth by BLAS level
#
# A dense GEMM reuses every operand many times, so a little bandwidth feeds a lot of arithmetic. A
# GEMV touches each matrix entry once, an AXPY (`y += a x`) each vector entry once. A sparse GEMM done
# the way a dataflow machine does it, one AXPY over the tokens per nonzero weight, has exactly AXPY's
# arithmetic intensity (FLOPs per byte moved). The bandwidth a machine needs to keep its arithmetic
# busy is its peak divided by that intensity. The GPU's figures are those of `GPUModel`, taken from
# NVIDIA's H100 datasheet; the dataflow machine's SRAM is sized, by assumption, to feed one AXPY
# operand set per multiply-add.

# %%
gpu = df.GPUModel()
systems = [gpu.memory_system(), df.dataflow_memory_system(machine)]
bandwidth = df.bandwidth_table(systems, n=XL.n_embd, bytes_per_value=gpu.bytes_per_value)

# %% tags=["hide-input"]
show_table(bandwidth, findings.BANDWIDTH_FORMATS)

# %% tags=["hide-input"]
dff.bandwidth_figure(bandwidth, systems, n=XL.n_embd, bytes_per_value=gpu.bytes_per_value);

# %% [markdown]
# Figure 7.2: The memory bandwidth each operation needs to run at a system's peak compute (bars, a
# log scale), against the bandwidth its memory delivers (dashed lines, same colour). Operands are
# the size of GPT-3 XL's model width; the tick labels give each operation's arithmetic intensity.

# %% tags=["hide-input"]
display(Markdown(findings.bandwidth_markdown(bandwidth, gpu, machine)))

# %% [markdown]
# ## Speed-up versus sparsity, four ways
#
# For one GPT-3 XL block (the four linears, times added up):
#
# - **ideal**: $1/(1-s)$, what the FLOP count promises;
# - **simulated dataflow machine**: dense cycles / sparse cycles on the same grid, load imbalance
#   and pipeline fill included (Figure 7.4 repeats it for other grid sizes);
# - **GPU roofline model**: the time of each matmul is the larger of FLOPs / peak and
#   bytes / bandwidth. The sparse kernel cannot use dense tensor cores, so its FLOPs run on the CUDA
#   cores. The upper edge of the band assumes it still reads each operand only once; the lower edge
#   runs it as the blog describes, one AXPY per nonzero streamed from DRAM. A `2:4` semi-structured
#   kernel (sparse tensor cores) exists only at half sparsity;
# - **measured**: dense vs `torch.sparse` CSR vs `2:4` kernels, timed by
#   `scripts/measure_sparse_kernels.py`; the tables it wrote are read from `tables/kernels/`. Each
#   device was timed at its own number of tokens per matmul, so each gets its own panel.

# %%
simulated = block_table["speedup_vs_dense"].tolist()
roofline_one_pass = [df.gpu_block_speedup(XL, ROOFLINE_TOKENS, s, gpu, kernel="unstructured") for s in SPARSITIES]
roofline_axpy = [df.gpu_block_speedup(XL, ROOFLINE_TOKENS, s, gpu, kernel="axpy") for s in SPARSITIES]
roofline_2_4 = df.gpu_block_speedup(XL, ROOFLINE_TOKENS, 0.5, gpu, kernel="2:4")
curves = findings.SpeedupCurves(SPARSITIES, simulated, roofline_one_pass, roofline_axpy, roofline_2_4,
                                ROOFLINE_TOKENS, machine, gpu)

measurements = df.load_kernel_measurements(tables_dir)
measured = df.measured_block_speedups(measurements)

# %% tags=["hide-input"]
dff.speedup_figure(curves, measured);

# %% [markdown]
# Figure 7.3: Speed-up over dense of one GPT-3 XL block against weight sparsity (log scale; the grey
# line is no speed-up). Panel (a): the ideal $1/(1-s)$, the simulated dataflow machine, and the GPU
# roofline model, whose band runs from a kernel that reads every operand once (top edge) to one
# AXPY per nonzero from DRAM (bottom edge). The other panels: kernels measured on one device each
# (block totals against that device's fastest dense kernel), with the ideal for reference and, on
# the GPU, the roofline band at the same number of tokens.

# %% tags=["hide-input"]
display(Markdown(findings.measurements_markdown(measurements, df.kernel_tables_dir(tables_dir))))
if not measured.empty:
    display(show_table(measured, findings.MEASURED_FORMATS))

# %% [markdown]
# The simulated machine's shortfall from the ideal is load imbalance, and it depends on how many
# weights each PE owns. The same block on square grids of different sizes:

# %%
grid_speedups = findings.grid_sweep(XL, TOKENS, GRID_SPARSITIES, machine, GRIDS)

# %% tags=["hide-input"]
dff.grid_figure(grid_speedups, GRID_SPARSITIES, XL, curves);

# %% [markdown]
# Figure 7.4: Simulated speed-up over dense of one GPT-3 XL block against weight sparsity (log
# scale), one line per grid size (the legend gives each PE's share of an FFN matrix), with the
# ideal $1/(1-s)$ for reference: the more PEs share the weights, the fewer each holds, and the
# further the busiest PE's load is from the mean.

# %% tags=["hide-input"]
display(Markdown(findings.findings_markdown(curves, grid_speedups, GRID_SPARSITIES, measured, measurements,
                                            level=LEVEL, high=HIGH)))

# %% [markdown]
# ## Summary
#
# - The simulator counts what a dataflow machine does with a sparse layer: algorithmic, actual and
#   skipped multiply-adds, each PE's cycles, the busiest PE and the pipeline fill. Its output equals
#   `nn.Linear`, its multiply-adds equal chapter 02's FLOP model, and it reproduces the linears of a
#   real forward pass.
# - On that machine fewer FLOPs become less time, short of the ideal by the load imbalance of a
#   random mask, which grows as the weights are spread over more PEs.
# - A sparse GEMM is one AXPY per nonzero weight, and AXPY needs far more bandwidth than off-chip
#   DRAM gives; on-chip SRAM next to every PE gives it by construction.
# - On a GPU an unstructured kernel loses the tensor cores: in the roofline model it pays off only at
#   high sparsity, and the measured kernels show how far today's libraries are from that bound; the
#   `2:4` format keeps the tensor cores but exists at half sparsity only.
#
# ## Exercises
#
# Run the chapter at the smoke profile (chapter 00 says how) or open it in Jupyter and set
# `profile = "smoke"` in its first cell; each exercise takes seconds.
#
# **Exercise 7.1.** Set `LEVEL` to nine tenths in the settings cell and re-run the layer cells.
# Before reading the counter table, predict `actual_macs` and `skipped_macs` from `TOKENS`, the shape
# of `mlp.c_fc` and the rule `floor(level x numel)`; then compare the machine's `speedup_vs_dense`
# with $1/(1-s)$.
#
# **Exercise 7.2.** Predict whether the load imbalance of the layer rises or falls on a smaller grid,
# then check: `df.sweep_linear(out_f, in_f, TOKENS, [LEVEL], machine.with_grid(side))[0]` for a few
# values of `side`, reading `load_imbalance` and `speedup_vs_dense`.
#
# **Exercise 7.3.** Give the GPU ten times its DRAM bandwidth with
# `dataclasses.replace(gpu, dram_bandwidth=...)` and recompute `df.gpu_block_speedup` for the
# unstructured and the AXPY kernel. Which edge of the roofline band moves, and why does the other
# barely change?
