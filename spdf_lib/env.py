"""The environment a chapter runs in, and where the numbers of a page were computed.

* :func:`environment` is stored next to every result (device, versions, date, commit).
* :func:`chapter_header` is every chapter's first cell: the profile, and the machine *executing* the
  page, which is not necessarily the machine that computed the results the page shows.
* :func:`provenance` says, in markdown, where the results a page uses were computed (from each
  result's ``environment``) and where the page itself was executed; the book runner appends it to
  every page.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Iterable

from . import __version__
from .store import REPO_ROOT
from .profiles import Profile, get_profile

__all__ = [
    "PROVENANCE_MARKER", "device", "describe_device", "utc_now", "commit", "environment",
    "chapter_header", "provenance",
]


# How every provenance note begins (the book runner adds one to a page that shows none).
PROVENANCE_MARKER = "**Where these numbers come from.**"


def device():
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device() -> str:
    """A one-line description of the compute device, e.g. ``cpu: x86_64 (2 threads)`` or the GPU's name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def utc_now() -> str:
    """The current time in UTC, ``2026-01-31T12:00:00Z``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=1)
def commit() -> str | None:
    """The commit checked out in the repository (12 hex digits), or None outside a git checkout.
    ``SPDF_COMMIT`` names it where the code runs from a copy without git (a lent GPU machine)."""
    if os.environ.get("SPDF_COMMIT"):
        return os.environ["SPDF_COMMIT"][:12]
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None


def environment() -> dict:
    """Versions, device, date and commit as a dict (stored next to every published result)."""
    import numpy
    import torch

    return {
        "spdf_lib": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "device": describe_device(),
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "date": utc_now(),
        "commit": commit(),
    }


def chapter_header(profile_name: str) -> Profile:
    """Print the profile, the versions and the machine executing this page; return the profile.

    The machine named here executed the page. Results reused from ``tables/<profile>/runs`` were
    computed elsewhere; the page's note "Where these numbers come from" (:func:`provenance`) says where.
    """
    import torch

    profile = get_profile(profile_name)
    print(f"profile: {profile.name} ({profile.description})")
    print(f"page executed with spdf_lib {__version__}, torch {torch.__version__} on {describe_device()}, "
          f"{utc_now().replace('T', ' ').replace('Z', ' UTC')}")
    print("results read from tables/ say where they were computed, in the note 'Where these numbers come from'")
    return profile


# --------------------------------------------------------------------------- provenance


def _day(stamp: str | None) -> str | None:
    return stamp[:10] if isinstance(stamp, str) and len(stamp) >= 10 else None


def _span(days: list[str]) -> str:
    days = sorted(set(days))
    if not days:
        return "not recorded"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def provenance(results: Iterable[dict], tables_dir: Path | str, profile: str, *,
               rendered_on: str | None = None, rendered_at: str | None = None, executed: bool = True) -> str:
    """Markdown saying where the numbers of a page were computed and where the page was executed.

    ``results`` are the result dicts the page used (each with its ``environment``: device, torch,
    and, for results written since they are recorded, date and commit). They are grouped by device
    and torch version, with how many results each group holds, the dates and the commits. The run log
    folder ``tables/<profile>/logs/`` is named when it exists. ``rendered_on`` / ``rendered_at``
    default to this machine and now; ``executed=False`` leaves out the sentence about them (for a
    second block, when a page uses the results of two profiles).
    """
    results = [r for r in results if isinstance(r, dict)]
    groups: dict[tuple[str, str], dict] = {}
    for result in results:
        env = result.get("environment") or {}
        group = groups.setdefault((str(env.get("device") or "not recorded"), str(env.get("torch") or "not recorded")),
                                  {"n": 0, "days": [], "commits": set(), "stages": {}})
        group["n"] += 1
        day = _day(result.get("finished_utc")) or _day(env.get("date"))
        if day:
            group["days"].append(day)
        if env.get("commit"):
            group["commits"].add(str(env["commit"]))
        stage = str(result.get("stage") or "run")
        group["stages"][stage] = group["stages"].get(stage, 0) + 1
    rendered_on = rendered_on or describe_device()
    rendered_at = rendered_at or utc_now()
    executed_line = (f"This page was executed on {rendered_on}, "
                     f"{rendered_at.replace('T', ' ').replace('Z', ' UTC')}." if executed else "")
    if not groups:
        return "\n".join([
            f"{PROVENANCE_MARKER} This page uses no run of the experiment grid: what it computes, "
            f"it computed while it was executed. {executed_line}".rstrip(), ""])
    lines = [
        f"{PROVENANCE_MARKER} This page uses {len(results)} result(s) of the experiment grid "
        f"at profile `{profile}`. They were computed on:",
        "",
        "| Device | torch | Results | Date (UTC) | Commit |",
        "|---|---|---:|---|---|",
    ]
    for (device_name, torch_version), group in sorted(groups.items()):
        stages = ", ".join(f"{n} {stage}" for stage, n in sorted(group["stages"].items()))
        commits = ", ".join(f"`{c}`" for c in sorted(group["commits"])) or "not recorded"
        lines.append(f"| {device_name} | {torch_version} | {group['n']} ({stages}) | {_span(group['days'])} | "
                     f"{commits} |")
    lines.append("")
    tail = f"Each result, with its configuration and environment, is in `tables/{profile}/runs/`."
    if (Path(tables_dir) / profile / "logs").is_dir():
        tail += f" The logs of the commands that computed them are in `tables/{profile}/logs/`."
    lines += [f"{tail} {executed_line}".rstrip(), ""]
    return "\n".join(lines)
