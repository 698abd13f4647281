"""spdf_lib: the library behind the SPDF companion book.

Sparse pre-training and dense fine-tuning (SPDF) rebuilt at reduced scale: sparsity masks,
small GPT models, FLOP accounting, data, training and evaluation, and a simulated dataflow kernel.
The README's layout section says what each module is for; chapter 00 lists the chapters and profiles.

Words the modules share:

* **profile** (``profiles``): the settings of one scale of the book, ``smoke``, ``cpu`` or ``gpu``;
* **run** (``runs``): one pre-training, fine-tuning, evaluation or pruning job, a frozen dataclass whose
  hash is its cache key; its **stage** is which of those it is, its **variant** which kind of
  pre-training (the grid's own, or chapter 09's iso-FLOP, RigL and SET runs);
* **grid**: every run a profile plans, computed by the one **scheduler**;
* **cell**: one (size, task, pre-training sparsity) of Tables 1 and 2 (``verdicts.Cell``); its
  **final runs** are its fine-tunes at the learning rate its search chose, one unit per pre-trained
  model (pre-training seed);
* **committed** results are those under ``tables/<profile>/runs/`` (checked against a manifest), as
  opposed to the **cache** (``SPDF_CACHE``); the **published run** is the committed ``gpu`` grid, and
  the paper's own numbers are the **published values** (``verdicts.PUBLISHED_DELTA``);
* the **first published run** is the earlier committed ``gpu`` grid under ``tables/gpu/percell_run/``,
  and the learning-rate **rule** is one rate *per cell* or one *shared* by a size and task's sparsities
  (``profiles.LRSearch.shared``; ``rate_picks`` compares the two over the committed runs);
* the **published re-run** is the complete second run of the published grid under the same profile,
  ``tables/gpu/shared_rerun/``, judged by ``reruns.RERUN_TEST_RULE``; a **fresh run** is one drawn from
  ``replication``'s model of a run, and a model's **record** is every comparison of it with a later run.
"""

__version__ = "0.1.0"
