"""Fine-tuning examples and batches (spdf_lib.data.finetune): the loss mask, truncation, bucketed batches."""

from __future__ import annotations

import pytest
import torch

from spdf_lib import data
from spdf_lib.data.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tiny_tok():
    corpus = ["name[The Eagle], eatType[coffee shop], food[French]. The Eagle is a French coffee shop."] * 50
    corpus += ["The quick brown fox jumps over the lazy dog. Café prices: £20-25."] * 50
    return train_tokenizer(corpus, vocab_size=320)


def test_loss_mask_covers_exactly_the_target_tokens(tiny_tok):
    pairs = {"source": ["name[The Eagle], food[French]", "name[X]"],
             "target": ["The Eagle serves French food.", "X is a café."]}
    examples = data.encode_finetune(tiny_tok, pairs, max_len=200)
    idx, targets = next(data.finetune_batches(examples, batch_size=2, seed=0, epoch=0, pad_id=tiny_tok.pad_id))
    for row in range(2):
        # find which example this row is (batches are shuffled)
        n = int((targets[row] != -100).sum())
        kept = targets[row][targets[row] != -100].tolist()
        matches = [i for i in range(2) if tiny_tok.encode(" " + pairs["target"][i]) + [tiny_tok.eos_id] == kept]
        assert len(matches) == 1
        e = examples[matches[0]]
        # targets are predicted from the separator onwards: positions n_source .. n_source + n - 1
        positions = (targets[row] != -100).nonzero().flatten().tolist()
        assert positions == list(range(e.n_source, e.n_source + n))
        assert idx[row, e.n_source].item() == tiny_tok.sep_id
        assert sum(e.loss_mask) == n


def test_truncation_respects_max_len_and_keeps_target_share(tiny_tok):
    assert data.truncation_lengths(10, 5, 100) == (10, 5)
    assert data.truncation_lengths(300, 20, 101) == (80, 20)  # source cut, target whole
    assert data.truncation_lengths(300, 200, 101) == (50, 50)  # both cut, target gets half
    long = {"source": ["word " * 400], "target": ["short answer"]}
    (e,) = data.encode_finetune(tiny_tok, long, max_len=64)
    assert len(e) == 64 and e.source_truncated and not e.target_truncated
    assert e.input_ids[-1] == tiny_tok.eos_id
    with pytest.raises(ValueError, match="max_len"):
        data.truncation_lengths(1, 1, 3)


def test_finetune_batches_are_deterministic_bucketed_and_complete(tiny_tok):
    sources = [f"name[{'x' * (i % 17)}]" for i in range(100)]
    pairs = {"source": sources, "target": ["ok" + " fine" * (i % 7) for i in range(100)]}
    examples = data.encode_finetune(tiny_tok, pairs, max_len=128)
    order_a = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=0)
    order_b = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=0)
    order_c = data.batch_order([len(e) for e in examples], 8, seed=1, epoch=1)
    assert order_a == order_b and order_a != order_c
    assert sorted(i for b in order_a for i in b) == list(range(100))
    batches = list(data.finetune_batches(examples, 8, seed=1, epoch=0, pad_id=tiny_tok.pad_id))
    assert len(batches) == 13
    for idx, targets in batches:
        assert idx.dtype == torch.long and targets.shape == idx.shape


def test_encode_finetune_rejects_a_test_split_without_targets(tiny_tok):
    with pytest.raises(ValueError, match="as_pairs"):
        data.encode_finetune(tiny_tok, {"source": ["a"], "references": [["b"]]}, max_len=32)
