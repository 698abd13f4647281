"""Fine-tuning examples in the LoRA NLG format, and their batches (chapter 03).

A (source, target) pair becomes the token sequence ``source <|sep|> target <|eos|>``
(:func:`format_example`, :func:`encode_finetune`); the loss covers the target tokens only: the
targets of every other position are ``spdf_lib.model.IGNORE_INDEX`` (:func:`collate_finetune`).
Long pairs are cut by :func:`truncation_lengths`, and :func:`finetune_batches` groups examples of
similar length into batches, in an order that is a pure function of (seed, epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .readers import column
from .tokenizer import EOS_TOKEN, SEP_TOKEN

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tokenizer import SpdfTokenizer


def format_example(source: str, target: str) -> str:
    """The text the model is fine-tuned on: ``source<|sep|> target<|eos|>``. Explained in chapter 03.

    The space before the target makes its first word tokenize as in running text.
    """
    return f"{source}{SEP_TOKEN} {target}{EOS_TOKEN}"


@dataclass(frozen=True)
class FinetuneExample:
    """One tokenized (source, target) pair: ``source <sep> target <eos>``. Explained in chapter 03.

    ``loss_mask[i]`` is True where token ``i`` is part of the target (its EOS included): the loss is
    computed on predicting exactly these tokens.
    """

    input_ids: tuple[int, ...]
    loss_mask: tuple[bool, ...]
    n_source: int  # source tokens kept (the separator follows them)
    source_truncated: bool
    target_truncated: bool  # when True the EOS was cut off too

    def __len__(self) -> int:
        return len(self.input_ids)


def truncation_lengths(n_source: int, n_target: int, max_len: int) -> tuple[int, int]:
    """Source and target tokens kept when ``source + <sep> + target`` must fit ``max_len`` tokens.

    ``n_target`` counts the target with its EOS. Rules (chapter 03): if everything fits, nothing is
    cut. Otherwise the target keeps what the source leaves, but at least half of the budget, and is
    cut at its end (losing the EOS); the source is cut at its end (a news article keeps its headline
    and first paragraphs, a triple list its first triples).
    """
    if max_len < 4:
        raise ValueError(f"max_len={max_len} is too small for source, separator, target and EOS")
    budget = max_len - 1  # the separator
    if n_source + n_target <= budget:
        return n_source, n_target
    target_kept = min(n_target, max(budget - n_source, budget - budget // 2))
    source_kept = min(n_source, budget - target_kept)
    return source_kept, target_kept


def encode_finetune(tok: "SpdfTokenizer", dataset, max_len: int) -> list[FinetuneExample]:
    """Tokenize (source, target) rows into fine-tuning examples of at most ``max_len`` tokens.

    ``dataset`` is a train/validation split of :func:`load_task` (or anything with ``source`` and
    ``target`` columns); pass ``as_pairs(test)`` for a test split. Explained in chapter 03.
    """
    columns = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    if "target" not in columns or "source" not in columns:
        raise ValueError(f"encode_finetune needs 'source' and 'target' columns, found {columns} "
                         f"(use as_pairs() on a test split)")
    sources = column(dataset, "source")
    targets = column(dataset, "target")
    source_ids = tok.encode_batch(sources)
    target_ids = tok.encode_batch([" " + t for t in targets])
    sep, eos = tok.sep_id, tok.eos_id
    examples = []
    for s, t in zip(source_ids, target_ids):
        t = t + [eos]
        n_s, n_t = truncation_lengths(len(s), len(t), max_len)
        ids = tuple(s[:n_s]) + (sep,) + tuple(t[:n_t])
        mask = (False,) * (n_s + 1) + (True,) * n_t
        examples.append(FinetuneExample(ids, mask, n_s, n_s < len(s), n_t < len(t)))
    return examples


def collate_finetune(examples: list[FinetuneExample], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Right-padded ``(idx, targets)``: ``targets[b, t]`` is token ``t + 1`` where it is a target
    token, else ``IGNORE_INDEX`` (no loss), so the loss covers exactly the target tokens."""
    import torch

    from ..model import IGNORE_INDEX

    width = max(len(e) for e in examples) - 1
    idx = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        ids = torch.tensor(e.input_ids, dtype=torch.long)
        mask = torch.tensor(e.loss_mask[1:], dtype=torch.bool)
        n = len(e) - 1
        idx[row, :n] = ids[:-1]
        targets[row, :n] = torch.where(mask, ids[1:], torch.full_like(ids[1:], IGNORE_INDEX))
    return idx, targets


LENGTH_BUCKET_BATCHES = 50  # batches per sorting window: long enough to group lengths, short enough to mix


def batch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches of example indices, a pure function of (lengths, seed, epoch).

    Shuffle all examples, sort each window of ``LENGTH_BUCKET_BATCHES`` batches by length, cut it into
    batches, then shuffle the batches: little padding, yet every epoch sees a new order.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths_arr = np.asarray(lengths)
    window = batch_size * LENGTH_BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        part = order[start:start + window]
        part = part[np.argsort(lengths_arr[part], kind="stable")]
        batches += [part[i:i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def finetune_batches(examples: list[FinetuneExample], batch_size: int, seed: int,
                     epoch: int, pad_id: int | None = None) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Yield ``(idx, targets)`` LongTensor batches for one epoch (see :func:`batch_order`).

    ``pad_id`` fills ``idx`` beyond each example (its targets are ``IGNORE_INDEX``, so its value never
    matters); it defaults to 0. The last batch may be smaller. Explained in chapter 03.
    """
    if not examples:
        raise ValueError("finetune_batches needs at least one example")
    pad = 0 if pad_id is None else pad_id
    for batch in batch_order([len(e) for e in examples], batch_size, seed, epoch):
        yield collate_finetune([examples[i] for i in batch], pad)



__all__ = ["format_example", "FinetuneExample", "truncation_lengths", "encode_finetune", "collate_finetune",
           "LENGTH_BUCKET_BATCHES", "batch_order", "finetune_batches"]
