"""Self-describing model checkpoints: config, sparsity spec, masks and weights in one file.

A checkpoint rebuilds its model with nothing else at hand: ``load_model(path)`` reads the
``GPTConfig``, creates the model, re-attaches the masks of a sparse model and loads the weights.
Files are written atomically with a SHA-256 sidecar (``spdf_lib.store.save_torch``) and read with
``torch.load(weights_only=True)``. A sparse checkpoint whose masks are missing is refused, never
loaded as a dense model by accident. Chapter 01 shows a save/load round trip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from . import __version__, store
from .model import GPT, GPTConfig
from .sparsity import MASK_BUFFER, SparsitySpec, apply_masks, masks, resolve_filter, unwrap

FORMAT = "spdf-gpt/1"


def _strip(state: dict) -> dict:
    """Drop the ``_orig_mod.`` prefix that a ``torch.compile`` wrapper adds to every key."""
    return {k.replace("_orig_mod.", "", 1) if k.startswith("_orig_mod.") else k: v for k, v in state.items()}


def checkpoint_dict(model: torch.nn.Module, extra: dict | None = None) -> dict:
    """The checkpoint payload: format, library version, config, sparsity spec, bool masks, the
    weights (without the mask buffers) and ``extra`` (e.g. step, RNG state)."""
    net = unwrap(model)
    if not isinstance(net, GPT):
        raise ValueError(f"save_model expects a GPT, got {type(net).__name__}")
    spec = getattr(net, "sparsity_spec", None)
    current = masks(net)
    if current and spec is None:
        raise ValueError("the model has masks but no sparsity_spec; attach masks with sparsify or apply_masks")
    weights = {k: v for k, v in _strip(net.state_dict()).items() if not k.endswith("." + MASK_BUFFER)}
    return {
        "format": FORMAT,
        "spdf_lib_version": __version__,
        "config": dataclasses.asdict(net.config),
        "sparsity": spec.as_dict() if spec is not None else None,
        "masks": {k: v.cpu() for k, v in current.items()},
        "model": weights,
        "extra": extra or {},
    }


def save_model(path: str | Path, model: torch.nn.Module, extra: dict | None = None) -> Path:
    """Write ``model`` (a GPT or its torch.compile wrapper) to ``path`` atomically; returns the path."""
    path = Path(path)
    store.save_torch(checkpoint_dict(model, extra), path)
    return path


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load and check a checkpoint's payload (checksum, format, masks present when sparse)."""
    path = Path(path)
    payload = store.load_torch(path, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an spdf_lib model checkpoint (format {FORMAT!r} expected)")
    spec_dict = payload.get("sparsity")
    if spec_dict is not None and spec_dict["level"] > 0:
        found = payload.get("masks") or {}
        if not found:
            raise ValueError(f"{path}: sparse checkpoint (level {spec_dict['level']}) has no masks; "
                             f"refusing to load it as a dense model")
    return payload


def model_from_checkpoint(payload: dict, source: str = "checkpoint") -> GPT:
    """Build the model a checkpoint payload describes, masks attached, weights loaded."""
    model = GPT(GPTConfig(**payload["config"]))
    spec = SparsitySpec.from_dict(payload["sparsity"]) if payload.get("sparsity") else None
    saved = {k: v.bool() for k, v in (payload.get("masks") or {}).items()}
    if saved and spec is None:
        raise ValueError(f"{source}: masks without a sparsity spec")
    if spec is not None and spec.level > 0:
        expected = set(resolve_filter(model, spec.param_filter))
        if set(saved) != expected:
            missing = sorted(expected - set(saved)) or sorted(set(saved) - expected)
            raise ValueError(f"{source}: sparse checkpoint (level {spec.level}) does not carry exactly the "
                             f"masks its spec selects; e.g. {missing[:2]}; refusing to load it")
    model.load_state_dict(_strip(payload["model"]), strict=True)
    for name, mask in saved.items():
        w = model.get_parameter(name).detach()
        if bool((w[~mask.to(w.device)] != 0).any()):
            raise ValueError(f"{source}: weight {name!r} is nonzero where its mask is zero")
    if saved:
        apply_masks(model, saved, spec)
    model.sparsity_spec = spec
    return model


def load_model(path: str | Path, map_location: Any = "cpu") -> GPT:
    """Rebuild the GPT saved at ``path``, with its sparsity spec and masks (chapter 01)."""
    return model_from_checkpoint(read_checkpoint(path, map_location), source=str(path))


__all__ = ["FORMAT", "checkpoint_dict", "save_model", "read_checkpoint", "model_from_checkpoint", "load_model"]
