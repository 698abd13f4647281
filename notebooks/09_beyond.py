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
# # 09 Beyond the paper: model size, longer sparse training and moving masks
#
# The SPDF texts close with questions they leave open. Three of them can be put to numbers at the
# scale of this book:
#
# > "Existing work [20] has shown that the quality of a network trained with random static sparsity
# > (even at high sparsity levels) improves quickly to match its dense counterpart, as the network
# > grows wider and deeper."
# >
# > "It may be more FLOP-optimal to pre-train sparse models longer to achieve even higher accuracy
# > improvements on downstream tasks."
# >
# > "As next steps, we are investigating several directions for improving our results on even larger
# > models, including dynamic sparsity methods (e.g., RigL [22]) [...]"
# >
# > — [Cerebras, November 2022](#bib-spdf-blog-first); reference 20 is
# > [Liu et al. 2022](#bib-random-pruning), reference 22 [Evci et al. 2020](#bib-rigl)
#
# This chapter asks each of them of the book's own setup:
#
# - **Size.** Does the validation-loss gap between a static sparse model and its dense counterpart
#   shrink as the model grows? Five sizes of one shape family, pre-trained only, each dense and at the
#   paper's two sparsities, with a fitted trend and what it would say at the paper's sizes.
# - **Longer training.** The large model's sparse runs, pre-trained until they have spent as many
#   training FLOPs as the dense run (by chapter 02's convention), against the dense run and against
#   the sparse runs of chapter 04, in validation loss and in E2E after dense fine-tuning.
# - **Moving masks.** RigL and SET at the highest sparsity, on the same tokens as the static mask.
#
# These runs are a stage of their own (`--stages beyond`): computing them needs nothing from the
# fine-tuning of chapters 05 and 06, only the pre-trained models of chapter 04 that the size study
# shares. The comparison then reads the dense and static rows of the large model from those chapters.

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %% tags=["remove-input"]
import json
from pathlib import Path

from IPython.display import Markdown, display

from spdf_lib import dynamic, env, figures, flops, report, scaling, scheduler, store, verdicts
from spdf_lib import runs as R
from spdf_lib.env import chapter_header

P = chapter_header(profile)
TABLES = Path(tables_dir)
B = P.beyond

# %% [markdown]
# ## The rules
#
# Each question is judged by a rule in the library, and each can come out either way or
# inconclusive. Unlike chapter 06's, these rules were written after this chapter's runs had finished
# and their first numbers had been looked at (the runs and the rules are separate commits of the
# repository), so they are stated criteria, not a guard against choosing a rule after the fact; every
# number they judge is shown, so a reader can apply another rule.

# %%
display(Markdown(scaling.answer_rules(verdicts.BLEU_MARGIN)))

# %% [markdown]
# ## The runs
#
# The size study's family keeps the proportions of the book's two models: the width grows with the
# depth, the feed-forward layer is four times the width, heads are one of two widths, and the
# vocabulary and context are the profile's. Every size is pre-trained on twenty tokens per parameter,
# embeddings included, as in chapter 04, so the two sizes of chapters 04 to 06 are the very same runs,
# read rather than recomputed (with the two seeds every size gets; the grid's third seed is left out
# so that every size has the same design). Two things change with size besides the size itself, and
# the table shows both: the embeddings' share of the parameters, and the tokens each non-embedding
# parameter sees.

# %%
figures.family_table(P)

# %% [markdown]
# An iso-FLOP run keeps the static random mask and the learning-rate schedule of chapter 04, stretched
# over more steps: the number of tokens at which its training FLOPs reach the dense run's. With masked
# weights skipped, a sparser model is cheaper per token, so it gets more of them.

# %%
display(Markdown(figures.source_excerpt(flops.isoflop_tokens, "    own = training_flops", "    return max(1")))

# %% [markdown]
# RigL and SET start from the same random mask as the static run and move part of it at a fixed
# interval: drop the active weights of smallest magnitude, then grow as many where the dense gradient
# is largest (RigL) or at random (SET), the fraction decaying along a half cosine. Every tensor keeps
# its number of zeros; grown weights start at zero with a fresh optimizer state. The heart of one
# update:

# %%
display(Markdown(figures.source_excerpt(dynamic.update_masks_, "    fraction = update_fraction", "    return Update")))

# %%
plan = R.dynamic_runs(P)[0].dynamic
display(Markdown(
    f"Here: {', '.join(m.upper() if m == 'set' else 'RigL' for m in B.dynamic.methods)} at "
    f"{B.dynamic.level:.0%} sparsity on `{B.size}`, an update every {plan.interval} steps with an initial fraction "
    f"of {plan.fraction:g}, the last one before step {plan.end_step:,} of {R.dynamic_runs(P)[0].steps:,} "
    f"({B.dynamic.end_frac:.0%} of the run). The longer and the dynamic runs are fine-tuned densely on "
    f"`{B.task}` as in chapter 05: a learning-rate search over {', '.join(f'{lr:g}' for lr in B.lr_search.grid)} "
    f"that extends past an end while the best validation loss sits there (at most "
    f"{B.lr_search.max_extensions} extension{'s' if B.lr_search.max_extensions != 1 else ''} on each side), then fine-tuning seeds {', '.join(map(str, B.finetune_seeds))} on the first "
    f"pre-training seed's model and the first fine-tuning seed on the others."))

# %%
out = scheduler.run(P, TABLES, stages=("pretrain", "finetune", "eval", "beyond"))
inputs = scaling.chapter_inputs(out, P)
display(Markdown(env.provenance(inputs["scaling"] + inputs["pretrain"] + inputs["evals"], TABLES, P.name)))

# %% [markdown]
# ## Size: the sparse-dense gap against the number of parameters
#
# For every size and sparsity, the gap is the mean validation loss of the sparse models minus that of
# the dense ones (nats per token; positive means the sparse model is worse), with a Welch t interval
# over pre-training seeds (unpaired, although the dense and sparse runs of one seed share their
# initialisation and data order).

# %%
gaps = scaling.gap_frame(inputs["scaling"], inputs["params"])
report.write_table(gaps, TABLES, P.name, "beyond_gaps")
figures.gap_table(gaps)

# %%
figures.gap_figure(gaps);

# %% [markdown]
# Figure 9.1: The validation-loss gap of static random sparsity to the dense model (sparse minus
# dense, nats per token) against non-embedding parameters, on a logarithmic axis, one colour per
# sparsity. Points are means over pre-training seeds with $95\%$ Welch t intervals. Solid lines are the
# least-squares fits of the gap on the logarithm of the parameters over the sizes trained, with the
# shaded $95\%$ band of the fitted line; the dashed continuation is an extrapolation to the paper's two
# model sizes (dotted verticals), far beyond the sizes fitted.
#
# How much does the answer rest on any one size? The slope again, each time without one of them:

# %%
loo = scaling.leave_one_out(gaps)
report.write_table(loo, TABLES, P.name, "beyond_leave_one_out")
figures.leave_one_out_table(loo)

# %% [markdown]
# What the fit says at the paper's sizes, with the $95\%$ prediction interval of the gap one more size
# would show: an extrapolation over one to two decades beyond the largest size trained, from a straight
# line fitted to a handful of points of models whose embeddings are a large share of the parameters.
# Read it as this family's trend continued, not as a forecast; the interval assumes the line, which
# nothing here can check that far out.

# %%
extrapolated = scaling.extrapolations(gaps, scaling.paper_targets())
report.write_table(extrapolated, TABLES, P.name, "beyond_extrapolations")
display(figures.extrapolation_table(extrapolated))
display(Markdown(figures.scaling_sentence(gaps, None, extrapolated)))

# %% [markdown]
# The paper publishes no pre-training loss, so there is nothing to set the extrapolated gap against
# directly. What it does publish at its two sizes is downstream, in its own words:
#
# > "on the E2E task, when comparing dense to the 75% sparse, the larger GPT-3 XL model loses 0.44 BLEU
# > compared to a worse 0.98 BLEU loss in the smaller GPT-2 Small model."
# >
# > — [Cerebras, November 2022](#bib-spdf-blog-first)
#
# The revised version of the post ([Cerebras, March 2023](#bib-spdf-blog-update)) keeps the claim but
# moves its evidence:
#
# > "Our results validate this hypothesis for the DART and Curation Corpus tasks."
# >
# > — [Cerebras, March 2023](#bib-spdf-blog-update)
#
# Beside the paper's changes, this book's own at the same sparsity and task (chapter 06, with their
# intervals):

# %%
grid_cells = verdicts.collect(out["eval"].values(), out["lr_search"])
display(report.show(figures.size_downstream_table(grid_cells, P)))

# %% [markdown]
# A larger model losing less after dense fine-tuning is compatible with either trend of the
# pre-training gap: fine-tuning recovers part of it, and chapter 06 measures how much at this scale.

# %% [markdown]
# ## Longer sparse pre-training at equal FLOPs
#
# One row per kind of run of the large model: the dense and static runs of chapter 04 (their E2E
# scores from chapter 06), the iso-FLOP runs, and the dynamic runs of the next section. Cost first:
# tokens and training FLOPs by chapter 02's convention, then the wall time of each run as it was
# scheduled beside others (which says little about its cost; the GPU-time table below does). Then the
# validation loss against the dense run and against the static run of the same sparsity, then E2E
# after dense fine-tuning at the rate each search chose.

# %%
variants = scaling.variant_frame(inputs["pretrain"], inputs["evals"], B.size, B.task)
report.write_table(variants, TABLES, P.name, "beyond_variants")
figures.variant_table(variants)

# %%
figures.variant_figure(variants, verdicts.BLEU_MARGIN);

# %% [markdown]
# Figure 9.2: Left: validation loss (nats per token) of each kind of run of the large model against its
# training FLOPs by chapter 02's convention; bars are $95\%$ t intervals of the mean over pre-training
# seeds, with the seed variance pooled over every kind of run of this size (so a kind with a single
# seed gets one too). Right: the change of test E2E BLEU against the dense model after dense
# fine-tuning (each pre-trained model's score is its mean over fine-tuning seeds), with its $95\%$
# interval; the solid line is no change, the dashed red line chapter 06's margin.
#
# On a GPU the masked weights are multiplied like any other, so a run's time follows its tokens, not its
# FLOPs. The table prices each kind at the rate of one run alone on an idle GPU, measured for the large
# model with its masks (a masked step costs about as much as a dense one, chapter 04), and, for the
# dynamic runs, adds the measured time of each of their mask updates. The update cost was measured with an update
# every few steps and is counted per update here. SET draws its random scores on the CPU from a seeded
# generator, so that a resumed run repeats an uninterrupted one, and copies them to the GPU; the
# benchmark does not separate that from the rest of an update.

# %%
bench_path = store.REPO_ROOT / "tables" / "gpu" / "benchmarks" / "dynamic_cost_h200.json"
cost = scaling.dynamic_update_cost(json.loads(bench_path.read_text()))
display(Markdown(
    f"Measured on an H200 (`{bench_path.relative_to(store.REPO_ROOT)}`, `{cost['preset']}`): "
    f"{cost['tokens_per_s'] / 1e6:.2f} M tokens per second with a static mask; one mask update costs as much as "
    + ", ".join(f"{steps:.1f} training steps ({'RigL' if m == 'rigl' else 'SET'})"
                for m, steps in cost["update_cost_steps"].items()) + "."))
if B.size == cost["preset"]:
    gpu_time = scaling.gpu_time_frame(variants, cost["tokens_per_s"], cost["update_cost_steps"],
                                      P.pretrain.batch_size * P.pretrain.seq_len)
    report.write_table(gpu_time, TABLES, P.name, "beyond_gpu_time")
    display(figures.gpu_time_table(gpu_time))
else:
    gpu_time = None
    display(Markdown(f"At the {P.name} profile the model is `{B.size}`, not the one measured, so no GPU time is "
                     f"priced here; the gpu profile's page shows it."))
display(Markdown(figures.passes_note(inputs["pretrain"])))

# %% [markdown]
# ## Moving masks: RigL and SET
#
# The dynamic runs one by one: how many updates they made, what RigL's dense gradients added to the
# FLOPs, and how far the mask travelled, the share of kept connections at the end that the initial
# random mask had not kept. RigL's dense gradients add a small share to its FLOPs, so its budget is the
# static run's plus that share; SET adds none. The learning-rate searches of the fine-tuned runs follow.

# %%
figures.dynamic_table(inputs["pretrain"])

# %%
searched = [c for c in out["lr_search"] if c.get("variant")]
report.show(report.lr_search_table(searched))

# %% [markdown]
# ## The answers
#
# Each question, judged by the rules at the top of the page.

# %%
answers = scaling.answers_frame(gaps, variants, verdicts.BLEU_MARGIN)
report.write_table(answers, TABLES, P.name, "beyond_answers")
figures.answers_table(answers)

# %%
display(Markdown(figures.answers_note(answers)))
display(Markdown(figures.expectation_note(answers, loo)))
display(Markdown(figures.findings_note(variants, gpu_time, inputs["pretrain"], B.dynamic.level)))

# %% [markdown]
# ## What this scale cannot say
#
# - The family spans models far smaller than GPT-2 Small; in its smallest members the embeddings hold
#   most of the parameters, and the sparsified matrices a small share of the compute. A trend over
#   these sizes need not continue, which is why the extrapolation above is labelled as one, and the
#   leave-one-out table shows how much it rests on single sizes.
# - Along the family, the tokens per non-embedding parameter fall and the passes over the corpus rise
#   (the family table and chapter 04): a change of the gap with size is also a change of these.
# - The longer runs repeat the corpus more often than the Chinchilla-length ones (the note above), so
#   longer here also means more repetition; at the paper's scale the data would not repeat.
# - Some kinds of run have a single pre-training seed; their intervals borrow the seed spread of the
#   other kinds of the same size, an assumption that the spreads are alike (`pooled_contrast`).
# - The E2E changes are judged with chapter 06's margin, and chapter 06's noise floor applies: a change
#   smaller than the smallest detectable one there reads as inconclusive here too.
# - RigL and SET run with one interval and one update fraction, the defaults of the RigL paper, and a
#   uniform sparsity per layer; the RigL paper's own best results use a different layer-wise allocation.

# %% [markdown]
# ## Summary
#
# The size study, the iso-FLOP runs and the dynamic runs are computed by their own resumable stage and
# judged by the rules printed at the top. The answers, in short, are those of the table above and the
# sentences under it; the figures show why each came out as it did, and the list above says what this
# scale leaves open. Of the three questions the sources leave open, this scale speaks most clearly to
# the cost of the second: on hardware that does not skip zeros, training a sparse model to the dense
# model's FLOPs takes longer than training the dense model, by the ratio of their tokens.

# %% [markdown]
# ## Exercises
#
# Run the chapter at the smoke profile (`make book PROFILE=smoke CHAPTER=09`); each exercise takes
# seconds to a minute.
#
# **Exercise 9.1.** With `spdf_lib.flops.isoflop_tokens`, compute how many tokens GPT-3 XL at the
# paper's highest sparsity would need to spend the FLOPs of its dense Chinchilla run, and how much
# longer that run would take on a GPU that does not skip zeros.
#
# **Exercise 9.2.** Add a sixth size to the smoke profile's family (a preset in `spdf_lib/model.py`,
# its name in `BeyondSettings.family`) and predict from Figure 9.1, before re-running, the gap it will
# show. Does the fitted slope's interval narrow?
#
# **Exercise 9.3.** Change `DynamicSettings.interval` of the smoke profile and watch the share of
# connections not in the initial mask in the table of dynamic runs. Why does twice as many updates
# not move the mask twice as far? (Hint: what share of its kept connections would a mask drawn afresh
# at random have that the first mask did not keep?)
