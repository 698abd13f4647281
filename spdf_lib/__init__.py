"""spdf_lib: the library behind the SPDF companion book.

Sparse pre-training and dense fine-tuning (SPDF) rebuilt at reduced scale: sparsity masks,
small GPT models, FLOP accounting, data, training and evaluation, and a simulated dataflow kernel.
Chapter 00 of the book explains how the pieces fit together.
"""

__version__ = "0.1.0"
