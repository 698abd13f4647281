"""Self-describing checkpoints: masks survive, and a sparse checkpoint without masks is refused."""

import pytest
import torch

from spdf_lib import store
from spdf_lib.checkpoint import checkpoint_dict, load_model, read_checkpoint, save_model
from spdf_lib.model import GPT, GPTConfig
from spdf_lib.sparsity import SparsitySpec, densify, magnitude_prune_, mask_grads_, mask_weights_, masks, sparsify

CFG = GPTConfig(n_layer=2, n_head=2, n_embd=16, d_ff=32, block_size=8, vocab_size=30)


def make(level: float | None = None) -> GPT:
    torch.manual_seed(0)
    model = GPT(CFG)
    if level is not None:
        sparsify(model, SparsitySpec(level=level, seed=1))
    return model


def same_weights(a: GPT, b: GPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("level", [None, 0.0, 0.75])
def test_round_trip(tmp_path, level):
    model = make(level)
    path = save_model(tmp_path / "m.pt", model)
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.sparsity_spec == model.sparsity_spec
    assert same_weights(model, loaded)
    assert masks(loaded).keys() == masks(model).keys()
    x = torch.randint(0, CFG.vocab_size, (2, 8))
    assert torch.equal(model(x)[0], loaded(x)[0])
    if level:  # the loaded masks still hold in training
        opt = torch.optim.AdamW(loaded.parameters(), lr=1e-2, weight_decay=0.1)
        _, loss = loaded(x, x)
        loss.backward()
        mask_grads_(loaded)
        opt.step()
        mask_weights_(loaded)
        for name, mask in masks(loaded).items():
            assert torch.all(loaded.get_parameter(name)[~mask] == 0)


def test_weights_only_payload_and_checksum(tmp_path):
    path = save_model(tmp_path / "m.pt", make(0.5), extra={"step": 7})
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["extra"] == {"step": 7} and payload["sparsity"]["level"] == 0.5
    assert all(m.dtype == torch.bool for m in payload["masks"].values())
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(store.CorruptCacheError):
        load_model(path)


def test_sparse_checkpoint_without_masks_fails_loudly(tmp_path):
    payload = checkpoint_dict(make(0.75))
    store.save_torch({**payload, "masks": {}}, tmp_path / "nomask.pt")
    with pytest.raises(ValueError, match="no masks"):
        read_checkpoint(tmp_path / "nomask.pt")
    partial = dict(payload["masks"])
    partial.pop(next(iter(partial)))
    store.save_torch({**payload, "masks": partial}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="refusing"):
        load_model(tmp_path / "partial.pt")


def test_compiled_prefix_is_stripped(tmp_path):
    model = make(0.5)
    payload = checkpoint_dict(model)
    payload["model"] = {"_orig_mod." + k: v for k, v in payload["model"].items()}
    store.save_torch(payload, tmp_path / "c.pt")
    assert same_weights(model, load_model(tmp_path / "c.pt"))


def test_densified_and_pruned_models(tmp_path):
    model = make(0.5)
    densify(model)
    loaded = load_model(save_model(tmp_path / "d.pt", model))
    assert masks(loaded) == {} and loaded.sparsity_spec is None and same_weights(model, loaded)
    pruned = make()
    magnitude_prune_(pruned, 0.3)
    magnitude_prune_(pruned, 0.3)
    loaded = load_model(save_model(tmp_path / "p.pt", pruned))
    assert loaded.sparsity_spec == pruned.sparsity_spec
    assert all(torch.equal(masks(loaded)[n], m) for n, m in masks(pruned).items())


def test_not_a_checkpoint(tmp_path):
    store.save_torch({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an spdf_lib model checkpoint"):
        load_model(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="GPT"):
        checkpoint_dict(torch.nn.Linear(2, 2))
