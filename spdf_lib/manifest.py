"""The manifest of committed results: ``tables/<profile>/runs/MANIFEST.json``.

Every file exported under ``tables/<profile>/runs/`` (a run's result JSON, the decoded outputs of an
evaluation) is listed in its profile's manifest with its SHA-256 and size. The results module records
a file when it exports it (:func:`record`) and checks it before it uses a committed copy
(:func:`verify`), so a committed result that was edited, truncated or never recorded stops the build
with an error naming the file, instead of flowing into a table. The manifest itself is plain JSON,
sorted, with no time stamps, so that it changes in a commit exactly when a result does::

    {"format": 1, "profile": "gpu",
     "files": {"eval/gpu-large_s00_p0_e2e_denseft_lr0.0003_f0.json": {"sha256": "...", "size": 1234}, ...}}

On the command line (run from the repository root)::

    python -m spdf_lib.manifest check   --tables-dir tables --profile gpu   # every problem, exit 1 if any
    python -m spdf_lib.manifest rebuild --tables-dir tables --profile gpu   # after a real re-run

``rebuild`` lists the files that are on disk now; run it only after a re-run that was meant to
replace the committed results (``check`` first shows what it would change).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["MANIFEST_NAME", "CommittedResultError", "runs_dir", "manifest_path", "load", "record", "verify",
           "missing", "problems", "rebuild", "main"]

MANIFEST_NAME = "MANIFEST.json"
FORMAT = 1


class CommittedResultError(RuntimeError):
    """A committed result that is not what its manifest recorded. ``path`` is the file, ``problem``
    one of "changed", "truncated", "not in the manifest", "missing", "unreadable manifest"."""

    def __init__(self, message: str, path: Path | None = None, problem: str = ""):
        super().__init__(message)
        self.path = path
        self.problem = problem


def runs_dir(tables_dir: Path, profile: str) -> Path:
    """``tables_dir/<profile>/runs``: the folder the manifest describes."""
    return Path(tables_dir) / profile / "runs"


def manifest_path(tables_dir: Path, profile: str) -> Path:
    return runs_dir(tables_dir, profile) / MANIFEST_NAME


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it (messages name files the reader
    can type), else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _relative(tables_dir: Path, profile: str, path: Path | str) -> str:
    """The manifest key of ``path``: its path below ``tables/<profile>/runs`` with ``/`` separators.
    ``path`` is absolute, or relative to that folder (``eval/<run_id>.json``), or relative in the same
    way as ``tables_dir`` is (``tables/gpu/runs/eval/<run_id>.json`` with ``tables_dir="tables"``)."""
    root = runs_dir(tables_dir, profile)
    path = Path(path)
    if path.is_absolute() or root.is_absolute():
        base = Path(os.path.abspath(root))
        candidate = Path(os.path.abspath(path if path.is_absolute() else root / path))
    else:
        base, candidate = Path(os.path.normpath(root)), Path(os.path.normpath(path))
        if candidate.parts[:len(base.parts)] != base.parts:
            candidate = Path(os.path.normpath(root / path))
    try:
        rel = candidate.relative_to(base)
    except ValueError:
        raise ValueError(f"{path} is not a file under {_shown(root)}, the folder the {profile!r} manifest "
                         f"describes") from None
    if not rel.parts:
        raise ValueError(f"{path} is the folder {_shown(root)} itself, not a file in it")
    return rel.as_posix()


def _digest(path: Path) -> dict:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "size": size}


_loaded: dict[str, tuple[int, int, dict]] = {}  # manifest path -> (size, mtime_ns, files)


def load(tables_dir: Path, profile: str) -> dict[str, dict]:
    """The manifest's ``files`` (relative path -> {"sha256", "size"}); empty when there is none yet.
    A manifest that cannot be parsed raises CommittedResultError naming it."""
    path = manifest_path(tables_dir, profile)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    name, stamp = str(path.absolute()), (stat.st_size, stat.st_mtime_ns)
    if _loaded.get(name, (None, None))[:2] != stamp:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            files = doc["files"]
            if not isinstance(files, dict) or not all(isinstance(v, dict) and {"sha256", "size"} <= v.keys()
                                                      for v in files.values()):
                raise ValueError("'files' must map each path to its sha256 and size")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise CommittedResultError(
                f"{_shown(path)} is not a readable manifest ({type(error).__name__}: {error}). Restore it "
                f"(git checkout -- {_shown(path)}) or, after a real re-run, rebuild it with "
                f"python -m spdf_lib.manifest rebuild --tables-dir {_shown(tables_dir)} --profile {profile}",
                path, "unreadable manifest") from None
        _loaded[name] = (*stamp, files)
    return dict(_loaded[name][2])


def _write(tables_dir: Path, profile: str, files: dict[str, dict]) -> Path:
    from .store import atomic_write_text

    path = manifest_path(tables_dir, profile)
    doc = {"format": FORMAT, "profile": profile, "files": {k: files[k] for k in sorted(files)}}
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


@contextmanager
def _locked(folder: Path):
    """An exclusive ``flock`` on ``folder`` while the manifest is read, updated and written, so that two
    processes exporting at once cannot drop each other's entries."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:  # a file system without flock on folders: no concurrent writers to fear
            if error.errno not in (errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP):
                raise
        yield
    finally:
        os.close(fd)


def record(tables_dir: Path, profile: str, paths: Iterable[Path | str]) -> Path:
    """Add (or update) ``paths`` in the manifest of ``profile`` with their current SHA-256 and size;
    returns the manifest's path. Called right after the files were exported. The update is atomic and
    holds a lock, so concurrent exports keep every entry."""
    root = runs_dir(tables_dir, profile)
    entries = {}
    for path in paths:
        rel = _relative(tables_dir, profile, path)
        if rel == MANIFEST_NAME:
            raise ValueError(f"the manifest cannot list itself ({_shown(root / rel)})")
        entries[rel] = _digest(root / rel)
    with _locked(root):
        _loaded.pop(str(manifest_path(tables_dir, profile).absolute()), None)
        files = load(tables_dir, profile)
        files.update(entries)
        return _write(tables_dir, profile, files)


def _problem(tables_dir: Path, profile: str, rel: str, files: dict[str, dict]) -> tuple[str, str] | None:
    """(kind, sentence) describing what is wrong with the committed file ``rel``, or None."""
    root = runs_dir(tables_dir, profile)
    path = root / rel
    entry = files.get(rel)
    if entry is None:
        where = (f"{_shown(manifest_path(tables_dir, profile))} does not exist"
                 if not manifest_path(tables_dir, profile).exists() else f"{_shown(manifest_path(tables_dir, profile))} does not list it")
        return "not in the manifest", f"{_shown(path)}: not in the manifest ({where})"
    if not path.exists():
        return "missing", f"{_shown(path)}: missing (the manifest lists it with {entry['size']} bytes)"
    actual = _digest(path)
    if actual == {"sha256": entry["sha256"], "size": entry["size"]}:
        return None
    if actual["size"] < entry["size"]:
        return "truncated", (f"{_shown(path)}: truncated ({actual['size']} bytes, the manifest recorded "
                             f"{entry['size']})")
    return "changed", (f"{_shown(path)}: changed since it was recorded (sha256 {actual['sha256'][:12]}, size "
                       f"{actual['size']}; the manifest recorded {entry['sha256'][:12]}, size {entry['size']})")


def _advice(tables_dir: Path, profile: str) -> str:
    return (f"Restore the committed file (git checkout -- tables/{profile}/runs), or, if it comes from a real "
            f"re-run, record it with python -m spdf_lib.manifest rebuild --tables-dir {_shown(tables_dir)} "
            f"--profile {profile}. Nothing was written to tables/ or book/.")


def verify(tables_dir: Path, profile: str, path: Path | str) -> None:
    """Raise CommittedResultError (naming the file and saying changed, truncated, missing or not in
    the manifest) unless ``path`` has exactly the bytes its profile's manifest recorded."""
    rel = _relative(tables_dir, profile, path)
    found = _problem(tables_dir, profile, rel, load(tables_dir, profile))
    if found is not None:
        kind, sentence = found
        raise CommittedResultError(f"committed result {sentence}. {_advice(tables_dir, profile)}",
                                   runs_dir(tables_dir, profile) / rel, kind)


def missing(tables_dir: Path, profile: str, expected_relpaths: Iterable[Path | str]) -> list[str]:
    """The expected files (paths below ``tables/<profile>/runs``, e.g. ``eval/<run_id>.json``) that are
    absent from the disk or from the manifest, sorted. An empty list means all are committed."""
    files = load(tables_dir, profile)
    root = runs_dir(tables_dir, profile)
    out = set()
    for path in expected_relpaths:
        rel = _relative(tables_dir, profile, path)
        if rel not in files or not (root / rel).exists():
            out.add(rel)
    return sorted(out)


def _on_disk(tables_dir: Path, profile: str) -> list[str]:
    """Every file under ``tables/<profile>/runs`` except the manifest and hidden files (an interrupted
    write leaves a hidden ``.<name>.<random>.tmp`` that is never read)."""
    root = runs_dir(tables_dir, profile)
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != MANIFEST_NAME
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def problems(tables_dir: Path, profile: str) -> list[str]:
    """Every problem of the committed results of ``profile``: files changed, truncated or missing with
    respect to the manifest, and files on disk that it does not list. Empty when all is well."""
    mpath = manifest_path(tables_dir, profile)
    on_disk = _on_disk(tables_dir, profile)
    if not mpath.exists():
        if not on_disk:
            return []
        return [f"{_shown(mpath)} does not exist, so none of the {len(on_disk)} files under "
                f"{_shown(runs_dir(tables_dir, profile))} can be checked"]
    files = load(tables_dir, profile)
    found = []
    for rel in sorted(set(files) | set(on_disk)):
        problem = _problem(tables_dir, profile, rel, files)
        if problem is not None:
            found.append(problem[1])
    return found


def rebuild(tables_dir: Path, profile: str) -> Path:
    """Rewrite the manifest of ``profile`` from the files on disk now (after a real re-run)."""
    root = runs_dir(tables_dir, profile)
    if not root.is_dir():
        raise FileNotFoundError(f"{_shown(root)} does not exist: there are no committed results of profile "
                                f"{profile!r} to record")
    with _locked(root):
        _loaded.pop(str(manifest_path(tables_dir, profile).absolute()), None)
        return _write(tables_dir, profile, {rel: _digest(root / rel) for rel in _on_disk(tables_dir, profile)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spdf_lib.manifest",
                                     description="Check or rebuild the manifests of committed results.")
    parser.add_argument("command", choices=("check", "rebuild"),
                        help="check: list every problem (exit 1 if any); rebuild: record the files on disk now")
    parser.add_argument("--tables-dir", default="tables", help="the tables folder (default: tables)")
    parser.add_argument("--profile", required=True, nargs="+", help="one or more profiles, e.g. gpu")
    args = parser.parse_args(argv)
    status = 0
    for profile in args.profile:
        try:
            if args.command == "rebuild":
                path = rebuild(Path(args.tables_dir), profile)
                files = load(Path(args.tables_dir), profile)
                size = sum(v["size"] for v in files.values())
                print(f"{_shown(path)}: recorded {len(files)} files ({size / 1e6:.1f} MB)")
                continue
            found = problems(Path(args.tables_dir), profile)
        except (CommittedResultError, FileNotFoundError, OSError) as error:
            print(f"ERROR: {error}", file=sys.stderr)
            status = 2
            continue
        if found:
            print(f"{len(found)} problem(s) with the committed results of profile {profile!r}:", file=sys.stderr)
            for line in found:
                print(f"  {line}", file=sys.stderr)
            print(_advice(Path(args.tables_dir), profile).replace(" Nothing was written to tables/ or book/.", ""),
                  file=sys.stderr)
            status = max(status, 1)
        else:
            n = len(load(Path(args.tables_dir), profile))
            print(f"{_shown(manifest_path(Path(args.tables_dir), profile))}: all {n} files match")
    return status


if __name__ == "__main__":
    sys.exit(main())
