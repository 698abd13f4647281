"""Frames, figures and computed sentences of chapters 04 and 05 (thin chapters, logic here), and the
table writer every chapter uses. Chapter 06's views are in ``spdf_lib.findings``
(the published run) and ``spdf_lib.reruns`` (several runs compared)."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import stats, store
from .verdicts import TASK_LABEL, chosen_rates, level_label

__all__ = [
    "write_table", "show", "level_label", "pretrain_plan", "pretrain_summary", "pretrain_cells", "loss_curves",
    "lr_schedule_figure", "pretrain_findings", "finetune_settings", "finetune_frame", "lr_search_table",
    "lr_search_figure", "lr_search_note", "finetune_curves", "control_table", "control_findings",
]

LEVEL_COLOURS = {0.0: "tab:blue", 0.5: "tab:orange", 0.75: "tab:red"}


def _flat_columns(frame: pd.DataFrame) -> list[str]:
    if isinstance(frame.columns, pd.MultiIndex):
        return [" ".join(str(p) for p in col if str(p)).strip() for col in frame.columns]
    return [str(c) for c in frame.columns]


def write_table(frame: pd.DataFrame, tables_dir: Path, profile: str, name: str) -> Path:
    """Write ``frame`` as ``tables/<profile>/<name>.csv`` and ``.md`` (atomically); return the CSV path.
    Grouped (two-level) column headers are joined with a space in both files."""
    flat = frame.copy()
    flat.columns = _flat_columns(frame)
    out = Path(tables_dir) / profile
    store.atomic_write_text(out / f"{name}.csv", flat.to_csv(index=False))
    store.atomic_write_text(out / f"{name}.md", _markdown(flat))
    return out / f"{name}.csv"


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table without the optional ``tabulate`` dependency."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


_MISSING = ("", "n/a", "–", "-")


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return math.isnan(float(value))
    return isinstance(value, str) and value.strip() in _MISSING


def _display_cell(value, digits: int) -> str:
    """One cell as a reader sees it: yes/no, thousands separators, ``digits`` decimals (none at
    or above ten thousand, where decimals are noise), 'n/a' for a missing number."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.{digits}f}"
    return "n/a" if value is None else str(value)


def _is_sparsity(column) -> bool:
    last = column[-1] if isinstance(column, tuple) else column
    return str(last) == "sparsity"


def show(frame: pd.DataFrame, digits: int = 3, caption: str | None = None):
    """A table for reading: no index, numbers rounded, every cell shown in full (wrapped, never cut).

    A numeric ``sparsity`` column is shown as labels ('dense', '75% sparse'); a column with no value
    in any row is left out, and the caption says which."""
    shown = frame.copy()
    for column in shown.columns:
        if _is_sparsity(column) and pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: level_label(v) if pd.notna(v) else "all sparsities")
    empty = [c for c in shown.columns if len(shown) and all(_missing(v) for v in shown[c])]
    if empty:
        shown = shown.drop(columns=empty)
        names = ", ".join(" / ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in empty)
        note = f"Not shown: {names} (no value in any row)."
        caption = f"{caption} {note}" if caption else note
    styler = shown.style.hide(axis="index").format(lambda v: _display_cell(v, digits), escape="html")
    styler = styler.set_table_styles([{"selector": "td, th", "props": "white-space: normal; text-align: left;"},
                                      # a table wider than the page scrolls; its caption stays in view and wraps
                                      {"selector": "caption", "props": "caption-side: top; text-align: left; "
                                       "position: sticky; left: 0; max-width: min(100vw, 43em);"}])
    if caption:
        styler = styler.set_caption(caption)
    return styler


# ----------------------------------------------------------------------------- chapter 04

def pretrain_plan(runs) -> pd.DataFrame:
    """One row per (size, sparsity) of the planned pre-training: shape, parameters, token budget, seeds."""
    from .model import num_params

    rows = {}
    for r in runs:
        key = (r.size, r.sparsity)
        if key in rows:
            rows[key]["seeds"] += f", {r.seed}"
            continue
        params = num_params(r.model)
        rows[key] = {"size": r.size, "sparsity": r.sparsity, "layers": r.model.n_layer, "d_model": r.model.n_embd,
                     "heads": r.model.n_head, "params": params,
                     "non-embedding params": num_params(r.model, non_embedding=True), "tokens": r.tokens,
                     "tokens per param": r.tokens / params, "steps": r.steps,
                     "batch x seq": f"{r.settings.batch_size} x {r.settings.seq_len}", "seeds": str(r.seed)}
    return pd.DataFrame(list(rows.values()))


def pretrain_summary(results: Iterable[dict]) -> pd.DataFrame:
    """One row per pre-training run: validation perplexity, tokens, passes, time (all resumed segments
    summed), throughput, FLOPs and the device it ran on."""
    rows = []
    for r in results:
        log = r["log"]
        rows.append({"run": r["run_id"], "size": r["size"], "sparsity": r["sparsity"], "seed": r.get("seed", 0),
                     "tokens": r["tokens"], "passes": r["passes"], "val loss": r["val_loss"], "val PPL": r["val_ppl"],
                     "training PFLOP": r["training_flops"] / 1e15, "wall s": log.get("wall_s", math.nan),
                     "tokens/s": log.get("tokens_per_s", math.nan), "device": r["environment"]["device"]})
    return pd.DataFrame(rows).sort_values(["size", "sparsity", "seed"]).reset_index(drop=True)


def pretrain_cells(summary: pd.DataFrame, grid_levels: Sequence[float], sizes: Sequence[str] = ()) -> pd.DataFrame:
    """Validation perplexity per (size, sparsity) over pre-training seeds: mean, sample sd, 95% t
    interval of the mean, and the change against dense with its interval (Welch). Sizes in the
    order of ``sizes`` (then any others)."""
    rows = []
    present = list(dict.fromkeys(summary["size"]))
    for size in [s for s in sizes if s in present] + [s for s in present if s not in sizes]:
        group = summary[summary["size"] == size]
        dense = group[group["sparsity"] == 0.0]["val PPL"].tolist()
        for level in grid_levels:
            values = group[group["sparsity"] == level]["val PPL"].tolist()
            if not values:
                continue
            row = {"size": size, "sparsity": level_label(level), "seeds": len(values),
                   "val PPL mean": sum(values) / len(values),
                   "sd": float(pd.Series(values).std(ddof=1)) if len(values) > 1 else math.nan}
            try:
                iv = stats.mean_interval(values)
                row["95% CI of mean"] = f"[{iv.low:.2f}, {iv.high:.2f}]"
            except stats.NotComputable:
                row["95% CI of mean"] = "n/a (one seed)"
            if level == 0:
                row["Δ vs dense [95% CI]"] = "–"
            else:
                try:
                    row["Δ vs dense [95% CI]"] = stats.contrast([(1, values), (-1, dense)]).text()
                except stats.NotComputable:
                    row["Δ vs dense [95% CI]"] = f"{sum(values) / len(values) - sum(dense) / len(dense):+.2f} [n/a]"
            rows.append(row)
    return pd.DataFrame(rows)


def loss_curves(results: Iterable[dict], sizes: Iterable[str]):
    """Figure: validation loss against tokens, one panel per size, one colour per sparsity (every
    pre-training seed drawn; the training loss of the first seed as a faint line)."""
    import matplotlib.pyplot as plt

    results = [r for r in results if r["sparsity"] in LEVEL_COLOURS]
    sizes = list(sizes)
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        labelled = set()
        for r in sorted((r for r in results if r["size"] == size), key=lambda r: (r["sparsity"], r.get("seed", 0))):
            log, per_step = r["log"], r["tokens"] / max(1, r["steps"])
            colour = LEVEL_COLOURS[r["sparsity"]]
            if r.get("seed", 0) == min(x.get("seed", 0) for x in results):
                ax.plot([s * per_step / 1e6 for s in log["train_step"]], log["train_loss"], color=colour,
                        alpha=0.25, linewidth=1)
            label = None if r["sparsity"] in labelled else f"{level_label(r['sparsity'])} (validation)"
            labelled.add(r["sparsity"])
            ax.plot([s * per_step / 1e6 for s in log["val_step"]], log["val_loss"], "o-", color=colour,
                    markersize=3, linewidth=1, label=label)
        ax.set_title(f"{size}: pre-training loss")
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def lr_schedule_figure(planned: Iterable):
    """Figure: the learning rate of every optimizer step (a pure function, ``training.lr_at``) of the
    first planned run of each size (every run of a size shares its schedule)."""
    import matplotlib.pyplot as plt

    from .runners import pretrain_optim
    from .training import lr_at

    first = {}
    for run in planned:
        first.setdefault(run.size, run)
    fig, ax = plt.subplots(figsize=(6.5, 3))
    for size, run in first.items():
        optim = pretrain_optim(run)
        steps = list(range(optim.total_steps))
        ax.plot(steps, [lr_at(s, optim) for s in steps], label=f"{size} ({optim.total_steps:,} steps)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("pre-training schedule: linear warm-up, then cosine decay")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pretrain_findings(summary: pd.DataFrame, cells: pd.DataFrame, sizes: Iterable[str]) -> str:
    """Computed statements about validation perplexity and cost against sparsity (chapter 04)."""
    lines = []
    grid = summary[summary["sparsity"].isin(list(LEVEL_COLOURS))]
    seeds = int(grid.groupby(["size", "sparsity"]).size().min())
    for size in sizes:
        rows = cells[cells["size"] == size].set_index("sparsity")
        if "dense" not in rows.index:
            continue
        parts = [f"{label} {rows.loc[label, 'val PPL mean']:.2f} (change {rows.loc[label, 'Δ vs dense [95% CI]']})"
                 for label in rows.index if label != "dense"]
        lines.append(f"- **{size}**: dense validation perplexity {rows.loc['dense', 'val PPL mean']:.2f}; "
                     + "; ".join(parts) + ".")
    lines.append(f"- Each value is the mean over {seeds} pre-training seed(s); a bracket is the 95% Welch t "
                 f"interval of the change over those seeds (n/a with one seed).")
    intervals = []
    for (size, level), group in grid[grid["sparsity"] > 0].groupby(["size", "sparsity"]):
        dense = grid[(grid["size"] == size) & (grid["sparsity"] == 0.0)]["val PPL"].tolist()
        try:
            intervals.append(stats.contrast([(1, group["val PPL"].tolist()), (-1, dense)]))
        except stats.NotComputable:
            pass
    if intervals:
        above, below = sum(iv.low > 0 for iv in intervals), sum(iv.high < 0 for iv in intervals)
        lines.append(f"- Of the {len(intervals)} sparse (size, sparsity) cells with an interval, the whole interval of "
                     f"the change lies above zero in {above} (there sparse pre-training raised the validation "
                     f"perplexity by more than the spread between seeds explains), below zero in {below}, and "
                     f"contains zero in {len(intervals) - above - below}.")
    for size in sizes:
        part = grid[grid["size"] == size]
        dense_f = part[part["sparsity"] == 0.0]["training PFLOP"].mean()
        top = part["sparsity"].max()
        sparse_f = part[part["sparsity"] == top]["training PFLOP"].mean()
        lines.append(f"- **{size}** at {top:.0%}: {sparse_f / dense_f:.2f}x the training FLOPs of dense (the FLOP "
                     f"model of chapter 02).")
    lines.append("- The `tokens/s` column is not a speed comparison: the runs shared the device with a changing "
                 "number of others. " + _masked_speed_sentence())
    return "\n".join(lines)


def _masked_speed_sentence(benchmarks=store.REPO_ROOT / "tables" / "gpu" / "benchmarks") -> str:
    """What the controlled benchmark measured for masked against dense pre-training, from its file."""
    import json

    files = sorted(Path(benchmarks).glob("throughput_*.json"))
    if not files:
        return "No controlled measurement of masked against dense training is committed."
    record = json.loads(files[-1].read_text())
    ratios = {r["preset"]: r["masked_slowdown_vs_dense"] for r in record["rows"] if r["loop"] == "ratios"}
    parts = [f"{preset} {100 * v:+.1f}%" for preset, v in ratios.items()]
    log = files[-1].with_suffix(".log")
    header = log.read_text(encoding="utf-8").splitlines()[0] if log.exists() else ""
    how = (f" ({header.replace('; ', ', ')}: one measurement of each loop's median step time, with no interval)"
           if header else " (one measurement, with no interval)")
    return (f"On an idle GPU (`benchmarks/bench_pretrain_throughput.py`, committed as `{files[-1].name}`) a step "
            f"with 75% masks took this much longer than a dense step: {', '.join(parts)}{how}. Dense kernels "
            f"multiply the zeros too (chapter 07), so fewer FLOPs do not become less time on a GPU.")


# ----------------------------------------------------------------------------- chapter 05

def finetune_settings(profile) -> pd.DataFrame:
    """The fine-tuning budget of each task at ``profile`` (chapter 05); validation pairs are counted
    from the data (a task can have fewer than the cap)."""
    from .data import load_task

    ft = profile.finetune
    rows = []
    for t in ft.tasks:
        dev = len(load_task(t.name, "validation", limit=t.max_dev_examples))
        rows.append({"task": TASK_LABEL[t.name], "epochs": t.epochs,
                     "train examples": "all" if t.max_train_examples is None else t.max_train_examples,
                     "validation pairs (rate choice)": dev,
                     "test inputs": "all" if t.max_test_inputs is None else t.max_test_inputs,
                     "batch": ft.batch_size, "max tokens": ft.max_len,
                     "beam": ft.beam_size if t.max_new_tokens else "-",
                     "length penalty": f"{ft.length_penalty:g}" if t.max_new_tokens else "-",
                     "no-repeat n-gram": ft.no_repeat_ngram_size if t.max_new_tokens else "-",
                     "max new tokens": t.max_new_tokens if t.max_new_tokens else "- (perplexity)"})
    return pd.DataFrame(rows)


def finetune_frame(results: Iterable[dict]) -> pd.DataFrame:
    """One row per fine-tuning run: task, base model, learning rate, seeds, validation loss, time."""
    rows = [{"run": r["run_id"], "size": r["size"], "sparsity": r["sparsity"], "pretrain seed": r["pretrain_seed"],
             "task": r["task"], "mode": "sparse (masks kept)" if r["keep_masks"] else "dense", "lr": r["lr"],
             "seed": r["seed"], "train examples": r["train_examples"], "steps": r["steps"],
             "dev loss": r["dev_loss"], "wall s": r["log"].get("wall_s", math.nan)} for r in results]
    return pd.DataFrame(rows).sort_values(["size", "task", "sparsity", "pretrain seed", "mode", "lr", "seed"]
                                          ).reset_index(drop=True)


def _rates(c: dict) -> dict[float, float]:
    """A cell's validation loss by rate, keys as floats (results on disk store them as strings)."""
    return {float(lr): float(loss) for lr, loss in c["losses"].items()}


def lr_search_table(lr_search: Iterable[dict]) -> pd.DataFrame:
    """One row per (size, sparsity, task): the validation loss (nats per target token) at every rate
    tried, one column per rate ('–': not tried there), the chosen rate, the runner-up and where the
    optimum sits."""
    cells = list(lr_search)
    rates = sorted({lr for c in cells for lr in _rates(c)})
    rows = []
    for c in cells:
        losses = _rates(c)
        row = {"size": c["size"], "sparsity": level_label(c["sparsity"]), "task": TASK_LABEL[c["task"]]}
        if any(x.get("variant") for x in cells):  # chapter 09's longer and dynamic runs
            row["run kind"] = {"isoflop": "iso-FLOP", "rigl": "RigL", "set": "SET"}.get(c.get("variant"), "static")
        for lr in rates:
            row[("validation loss at peak learning rate", f"{lr:g}")] = losses.get(lr, "–")
        row["chosen"] = "–" if c["chosen"] is None else f"{float(c['chosen']):g}"
        row["runner-up"] = "–" if c["runner_up"] is None else f"{float(c['runner_up']):g}"
        row["optimum"] = c["status"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.columns = pd.MultiIndex.from_tuples([c if isinstance(c, tuple) else ("", c) for c in frame.columns])
    return frame


def lr_search_figure(lr_search: Iterable[dict], sizes: Sequence[str], tasks: Sequence[str]):
    """Figure: validation loss against learning rate for every cell (rows: sizes, columns: tasks, one
    line per pre-training sparsity, the chosen rate ringed; a diverged rate, non-finite, left out).
    Cells that share their rate (``LRSearch.shared``: their entries carry ``pooled``) get the averaged
    curve the choice was made on, dashed in black, with the shared rate ringed on it."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter, NullLocator

    cells = list(lr_search)
    fig, axes = plt.subplots(len(sizes), len(tasks), figsize=(3.6 * len(tasks), 3.1 * len(sizes)), squeeze=False)
    for i, size in enumerate(sizes):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            tried = set()
            panel = [c for c in cells if c["size"] == size and c["task"] == task]
            pooled = next((c for c in panel if c.get("pooled")), None)
            if pooled is not None:
                mean = sorted((float(lr), v) for lr, v in pooled["pooled"].items() if math.isfinite(v))
                ax.plot([lr for lr, _ in mean], [v for _, v in mean], "s--", color="black", markersize=3,
                        label="mean of the sparsities")
                at = dict(mean).get(float(pooled["chosen"])) if pooled["chosen"] is not None else None
                if at is not None:
                    ax.plot([float(pooled["chosen"])], [at], "o", markersize=10, markerfacecolor="none", color="black")
            for c in sorted(panel, key=lambda c: c["sparsity"]):
                finite = sorted((lr, v) for lr, v in _rates(c).items() if math.isfinite(v))
                tried |= {lr for lr, _ in finite}
                colour = LEVEL_COLOURS.get(c["sparsity"], "tab:gray")
                ax.plot([lr for lr, _ in finite], [v for _, v in finite], "o-", color=colour, markersize=3,
                        label=level_label(c["sparsity"]))
                chosen = dict(finite).get(float(c["chosen"])) if c["chosen"] is not None else None
                if chosen is not None and pooled is None:
                    ax.plot([float(c["chosen"])], [chosen], "o", markersize=10, markerfacecolor="none", color=colour)
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ticks = sorted(tried)
            ax.set_xticks(ticks, [f"{lr:g}" for lr in ticks], rotation=45, ha="right", fontsize=7)
            ax.set_title(f"{TASK_LABEL[task]} ({size})", fontsize=9)
            ax.set_xlabel("peak learning rate")
            ax.set_ylabel("validation loss (nats/token)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", markersize=10, markerfacecolor="none", color="black", linestyle=""))
    labels.append("chosen rate")
    axes[0][0].legend(handles, labels, fontsize=7)
    fig.tight_layout()
    return fig


def lr_search_note(lr_search: Sequence[dict], profile) -> str:
    """Where the chosen rates sit, computed: interior, or at a bound of the extended search."""
    search = profile.finetune.lr_search
    cells = list(lr_search)
    if len(search.grid) < 2:
        return (f"This profile tries a single learning rate ({search.grid[0]:g}): nothing is chosen, and no claim "
                f"about the best rate can be made.")
    counts = pd.Series([c["status"] for c in cells]).value_counts().to_dict()
    lead = ("The sparsities of each size and task share one rate, the lowest of their averaged validation loss "
            "(the dashed curves); every cell below carries the status of its shared search. " if search.shared
            else "Each cell chooses its own rate. ")
    extended = sum(c["losses"] and (min(map(float, c["losses"])) < min(search.grid)
                                     or max(map(float, c["losses"])) > max(search.grid)) for c in cells)
    text = lead + (f"Of the {len(cells)} cells, the best validation loss is interior in {counts.get('interior', 0)}; "
            f"{extended} needed the search extended past the initial grid of {len(search.grid)} rates (by a factor "
            f"of {search.factor:g}, at most {search.max_extensions} time{'' if search.max_extensions == 1 else 's'} "
            f"on each side).")
    bound = {}
    for c in cells:
        if c["status"].startswith("bound"):
            name = f"{c['size']} {level_label(c['sparsity'])} {TASK_LABEL[c['task']]}"
            bound.setdefault(c["status"], []).append(name)
    if bound:
        listed = "; ".join(f"at the {status.removeprefix('bound hit ').strip('()')} in {', '.join(names)}"
                           for status, names in bound.items())
        text += (f" The bound was hit in {sum(map(len, bound.values()))} cells, {listed}: their chosen rate is the "
                 f"best tried, not necessarily the best.")
    else:
        text += " No cell hit the bound."
    return text


def finetune_curves(results: Iterable[dict], sizes: Sequence[str], tasks: Iterable[str], lr_search: Iterable[dict],
                    seed: int):
    """Figure: training loss of the chosen dense runs (rows: sizes, columns: tasks), one colour per
    pre-training sparsity and one line per pre-trained model, all with fine-tuning seed ``seed``."""
    import matplotlib.pyplot as plt

    results, tasks, sizes = list(results), list(tasks), list(sizes)
    chosen = chosen_rates(lr_search)
    fig, axes = plt.subplots(len(sizes), len(tasks), figsize=(4 * len(tasks), 3.2 * len(sizes)), squeeze=False)
    for i, size in enumerate(sizes):
        for j, task in enumerate(tasks):
            ax, labelled = axes[i][j], set()
            for r in sorted(results, key=lambda r: (r["sparsity"], r["pretrain_seed"])):
                level = float(r["sparsity"])
                if (r["size"], r["task"], r["keep_masks"], r["seed"]) != (size, task, False, seed) \
                        or chosen.get((size, task, level)) != r["lr"]:
                    continue
                label = None if level in labelled else f"{level_label(level)} pre-training"
                labelled.add(level)
                ax.plot(r["log"]["train_step"], r["log"]["train_loss"], color=LEVEL_COLOURS.get(level, "tab:gray"),
                        linewidth=1, alpha=0.8, label=label)
            ax.set_title(f"{TASK_LABEL[task]} ({size})", fontsize=9)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("training loss (nats/token)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _densifying(iv) -> str:
    """What a paired interval of 'masks kept minus dense' (lower is better) says about densifying."""
    if iv is None:
        return "no interval (one model)"
    return "helps" if iv.low > 0 else "hurts" if iv.high < 0 else "unclear (interval contains 0)"


def control_table(runs: pd.DataFrame, sizes: Sequence[str] = ()) -> pd.DataFrame:
    """Validation loss with masks removed vs kept, for the models that have the control: the two
    modes on the same pre-trained models (first fine-tuning seed), the mean difference and its 95%
    t interval over pre-trained models (paired: same model, same rate). Rows in the order of
    ``sizes`` and of the book's tasks."""
    control = runs[runs["mode"] != "dense"]
    if control.empty:
        return pd.DataFrame()
    keys = ["size", "sparsity", "task", "pretrain seed", "lr", "seed"]
    paired = control[keys + ["dev loss"]].merge(runs[runs["mode"] == "dense"][keys + ["dev loss"]], on=keys,
                                                suffixes=(" kept", " dense"))
    paired["diff"] = paired["dev loss kept"] - paired["dev loss dense"]
    rows = []
    for (size, level, task), group in paired.groupby(["size", "sparsity", "task"], sort=False):
        diffs = group["diff"].tolist()
        try:
            iv = stats.mean_interval(diffs)
            text = iv.text(3)
        except stats.NotComputable:
            iv, text = None, f"{sum(diffs) / len(diffs):+.3f} [n/a]"
        rows.append({"size": size, "sparsity": level_label(level), "task": TASK_LABEL[task],
                     "pre-trained models": len(diffs), "masks kept minus dense, nats/token [95% CI]": text,
                     "densifying": _densifying(iv), "_order": (list(sizes).index(size) if size in sizes else len(sizes),
                                                               list(TASK_LABEL).index(task), level)})
    return pd.DataFrame(rows).sort_values("_order").drop(columns="_order").reset_index(drop=True)


def control_findings(control: pd.DataFrame, helps: str = "lowers the validation loss",
                     hurts: str = "raises it") -> str:
    """Counted sentence on a control table (chapter 05's, or chapter 06's on the test sets): in how many
    (size, task) pairs densifying helps, hurts, or cannot be told apart from zero."""
    if control.empty:
        return "This profile runs no masks-kept control."
    counts = control["densifying"].value_counts()
    single = counts.get("no interval (one model)", 0)
    return (f"Of the {len(control)} (size, task) pairs, removing the masks {helps} in {counts.get('helps', 0)} "
            f"(the whole interval on the better side of zero), {hurts} in {counts.get('hurts', 0)} (the whole "
            f"interval on the worse side), and the interval contains zero in "
            f"{counts.get('unclear (interval contains 0)', 0)}"
            + (f"; {single} have a single pre-trained model and no interval" if single else "")
            + ". Each interval is the 95% t interval of the mean paired difference over pre-trained models "
              "(same model, same rate, first fine-tuning seed).")
