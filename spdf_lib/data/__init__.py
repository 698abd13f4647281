"""The book's data: four fine-tuning tasks, the pre-training mixture and the tokenizer (chapter 03).

Everything is read from local files through Hugging Face ``datasets`` (CSV and JSON Lines with
``load_dataset``, XML parsed with ``xml.etree`` and turned into a ``Dataset``); nothing touches the
network. The package has one module per step from files to batches:

* :mod:`~spdf_lib.data.files`: where the data is (:func:`data_root`), which files each task and
  corpus reads, and their fingerprints (every cache derived from data has one in its key);
* :mod:`~spdf_lib.data.readers`: JSON Lines and CSV files read through ``datasets``, with errors that
  name the file and the row;
* :mod:`~spdf_lib.data.tasks`: the fine-tuning tasks E2E, WebNLG, DART and summarization
  (:func:`load_task`), after the LoRA NLG setup that SPDF follows;
* :mod:`~spdf_lib.data.pretraining`: the pre-training mixture of Wikipedia, Project Gutenberg and
  blog posts, our stand-in for the Pile (:func:`load_pretraining`);
* :mod:`~spdf_lib.data.tokenizer`: the byte-level BPE each profile trains on that mixture
  (:func:`get_tokenizer`);
* :mod:`~spdf_lib.data.finetune`: (source, target) pairs as ``source <|sep|> target <|eos|>``
  examples with a loss mask, and their length-bucketed batches;
* :mod:`~spdf_lib.data.streams`: the tokenized pre-training stream, cached, and its packed batches.

Each module imports only modules listed before it, so there is no import cycle. Everything a chapter
or runner needs is importable from ``spdf_lib.data`` itself:
``from spdf_lib.data import load_task, get_tokenizer``.
"""

from __future__ import annotations

from .files import (PRETRAIN_CORPORA, PRETRAIN_SPLITS, SPLITS, TASKS, DataNotFoundError, data_fingerprint,
                    data_path, data_root, pretraining_files, pretraining_fingerprint, task_files, task_fingerprint)
from .finetune import (LENGTH_BUCKET_BATCHES, FinetuneExample, batch_order, collate_finetune, encode_finetune,
                       finetune_batches, format_example, truncation_lengths)
from .pretraining import GutenbergStrip, corpus_sources, load_pretraining, pretraining_summary, strip_gutenberg
from .readers import column
from .streams import (n_windows, packed_batch, passes_for, pretraining_tokens, pretraining_tokens_path,
                      split_for_encoding, token_dtype, tokenize_documents)
from .tasks import (DART_VALIDATION_FRACTION, XmlEntry, as_pairs, dart_dev_partition, data_quality,
                    linearize_triples, load_task, parse_benchmark_xml, split_statistics, subset_indices)
from .tokenizer import (BYTE_ALPHABET_SIZE, EOS_TOKEN, PAD_TOKEN, SEP_TOKEN, SPECIAL_TOKENS, SpdfTokenizer,
                        get_tokenizer, load_tokenizer, tokenizer_settings, train_tokenizer)

__all__ = [
    # files
    "TASKS", "SPLITS", "PRETRAIN_SPLITS", "PRETRAIN_CORPORA", "DataNotFoundError", "data_root", "data_path",
    "data_fingerprint", "task_files", "task_fingerprint", "pretraining_files", "pretraining_fingerprint",
    # readers
    "column",
    # tasks
    "DART_VALIDATION_FRACTION", "XmlEntry", "linearize_triples", "parse_benchmark_xml", "load_task", "as_pairs",
    "data_quality", "split_statistics", "dart_dev_partition", "subset_indices",
    # pretraining
    "GutenbergStrip", "strip_gutenberg", "load_pretraining", "pretraining_summary", "corpus_sources",
    # tokenizer
    "SEP_TOKEN", "EOS_TOKEN", "PAD_TOKEN", "SPECIAL_TOKENS", "BYTE_ALPHABET_SIZE", "SpdfTokenizer",
    "get_tokenizer", "train_tokenizer", "load_tokenizer", "tokenizer_settings",
    # finetune
    "format_example", "FinetuneExample", "truncation_lengths", "encode_finetune", "collate_finetune",
    "LENGTH_BUCKET_BATCHES", "batch_order", "finetune_batches",
    # streams
    "split_for_encoding", "token_dtype", "tokenize_documents", "pretraining_tokens_path", "pretraining_tokens",
    "packed_batch", "passes_for", "n_windows",
]
