"""Results on disk: the cache of every run, and the results committed under ``tables/<profile>/runs``.

A run's cache folder is ``<cache>/<stage>/<run_key>/`` (``result.json`` with a checksum sidecar,
``model.pt``, checkpoints, decoded outputs). A finished result is also *exported* to
``tables/<profile>/runs/<stage>/<run_id>.json`` (and, for an evaluation, its decoded outputs), where it
is committed with the book and recorded in the profile's manifest (``spdf_lib.manifest``). A
committed result is used only when its key is the run's key and its bytes are the manifest's; a
changed or truncated committed file stops the build with an error naming it, never a silent
recomputation or a silently different number. ``FORCE=1`` recomputes committed results too.

This is the public results API the runners (``spdf_lib.runners``) and the scheduler
(``spdf_lib.scheduler``) share.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import __version__, store
from .runs import EvalRun, profile_of, run_key

__all__ = [
    "OUTPUTS_NAME", "MissingResultsError", "run_dir", "published_dir", "finish", "cached_result",
    "committed_result", "committed_path", "export", "find", "note_source", "model_intact",
]

OUTPUTS_NAME = "outputs.jsonl.gz"  # decoded test outputs of an evaluation, one JSON string per input


class MissingResultsError(RuntimeError):
    """Results of a published profile that cannot be computed here are neither committed nor cached."""


def run_dir(run) -> Path:
    """The cache folder of ``run``."""
    return store.cache_root() / run.stage / run_key(run)


def published_dir(tables_dir: Path, profile: str, stage: str) -> Path:
    return Path(tables_dir) / profile / "runs" / stage


def committed_path(run, tables_dir: Path) -> Path:
    return published_dir(tables_dir, profile_of(run), run.stage) / f"{run.run_id}.json"


def finish(run, result: dict) -> dict:
    """Store a finished run's result in its cache folder (with its key, version, environment and the
    time it finished) and drop its last checkpoint."""
    from .env import environment

    result = {"run_id": run.run_id, "stage": run.stage, "key": run_key(run), "spdf_lib": __version__,
              "environment": environment(), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "config": store._canonical(run), **result}
    d = run_dir(run)
    store.write_json_entry(d / "result.json", result)
    # The last checkpoint goes only now: a run killed before its result was stored resumes from it.
    (d / "checkpoint.pt").unlink(missing_ok=True)
    (d / "checkpoint.pt.sha256").unlink(missing_ok=True)
    return result


_intact_models: dict[tuple[str, int, int], bool] = {}


def model_intact(path: Path) -> bool:
    """True when ``path`` and its checksum sidecar exist and agree (memoized by size and mtime)."""
    sidecar = Path(str(path) + ".sha256")
    if not (path.exists() and sidecar.exists()):
        return False
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _intact_models:
        _intact_models[memo] = store.sha256_file(path) == sidecar.read_text().strip()
    return _intact_models[memo]


def cached_result(run) -> dict | None:
    """The cached result of ``run``, or None when it is absent, damaged, forced, or when a model a
    later stage loads from its folder is damaged or gone."""
    path = run_dir(run) / "result.json"
    if not path.exists() or store.force_recompute(path):
        return None
    try:
        result = store.read_json_verified(path, require_checksum=True)
    except store.CorruptCacheError:
        store.discard_entry(path)  # recomputed and replaced; nothing reads the damaged entry again
        return None
    if run.stage in ("pretrain", "finetune") and not model_intact(path.parent / "model.pt"):
        return None
    return result


def committed_result(run, tables_dir: Path) -> dict | None:
    """The result committed under ``tables/`` for exactly this run (same key), verified against the
    profile's manifest. None when there is none (or FORCE asks to recompute); a committed file whose
    bytes differ from the manifest raises ``manifest.CommittedResultError`` naming it."""
    from . import manifest

    path = committed_path(run, tables_dir)
    if not path.exists() or store.force_recompute(path):
        return None
    manifest.verify(tables_dir, profile_of(run), path)
    if isinstance(run, EvalRun) and (path.parent / f"{run.run_id}.{OUTPUTS_NAME}").exists():
        manifest.verify(tables_dir, profile_of(run), path.parent / f"{run.run_id}.{OUTPUTS_NAME}")
    result = json.loads(path.read_text())
    return result if result.get("key") == run_key(run) else None


def export(run, result: dict, tables_dir: Path) -> None:
    """Write a run's result (and decoded outputs) under ``tables/<profile>/runs/<stage>/`` and record
    the written files in the profile's manifest."""
    from . import manifest

    out = published_dir(tables_dir, profile_of(run), run.stage)
    written = [out / f"{run.run_id}.json"]
    store.atomic_write_json(written[0], result)
    outputs = run_dir(run) / OUTPUTS_NAME
    if isinstance(run, EvalRun) and outputs.exists():
        written.append(out / f"{run.run_id}.{OUTPUTS_NAME}")
        store.atomic_write_bytes(written[-1], outputs.read_bytes())
    manifest.record(tables_dir, profile_of(run), written)


def note_source(run, source: str) -> None:
    """Append ``{"stage", "run_id", "source"}`` to the file named by ``SPDF_RUN_LEDGER`` (when set), so
    the book's status page can say which runs a build computed and which it reused."""
    ledger = os.environ.get("SPDF_RUN_LEDGER")
    if ledger:
        store.append_line(ledger, json.dumps({"stage": run.stage, "run_id": run.run_id, "source": source,
                                              "profile": profile_of(run)}))


def find(run, tables_dir: Path) -> tuple[dict | None, str]:
    """The result of ``run`` if it exists anywhere, with where it came from: ("committed"), or
    ("cached", exported now so that tables/ holds it), or (None, "missing")."""
    found = committed_result(run, tables_dir)
    if found is not None:
        return found, "committed"
    found = cached_result(run)
    if found is not None:
        export(run, found, tables_dir)
        return found, "cached"
    return None, "missing"
