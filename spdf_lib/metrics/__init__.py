"""The official metric suites of the data-to-text tasks, computed on the CPU from saved outputs (chapter 06).

The book's headline metric is sacreBLEU (:mod:`spdf_lib.evaluation`); the paper scored its test sets
"using official scripts", after the LoRA NLG setup. This package computes those suites from the
decoded outputs each evaluation saves (:mod:`spdf_lib.outputs`), so the published run can be re-scored
without a GPU:

* E2E: BLEU, NIST, METEOR, ROUGE-L and CIDEr of the E2E challenge scorer;
* WebNLG and DART: BLEU, METEOR and TER of the WebNLG GenerationEval script, after the LoRA
  preprocessing.

:mod:`.suites` says exactly how each number is computed, where we differ from the released scripts
and why the numbers do not change. METEOR and the tokenizer of E2E's COCO metrics are Java programs
(:mod:`.coco`); the rest is Python. Results are cached by a hash of the outputs, the references and
the scorer version (:mod:`.scoring`).

Public functions: :func:`score` (one run), :func:`score_eval_results` (every run of a profile, one
row each) and :func:`metric_tables` (one table per model size in the LoRA paper's layout).
"""

from __future__ import annotations

from ..outputs import OutputsMismatchError
from .coco import JavaNotFoundError, java_available
from .reporting import DIGITS, ESTIMATOR, metric_tables, outputs_path, score_eval_results
from .scoring import METRICS, SUITE_VERSION, SUITES, score, score_entry, scorer_version
from .suites import UnknownMetricError

__all__ = ["score", "score_entry", "score_eval_results", "metric_tables", "outputs_path", "SUITES", "METRICS",
           "SUITE_VERSION", "scorer_version", "DIGITS", "ESTIMATOR", "UnknownMetricError", "OutputsMismatchError",
           "JavaNotFoundError", "java_available"]
