"""The runners: compute one run of the grid (or resume it) and return its result.

``RUNNERS[stage](run, device, deadline=..., progress=...)`` for the stages of ``spdf_lib.runs`` that
compute runs (chapter 09's ``beyond`` stage only plans pre-training, fine-tuning and evaluation runs,
which these runners compute). Each
runner first returns the cached result when there is one, reads every setting from the run itself
(never from a profile), trains through the one loop of ``spdf_lib.training``, and stores its result
with ``results.finish``. A run stopped by its deadline raises ``training.DeadlineReached`` after a
checkpoint; calling the runner again resumes it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from . import results, store, training
from .runs import EvalRun, FinetuneRun, PretrainRun, PruningRun, load_tokenizer

__all__ = ["RUNNERS", "do_pretrain", "do_finetune", "do_eval", "do_prune", "validation_batches", "initial_model",
           "pretrain_result", "pretrain_optim"]


def validation_batches(tokens, settings, n: int):
    """The fixed validation sequences every pre-trained model is measured on."""
    from .data import packed_batch

    return [packed_batch(tokens, i, settings.batch_size, settings.seq_len, seed=10_000) for i in range(n)]


def _pretraining_streams(run: PretrainRun):
    from .data import pretraining_tokens

    tok = load_tokenizer(run.tokenizer)
    docs = run.settings.corpus_docs
    return (pretraining_tokens(tok, "train", limit_docs=docs, verbose=False),
            pretraining_tokens(tok, "validation", limit_docs=docs, verbose=False))


def pretrain_optim(run: PretrainRun) -> training.OptimConfig:
    s = run.settings
    return training.OptimConfig(lr=s.lr, total_steps=run.steps, warmup_steps=max(1, int(s.warmup_frac * run.steps)),
                                min_lr_ratio=s.min_lr_ratio, weight_decay=s.weight_decay, beta1=s.beta1,
                                beta2=s.beta2, grad_clip=s.grad_clip)


def initial_model(run: PretrainRun):
    """The model ``run`` starts from: the GPT initialised from the run's seed, with its static random
    mask drawn from the same seed (dynamic sparsity starts from that mask too)."""
    from .model import GPT
    from .sparsity import SparsitySpec, sparsify

    torch.manual_seed(run.seed)
    model = GPT(run.model)
    if run.sparsity > 0:
        sparsify(model, SparsitySpec(level=run.sparsity, seed=run.seed))
    return model


def pretrain_result(run: PretrainRun, log: dict, train_tokens, model) -> dict:
    """The result fields of a finished pre-training (chapter 04; chapter 09's runs add their variant,
    mask updates, RigL's dense-gradient FLOPs and how far the mask moved)."""
    from . import dynamic
    from .data import passes_for
    from .flops import dense_gradient_flops, training_flops
    from .sparsity import SparsitySpec, moved_fraction

    s = run.settings
    val_loss = log["val_loss"][-1]
    flops = training_flops(run.model, log["tokens"], run.sparsity, seq_len=s.seq_len)
    extra = {}
    if run.variant:  # chapter 09's runs (the grid's results keep their published fields)
        updates = [] if run.dynamic is None else dynamic.update_steps(run.dynamic, run.steps)
        passes = len(updates) if run.variant == "rigl" else 0  # RigL's dense-gradient passes; SET needs none
        extra = {"variant": run.variant, "dynamic": None if run.dynamic is None else run.dynamic.as_dict(),
                 "mask_updates": len(updates), "dense_gradient_passes": passes,
                 "dense_gradient_flops": dense_gradient_flops(run.model, passes * run.tokens_per_step, s.seq_len),
                 "mask_moved_fraction": moved_fraction(model, SparsitySpec(level=run.sparsity, seed=run.seed))}
        flops += extra["dense_gradient_flops"]
    return {
        "size": run.size, "sparsity": run.sparsity, "seed": run.seed, "tokens": log["tokens"], "steps": run.steps,
        "corpus_tokens": int(len(train_tokens)),
        "passes": passes_for(log["tokens"], train_tokens, s.seq_len),
        "val_loss": val_loss, "val_ppl": math.exp(val_loss), "log": log, "training_flops": flops, **extra,
    }


def do_pretrain(run: PretrainRun, device: torch.device, deadline: float | None = None,
                progress: bool = True) -> dict:
    """Pre-train one model (or resume it) and return its result (chapter 04; chapter 09's longer and
    dynamic runs too: RigL and SET update their masks after every step through ``dynamic.hook``)."""
    from . import dynamic
    from .checkpoint import save_model
    from .data import packed_batch

    cached = results.cached_result(run)
    if cached is not None:
        return cached
    train_tokens, valid_tokens = _pretraining_streams(run)
    model = initial_model(run)
    s = run.settings
    valid = validation_batches(valid_tokens, s, s.eval_batches)
    d = results.run_dir(run)
    log = training.train(
        model, batch_at=lambda step: packed_batch(train_tokens, step, s.batch_size, s.seq_len, run.seed),
        optim=pretrain_optim(run), device=device, checkpoint_path=d / "checkpoint.pt",
        checkpoint_every=s.checkpoint_every, evaluate=lambda: training.mean_loss(model, valid, device),
        eval_every=s.eval_every, deadline=deadline, compile_model=device.type == "cuda",
        desc=f"pretrain {run.run_id}", progress=progress,
        after_step=None if run.dynamic is None else dynamic.hook(run.dynamic))
    save_model(d / "model.pt", model.cpu())
    return results.finish(run, pretrain_result(run, log, train_tokens, model))


def _load_base(run: FinetuneRun):
    from .checkpoint import load_model

    path = results.run_dir(run.base) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{run.run_id}: pre-trained model {path} is missing; run the pre-training "
                                f"stage (chapter 04) first")
    return load_model(path)


def do_finetune(run: FinetuneRun, device: torch.device, deadline: float | None = None,
                progress: bool = True) -> dict:
    """Fine-tune a pre-trained model (dense unless ``keep_masks``) and return its result (chapter 05)."""
    from .checkpoint import save_model
    from .data import encode_finetune, finetune_batches, load_task
    from .flops import training_flops
    from .sparsity import densify

    cached = results.cached_result(run)
    if cached is not None:
        return cached
    model = _load_base(run)
    if not run.keep_masks:
        densify(model)
    tok = load_tokenizer(run.base.tokenizer)
    o = run.optim
    train_examples = encode_finetune(tok, load_task(run.task, "train", limit=run.max_train_examples), o.max_len)
    dev_examples = encode_finetune(tok, load_task(run.task, "validation", limit=run.max_dev_examples), o.max_len)
    schedule = [batch for epoch in range(run.epochs)
                for batch in finetune_batches(train_examples, o.batch_size, seed=run.seed, epoch=epoch)]
    dev_batches = list(finetune_batches(dev_examples, o.batch_size, seed=0, epoch=0))
    torch.manual_seed(run.seed)
    optim = training.OptimConfig(lr=run.lr, total_steps=len(schedule),
                                 warmup_steps=max(1, int(o.warmup_frac * len(schedule))), min_lr_ratio=o.min_lr_ratio,
                                 weight_decay=o.weight_decay, beta1=o.beta1, beta2=o.beta2, grad_clip=o.grad_clip)
    d = results.run_dir(run)
    log = training.train(model, batch_at=schedule.__getitem__, optim=optim, device=device,
                         checkpoint_path=d / "checkpoint.pt", checkpoint_every=max(50, len(schedule) // 4),
                         evaluate=lambda: training.mean_loss(model, dev_batches, device), eval_every=0,
                         deadline=deadline, desc=f"finetune {run.run_id}", progress=progress)
    save_model(d / "model.pt", model.cpu())
    dev_loss = log["val_loss"][-1]
    # every position of every example is computed, prompts included (the loss covers targets only)
    processed = run.epochs * sum(len(ex.input_ids) for ex in train_examples)
    return results.finish(run, {
        "size": run.base.size, "sparsity": run.base.sparsity, "pretrain_seed": run.base.seed, "task": run.task,
        **({"variant": run.base.variant} if run.base.variant else {}),
        "lr": run.lr, "seed": run.seed, "keep_masks": run.keep_masks, "dev_loss": dev_loss,
        "dev_ppl": math.exp(dev_loss), "train_examples": len(train_examples), "steps": len(schedule),
        "tokens": log["tokens"], "log": log, "processed_tokens": processed,
        "training_flops": training_flops(run.base.model, processed, run.base.sparsity if run.keep_masks else 0.0,
                                         seq_len=o.max_len),
    })


def do_eval(run: EvalRun, device: torch.device, deadline: float | None = None, progress: bool = True) -> dict:
    """Evaluate a fine-tuned model on its test set: the task metric (BLEU from beam search, or the
    perplexity of the reference summaries) and, for every task, the mean per-token loss of the test
    references given their input (nats; the common scale of chapter 06's H2 and H3). Decoded outputs
    are stored beside the result, one JSON string per test input."""
    from .checkpoint import load_model
    from .data import as_pairs, encode_finetune, finetune_batches, load_task
    from .evaluation import corpus_bleu, decode_texts
    from .outputs import write_outputs

    cached = results.cached_result(run)
    if cached is not None:
        return cached
    ft = run.finetune
    model_path = results.run_dir(ft) / "model.pt"
    if not model_path.exists():
        raise FileNotFoundError(f"{run.run_id}: fine-tuned model {model_path} is missing; run the fine-tuning "
                                f"stage (chapter 05) first")
    model = load_model(model_path).to(device)
    tok = load_tokenizer(ft.base.tokenizer)
    test = load_task(ft.task, "test", limit=run.max_test_inputs)
    t0 = time.time()
    pairs = encode_finetune(tok, as_pairs(test), ft.optim.max_len)
    test_loss = training.mean_loss(model, list(finetune_batches(pairs, ft.optim.batch_size, seed=0, epoch=0)), device)
    if run.metric == "BLEU":
        hyps = decode_texts(model, tok, test["source"], max_len=ft.optim.max_len, max_new_tokens=run.max_new_tokens,
                            beam_size=run.beam_size, length_penalty=run.length_penalty,
                            no_repeat_ngram_size=run.no_repeat_ngram_size, device=device)
        value = corpus_bleu(hyps, test["references"])
        write_outputs(results.run_dir(run) / results.OUTPUTS_NAME, hyps)
    else:
        value = math.exp(test_loss)
    return results.finish(run, {
        "size": ft.base.size, "sparsity": ft.base.sparsity, "pretrain_seed": ft.base.seed, "task": ft.task,
        **({"variant": ft.base.variant} if ft.base.variant else {}),
        "seed": ft.seed, "lr": ft.lr, "keep_masks": ft.keep_masks, "metric": run.metric, "value": value,
        "test_loss": test_loss, "test_pairs": len(pairs), "test_inputs": len(test), "wall_s": time.time() - t0,
    })


def do_prune(run: PruningRun, device: torch.device, deadline: float | None = None, progress: bool = True) -> dict:
    """Run one pruning method and return per-iteration measurements (resumable per iteration; chapter 08)."""
    from .checkpoint import load_model, save_model
    from .data import packed_batch
    from .pruning import measure
    from .sparsity import magnitude_prune_

    cached = results.cached_result(run)
    if cached is not None:
        return cached
    d = results.run_dir(run)
    base_model = results.run_dir(run.base) / "model.pt"
    if not base_model.exists():
        raise FileNotFoundError(f"{run.run_id}: dense pre-trained model {base_model} is missing; run chapter 04 first")
    s, pre = run.settings, run.base.settings
    train_tokens, valid_tokens = _pretraining_streams(run.base)
    valid = validation_batches(valid_tokens, pre, pre.eval_batches)
    steps = max(1, s.retrain_tokens // (pre.batch_size * pre.seq_len))

    def retrain(model, n_steps: int, tag: str, offset: int) -> dict:
        # the pre-training optimiser at a fraction of its peak rate, over the retraining steps
        optim = dataclasses.replace(pretrain_optim(run.base), lr=pre.lr * run.lr_ratio, total_steps=n_steps,
                                    warmup_steps=max(1, n_steps // 20), min_lr_ratio=0.1)
        return training.train(model, batch_at=lambda step: packed_batch(train_tokens, offset + step, pre.batch_size,
                                                                         pre.seq_len, seed=1000),
                              optim=optim, device=device, checkpoint_path=d / f"{tag}.ckpt.pt",
                              checkpoint_every=max(50, n_steps // 2), deadline=deadline,
                              compile_model=False, desc=f"{run.run_id} {tag}", progress=progress)

    state_path = d / "state.pt"
    state = None
    if state_path.exists():
        try:
            state = store.load_torch(state_path)
            model = load_model(d / "model.pt")
        except (store.CorruptCacheError, FileNotFoundError, ValueError) as err:
            print(f"{run.run_id}: damaged pruning state, starting over ({err})")
            state = None
    if state is not None:
        rows, start = state["rows"], state["iteration"]
    else:
        model = load_model(base_model)
        rows, start = [{"iteration": 0, "retrain_tokens": 0, **measure(model.to(device), run.base.model, valid, device)}], 0
    model.to(device)
    for iteration in range(start + 1, s.iterations + 1):
        if run.method == "iterative":
            magnitude_prune_(model, s.fraction_per_iteration)
            spent = retrain(model, steps, f"iter{iteration}", offset=(iteration - 1) * steps)["tokens"]
        elif iteration == 1:  # one-shot: every round at once (see spdf_lib.pruning)
            for _ in range(s.iterations):
                magnitude_prune_(model, s.fraction_per_iteration)
            spent = 0
            if run.method == "oneshot_retrained":
                spent = retrain(model, steps * s.iterations, "all", offset=0)["tokens"]
        else:
            break
        rows.append({"iteration": iteration if run.method == "iterative" else s.iterations,
                     "retrain_tokens": rows[-1]["retrain_tokens"] + spent,
                     **measure(model, run.base.model, valid, device)})
        save_model(d / "model.pt", model)
        store.save_torch({"rows": rows, "iteration": iteration}, state_path)
    return results.finish(run, {"method": run.method, "rows": rows})


RUNNERS = {"pretrain": do_pretrain, "finetune": do_finetune, "eval": do_eval, "prune": do_prune}
