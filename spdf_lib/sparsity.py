"""Static unstructured weight sparsity: which tensors, which entries, and keeping them zero.

SPDF draws one random mask per selected weight at initialization and keeps it for the whole of
pre-training; fine-tuning is dense. The pieces, each explained in chapter 01:

* :class:`SparsitySpec` declares the sparsity as data: a level, ``init_method="random"``, glob
  patterns over parameter names (``param_filter``) and a seed. :func:`resolve_filter` turns the
  patterns into the explicit list of tensors, and refuses embeddings, biases, LayerNorms and the LM
  head.
* :func:`random_mask` is the one exact-count random mask: exactly ``floor(level * numel)`` zeros, drawn
  from an explicit ``torch.Generator``. Every caller in the book (the masks of pre-training, the
  dataflow simulator, the kernel measurements) draws its masks with it.
* :func:`sparsify` zeroes exactly ``floor(level * numel)`` entries of every selected weight and keeps
  the mask as a buffer ``weight_mask`` on its ``nn.Linear`` (so ``state_dict``, ``deepcopy``, pickling
  and ``model.to(device)`` keep it). The weight is stored already multiplied by the mask.
* :func:`mask_grads_` (after every ``backward``) keeps masked entries at exactly zero: with their
  gradients zero, AdamW's moments for them stay zero too. :func:`mask_weights_` re-zeroes them as a
  guard; the training loop calls it at checkpoints and at the end, not per step.
* :func:`densify` removes the masks: the formerly masked weights start at 0 and learn.
* :func:`magnitude_prune_` removes a fraction of the remaining weights by magnitude (chapter 08).
* :func:`sparsity_report` gives target and actual sparsity per tensor and per group.
"""

from __future__ import annotations

import fnmatch
import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

MASK_BUFFER = "weight_mask"

# The four weight matrices of every block that SPDF sparsifies (nanoGPT names, see spdf_lib.model).
DEFAULT_PARAM_FILTER: tuple[str, ...] = (
    "transformer.h.*.attn.c_attn.weight",  # fused Q, K, V projections
    "transformer.h.*.attn.c_proj.weight",  # attention output projection
    "transformer.h.*.mlp.c_fc.weight",  # FFN up-projection
    "transformer.h.*.mlp.c_proj.weight",  # FFN down-projection
)

INIT_METHODS = ("random", "magnitude")  # "magnitude" marks masks produced by magnitude_prune_

# Report groups: parameter-name fragment -> group label.
GROUPS: tuple[tuple[str, str], ...] = (
    ("attn.c_attn.", "QKV"),
    ("attn.c_proj.", "attention output"),
    ("mlp.c_fc.", "FFN"),
    ("mlp.c_proj.", "FFN"),
)


@dataclass(frozen=True)
class SparsitySpec:
    """Sparsity declared as data (chapter 01), after the Cerebras configs of the SPDF runs.

    ``level``: fraction of zeros in every selected tensor, in [0, 1) (0 is the dense model).
    ``init_method``: "random" (SPDF: a uniform random mask at initialization), or "magnitude" for
    masks produced by :func:`magnitude_prune_` (chapter 08).
    ``param_filter``: glob patterns over parameter names (``*`` also matches dots).
    ``seed``: seed of the generator that draws the masks.
    """

    level: float
    init_method: str = "random"
    param_filter: tuple[str, ...] = DEFAULT_PARAM_FILTER
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.level, bool) or not isinstance(self.level, (int, float)) \
                or not 0.0 <= float(self.level) < 1.0:
            raise ValueError(f"sparsity level must be in [0, 1), got {self.level!r}")
        object.__setattr__(self, "level", float(self.level))
        if self.init_method not in INIT_METHODS:
            raise ValueError(f"init_method must be one of {INIT_METHODS}, got {self.init_method!r}")
        patterns = (self.param_filter,) if isinstance(self.param_filter, str) else tuple(self.param_filter)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"param_filter must be a non-empty list of glob patterns, got {self.param_filter!r}")
        object.__setattr__(self, "param_filter", patterns)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def as_dict(self) -> dict:
        return {"level": self.level, "init_method": self.init_method,
                "param_filter": list(self.param_filter), "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "SparsitySpec":
        return cls(level=d["level"], init_method=d["init_method"], param_filter=tuple(d["param_filter"]),
                   seed=d["seed"])


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself when ``model`` was wrapped by ``torch.compile`` (``_orig_mod``)."""
    return getattr(model, "_orig_mod", model)


def n_masked(level: float, numel: int) -> int:
    """Number of zeros a tensor of ``numel`` entries gets at ``level``: ``floor(level * numel)``.

    The tiny tolerance keeps e.g. 0.29 * 100 (28.999999999999996 in floating point) at 29.
    """
    return int(math.floor(level * numel + 1e-9))


_NORMS = tuple(t for t in (nn.LayerNorm, getattr(nn, "RMSNorm", None)) if t is not None)


def _forbidden_reason(model: nn.Module, name: str, module: nn.Module, attr: str) -> str | None:
    """Why the parameter ``name`` may not be sparsified, or None when it may."""
    if isinstance(module, nn.Embedding):
        return "an embedding (token or position)"
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    if name.split(".")[0] == "lm_head" or id(getattr(module, attr)) in embedding_weights:
        return "the LM head (tied to the token embedding)"
    if isinstance(module, _NORMS):
        return "a LayerNorm parameter"
    if attr == "bias":
        return "a bias"
    if not (isinstance(module, nn.Linear) and attr == "weight"):
        return f"not the weight of an nn.Linear (it belongs to {type(module).__name__})"
    return None


def resolve_filter(model: nn.Module, param_filter=DEFAULT_PARAM_FILTER) -> list[str]:
    """The explicit, ordered list of parameter names the glob patterns select (chapter 01 prints it).

    Raises ValueError for a pattern that matches nothing, and for a selected embedding, position
    embedding, bias, LayerNorm parameter or LM head (all of which SPDF keeps dense).
    """
    model = unwrap(model)
    patterns = (param_filter,) if isinstance(param_filter, str) else tuple(param_filter)
    modules = dict(model.named_modules())
    # remove_duplicate=False so the tied lm_head.weight is visible and can be refused by name
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    selected: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(f"param_filter pattern {pattern!r} matches no parameter of the model")
        for n in hits:
            module_name, _, attr = n.rpartition(".")
            reason = _forbidden_reason(model, n, modules[module_name], attr)
            if reason is not None:
                raise ValueError(f"param_filter pattern {pattern!r} selects {n!r}, which is {reason}; "
                                 f"SPDF sparsifies only the QKV, attention-output and FFN weights")
            if n not in selected:
                selected.append(n)
    order = {n: i for i, n in enumerate(names)}
    return sorted(selected, key=order.__getitem__)


def _owner(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name.rpartition(".")[0])


def _masked_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(parameter name, module) for every module carrying a ``weight_mask`` buffer, in model order."""
    return [(f"{n}.weight" if n else "weight", m) for n, m in unwrap(model).named_modules()
            if MASK_BUFFER in m._buffers and m._buffers[MASK_BUFFER] is not None]


def random_mask(shape, level: float, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random bool mask of ``shape`` (True = kept) with exactly ``floor(level * numel)``
    False entries: the book's one exact-count random mask (chapter 01).

    ``generator`` draws one permutation of the entries; its first :func:`n_masked` indices are
    zeroed. Masks drawn at different levels from generators in the same state are nested: the
    entries zeroed at a lower level are zeroed at every higher one. ``level`` may be 1 (all
    zeroed); the global RNG is not touched.
    """
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"random_mask: level must be in [0, 1], got {level!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"random_mask: generator must be a torch.Generator, got {type(generator).__name__}")
    shape = tuple(int(n) for n in shape)
    numel = math.prod(shape)
    mask = torch.ones(numel, dtype=torch.bool)
    mask[torch.randperm(numel, generator=generator)[:n_masked(float(level), numel)]] = False
    return mask.view(shape)


def random_masks(model: nn.Module, spec: SparsitySpec) -> dict[str, torch.Tensor]:
    """Exact-count random masks (True = kept) for the tensors ``spec`` selects, as bool CPU tensors.

    One ``torch.Generator`` seeded with ``spec.seed`` draws a :func:`random_mask` per tensor, in
    model order. The global RNG is not touched.
    """
    model = unwrap(model)
    gen = torch.Generator().manual_seed(spec.seed)
    return {name: random_mask(model.get_parameter(name).shape, spec.level, gen)
            for name in resolve_filter(model, spec.param_filter)}


def moved_fraction(model: nn.Module, spec: SparsitySpec) -> float:
    """The share of the kept entries of ``model``'s current masks that the initial masks of ``spec``
    (:func:`random_masks`) did not keep: 0 for a static mask, above 0 once dynamic sparsity
    (``spdf_lib.dynamic``) has moved connections (chapter 09)."""
    current = masks(model)
    if not current:
        raise ValueError("the model has no sparsity masks to compare")
    initial = random_masks(model, spec)
    kept = sum(int(m.sum()) for m in current.values())
    new = sum(int((m.cpu() & ~initial[name]).sum()) for name, m in current.items())
    return new / kept


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor], spec: SparsitySpec | None = None) -> None:
    """Attach ``masks`` (name -> bool tensor, True = kept) as ``weight_mask`` buffers and zero the
    masked weights. Used by :func:`sparsify` and when loading a checkpoint (chapter 01)."""
    model = unwrap(model)
    for name, mask in masks.items():
        module = _owner(model, name)
        if not isinstance(module, nn.Linear) or not name.endswith(".weight"):
            raise ValueError(f"mask {name!r} does not name the weight of an nn.Linear")
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)}, the weight has "
                             f"{tuple(module.weight.shape)}")
        # Stored in the weight's dtype (as torch.nn.utils.prune does), so the upkeep is one fused
        # multiply; it follows model.to(device/dtype) like any buffer.
        buf = mask.to(device=module.weight.device, dtype=module.weight.dtype)
        if MASK_BUFFER in module._buffers:
            module._buffers[MASK_BUFFER] = buf
        else:
            module.register_buffer(MASK_BUFFER, buf)
        with torch.no_grad():
            module.weight.mul_(buf)
    if spec is not None:
        model.sparsity_spec = spec
    _invalidate(model)


def sparsify(model: nn.Module, spec: SparsitySpec) -> dict[str, torch.Tensor]:
    """Apply ``spec`` to ``model`` in place and return the masks (name -> bool, True = kept).

    Exactly ``floor(level * numel)`` entries of every selected weight become zero. Level 0 is the
    dense model: the filter is still checked and the spec recorded, but no mask is attached, so
    training is bit-identical to a model never passed here. Explained in chapter 01.
    """
    if not isinstance(spec, SparsitySpec):
        raise ValueError(f"spec must be a SparsitySpec, got {type(spec).__name__}")
    net = unwrap(model)
    if _masked_modules(net):
        raise ValueError("the model already has sparsity masks; call densify(model) before sparsifying again")
    masks = random_masks(net, spec)
    if spec.level == 0.0:
        net.sparsity_spec = spec
        _invalidate(net)
        return {}
    apply_masks(net, masks, spec)
    return masks


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The current masks as bool tensors (True = kept), keyed by parameter name; empty when dense."""
    return {name: m._buffers[MASK_BUFFER].bool() for name, m in _masked_modules(model)}


def densify(model: nn.Module) -> nn.Module:
    """Remove every mask (chapter 01): weights keep their values, so formerly masked entries start
    at exactly 0, and from now on they receive gradients like any other weight."""
    net = unwrap(model)
    for _, module in _masked_modules(net):
        del module._buffers[MASK_BUFFER]
    net.sparsity_spec = None
    _invalidate(net)
    return model


# --------------------------------------------------------------------------------------------------
# Mask upkeep in the training loop: two fused multiplies over cached lists.

_UPKEEP: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _invalidate(model: nn.Module) -> None:
    _UPKEEP.pop(unwrap(model), None)


def _upkeep_lists(model: nn.Module):
    """(modules, weights, masks) of the masked linears, rebuilt when masks were added or removed or
    the buffers were replaced (``model.to(...)`` creates new buffer tensors)."""
    net = unwrap(model)
    entry = _UPKEEP.get(net)
    if entry is not None:
        modules, weights, mask_list = entry
        # identity checks only: a few microseconds per step
        if all(m.weight is w and m._buffers.get(MASK_BUFFER) is k
               for m, w, k in zip(modules, weights, mask_list)):
            return entry
    modules = [m for _, m in _masked_modules(net)]
    entry = (modules, [m.weight for m in modules], [m._buffers[MASK_BUFFER] for m in modules])
    _UPKEEP[net] = entry
    return entry


def mask_grads_(model: nn.Module) -> None:
    """Zero the gradients of masked entries; call after ``backward`` and before clipping and
    ``optimizer.step``. A no-op for a dense model. Accepts a ``torch.compile`` wrapper."""
    _, weights, mask_list = _upkeep_lists(model)
    pairs = [(w.grad, k) for w, k in zip(weights, mask_list) if w.grad is not None]
    if pairs:
        grads, ks = zip(*pairs)
        torch._foreach_mul_(list(grads), list(ks))


@torch.no_grad()
def mask_weights_(model: nn.Module) -> None:
    """Re-zero masked weights, as a guard: the training loop calls it at checkpoints and at the end,
    not per step. With masked gradients AdamW already leaves them at zero, so this only catches
    anything else writing to them (e.g. a loaded state)."""
    _, weights, mask_list = _upkeep_lists(model)
    if weights:
        torch._foreach_mul_(list(weights), list(mask_list))


# --------------------------------------------------------------------------------------------------
# Iterative magnitude pruning (chapter 08)


def sparsity_after(iterations: int, fraction: float) -> float:
    """Sparsity after ``iterations`` rounds that each prune ``fraction`` of the remaining weights:
    ``1 - (1 - fraction) ** iterations`` (ignoring the rounding of counts)."""
    return 1.0 - (1.0 - fraction) ** iterations


@torch.no_grad()
def magnitude_prune_(model: nn.Module, fraction: float, *, param_filter=DEFAULT_PARAM_FILTER,
                     scope: str = "tensor") -> dict[str, torch.Tensor]:
    """Prune ``fraction`` of the remaining selected weights with the smallest magnitude; return the
    new masks. Masks only shrink. ``scope="tensor"``: ``floor(fraction * remaining)`` entries per
    tensor (every tensor at the same level); ``"global"``: one threshold over all selected tensors.
    A dense model first gets all-ones masks on the tensors ``param_filter`` selects (chapter 08).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    if scope not in ("tensor", "global"):
        raise ValueError(f"scope must be 'tensor' or 'global', got {scope!r}")
    net = unwrap(model)
    current = masks(net)
    if not current:
        current = {n: torch.ones_like(net.get_parameter(n), dtype=torch.bool)
                   for n in resolve_filter(net, param_filter)}
    new = {}
    if scope == "tensor":
        for name, mask in current.items():
            w = net.get_parameter(name).detach()
            k = n_masked(fraction, int(mask.sum()))
            score = w.abs().float().masked_fill(~mask, float("inf")).flatten()
            m = mask.clone().flatten()
            if k:
                m[torch.topk(score, k, largest=False).indices] = False  # ties: topk's order
            new[name] = m.view_as(mask)
    else:
        names = list(current)
        scores = torch.cat([net.get_parameter(n).detach().abs().float()
                            .masked_fill(~current[n], float("inf")).flatten().cpu() for n in names])
        flat = torch.cat([current[n].flatten().cpu() for n in names])
        k = n_masked(fraction, int(flat.sum()))
        if k:
            flat[torch.topk(scores, k, largest=False).indices] = False
        offset = 0
        for n in names:
            numel = current[n].numel()
            new[n] = flat[offset:offset + numel].view_as(current[n]).to(current[n].device)
            offset += numel
    total = sum(m.numel() for m in new.values())
    zeros = sum(int((~m).sum()) for m in new.values())
    old = getattr(net, "sparsity_spec", None)
    spec = SparsitySpec(level=zeros / total, init_method="magnitude",
                        param_filter=old.param_filter if old is not None else param_filter,
                        seed=old.seed if old is not None else 0)
    apply_masks(net, new, spec)
    return new


# --------------------------------------------------------------------------------------------------
# Reporting


def group_of(name: str) -> str:
    """Report group of a parameter name: QKV, attention output, FFN or other."""
    for fragment, label in GROUPS:
        if fragment in name:
            return label
    return "other"


def sparsity_report(model: nn.Module):
    """Target and actual sparsity per tensor and per group (QKV, attention output, FFN, all).

    Returns a pandas DataFrame with columns ``kind`` ("tensor" or "group"), ``name``, ``group``,
    ``numel``, ``target`` (the spec's level; 0 for a dense model), ``target_zeros`` (the exact
    count the mask must have), ``masked`` (entries the mask zeroes), ``zeros`` (weight entries that
    are exactly zero) and ``actual`` (``zeros / numel``). Covers the masked tensors, or the
    default selection when the model has no masks. Chapter 01 shows it.
    """
    import pandas as pd

    net = unwrap(model)
    spec = getattr(net, "sparsity_spec", None)
    level = spec.level if spec is not None else 0.0
    current = masks(net)
    names = list(current) or resolve_filter(net, spec.param_filter if spec is not None else DEFAULT_PARAM_FILTER)
    rows = []
    for name in names:
        w = net.get_parameter(name).detach()
        numel = w.numel()
        rows.append({"kind": "tensor", "name": name, "group": group_of(name), "numel": numel,
                     "target": level, "target_zeros": n_masked(level, numel) if current else 0,
                     "masked": int((~current[name]).sum()) if name in current else 0,
                     "zeros": int((w == 0).sum())})
    tensors = pd.DataFrame(rows)
    groups = []
    for label in ["QKV", "attention output", "FFN", "other", "all"]:
        part = tensors if label == "all" else tensors[tensors["group"] == label]
        if part.empty:
            continue
        groups.append({"kind": "group", "name": label, "group": label, "numel": int(part["numel"].sum()),
                       "target": level, "target_zeros": int(part["target_zeros"].sum()),
                       "masked": int(part["masked"].sum()), "zeros": int(part["zeros"].sum())})
    report = pd.concat([tensors, pd.DataFrame(groups)], ignore_index=True)
    report["actual"] = report["zeros"] / report["numel"]
    return report


__all__ = [
    "MASK_BUFFER", "DEFAULT_PARAM_FILTER", "INIT_METHODS", "GROUPS", "SparsitySpec", "unwrap", "n_masked",
    "resolve_filter", "random_mask", "random_masks", "moved_fraction", "apply_masks", "sparsify", "masks", "densify", "mask_grads_",
    "mask_weights_", "sparsity_after", "magnitude_prune_", "group_of", "sparsity_report",
]
