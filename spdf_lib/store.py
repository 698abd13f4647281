"""The results store: expensive steps cache their output on disk, keyed by their config.

A cache key is a hash of (kind, config, ``spdf_lib.__version__``, data fingerprint), so changing a
config value, the library version or a data file recomputes exactly the affected step. Every write
is atomic (temporary file in the same directory, then ``os.replace``), and tensors are stored with a
SHA-256 sidecar that is checked on load, so a truncated or corrupted entry is detected and recomputed,
never loaded silently. The README explains how to move the cache (``SPDF_CACHE``) and force a
recomputation (``FORCE=1``).

``FORCE`` takes exactly these values (anything else is an error, raised before any work starts):

* unset, empty or ``0``: reuse every result found, cached or committed;
* ``1``: recompute every result the build needs, the cached ones under the cache folder *and* the
  committed ones under ``tables/<profile>/runs``, except those this same build already recomputed
  (chapter 05 reuses what chapter 04 recomputed a minute earlier).

Only one build at a time may use a cache folder, a ``book/`` and a ``tables/`` folder:
:func:`build_lock` holds an exclusive ``flock`` on each of them while the book runner works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from . import __version__

__all__ = [
    "REPO_ROOT", "CorruptCacheError", "cache_root", "FORCE_VALUES", "force_requested", "force_recompute",
    "stable_hash", "key", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "sha256_file",
    "save_torch", "load_torch", "write_json_entry", "read_json_verified", "discard_entry", "append_line",
    "cached_json", "LOCK_HELD_ENV", "BuildLockedError", "build_lock", "OMIT_AT_DEFAULT",
]


REPO_ROOT = Path(__file__).resolve().parent.parent


class CorruptCacheError(RuntimeError):
    """A cache entry or checkpoint failed its checksum or could not be parsed."""


def cache_root(create: bool = True) -> Path:
    """Where cached results live: ``$SPDF_CACHE``, else ``<repo>/.cache/spdf`` (ignored by git).
    ``create=False`` only names the folder (the book runner checks it before creating anything)."""
    configured = os.environ.get("SPDF_CACHE")
    root = Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "spdf"
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


FORCE_VALUES = ("", "0", "1")


def force_requested() -> bool:
    """True when ``FORCE=1``, False when FORCE is unset, empty or ``0``. Any other value (``yes``,
    ``true``, ``no``, ``2`` ...) raises ValueError: a value whose meaning is unclear must not decide
    whether hours of results are thrown away."""
    value = os.environ.get("FORCE", "")
    if value.strip() not in FORCE_VALUES:
        raise ValueError(f"FORCE={value!r} is not understood. FORCE accepts only 1 (recompute every result, "
                         f"cached and committed) or 0 / empty / unset (reuse them), e.g. make book FORCE=1.")
    return value.strip() == "1"


def _force_at_import() -> bool:
    try:
        return force_requested()
    except ValueError:
        return False  # reported by whoever asks force_requested() (the book runner does, first)


# FORCE=1 means "recompute everything computed before this run started", not "recompute on every
# call": chapter 05 must reuse what chapter 04 recomputed a minute earlier. The first process that
# sees FORCE=1 records the start time; the chapter kernels it launches inherit it.
if _force_at_import() and "SPDF_FORCE_BEFORE" not in os.environ:
    os.environ["SPDF_FORCE_BEFORE"] = repr(time.time())


def force_recompute(path: Path | None = None) -> bool:
    """True when ``FORCE=1`` asks to recompute the result at ``path``: a cache entry or a committed
    file under ``tables/<profile>/runs`` written before this build started. Raises ValueError for an
    undocumented FORCE value (see :func:`force_requested`)."""
    if not force_requested():
        return False
    if path is None or not Path(path).exists():
        return True
    return Path(path).stat().st_mtime < float(os.environ.get("SPDF_FORCE_BEFORE", "inf"))


OMIT_AT_DEFAULT = "omit_at_default"  # dataclass field metadata key read by _canonical


def _canonical(obj: Any) -> Any:
    """A JSON-able canonical form: dataclasses become dicts, tuples lists, paths strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # a field added later with metadata OMIT_AT_DEFAULT is left out while it holds its default,
        # so adding it does not change the key (nor orphan the results) of every existing run
        return {"__type__": type(obj).__name__,
                **{f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                   if not (f.metadata.get(OMIT_AT_DEFAULT) and getattr(obj, f.name) == f.default)}}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj.is_integer():
        return obj  # keep 1.0 and 1 distinct only through their JSON form
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot hash a value of type {type(obj).__name__} in a cache key: {obj!r}")


def stable_hash(*objs: Any) -> str:
    """16 hex characters of SHA-256 over the canonical JSON of ``objs``."""
    text = json.dumps([_canonical(o) for o in objs], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key(kind: str, config: Any, data_fingerprint: str = "") -> Path:
    """The cache directory of one step: ``cache_root()/kind/<hash>``; the hash covers the version."""
    return cache_root() / kind / stable_hash(kind, config, __version__, data_fingerprint)


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    _atomic_write(path, lambda h: h.write(data), "wb")


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically, then write ``path.sha256`` with the file's checksum."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_text(Path(str(path) + ".sha256"), hashlib.sha256(data).hexdigest() + "\n")


def load_torch(path: Path, map_location: str = "cpu") -> Any:
    """Load a file written by :func:`save_torch`, refusing it when the checksum does not match."""
    import torch

    path = Path(path)
    sidecar = Path(str(path) + ".sha256")
    if not path.exists() or not sidecar.exists():
        raise CorruptCacheError(f"{path}: missing file or checksum sidecar {sidecar.name}")
    expected = sidecar.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptCacheError(f"{path}: checksum mismatch (expected {expected[:12]}, got {actual[:12]})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # not a torch file, or it holds more than tensors and plain data
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptCacheError(f"{path}: not a weights-only torch file ({reason})") from err


def write_json_entry(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as JSON with a ``path.sha256`` sidecar (a cache entry that
    :func:`read_json_verified` checks, so that a flipped digit is detected, not read as a result)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(path, text)
    atomic_write_text(Path(str(path) + ".sha256"), hashlib.sha256(text.encode("utf-8")).hexdigest() + "\n")


def read_json_verified(path: Path, require_checksum: bool = False) -> Any:
    """Read JSON written by :func:`write_json_entry` (or :func:`atomic_write_json`): the checksum is
    verified when a ``.sha256`` sidecar exists; a mismatch or an unparsable file raises CorruptCacheError.
    ``require_checksum`` (for cache entries, which always get a sidecar) also refuses a file whose
    sidecar is missing, as after a process killed between writing the two."""
    path = Path(path)
    sidecar = Path(str(path) + ".sha256")
    try:
        data = path.read_bytes()
        if sidecar.exists():
            if hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
                raise CorruptCacheError(f"{path}: checksum mismatch with {sidecar.name}")
        elif require_checksum:
            raise CorruptCacheError(f"{path}: its checksum file {sidecar.name} is missing")
        return json.loads(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCacheError(f"{path}: unreadable cache entry ({err})") from err


def discard_entry(path: Path) -> None:
    """Remove a damaged cache file and its checksum sidecar, so that nothing reads it again before it
    is recomputed and replaced."""
    for p in (Path(path), Path(str(path) + ".sha256")):
        p.unlink(missing_ok=True)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log such as the run ledger (``SPDF_RUN_LEDGER``). The line is written with
    a single ``write`` on a file opened with ``O_APPEND``, so lines of concurrent writers never mix
    and a reader sees whole lines only (a line cut by a kill is the last one and is not valid JSON)."""
    if "\n" in line:
        raise ValueError(f"append_line writes one line; got a text with a line break: {line[:60]!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def cached_json(kind: str, config: Any, compute: Callable[[], dict], data_fingerprint: str = "") -> dict:
    """Return the cached result of ``compute()`` for ``config``, computing and storing it if needed.

    The entry is ``key(...)/result.json``; a corrupted entry is recomputed, and ``FORCE=1`` recomputes.
    """
    path = key(kind, config, data_fingerprint) / "result.json"
    if path.exists() and not force_recompute(path):
        try:
            return read_json_verified(path, require_checksum=True)
        except CorruptCacheError:
            discard_entry(path)  # recomputed and replaced below
    result = compute()
    write_json_entry(path, result)
    return result


# --------------------------------------------------------------------------- one build at a time

LOCK_HELD_ENV = "SPDF_BUILD_LOCK_HELD"


class BuildLockedError(RuntimeError):
    """Another build holds one of the folders this one would write."""


def _lock_holder(fd: int) -> str:
    """'process N' holding an flock on the file of ``fd`` (from /proc/locks, Linux), or ''."""
    try:
        stat = os.fstat(fd)
        wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        with open("/proc/locks", encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4] != str(os.getpid()):
                    return f"process {fields[4]}"
    except OSError:
        pass
    return ""


@contextlib.contextmanager
def build_lock(folders: Iterable[tuple[Path, str]]):
    """Hold an exclusive, non-blocking ``flock`` on each ``(folder, what)`` for the duration of the
    block; a folder already held by another build raises BuildLockedError naming the folder (and the
    process holding it, on Linux). The lock is on the folder itself, so it creates no file, and the
    kernel releases it when the process ends, even when it is killed. Processes started inside the
    block (the chapter kernels) see ``SPDF_BUILD_LOCK_HELD`` and do not try to lock again."""
    if os.environ.get(LOCK_HELD_ENV):
        yield
        return
    fds: list[int] = []
    seen: set[Path] = set()
    try:
        for folder, what in folders:
            folder = Path(folder)
            folder.mkdir(parents=True, exist_ok=True)
            if folder.resolve() in seen:  # a second flock of one folder would wait for ourselves
                continue
            seen.add(folder.resolve())
            fd = os.open(folder, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                raise BuildLockedError(
                    f"another build is already using the {what} {folder}" + (f" ({holder})" if holder else "")
                    + ". Only one build at a time may write a book, a tables folder or a cache: wait for it to "
                    "finish (or stop it), or give this build its own folders (SPDF_CACHE=... for the cache)."
                ) from None
            except OSError as error:  # a file system that cannot lock folders: go on unlocked
                os.close(fd)
                if error.errno not in (errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
                continue
            fds.append(fd)
        os.environ[LOCK_HELD_ENV] = str(os.getpid())
        yield
    finally:
        if os.environ.get(LOCK_HELD_ENV) == str(os.getpid()):
            del os.environ[LOCK_HELD_ENV]
        for fd in fds:
            os.close(fd)
