"""Chapter 00 (about this book): the chapters and the profiles side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import pandas as pd

__all__ = ["chapters_table", "profiles_table"]


def chapters_table(chapters) -> pd.DataFrame:
    """One row per chapter: number, title, source file (chapter 00)."""
    return pd.DataFrame([{"chapter": c.number, "title": c.short_title, "source": f"notebooks/{c.path.name}"}
                         for c in chapters])


def _wall_time(tables_root: Path, name: str) -> str:
    path = Path(tables_root) / name / "wall_times.json"
    if not path.exists():
        return "not yet measured"
    record = json.loads(path.read_text(encoding="utf-8"))
    seconds = float(record["total_s"])
    text = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
    machine = record.get("machine")
    text = f"{text} ({machine})" if machine else text
    if record.get("beyond_s") is not None:  # chapter 09's stage, computed on its own
        text += f", plus {float(record['beyond_s']) / 60:.1f} min for chapter 09's stage"
    return text


def profiles_table(profiles: Mapping[str, object], tables_root: Path) -> pd.DataFrame:
    """The profiles side by side, one row per setting, read from ``spdf_lib.profiles`` (chapter 00).

    The wall time comes from ``tables/<profile>/wall_times.json`` where a complete run recorded it.
    """
    columns = {}
    for name, p in profiles.items():
        pre = p.pretrain
        tokens = f"{pre.tokens_per_param:g} per parameter"
        if pre.max_tokens:
            tokens += f", at most {pre.max_tokens:,}"
        columns[name] = {
            "purpose": p.description,
            "models": ", ".join(p.sizes),
            "pre-training sparsity": ", ".join(f"{s:.0%}" for s in p.sparsity_levels),
            "pre-training seeds per model": str(len(p.pretrain_seeds)),
            "fine-tuning seeds per model": str(len(p.finetune_seeds)),
            "vocabulary": f"{p.vocab_size:,} tokens",
            "pre-training tokens per run": tokens,
            "tasks": ", ".join(p.task_names),
            "wall time of a complete run": _wall_time(tables_root, name),
        }
    settings = list(next(iter(columns.values())))
    return pd.DataFrame([{"setting": s, **{name: col[s] for name, col in columns.items()}} for s in settings])
