"""The presentation helpers of the teaching chapters (spdf_lib.figures)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from spdf_lib import figures  # noqa: E402
from spdf_lib.model import GPT, GPTConfig  # noqa: E402
from spdf_lib.sparsity import SparsitySpec, densify, n_masked, sparsify  # noqa: E402


def _sample(a, b):
    total = a + b
    doubled = 2 * total
    return doubled


def test_source_excerpt_shows_the_lines_between_the_markers_with_their_numbers():
    text = figures.source_excerpt(_sample, "total = a + b", "doubled = 2")
    assert "total = a + b\ndoubled = 2 * total\n```" in text
    assert "return doubled" not in text
    assert "test_figures._sample" in text
    whole = figures.source_excerpt(_sample, "")
    assert "def _sample(a, b):" in whole and "return doubled" in whole


@pytest.mark.parametrize("first, last", [("no such line", None), ("total = a + b", "no such end")])
def test_source_excerpt_fails_loudly_when_the_code_has_changed(first, last):
    with pytest.raises(ValueError, match="_sample"):
        figures.source_excerpt(_sample, first, last)


def test_show_table_hides_the_index_and_escapes_markup():
    frame = pd.DataFrame({"token": ["<|sep|>", "a"], "n": [1234, 5], "x": [0.123456, 2.0]}, index=[7, 8])
    html = figures.show_table(frame, {"n": "{:,}"}, precision=2).to_html()
    assert "&lt;|sep|&gt;" in html and "<|sep|>" not in html
    assert "1,234" in html
    assert "0.12" in html and "0.123" not in html  # the precision holds for the columns not in formats
    assert "row_heading" not in html  # no index column


def test_grouped_columns_puts_each_column_under_its_heading():
    frame = pd.DataFrame({"size": ["a"], "pre": [1], "fine": [2]})
    out = figures.grouped_columns(frame, {"tokens": ["pre", "fine"]}, names={"pre": "pre-training"})
    assert list(out.columns) == [("", "size"), ("tokens", "pre-training"), ("tokens", "fine")]
    spread = pd.DataFrame({"a": [1], "x": [2], "b": [3], "y": [4]})
    assert list(figures.grouped_columns(spread, {"g": ["a", "b"]}).columns) == [("g", "a"), ("g", "b"), ("", "x"),
                                                                             ("", "y")]
    with pytest.raises(ValueError, match="missing"):
        figures.grouped_columns(frame, {"tokens": ["missing"]})


def test_markdown_table_escapes_pipes_and_has_no_index():
    text = figures.markdown_table(pd.DataFrame({"a": ["x | y"], "b": [1]}, index=[9]))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x \\| y | 1 |"]


def test_padding_share_counts_the_padded_slots():
    assert figures.padding_share([2, 4, 4, 4], [[0, 1], [2, 3]]) == pytest.approx(1 - 14 / 16)
    assert figures.padding_share([3, 3], [[0, 1]]) == 0


def test_network_figure_keeps_an_exact_count_per_layer():
    fig = figures.network_figure([4, 6, 3], levels=(0.0, 0.75), seed=0)
    total = 4 * 6 + 6 * 3
    kept = total - n_masked(0.75, 24) - n_masked(0.75, 18)
    assert [ax.get_title() for ax in fig.axes] == [f"dense: {total} of {total} weights kept",
                                                   f"75% sparse: {kept} of {total} weights kept"]


def test_upkeep_table_tells_a_masked_model_from_a_densified_one():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, d_ff=32, block_size=8, vocab_size=32))
    masks = sparsify(model, SparsitySpec(level=0.5, seed=0))
    dense = densify(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, d_ff=32, block_size=8, vocab_size=32)))
    table = figures.upkeep_table({"masked": model, "other": dense}, masks).set_index("model")
    assert table.loc["masked", "of them nonzero"] == 0 and table.loc["masked", "masks attached"] == len(masks)
    assert table.loc["other", "share nonzero"] > 0.9 and table.loc["other", "masks attached"] == 0


def _pruning_frames():
    iterations = pd.DataFrame({"iteration": [0, 1, 2], "sparsity": [0.0, 0.2, 0.36], "val_ppl": [40.0, 41.0, 45.0],
                               "inference MFLOP/token": [10.0, 9.0, 8.0], "params (dense)": [100, 100, 100],
                               "params (nonzero)": [100, 90, 80], "retrain_tokens": [0, 10, 20]})
    baselines = pd.DataFrame({"method": ["dense", "iterative", "one-shot", "static"],
                              "sparsity": [0.0, 0.36, 0.36, 0.36], "val_ppl": [40.0, 45.0, 300.0, 43.0]})
    return iterations, baselines


def test_pruning_figure_draws_the_baselines_that_are_not_on_the_path():
    iterations, baselines = _pruning_frames()
    fig = figures.pruning_figure(iterations, baselines)
    right = fig.axes[1]
    labels = right.get_legend_handles_labels()[1]
    assert labels[1:] == ["one-shot", "static"]  # dense start and iterative end are points of the path
    assert right.get_yscale() == "log"


def test_full_scale_comparison_sets_like_beside_like():
    iterations, _ = _pruning_frames()
    table = figures.full_scale_comparison(iterations, source_sparsity=0.84)
    at_reached, at_source = table.columns[2], table.columns[3]
    assert "36.0%" in at_reached and "84%" in at_source
    assert (table[at_reached] < table[at_source]).all()
    assert table.iloc[0, 1] == pytest.approx(10 / 8, abs=0.01)
