"""The fine-tuning tasks (spdf_lib.data.tasks): counts against the data README, the DART split, multi-reference
test inputs, seeded subsets and linearized triples."""

from __future__ import annotations

import pytest

from spdf_lib import data

from conftest import needs_data  # noqa: E402  (skips when no data directory is found)


# (rows, inputs, references) per split, from the data README (shared/data/README.md).
README_COUNTS = {
    ("e2e", "train"): 42_061, ("e2e", "validation"): 4_672, ("e2e", "test"): (630, 4_693),
    ("webnlg", "train"): 18_102, ("webnlg", "validation"): 2_268, ("webnlg", "test"): (1_862, 4_928),
    # DART test: 12,552 annotations in the file, one of them empty (a counted skip).
    ("dart", "test"): (5_097, 12_552 - 1),
    ("summarization", "train"): 1_780, ("summarization", "validation"): 222, ("summarization", "test"): (223, 223),
}


@needs_data
@pytest.mark.parametrize("name,split", sorted(README_COUNTS))
def test_split_counts_match_the_data_readme(name, split):
    ds = data.load_task(name, split)
    expected = README_COUNTS[(name, split)]
    if split == "test":
        assert ds.num_rows == expected[0]
        assert sum(len(r) for r in data.column(ds, "references")) == expected[1]
        assert "target" not in ds.column_names
    else:
        assert ds.num_rows == expected
        assert all(t.strip() for t in data.column(ds, "target"))


@needs_data
def test_dart_dev_is_split_by_triple_set_into_train_and_validation():
    train_idx, validation_idx = data.dart_dev_partition()
    assert len(train_idx) + len(validation_idx) == 2_768  # README: dev triple sets
    assert not set(train_idx) & set(validation_idx)
    assert len(validation_idx) == round(0.1 * 2_768)
    rows = data.load_task("dart", "train").num_rows + data.load_task("dart", "validation").num_rows
    assert rows == 6_980  # README: dev annotations
    assert data.data_quality("dart")["test"]["empty references skipped"] == 1


@needs_data
def test_e2e_test_groups_all_references_of_an_mr():
    test = data.load_task("e2e", "test")
    counts = [len(r) for r in data.column(test, "references")]
    assert min(counts) == 1 and max(counts) == 45  # README: 1-45 references per MR
    sources = data.column(test, "source")
    assert len(set(sources)) == len(sources)
    assert sources[0] == "name[Blue Spice], eatType[coffee shop], area[city centre]"


@needs_data
def test_webnlg_test_marks_the_five_unseen_categories():
    test = data.load_task("webnlg", "test")
    seen = data.column(test, "seen")
    unseen_categories = {c for c, s in zip(data.column(test, "category"), seen) if not s}
    assert len(unseen_categories) == 5
    assert seen.count(False) == 891  # README: testdata_unseen_with_lex.xml entries


@needs_data
def test_limit_takes_the_same_random_subset_every_time():
    a = data.load_task("webnlg", "train", limit=50)
    b = data.load_task("webnlg", "train", limit=50)
    assert a.num_rows == 50 and data.column(a, "source") == data.column(b, "source")
    assert len(set(data.column(a, "category"))) > 3  # not just the first file's category


def test_linearize_triples():
    triples = ['Abilene_Regional_Airport | cityServed | "Abilene, Texas"', "A | NO._OF_CHANNELS | 1"]
    assert data.linearize_triples(triples) == "Abilene Regional Airport | cityServed | Abilene, Texas ; A | NO. OF CHANNELS | 1"
