"""What the teaching chapters (00-03 and 08) show: figures, display tables, code excerpts.

One function per figure. A figure function returns a matplotlib ``Figure`` with labelled axes and
units; the chapter captions it ("Figure N.M: ...") in the markdown cell that follows. Table
functions return a pandas ``Styler`` without the index (:func:`show_table`) or a ``DataFrame``
that a chapter shows that way. The package has one module for the display helpers every chapter
uses and one per chapter:

* :mod:`~spdf_lib.figures.display`: frames for display (:func:`show_table`, :func:`grouped_columns`,
  :func:`markdown_table`) and :func:`source_excerpt`, which shows the library's own code read from
  the function itself, so the code a chapter explains is the code that runs;
* :mod:`~spdf_lib.figures.about`: chapter 00, the chapters and the profiles side by side;
* :mod:`~spdf_lib.figures.weight_sparsity`: chapter 01, a masked network drawn, a model's parameters
  and what training did to the masked entries;
* :mod:`~spdf_lib.figures.flops`: chapter 02, training FLOPs of the paper's pipelines and of this
  book's runs, and the share of the forward pass that sparsity reaches;
* :mod:`~spdf_lib.figures.data`: chapter 03, the data sets, the tokenizer, token budgets, the loss
  mask, example lengths, truncation and padding;
* :mod:`~spdf_lib.figures.pruning`: chapter 08, the pruning iterations, their figure and statements,
  and the comparison with GPT-3 XL and the published result;
* :mod:`~spdf_lib.figures.beyond`: chapter 09, the sparse-dense gap against model size with its fitted
  trend and extrapolation, and the iso-FLOP and dynamic-sparsity runs beside the static ones.

Each chapter module imports only :mod:`~spdf_lib.figures.display` or an earlier chapter's module
from this package (chapter 02's bars are labelled with chapter 01's :func:`level_label`), and the
library modules it draws on inside its functions. Everything is importable from
``spdf_lib.figures`` itself: ``from spdf_lib import figures; figures.show_table(frame)``.
"""

from __future__ import annotations

from .about import chapters_table, profiles_table
from .beyond import (answers_note, answers_table, dynamic_table, expectation_note, extrapolation_table,
                     family_table, findings_note, gap_figure, gap_table, gpu_time_table, interval_text,
                     leave_one_out_table, passes_note, scaling_sentence, size_downstream_table, variant_figure,
                     variant_table)
from .data import (budget_table, data_differences_table, data_quality_table, example_lengths_figure,
                   example_markdown, fingerprint_table, loss_mask_table, mixture_table, padding_share,
                   references_and_lengths_figure, tokenizer_table, truncation_table)
from .display import grouped_columns, markdown_table, show_table, source_excerpt
from .flops import (finetune_share_figure, flop_unit, forward_share_table, paper_flops_figure, runs_flops_figure,
                    size_trend_sentence)
from .pruning import (SOURCE_PRUNED_SPARSITY, full_scale_comparison, pruning_figure, pruning_findings,
                      pruning_iterations_table)
from .weight_sparsity import level_label, network_figure, parameter_table, upkeep_table

__all__ = [
    # display
    "show_table", "grouped_columns", "markdown_table", "source_excerpt",
    # about (chapter 00)
    "chapters_table", "profiles_table",
    # weight_sparsity (chapter 01)
    "level_label", "network_figure", "parameter_table", "upkeep_table",
    # flops (chapter 02)
    "flop_unit", "paper_flops_figure", "finetune_share_figure", "runs_flops_figure", "forward_share_table",
    "size_trend_sentence",
    # data (chapter 03)
    "example_markdown", "references_and_lengths_figure", "fingerprint_table", "data_differences_table",
    "data_quality_table", "mixture_table", "tokenizer_table", "budget_table", "loss_mask_table",
    "example_lengths_figure", "truncation_table", "padding_share",
    # pruning (chapter 08)
    "SOURCE_PRUNED_SPARSITY", "pruning_iterations_table", "pruning_figure", "pruning_findings",
    "full_scale_comparison",
    # beyond (chapter 09)
    "gap_figure", "variant_figure", "gap_table", "extrapolation_table", "variant_table", "scaling_sentence",
    "interval_text", "family_table", "dynamic_table", "answers_table", "gpu_time_table", "answers_note", "passes_note",
    "expectation_note", "leave_one_out_table", "findings_note", "size_downstream_table",
]
