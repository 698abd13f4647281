"""The environment a chapter runs in: profile, library versions, device (every chapter's first cell)."""

from __future__ import annotations

import os
import platform

from . import __version__
from .profiles import Profile, get_profile


def device():
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device() -> str:
    """A one-line description of the compute device, e.g. ``cpu (2 threads)`` or the GPU's name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def environment() -> dict:
    """Versions and device as a dict (stored next to every published result)."""
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
    }


def chapter_header(profile_name: str) -> Profile:
    """Print the profile, the spdf_lib and torch versions and the device; return the profile."""
    import torch

    profile = get_profile(profile_name)
    print(f"profile: {profile.name} ({profile.description})")
    print(f"spdf_lib {__version__} | torch {torch.__version__} | device {describe_device()}")
    return profile
