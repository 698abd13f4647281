"""The results store: expensive steps cache their output on disk, keyed by their config.

A cache key is a hash of (kind, config, ``spdf_lib.__version__``, data fingerprint), so changing a
config value, the library version or a data file recomputes exactly the affected step. Every write
is atomic (temporary file in the same directory, then ``os.replace``), and tensors are stored with a
SHA-256 sidecar that is checked on load, so a truncated or corrupted entry is detected and recomputed,
never loaded silently. Chapter 00 explains how to move the cache (``SPDF_CACHE``) and force a
recomputation (``FORCE=1``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__

REPO_ROOT = Path(__file__).resolve().parent.parent


class CorruptCacheError(RuntimeError):
    """A cache entry or checkpoint failed its checksum or could not be parsed."""


def cache_root() -> Path:
    """Where cached results live: ``$SPDF_CACHE``, else ``<repo>/.cache/spdf`` (ignored by git)."""
    configured = os.environ.get("SPDF_CACHE")
    root = Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "spdf"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _force_requested() -> bool:
    return os.environ.get("FORCE", "").strip() not in ("", "0", "false", "False")


# FORCE=1 means "recompute everything cached before this run started", not "recompute on every
# call": chapter 05 must reuse what chapter 04 recomputed a minute earlier. The first process that
# sees FORCE=1 records the start time; the chapter kernels it launches inherit it.
if _force_requested() and "SPDF_FORCE_BEFORE" not in os.environ:
    os.environ["SPDF_FORCE_BEFORE"] = repr(time.time())


def force_recompute(path: Path | None = None) -> bool:
    """True when ``FORCE=1`` asks to recompute the entry at ``path`` (written before this run)."""
    if not _force_requested():
        return False
    if path is None or not Path(path).exists():
        return True
    return Path(path).stat().st_mtime < float(os.environ.get("SPDF_FORCE_BEFORE", "inf"))


def _canonical(obj: Any) -> Any:
    """A JSON-able canonical form: dataclasses become dicts, tuples lists, paths strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__,
                **{f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
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


def read_json_verified(path: Path) -> Any:
    """Read JSON written by :func:`write_json_entry` (or :func:`atomic_write_json`): the checksum is
    verified when a ``.sha256`` sidecar exists; a mismatch or an unparsable file raises CorruptCacheError."""
    path = Path(path)
    sidecar = Path(str(path) + ".sha256")
    try:
        data = path.read_bytes()
        if sidecar.exists() and hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
            raise CorruptCacheError(f"{path}: checksum mismatch with {sidecar.name}")
        return json.loads(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCacheError(f"{path}: unreadable cache entry ({err})") from err


def cached_json(kind: str, config: Any, compute: Callable[[], dict], data_fingerprint: str = "") -> dict:
    """Return the cached result of ``compute()`` for ``config``, computing and storing it if needed.

    The entry is ``key(...)/result.json``; a corrupted entry is recomputed, and ``FORCE=1`` recomputes.
    """
    path = key(kind, config, data_fingerprint) / "result.json"
    if path.exists() and not force_recompute(path):
        try:
            return read_json_verified(path)
        except CorruptCacheError:
            pass  # fall through: recompute and overwrite
    result = compute()
    write_json_entry(path, result)
    return result
