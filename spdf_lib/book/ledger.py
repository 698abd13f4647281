"""The ledger of runs: the ``{"stage", "run_id", "source"}`` lines that the scheduler appends, while a
chapter runs, to the file named by ``SPDF_RUN_LEDGER`` (:data:`LEDGER_ENV`). They are read back
(:func:`read_ledger`), counted for the status page (:func:`summarize_ledger`) and matched with the
exported results for a page's provenance note (:func:`ledger_results`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

__all__ = ["LEDGER_ENV", "read_ledger", "summarize_ledger", "ledger_results"]


LEDGER_ENV = "SPDF_RUN_LEDGER"


def read_ledger(path: Path | None) -> list[dict]:
    """The ``{"stage", "run_id", "source"}`` lines of a run ledger, one per run (a run resolved twice
    keeps its strongest source: computed, then cached, then committed). A line cut short by a kill
    is skipped."""
    if path is None or not Path(path).exists():
        return []
    rank = {"computed": 0, "cached": 1, "committed": 2}
    best: dict[tuple[str, str], dict] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "run_id" not in entry:
            continue
        key = (str(entry.get("stage", "")), str(entry["run_id"]))
        if key not in best or rank.get(entry.get("source"), 9) < rank.get(best[key].get("source"), 9):
            best[key] = entry
    return list(best.values())


def summarize_ledger(entries: Iterable[dict]) -> tuple[dict, tuple]:
    """(count per source, sorted "stage/run_id" of the computed runs)."""
    counts: dict[str, int] = {}
    computed = []
    for entry in entries:
        source = str(entry.get("source", "unknown"))
        counts[source] = counts.get(source, 0) + 1
        if source == "computed":
            computed.append(f"{entry.get('stage', '')}/{entry['run_id']}")
    return dict(sorted(counts.items())), tuple(sorted(computed))


def ledger_results(entries: Iterable[dict], tables_dir: Path, profile: str) -> dict[str, list[dict]]:
    """The exported result of each ledger entry, grouped by the profile whose ``tables/<profile>/runs``
    holds it (the chapter's profile first; a result of another profile, such as the published ``gpu``
    tables shown beside a re-run, is found under its own folder)."""
    tables_dir = Path(tables_dir)
    profiles = [profile] + sorted(p.name for p in tables_dir.iterdir()
                                  if p.is_dir() and p.name != profile and (p / "runs").is_dir()) \
        if tables_dir.is_dir() else [profile]
    grouped: dict[str, list[dict]] = {}
    for entry in entries:
        candidates = [entry["profile"]] if entry.get("profile") else profiles
        for name in candidates:
            path = tables_dir / name / "runs" / str(entry.get("stage", "")) / f"{entry['run_id']}.json"
            if path.is_file():
                try:
                    grouped.setdefault(name, []).append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                    pass  # a damaged file is reported by the manifest check, not by the provenance note
                break
    return grouped
