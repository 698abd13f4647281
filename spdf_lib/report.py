"""Frames, figures and files that chapters 04-06 show and write (thin chapters, logic here)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from . import store
from .tables import METRIC, TASK_LABEL


def write_table(frame: pd.DataFrame, tables_dir: Path, profile: str, name: str) -> Path:
    """Write ``frame`` as ``tables/<profile>/<name>.csv`` and ``.md`` (atomically); return the CSV path."""
    out = Path(tables_dir) / profile
    store.atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
    store.atomic_write_text(out / f"{name}.md", _markdown(frame))
    return out / f"{name}.csv"


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table without the optional ``tabulate`` dependency."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pretrain_plan(runs) -> pd.DataFrame:
    """One row per planned pre-training run: shape, parameters, token budget (chapter 04)."""
    from .model import num_params

    rows = []
    for r in runs:
        params = num_params(r.model)
        rows.append({"run": r.run_id, "layers": r.model.n_layer, "d_model": r.model.n_embd,
                     "heads": r.model.n_head, "params": params,
                     "non_embedding_params": num_params(r.model, non_embedding=True),
                     "sparsity": r.sparsity, "tokens": r.tokens, "tokens_per_param": r.tokens / params,
                     "steps": r.steps, "batch_x_seq": f"{r.settings.batch_size} x {r.settings.seq_len}"})
    return pd.DataFrame(rows)


def pretrain_summary(results: Iterable[dict]) -> pd.DataFrame:
    """Validation perplexity, tokens, passes over the corpus, time and FLOPs per run (chapter 04)."""
    rows = []
    for r in results:
        log = r["log"]
        rows.append({"run": r["run_id"], "size": r["size"], "sparsity": r["sparsity"], "tokens": r["tokens"],
                     "passes": round(r["passes"], 2), "val_loss": r["val_loss"], "val_ppl": r["val_ppl"],
                     "training_PFLOP": r["training_flops"] / 1e15, "wall_s": log.get("wall_s", math.nan),
                     "tokens_per_s": log.get("tokens_per_s", math.nan), "device": r["environment"]["device"]})
    return pd.DataFrame(rows).sort_values(["size", "sparsity"]).reset_index(drop=True)


def loss_curves(results: Iterable[dict], sizes: Iterable[str]):
    """Figure: training and validation loss against tokens, one panel per size, one colour per level."""
    import matplotlib.pyplot as plt

    results = list(results)
    sizes = list(sizes)
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    colours = {0.0: "tab:blue", 0.5: "tab:orange", 0.75: "tab:red"}
    for ax, size in zip(axes[0], sizes):
        for r in sorted((r for r in results if r["size"] == size), key=lambda r: r["sparsity"]):
            log, per_step = r["log"], r["tokens"] / max(1, r["steps"])
            colour = colours.get(r["sparsity"])
            label = "dense" if r["sparsity"] == 0 else f"{r['sparsity']:.0%} sparse"
            ax.plot([s * per_step / 1e6 for s in log["train_step"]], log["train_loss"], color=colour,
                    alpha=0.35, linewidth=1)
            ax.plot([s * per_step / 1e6 for s in log["val_step"]], log["val_loss"], "o-", color=colour,
                    markersize=3, label=f"{label} (validation)")
        ax.set_title(f"{size}: pre-training loss")
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def lr_schedule_figure(optim):
    """Figure: the learning rate of every step (a pure function, ``training.lr_at``)."""
    import matplotlib.pyplot as plt

    from .training import lr_at

    steps = list(range(optim.total_steps))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(steps, [lr_at(s, optim) for s in steps])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("warm-up then cosine decay")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def finetune_frame(results: Iterable[dict]) -> pd.DataFrame:
    """One row per fine-tuning run: task, base model, learning rate, seed, validation loss."""
    rows = [{"run": r["run_id"], "size": r["size"], "sparsity": r["sparsity"], "task": r["task"],
             "mode": "sparse (masks kept)" if r["keep_masks"] else "dense", "lr": r["lr"], "seed": r["seed"],
             "train_examples": r["train_examples"], "steps": r["steps"], "dev_loss": r["dev_loss"],
             "wall_s": r["log"].get("wall_s", math.nan)} for r in results]
    return pd.DataFrame(rows).sort_values(["size", "task", "sparsity", "mode", "lr", "seed"]).reset_index(drop=True)


def eval_frame(results: Iterable[dict]) -> pd.DataFrame:
    rows = [{"run": r["run_id"], "size": r["size"], "sparsity": r["sparsity"], "task": r["task"],
             "mode": "sparse (masks kept)" if r["keep_masks"] else "dense", "seed": r["seed"], "lr": r["lr"],
             "metric": r["metric"], "value": r["value"], "test_inputs": r["test_inputs"]} for r in results]
    return pd.DataFrame(rows).sort_values(["size", "task", "sparsity", "mode", "seed"]).reset_index(drop=True)


def figure4(cs: dict, sizes: Iterable[str], levels: Iterable[float], size_labels: dict[str, str]):
    """Figure 4 rebuilt: E2E BLEU and summarization perplexity against pre-training sparsity,
    one line per model size, error bars = standard deviation over fine-tuning seeds."""
    import matplotlib.pyplot as plt

    levels = list(levels)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task in zip(axes, ("e2e", "summarization")):
        for size in sizes:
            points = [(lvl, cs[(size, task, lvl)]) for lvl in levels if (size, task, lvl) in cs]
            if points:
                ax.errorbar([100 * p[0] for p in points], [p[1].mean for p in points],
                            yerr=[p[1].std for p in points], marker="o", capsize=4, label=size_labels.get(size, size))
        metric, direction = METRIC[task]
        if metric == "PPL":
            ax.set_yscale("log")  # the two sizes can differ by an order of magnitude
        ax.set_xlabel("pre-training sparsity (%)")
        ax.set_ylabel(f"test {metric} ({direction} is better)")
        ax.set_title(TASK_LABEL[task].split(" (")[0] + f": {metric} after dense fine-tuning")
        ax.set_xticks([100 * lvl for lvl in levels])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def pretrain_findings(summary: pd.DataFrame, sizes: Iterable[str]) -> str:
    """A paragraph of computed statements about validation perplexity vs sparsity (chapter 04)."""
    lines = []
    for size in sizes:
        rows = summary[summary["size"] == size].set_index("sparsity")
        if 0.0 not in rows.index:
            continue
        dense = rows.loc[0.0, "val_ppl"]
        parts = [f"{level:.0%} sparse {rows.loc[level, 'val_ppl']:.2f} ({rows.loc[level, 'val_ppl'] / dense - 1:+.1%})"
                 for level in rows.index if level > 0]
        lines.append(f"- **{size}**: dense validation perplexity {dense:.2f}; " + "; ".join(parts) + ".")
    dense_flops = summary[summary["sparsity"] == 0.0]["training_PFLOP"].sum()
    sparse_flops = summary[summary["sparsity"] == summary["sparsity"].max()]["training_PFLOP"].sum()
    lines.append(f"- At the highest sparsity the runs cost {sparse_flops / dense_flops:.2f}x the training FLOPs "
                 f"of the dense runs (FLOP model of chapter 02); on this hardware the masked runs are not "
                 f"faster, because a dense kernel multiplies the zeros too (chapter 07).")
    return "\n".join(lines)


def finetune_settings(profile) -> pd.DataFrame:
    """The fine-tuning budget of each task at ``profile`` (chapter 05)."""
    ft = profile.finetune
    return pd.DataFrame([{"task": t.name, "epochs": t.epochs,
                          "train examples": "all" if t.max_train_examples is None else t.max_train_examples,
                          "validation pairs (lr choice)": t.max_dev_examples,
                          "test inputs": "all" if t.max_test_inputs is None else t.max_test_inputs,
                          "batch": ft.batch_size, "max tokens": ft.max_len,
                          "lr grid": ", ".join(f"{lr:g}" for lr in ft.lr_grid),
                          "decoding": (f"beam {ft.beam_size}, length penalty {ft.length_penalty}, "
                                       f"no-repeat {ft.no_repeat_ngram_size}-grams, max {t.max_new_tokens} tokens")
                          if t.max_new_tokens else "none (perplexity)"}
                         for t in ft.tasks])


def lr_grid_table(runs: pd.DataFrame, profile) -> pd.DataFrame:
    """Validation loss of every learning rate (seed 0, dense fine-tuning) and the chosen one."""
    seed0 = runs[(runs["mode"] == "dense") & (runs["seed"] == profile.seeds[0])]
    table = seed0.pivot_table(index=["size", "sparsity", "task"], columns="lr", values="dev_loss")
    table.columns = [f"lr {c:g}" for c in table.columns]
    table["chosen lr"] = [float(c.removeprefix("lr ")) for c in table.idxmin(axis=1)]
    return table.reset_index()


def finetune_curves(results: Iterable[dict], size: str, tasks: Iterable[str], grid: pd.DataFrame):
    """Figure: training loss of the chosen seed-0 dense runs of ``size``, one panel per task."""
    import matplotlib.pyplot as plt

    tasks = list(tasks)
    results = list(results)
    chosen = {(r["sparsity"], r["task"]): r["chosen lr"] for r in grid[grid["size"] == size].to_dict("records")}
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in results:
            if (r["size"], r["task"], r["keep_masks"], r["seed"]) == (size, task, False, 0) and \
                    chosen.get((r["sparsity"], task)) == r["lr"]:
                label = "dense" if r["sparsity"] == 0 else f"{r['sparsity']:.0%} sparse pre-training"
                ax.plot(r["log"]["train_step"], r["log"]["train_loss"], label=label)
        ax.set_title(f"{task} ({size})")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (nats/token)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def control_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Validation loss with masks removed vs kept, for the models that have the control."""
    control = runs[runs["mode"] != "dense"]
    if control.empty:
        return pd.DataFrame()
    keys = control[["size", "sparsity", "task", "lr"]].drop_duplicates()
    rows = []
    for k in keys.itertuples(index=False):
        same = runs[(runs["size"] == k.size) & (runs["sparsity"] == k.sparsity) & (runs["task"] == k.task)
                    & (runs["lr"] == k.lr)]
        dense = same[same["mode"] == "dense"]["dev_loss"]
        sparse = same[same["mode"] != "dense"]["dev_loss"]
        rows.append({"size": k.size, "sparsity": k.sparsity, "task": k.task, "seeds": len(sparse),
                     "dev loss, dense fine-tuning": dense.mean(), "dev loss, masks kept": sparse.mean(),
                     "difference": sparse.mean() - dense.mean()})
    return pd.DataFrame(rows)


def control_findings(control: pd.DataFrame) -> str:
    if control.empty:
        return "This profile runs no masks-kept control."
    better = int((control["difference"] > 0).sum())
    return (f"Dense fine-tuning reaches a lower validation loss than fine-tuning with the masks kept in "
            f"{better} of {len(control)} (size, task) pairs; the mean gap is "
            f"{control['difference'].mean():+.3f} nats/token (positive: densifying helps).")


REPO_TABLES = store.REPO_ROOT / "tables"
from .evaluation import BLEU_TOKENIZATION  # noqa: E402  (re-exported for chapter 06)


def test_sizes(evals: pd.DataFrame) -> str:
    """'630 E2E inputs, ...' from the evaluation results (chapter 06)."""
    sizes = evals.groupby("task")["test_inputs"].max()
    return ", ".join(f"{n:,} {TASK_LABEL[t].split(' (')[0]} test inputs" for t, n in sizes.items())


def verdict_frame(verdicts) -> pd.DataFrame:
    statements = {"H1": "50-75% sparse pre-training, then dense fine-tuning, preserves downstream accuracy",
                  "H2": "simpler (data-to-text) tasks tolerate more pre-training sparsity than summarization",
                  "H3": "the larger model loses less to high pre-training sparsity than the smaller one"}
    return pd.DataFrame([{"hypothesis": v.hypothesis, "statement": statements[v.hypothesis],
                          "verdict at this scale": v.verdict, "evidence": v.evidence} for v in verdicts])


def paper_comparison(cs: dict, profile, verdicts: pd.DataFrame) -> str:
    """Where our deltas agree in sign with the paper's published ones, computed cell by cell."""
    from .tables import PUBLISHED_DELTA

    paper_model = {profile.sizes[0]: "gpt2-small", profile.sizes[-1]: "gpt3-xl"}
    same, differ = [], []
    for (model, task, level), published in PUBLISHED_DELTA.items():
        size = next(s for s, m in paper_model.items() if m == model)
        if (size, task, level) in cs and (size, task, 0.0) in cs:
            ours = cs[(size, task, level)].mean - cs[(size, task, 0.0)].mean
            text = f"{task} at {level:.0%} on the {model} analog: ours {ours:+.2f}, paper {published:+.2f}"
            (same if (ours >= 0) == (published >= 0) else differ).append(text)
    lines = [f"Of the {len(same) + len(differ)} cells with a published change, {len(same)} move in the same "
             f"direction as the paper's and {len(differ)} do not."]
    if differ:
        lines.append("Cells that differ in direction: " + "; ".join(differ) + ".")
    not_supported = verdicts[verdicts["verdict at this scale"] != "supported"]["hypothesis"].tolist()
    if not_supported:
        lines.append(f"At this scale the results do not fully support {', '.join(not_supported)}. The models here "
                     f"are hundreds of times smaller than the paper's and see far less data, so this is a statement "
                     f"about the reduced setting, not a refutation of the paper; it is reported as measured.")
    else:
        lines.append("At this scale all three hypotheses are supported by the rules above.")
    return "\n\n".join(lines)


def control_test_table(results: Iterable[dict]) -> pd.DataFrame:
    """Test metric of dense fine-tuning vs masks-kept fine-tuning of the same pre-trained models."""
    frame = eval_frame(results)
    control = frame[frame["mode"] != "dense"]
    if control.empty:
        return pd.DataFrame()
    keys = control[["size", "sparsity", "task"]].drop_duplicates()
    rows = []
    for k in keys.itertuples(index=False):
        same = frame[(frame["size"] == k.size) & (frame["sparsity"] == k.sparsity) & (frame["task"] == k.task)]
        dense = same[same["mode"] == "dense"]["value"]
        kept = same[same["mode"] != "dense"]["value"]
        metric, direction = METRIC[k.task]
        rows.append({"size": k.size, "sparsity": k.sparsity, "task": k.task, "metric": f"{metric} ({direction})",
                     "dense fine-tuning": f"{dense.mean():.2f} ± {dense.std(ddof=1) if len(dense) > 1 else 0:.2f}",
                     "masks kept": f"{kept.mean():.2f} ± {kept.std(ddof=1) if len(kept) > 1 else 0:.2f}",
                     "dense minus kept": round(float(dense.mean() - kept.mean()), 2)})
    return pd.DataFrame(rows)


def example_outputs(tables_dir: Path, profile, task: str, n: int = 3) -> pd.DataFrame:
    """The first ``n`` test inputs of ``task``, their first reference and each seed-0 large model's output."""
    import gzip

    from .data import load_task

    test = load_task(task, "test")
    rows = [{"input": test[i]["source"], "reference (1st)": test[i]["references"][0]} for i in range(n)]
    folder = Path(tables_dir) / profile.name / "runs" / "eval"
    for path in sorted(folder.glob(f"{profile.sizes[-1]}_s*_{task}_denseft_*_seed{profile.seeds[0]}.outputs.txt.gz")):
        level = path.name.split("_s")[1][:2]
        lines = gzip.decompress(path.read_bytes()).decode().split("\n")
        for i in range(min(n, len(lines))):
            rows[i][f"{int(level)}% sparse pre-training"] = lines[i]
    return pd.DataFrame(rows)


def published_beside(tables_dir: Path, profile: str, repo_tables: Path) -> pd.DataFrame:
    """Table 2 of this run beside the committed ``gpu`` Table 2 (the published run)."""
    ours_path = Path(tables_dir) / profile / "table2.csv"
    published_path = Path(repo_tables) / "gpu" / "table2.csv"
    if not published_path.exists():
        return pd.DataFrame({"note": ["no committed gpu-profile tables in this checkout"]})
    ours = pd.read_csv(ours_path).set_index("task")
    published = pd.read_csv(published_path).set_index("task")
    cols = [c for c in ours.columns if "ours" in c]
    return pd.concat({f"this run ({profile})": ours[cols], "published run (gpu)": published[cols]}, axis=1)


def missing_note(missing: dict[str, list[str]]) -> str:
    """A paragraph naming the runs of a published profile that were never computed (empty if none)."""
    if not missing:
        return ""
    parts = [f"{len(ids)} {stage} runs ({', '.join(sorted(ids)[:4])}{', ...' if len(ids) > 4 else ''})"
             for stage, ids in sorted(missing.items())]
    return ("**Incomplete results.** The committed run of this profile lacks " + "; ".join(parts) + ". "
            "Their cells read `n/a` or rest on fewer seeds, and no verdict below uses them. They were not "
            "finished within the time the GPU was available; `scripts/gpu_profile.sh` resumes the grid.")


def grid_edge_note(grid: pd.DataFrame, profile) -> str:
    """Say how often the chosen learning rate sits at an end of the grid (a wider grid might do better)."""
    lrs = profile.finetune.lr_grid
    if len(lrs) < 2:
        return f"This profile tries a single learning rate ({lrs[0]:g}); nothing is chosen."
    low = int((grid["chosen lr"] == min(lrs)).sum())
    high = int((grid["chosen lr"] == max(lrs)).sum())
    return (f"The chosen rate is the smallest of the grid in {low} and the largest in {high} of the "
            f"{len(grid)} (size, sparsity, task) cells; where it sits at an end, a wider grid might have found "
            f"a better rate, for dense and sparse pre-training alike.")
