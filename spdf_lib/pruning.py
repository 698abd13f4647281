"""Iterative magnitude pruning of the dense pre-trained large model, and its baselines (chapter 08).

Each iteration removes ``fraction`` of the *remaining* selected weights with the smallest magnitude
(exactly ``floor(fraction x remaining)`` per tensor) and then retrains on a fixed token budget with
the masks held. Baselines at the same final sparsity:

* ``oneshot``: all the pruning at once, no retraining. Without retraining the magnitudes do not
  change between rounds, so pruning ``iterations`` times in a row is exactly one-shot pruning to
  the same per-tensor counts;
* ``oneshot_retrained``: the same one-shot mask, then retraining on the whole budget the iterative
  method spends;
* the static random mask of SPDF pre-training at the final sparsity (a pre-training run of
  ``spdf_lib.runs``).

The pruning run is described by ``spdf_lib.runs.PruningRun`` and computed by
``spdf_lib.runners.do_prune``; this module holds the schedule and the measurements.
"""

from __future__ import annotations

import math
from .profiles import PruningSettings

__all__ = ["METHODS", "zeros_schedule", "sparsity_schedule", "measure", "iterations_frame", "baselines_frame",
           "full_scale_arithmetic"]

METHODS = ("iterative", "oneshot", "oneshot_retrained")


def zeros_schedule(numel: int, fraction: float, iterations: int) -> list[int]:
    """Zeros of one tensor of ``numel`` entries after each of ``iterations`` rounds (index 0 = dense).

    A pure function of the iteration: round ``i`` prunes ``floor(fraction x remaining)``."""
    from .sparsity import n_masked

    zeros = [0]
    for _ in range(iterations):
        remaining = numel - zeros[-1]
        zeros.append(zeros[-1] + n_masked(fraction, remaining))
    return zeros


def sparsity_schedule(config, settings: PruningSettings) -> list[float]:
    """Sparsity of the selected weights of ``GPT(config)`` after each iteration (index 0 = dense)."""
    d, ff = config.n_embd, config.d_ff
    shapes = [3 * d * d, d * d, d * ff, ff * d] * config.n_layer
    per_tensor = [zeros_schedule(n, settings.fraction_per_iteration, settings.iterations) for n in shapes]
    total = sum(shapes)
    return [sum(z[i] for z in per_tensor) / total for i in range(settings.iterations + 1)]


def measure(model, config, valid_batches, device) -> dict:
    """Validation loss, sparsity per group, inference FLOPs per token and parameter memory."""
    from .flops import inference_flops_per_token, model_param_memory
    from .sparsity import sparsity_report
    from .training import mean_loss

    report = sparsity_report(model)
    groups = report[report["kind"] == "group"].set_index("name")["actual"].to_dict()
    linear_sparsity = groups.get("all", 0.0)
    memory = model_param_memory(model)
    loss = mean_loss(model, valid_batches, device)
    return {"val_loss": loss, "val_ppl": math.exp(loss), "sparsity": linear_sparsity,
            "sparsity_by_group": {k: v for k, v in groups.items() if k != "all"},
            "inference_flops_per_token": inference_flops_per_token(config, linear_sparsity),
            "params_dense": memory.dense, "params_nonzero": memory.nonzero}


# ----------------------------------------------------------------------------- chapter 08's views

def iterations_frame(result: dict):
    """One row per iteration: sparsity by group, validation perplexity, FLOPs and parameters."""
    import pandas as pd

    rows = []
    for row in result["rows"]:
        rows.append({"iteration": row["iteration"], "sparsity": row["sparsity"],
                     **{f"sparsity {k}": v for k, v in sorted(row["sparsity_by_group"].items())},
                     "val_ppl": row["val_ppl"], "retrain_tokens": row["retrain_tokens"],
                     "inference MFLOP/token": row["inference_flops_per_token"] / 1e6,
                     "params (dense)": row["params_dense"], "params (nonzero)": row["params_nonzero"]})
    return pd.DataFrame(rows)


def baselines_frame(results: dict[str, dict], random_static: dict | None):
    """Final validation perplexity of every method at the same final sparsity."""
    import pandas as pd

    labels = {"iterative": "iterative magnitude pruning (retrain between steps)",
              "oneshot": "one-shot magnitude pruning, no retraining",
              "oneshot_retrained": "one-shot magnitude pruning, retrained on the same tokens"}
    dense = next(iter(results.values()))["rows"][0]
    rows = [{"method": "dense pre-trained model (start)", "sparsity": 0.0, "val_ppl": dense["val_ppl"],
             "extra training tokens": 0}]
    for method, result in results.items():
        last = result["rows"][-1]
        rows.append({"method": labels[method], "sparsity": last["sparsity"], "val_ppl": last["val_ppl"],
                     "extra training tokens": last["retrain_tokens"]})
    if random_static is not None:
        rows.append({"method": "SPDF static random mask, pre-trained sparse from scratch",
                     "sparsity": random_static["sparsity"], "val_ppl": random_static["val_ppl"],
                     "extra training tokens": 0})
    return pd.DataFrame(rows)


def full_scale_arithmetic(sparsity: float = 0.84):
    """GPT-3 XL at ``sparsity``: inference FLOPs and parameter reduction vs the published 3x and 4.3x."""
    import pandas as pd

    from .flops import inference_flops_per_token, param_memory
    from .model import get_config

    cfg = get_config("gpt3-xl")
    flops_ratio = inference_flops_per_token(cfg, 0.0) / inference_flops_per_token(cfg, sparsity)
    memory = param_memory(cfg, sparsity)
    return pd.DataFrame([
        {"quantity": "inference FLOPs per token, dense / sparse", "ours": round(flops_ratio, 2), "published": 3.0},
        {"quantity": "parameters in memory, dense / nonzero", "ours": round(memory.dense / memory.nonzero, 2),
         "published": 4.3},
    ])
