"""Everything checked before the first chapter runs, so that bad input writes nothing: the profile, FORCE,
the data folder, every folder a build writes (missing rights, a full disk, a file where a folder should
be), the status file, and a chapter's cell tagged "parameters"."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import BookError
from .status import load_status

__all__ = ["MIN_FREE_MB", "resolve_profile", "check_force", "check_data_dir", "check_writable",
           "output_folders", "preflight", "has_parameters_cell"]


# A build stops before its first chapter when a folder it writes lies on a disk with less free space.
MIN_FREE_MB = 200


def resolve_profile(name: str | None) -> str:
    """``name`` checked against ``spdf_lib.profiles.PROFILES``; the default profile when empty."""
    from ..profiles import PROFILES, default_profile_name

    if name is None or not str(name).strip():
        return default_profile_name()
    name = str(name).strip()
    if name not in PROFILES:
        raise BookError(f"unknown profile {name!r}. The profiles are: {', '.join(PROFILES)}. "
                        f"Pick one, e.g. make book PROFILE=smoke (the quick check), or leave PROFILE unset "
                        f"for the default (gpu when CUDA is available, else cpu).")
    return name


def check_force() -> bool:
    """FORCE as ``store.force_requested()`` reads it, as a BookError for an undocumented value."""
    from .. import store

    try:
        return store.force_requested()
    except ValueError as error:
        raise BookError(f"{error} Nothing was run.") from None


def check_data_dir() -> Path:
    """The data folder the chapters read, or a BookError saying how to provide it.

    ``spdf_lib.data`` decides where the data lives (``SPDF_DATA``, ``<repo>/data`` ...). The folder
    must exist, be readable, and hold the pre-training corpora every profile reads.
    """
    from .. import data

    advice = ("Point SPDF_DATA at the folder that holds e2e/, webnlg2017/, dart/, summarization/ and pretrain/ "
              "(e.g. make book SPDF_DATA=/path/to/data), or place that folder at <repository>/data.")
    try:
        root = Path(data.data_root(verbose=False))
    except Exception as error:  # noqa: BLE001 - whatever data_root raises, the reader needs the advice
        # data_root's own message lists the paths it tried and how to get the data.
        raise BookError(f"the data directory is missing, so no chapter was run.\n{error}") from None
    if not root.is_dir():
        raise BookError(f"the data directory {root} does not exist, so no chapter was run. {advice}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise BookError(f"the data directory {root} cannot be read (no permission), so no chapter was run. "
                        f"Give yourself read access to it, or {advice[0].lower()}{advice[1:]}")
    corpora = data.PRETRAIN_CORPORA
    absent = [f"pretrain/{c}" for c in corpora if not (root / "pretrain" / c).is_dir()]
    if absent:
        raise BookError(f"the data directory {root} has no {', '.join(absent)} folder(s), which every profile reads, "
                        f"so no chapter was run. {advice}")
    return root


def check_writable(folder: Path, what: str, advice: str | None = None) -> None:
    """A BookError unless files can be written in ``folder`` (or in its nearest existing parent, when
    it does not exist yet): it must be a folder, writable, and on a disk with at least
    ``MIN_FREE_MB`` MB free. Checked before any chapter runs, so a bad output folder writes nothing."""
    import errno

    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if advice is None:
        advice = f"make it writable, or pass another folder (e.g. --{what.replace(' ', '-')} /tmp/spdf-{what.split()[0]})"
    if not existing.is_dir():
        raise BookError(f"the {what} {folder} cannot be created: {existing} is a file, not a folder; {advice}. "
                        f"No chapter was run.")
    try:
        free_mb = shutil.disk_usage(existing).free / 1e6
    except OSError:
        free_mb = None
    if free_mb is not None and free_mb < MIN_FREE_MB:
        raise BookError(f"the disk that holds the {what} {folder} is full: {free_mb:.0f} MB free, and a build needs "
                        f"at least {MIN_FREE_MB} MB. Free some space, or {advice}. No chapter was run.")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BookError(f"the disk that holds the {what} {folder} is full ({error.strerror} in {existing}). "
                            f"Free some space, or {advice}. No chapter was run.") from None
        reason = "read-only file system" if error.errno == errno.EROFS else error.strerror
        raise BookError(f"the {what} {folder} is not writable ({reason} in {existing}); {advice}. "
                        f"No chapter was run.") from None


def output_folders(book_dir: Path, tables_dir: Path, work_dir: Path) -> list[tuple[Path, str, str]]:
    """Every folder a build writes, with its name in messages and the advice for it."""
    from .. import store

    return [
        (Path(book_dir), "book dir", "make it writable, or pass another folder with --book-dir"),
        (Path(tables_dir), "tables dir", "make it writable, or pass another folder with --tables-dir"),
        (store.cache_root(create=False), "cache folder",
         "make it writable, or point SPDF_CACHE at another folder (e.g. make book SPDF_CACHE=/tmp/spdf-cache)"),
        (Path(work_dir), "work dir", "make it writable, or pass another folder with --work-dir"),
    ]


def preflight(book_dir: Path, tables_dir: Path, work_dir: Path) -> Path | None:
    """Everything checked before the first chapter: the data folder, then every output folder."""
    root = check_data_dir()
    for folder, what, advice in output_folders(book_dir, tables_dir, work_dir):
        check_writable(folder, what, advice)
    load_status(book_dir)  # a damaged status file is reported now, not after a chapter has run
    return root


def has_parameters_cell(nb) -> bool:
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells)
