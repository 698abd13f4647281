"""Reliability of the pipeline: interrupted runs, damaged caches, cache invalidation, determinism and
atomic writes.

Everything runs at the ``smoke`` profile on a tiny synthetic data folder laid out like the real one
(tests/_reliability_helpers.py), with one CPU thread, in temporary caches: a *reference* cache in which
the small pipeline (two pre-trainings, three fine-tunings, three evaluations, one results table) ran
without interruption, and fresh caches in which the same runs are killed, damaged or changed.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import _reliability_helpers as H
import spdf_lib
from spdf_lib import book, checkpoint, data, experiments as E, report, store, tables, tokenizer, training
from spdf_lib.model import GPT, GPTConfig, PRESETS
from spdf_lib.profiles import SMOKE, get_profile
from spdf_lib.sparsity import SparsitySpec, sparsify

REPO = Path(__file__).resolve().parent.parent
WALL_CLOCK = {"wall_s", "tokens_per_s"}  # the only fields allowed to differ between two runs
CPU = torch.device("cpu")


def without_wall_clock(obj):
    if isinstance(obj, dict):
        return {k: without_wall_clock(v) for k, v in obj.items() if k not in WALL_CLOCK}
    if isinstance(obj, list):
        return [without_wall_clock(v) for v in obj]
    return obj


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def pipeline(tables_dir: Path, finetunes=H.finetune_runs) -> dict[str, dict[str, dict]]:
    """The small pipeline: pre-train smoke-small dense and at 75 %, fine-tune e2e on both and
    summarization on the dense one, evaluate all three, write a results table."""
    profile = get_profile(H.PROFILE)
    bases = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    fts = finetunes(bases)
    out = {"pretrain": E.execute(bases, tables_dir=tables_dir, progress=False),
           "finetune": E.execute(fts, tables_dir=tables_dir, progress=False),
           "eval": E.execute([E.eval_run(profile, r) for r in fts], tables_dir=tables_dir, progress=False)}
    cells = tables.cells(out["eval"].values())
    frame = tables.results_table(cells, "smoke-small", "gpt2-small", (0.0, 0.75), ("e2e", "summarization"))
    report.write_table(frame, tables_dir, H.PROFILE, "table_smoke_small")
    return out


@dataclass
class World:
    root: Path
    data: Path
    cache: Path  # the reference cache: everything computed once, uninterrupted
    tables: Path
    results: dict
    long_run: object  # the 75-step fine-tuning run of the interruption test
    long_result: dict

    def copy_cache(self, dest: Path, drop: tuple[str, ...] = ()) -> Path:
        shutil.copytree(self.cache, dest)
        for sub in drop:
            shutil.rmtree(dest / sub, ignore_errors=True)
        return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    mp = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed child processes: bit-identical results need it
    try:
        mp.setenv("SPDF_DATA", str(H.make_data_root(root / "data")))
        mp.setenv("SPDF_CACHE", str(root / "cache"))
        mp.delenv("FORCE", raising=False)
        results = pipeline(root / "tables")
        long_run = H.long_finetune_run(H.pretrain_run(sparsity=0.75))
        long_result = E.do_finetune(long_run, CPU, progress=False)
        yield World(root, root / "data", root / "cache", root / "tables", results, long_run, long_result)
    finally:
        torch.set_num_threads(threads)
        mp.undo()


@pytest.fixture(scope="module")
def zygote(world):
    z = H.Zygote({**os.environ, "SPDF_DATA": str(world.data)})
    yield z
    z.close()


# ------------------------------------------------------------------------ 1. SIGKILL and resume

def _checkpoint_step(path: Path) -> int:
    return int(store.load_torch(path)["step"])


def _assert_same_run(run_dir: Path, ref_dir: Path) -> None:
    result = store.read_json_verified(run_dir / "result.json")
    reference = store.read_json_verified(ref_dir / "result.json")
    assert without_wall_clock(result) == without_wall_clock(reference)
    assert same_weights(checkpoint.load_model(run_dir / "model.pt"), checkpoint.load_model(ref_dir / "model.pt"))
    assert not (run_dir / "checkpoint.pt").exists()  # removed once the result is stored


def test_pretraining_killed_at_six_points_resumes_and_ends_bit_identical(world, zygote, tmp_path):
    """do_pretrain (smoke, 24 steps, a checkpoint every 8) SIGKILLed six times, then run to the end."""
    run = H.pretrain_run(sparsity=0.75)
    cache = world.copy_cache(tmp_path / "cache", drop=("pretrain", "finetune", "eval"))
    env = {"SPDF_CACHE": str(cache)}
    d = cache / "pretrain" / E.run_key(run)

    out = zygote.run("pretrain", env, "step:5")  # before the first checkpoint
    assert out.killed and not (d / "checkpoint.pt").exists()

    out = zygote.run("pretrain", env, "step:13")  # between two checkpoints
    assert out.killed and not out.says("resumed") and _checkpoint_step(d / "checkpoint.pt") == 8

    out = zygote.run("pretrain", env, "replace:checkpoint.pt:1:before")  # new checkpoint complete, not renamed
    assert out.killed and out.says("resumed from step 8 of 24")
    assert _checkpoint_step(d / "checkpoint.pt") == 8  # the old one is intact
    assert list(d.glob(".checkpoint.pt.*.tmp"))  # the abandoned temporary file, never read

    out = zygote.run("pretrain", env, "replace:checkpoint.pt:1:after")  # renamed, its checksum not yet
    assert out.killed and out.says("resumed from step 8 of 24")
    with pytest.raises(store.CorruptCacheError):
        store.load_torch(d / "checkpoint.pt")

    out = zygote.run("pretrain", env, "random:3")  # a seeded random moment
    assert out.killed and not out.says("DONE") and out.says("ignoring damaged checkpoint")
    print(f"random kill landed after steps {out.steps[:1]}..{out.steps[-1:]}")

    out = zygote.run("pretrain", env, "replace:result.json:1:before")  # model saved, result not yet
    assert out.killed and not (d / "result.json").exists()
    checkpoint.load_model(d / "model.pt")  # complete and verified
    assert _checkpoint_step(d / "checkpoint.pt") == 24

    out = zygote.run("pretrain", env)
    assert out.exit_code == 0 and out.says("DONE") and out.says("resumed from step 24 of 24")
    assert out.steps == []  # nothing was trained twice after the last checkpoint
    _assert_same_run(d, world.cache / "pretrain" / E.run_key(run))


def test_finetuning_killed_at_four_points_resumes_and_ends_bit_identical(world, zygote, tmp_path):
    """do_finetune (75 steps, a checkpoint at 50) SIGKILLed four times, then run to the end."""
    cache = world.copy_cache(tmp_path / "cache", drop=("eval",))
    shutil.rmtree(cache / "finetune" / E.run_key(world.long_run))
    env = {"SPDF_CACHE": str(cache)}
    d = cache / "finetune" / E.run_key(world.long_run)

    out = zygote.run("finetune", env, "step:20")
    assert out.killed and not (d / "checkpoint.pt").exists()

    out = zygote.run("finetune", env, "step:60")
    assert out.killed and _checkpoint_step(d / "checkpoint.pt") == 50

    out = zygote.run("finetune", env, "random:7")
    assert out.killed and not out.says("DONE") and out.says("resumed from step 50 of 75")
    print(f"random kill landed after steps {out.steps[:1]}..{out.steps[-1:]}")

    out = zygote.run("finetune", env, "replace:model.pt:1:before")
    assert out.killed and not (d / "model.pt").exists() and _checkpoint_step(d / "checkpoint.pt") == 50

    out = zygote.run("finetune", env)
    assert out.exit_code == 0 and out.says("resumed from step 50 of 75") and out.steps == list(range(50, 75))
    _assert_same_run(d, world.cache / "finetune" / E.run_key(world.long_run))


def test_a_run_stopped_at_its_deadline_resumes_bit_identical(tmp_path):
    ref_model, ref_log = _train_tiny(tmp_path / "ref.pt")
    with pytest.raises(training.DeadlineReached, match="re-run to resume"):
        _train_tiny(tmp_path / "c.pt", deadline=0.0)  # stops after its first step, with a checkpoint
    assert _checkpoint_step(tmp_path / "c.pt") == 1
    model, log = _train_tiny(tmp_path / "c.pt")
    assert same_weights(model, ref_model) and without_wall_clock(log) == without_wall_clock(ref_log)


# ------------------------------------------------------------------------ 2. damaged state

TINY = GPTConfig(n_layer=1, n_head=2, n_embd=16, d_ff=32, block_size=16, vocab_size=40)


def _batch(step: int):
    tokens = torch.randint(0, TINY.vocab_size, (4, 17), generator=torch.Generator().manual_seed(step))
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def _train_tiny(path: Path, stop_at: int | None = None, deadline: float | None = None):
    """12 steps of a 50 %-sparse tiny GPT, a checkpoint every 4; ``stop_at`` raises there (Ctrl-C)."""
    torch.manual_seed(0)
    model = GPT(TINY)
    sparsify(model, SparsitySpec(level=0.5, seed=0))

    def batch_at(step):
        if step == stop_at:
            raise KeyboardInterrupt
        return _batch(step)

    log = training.train(model, batch_at=batch_at, optim=training.OptimConfig(lr=1e-2, total_steps=12, warmup_steps=2),
                         device=CPU, checkpoint_path=path, checkpoint_every=4, progress=False, deadline=deadline,
                         evaluate=lambda: training.mean_loss(model, [_batch(99)], CPU), eval_every=4)
    return model, log


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at % len(raw)] ^= 0x01
    path.write_bytes(bytes(raw))


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "one bit flipped": lambda p: _flip(p, -200),
    "emptied": lambda p: p.write_bytes(b""),
    "checksum sidecar deleted": lambda p: Path(str(p) + ".sha256").unlink(),
    "checksum sidecar garbled": lambda p: Path(str(p) + ".sha256").write_text("0" * 64),
    "not a torch file": lambda p: (p.write_text("{}"), store.atomic_write_text(Path(str(p) + ".sha256"),
                                                                              store.sha256_file(p))),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_never_loaded_and_the_run_still_ends_identical(tmp_path, damage, capsys):
    ref_model, ref_log = _train_tiny(tmp_path / "ref.pt")
    path = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(path, stop_at=10)
    assert _checkpoint_step(path) == 8
    DAMAGE[damage](path)
    with pytest.raises(store.CorruptCacheError, match=re.escape(str(path))):
        store.load_torch(path)
    capsys.readouterr()
    model, log = _train_tiny(path)
    assert "ignoring damaged checkpoint, starting over" in capsys.readouterr().out
    assert same_weights(model, ref_model) and without_wall_clock(log) == without_wall_clock(ref_log)


def test_an_older_valid_checkpoint_resumes_from_its_own_step(tmp_path, capsys):
    ref_model, ref_log = _train_tiny(tmp_path / "ref.pt")
    path = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(path, stop_at=6)  # checkpoint at 4
    older = {p: p.read_bytes() for p in (path, Path(str(path) + ".sha256"))}
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(path, stop_at=10)  # checkpoint at 8
    for p, raw in older.items():
        p.write_bytes(raw)  # e.g. restored from a backup
    capsys.readouterr()
    model, log = _train_tiny(path)
    assert "resumed from step 4 of 12" in capsys.readouterr().out
    assert same_weights(model, ref_model) and without_wall_clock(log) == without_wall_clock(ref_log)


def test_checkpoints_are_read_with_weights_only(tmp_path, monkeypatch):
    seen = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k.get("weights_only")) or original(*a, **k))
    model = GPT(TINY)
    checkpoint.load_model(checkpoint.save_model(tmp_path / "m.pt", model))
    with pytest.raises(KeyboardInterrupt):
        _train_tiny(tmp_path / "c.pt", stop_at=6)
    _train_tiny(tmp_path / "c.pt")  # resumes: loads the checkpoint
    assert len(seen) == 2 and all(flag is True for flag in seen)
    monkeypatch.undo()
    # ... and store.load_torch is the library's only call of torch.load
    calls = [f"{path.name}: {line.strip()}" for path in sorted(REPO.glob("spdf_lib/*.py"))
             for line in path.read_text(encoding="utf-8").splitlines()
             if re.search(r"(?<!`)torch\.load\(", line.split("#")[0])]  # not the ``torch.load(...)`` of docs
    assert calls == ["store.py: return torch.load(path, map_location=map_location, weights_only=True)"], calls
    # A file that needs arbitrary unpickling is refused even with a matching checksum.
    evil = tmp_path / "evil.pt"
    torch.save({"payload": _Unsafe()}, evil)
    store.atomic_write_text(Path(str(evil) + ".sha256"), store.sha256_file(evil))
    with pytest.raises(store.CorruptCacheError, match="not a weights-only torch file"):
        store.load_torch(evil)


class _Unsafe:
    """Stands for any pickled object that is not a tensor or plain data."""


def _counting(monkeypatch) -> list[tuple[str, str]]:
    """Record every run that ``experiments.execute`` computes (cached or committed ones are not)."""
    calls: list[tuple[str, str]] = []
    for stage, runner in list(E.RUNNERS.items()):
        def counted(run, *args, _runner=runner, _stage=stage, **kwargs):
            calls.append((_stage, run.run_id))
            return _runner(run, *args, **kwargs)

        monkeypatch.setitem(E.RUNNERS, stage, counted)
    return calls


def test_a_damaged_result_or_model_is_recomputed_identically_and_alone(world, tmp_path, monkeypatch):
    cache = world.copy_cache(tmp_path / "cache")
    monkeypatch.setenv("SPDF_CACHE", str(cache))
    calls = _counting(monkeypatch)
    bases = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    dense, ft = bases[0], H.finetune_runs(bases)[1]
    # a flipped digit keeps the JSON valid: only the checksum sidecar tells
    result_path = E.run_dir(ft) / "result.json"
    text = result_path.read_text()
    digit = re.search(r'"dev_loss": \d\.(\d)', text)
    new = str((int(digit.group(1)) + 1) % 10)
    result_path.write_text(text[:digit.start(1)] + new + text[digit.end(1):])
    json.loads(result_path.read_text())  # still parses
    _flip(E.run_dir(dense) / "model.pt", -300)  # the model chapter 05 would load

    out = pipeline(tmp_path / "tables")

    assert sorted(calls) == sorted([("pretrain", dense.run_id), ("finetune", ft.run_id)])
    for stage in out:
        assert without_wall_clock(out[stage]) == without_wall_clock(world.results[stage])
    checkpoint.load_model(E.run_dir(dense) / "model.pt")  # rewritten and verified


def test_a_damaged_tokenizer_or_token_stream_cache_is_rebuilt(world, tmp_path, monkeypatch, capsys):
    cache = world.copy_cache(tmp_path / "cache")
    monkeypatch.setenv("SPDF_CACHE", str(cache))
    profile = get_profile(H.PROFILE)
    tok = E.tokenizer_for(profile)
    (path,) = (cache / "tokenizer").rglob("tokenizer.json")
    original = path.read_bytes()
    spec = json.loads(original)
    vocab = spec["model"]["vocab"]
    a, b = list(vocab)[300:302]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # still a loadable tokenizer, but a different one
    path.write_text(json.dumps(spec))
    trained = []
    real_train = tokenizer.train_tokenizer
    monkeypatch.setattr(tokenizer, "train_tokenizer", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    again = tokenizer.get_tokenizer(profile.vocab_size, profile.tokenizer_train_chars,
                                    limit_docs=profile.pretrain.corpus_docs)
    assert trained == [1] and again.fingerprint == tok.fingerprint and path.read_bytes() == original
    assert "is not the recorded" in capsys.readouterr().out

    stream_path = data.pretraining_tokens_path(tok, "train", profile.pretrain.corpus_docs)
    tokens = np.array(data.pretraining_tokens(tok, "train", profile.pretrain.corpus_docs, verbose=False))
    for damage in (lambda: _flip(stream_path, -7), lambda: stream_path.write_bytes(stream_path.read_bytes()[:150]),
                   lambda: (stream_path.parent / "meta.json").write_text('{"sha256": "')):
        data._token_memo.clear()
        damage()
        assert np.array_equal(data.pretraining_tokens(tok, "train", profile.pretrain.corpus_docs, verbose=False),
                              tokens)


def test_a_damaged_pruning_state_is_recomputed_identically(world, tmp_path, monkeypatch, capsys):
    """Chapter 08's per-iteration state: a damaged ``state.pt`` restarts the pruning, same rows."""
    import dataclasses

    from spdf_lib.pruning import PruningRun

    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    settings = dataclasses.replace(get_profile(H.PROFILE).pruning, iterations=2)
    run = PruningRun(base=H.pretrain_run(sparsity=0.0), method="iterative", settings=settings)
    reference = E.RUNNERS["prune"](run, CPU, progress=False)
    folder = E.run_dir(run)
    for name in ("result.json", "result.json.sha256"):  # as if killed after the last iteration
        (folder / name).unlink(missing_ok=True)
    _flip(folder / "state.pt", -200)
    again = E.RUNNERS["prune"](run, CPU, progress=False)
    assert "damaged pruning state" in capsys.readouterr().out
    assert without_wall_clock(again["rows"]) == without_wall_clock(reference["rows"])


def test_cached_json_recomputes_a_damaged_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    computed = []

    def compute():
        computed.append(1)
        return {"bleu": 12.5, "n": 3}

    assert store.cached_json("demo", {"a": 1}, compute) == {"bleu": 12.5, "n": 3}
    path = store.key("demo", {"a": 1}) / "result.json"
    for damage in (lambda: path.write_text(path.read_text().replace("12.5", "13.5")),  # valid JSON, wrong value
                   lambda: path.write_text(path.read_text()[:10]),  # truncated
                   lambda: path.write_bytes(b"\xff\xfe")):  # not text
        damage()
        assert store.cached_json("demo", {"a": 1}, compute) == {"bleu": 12.5, "n": 3}
    assert len(computed) == 4
    assert store.cached_json("demo", {"a": 1}, compute) and len(computed) == 4  # intact: read back


# ------------------------------------------------------------------------ 3. cache invalidation

def test_keys_follow_config_values_the_library_version_and_data_fingerprints(world, tmp_path, monkeypatch):
    shutil.copytree(world.data, tmp_path / "data")
    monkeypatch.setenv("SPDF_DATA", str(tmp_path / "data"))
    profile = get_profile(H.PROFILE)
    bases = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    fts = H.finetune_runs(bases)
    runs = bases + fts + [E.eval_run(profile, r) for r in fts]
    keys = [E.run_key(r) for r in runs]
    assert len(set(keys)) == len(runs) and keys == [E.run_key(r) for r in runs]  # distinct and stable
    # one config value of one run: that run's key (and its evaluation's) only
    changed = dataclasses.replace(fts[2], lr=2e-3)
    assert E.run_key(changed) != E.run_key(fts[2])
    assert E.run_key(E.eval_run(profile, changed)) != E.run_key(E.eval_run(profile, fts[2]))
    assert store.key("demo", {"a": 1, "b": 2}) == store.key("demo", {"b": 2, "a": 1})
    assert store.key("demo", {"a": 1}) != store.key("demo", {"a": 2}) != store.key("demo", {"a": 1}, "fp")
    # a pre-training file: every run changes (all models are scored on it), not the tokenizer
    tok_settings = tokenizer.tokenizer_settings(profile.vocab_size, profile.tokenizer_train_chars,
                                                profile.pretrain.corpus_docs)
    tok_key = store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train"))
    H.write_jsonl_xz(tmp_path / "data" / "pretrain" / "blog_authorship" / "valid.jsonl.xz",
                     [{"text": "One more validation document.\nIt is new."}])
    assert store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train")) == tok_key
    moved = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    assert all(E.run_key(m) != E.run_key(b) for m, b in zip(moved, bases))
    assert [E.run_key(r) for r in H.finetune_runs(moved)] != [E.run_key(r) for r in fts]
    # a new library version: every key, of runs and of store entries
    for module in (spdf_lib, store, E):
        monkeypatch.setattr(module, "__version__", spdf_lib.__version__ + ".post1")
    assert all(E.run_key(r) != k for r, k in zip(runs, keys))
    assert store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train")) != tok_key


def test_editing_a_task_file_recomputes_exactly_that_tasks_runs(world, tmp_path, monkeypatch):
    data_root = tmp_path / "data"
    shutil.copytree(world.data, data_root)
    monkeypatch.setenv("SPDF_DATA", str(data_root))
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    calls = _counting(monkeypatch)
    rebuilt = []
    monkeypatch.setattr(tokenizer, "train_tokenizer", lambda *a, **k: rebuilt.append("tokenizer"))
    monkeypatch.setattr(data, "tokenize_documents", lambda *a, **k: rebuilt.append("tokens"))
    data._token_memo.clear()

    assert without_wall_clock(pipeline(tmp_path / "tables")) == without_wall_clock(world.results)
    assert calls == [] and rebuilt == []  # nothing changed: nothing recomputed

    before = {t: data.task_fingerprint(t) for t in ("e2e", "summarization")}
    with open(data_root / "e2e" / "devset.csv", "a", encoding="utf-8") as handle:
        handle.write('"name[Zizzi], eatType[pub], food[Italian], area[riverside]",Zizzi is a riverside pub.\n')
    assert data.task_fingerprint("e2e") != before["e2e"]
    assert data.task_fingerprint("summarization") == before["summarization"]
    out = pipeline(tmp_path / "tables")

    e2e = sorted(r for r in out["finetune"] if "_e2e_" in r)
    assert sorted(calls) == sorted([("finetune", r) for r in e2e] + [("eval", r) for r in e2e])
    assert rebuilt == []
    assert out["pretrain"] == world.results["pretrain"]
    summ = next(r for r in out["finetune"] if "summarization" in r)
    assert out["finetune"][summ] == world.results["finetune"][summ]


def test_changing_one_config_value_recomputes_exactly_that_run(world, tmp_path, monkeypatch):
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    calls = _counting(monkeypatch)

    def summarization_at_another_rate(bases):
        runs = H.finetune_runs(bases)
        return runs[:2] + [dataclasses.replace(runs[2], lr=3e-3)]

    out = pipeline(tmp_path / "tables", finetunes=summarization_at_another_rate)
    changed = next(r for r in out["finetune"] if "summarization" in r)
    assert calls == [("finetune", changed), ("eval", changed)]


def test_a_new_library_version_recomputes_cached_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    computed = []
    store.cached_json("demo", {"a": 1}, lambda: computed.append(1) or {"v": 1})
    store.cached_json("demo", {"a": 1}, lambda: computed.append(1) or {"v": 1})
    monkeypatch.setattr(store, "__version__", "9.9.9")
    store.cached_json("demo", {"a": 1}, lambda: computed.append(1) or {"v": 1})
    assert len(computed) == 2


# ------------------------------------------------------------------------ 5. determinism

def test_the_same_profile_and_seed_give_identical_tables(world, tmp_path, monkeypatch):
    """A second run of the pipeline in a fresh cache (tokenizer trained again, every model trained
    again) exports the same results, decoded outputs and table as the reference run."""
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    data._token_memo.clear()
    pipeline(tmp_path / "tables")
    first, second = tree(world.tables), tree(tmp_path / "tables")
    assert first.keys() == second.keys() and len(first) >= 12
    for name in first:
        if name.endswith(".json"):
            assert without_wall_clock(json.loads(first[name])) == without_wall_clock(json.loads(second[name])), name
        else:
            assert first[name] == second[name], name
    assert any(name.endswith(".outputs.txt.gz") and gzip.decompress(first[name]).strip() for name in first)


def _graph_profile():
    """A smoke profile small enough to run whole: one size, two sparsities, one task, two seeds and
    two learning rates (so the choice of rate, the later seeds and the masks-kept control all occur)."""
    smoke = get_profile(H.PROFILE)
    finetune = dataclasses.replace(smoke.finetune, tasks=(smoke.task("e2e"),), lr_grid=(1e-3, 3e-3))
    return dataclasses.replace(smoke, sizes=("smoke-small",), sparsity_levels=(0.0, 0.75), seeds=(0, 1),
                               finetune=finetune)


def test_the_dependency_driven_runner_computes_what_the_staged_runner_plans(world, tmp_path, monkeypatch):
    """run_graph (two worker processes, each run started when its inputs exist) computes exactly the
    runs run_all plans, stage by stage; run_all then finds every one of them in the cache."""
    profile = _graph_profile()
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache", drop=("finetune", "eval"))))
    stages = ("pretrain", "finetune", "eval")
    graph = E.run_graph(profile, tmp_path / "graph", workers=2, stages=stages)
    assert len(graph["finetune"]) == 8 and len(graph["eval"]) == 6  # 4 grid + 1 seed + 3 control; 2 + 4
    staged = E.run_all(profile, tmp_path / "staged", stages=stages, progress=False)
    for stage in stages:
        assert {k: v["key"] for k, v in graph[stage].items()} == {k: v["key"] for k, v in staged[stage].items()}
        assert without_wall_clock(graph[stage]) == without_wall_clock(staged[stage])
    assert tree(tmp_path / "graph").keys() == tree(tmp_path / "staged").keys()


def test_the_dependency_driven_runner_starts_nothing_after_its_deadline(world, tmp_path, monkeypatch):
    profile = _graph_profile()
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache", drop=("finetune", "eval"))))
    out = E.run_graph(profile, tmp_path / "tables", workers=1, deadline=0.0, stages=("pretrain", "finetune"))
    assert len(out["pretrain"]) == 2 and out["finetune"] == {}  # the pre-trained models were cached
    assert not (tmp_path / "cache" / "finetune").exists()


# ------------------------------------------------------------------------ 6. atomic writes

def _pretrain_run_stub():
    return E.PretrainRun(profile="smoke", size="smoke-small", sparsity=0.0, seed=0, model=PRESETS["smoke-small"],
                         settings=SMOKE.pretrain, tokens=512, tokenizer="t" * 16, data="d" * 16)


WRITERS = {
    "atomic_write_json": lambda d, v: store.atomic_write_json(d / "x.json", {"v": v}),
    "write_json_entry (cache results)": lambda d, v: store.write_json_entry(d / "result.json", {"v": v}),
    "save_torch (training checkpoints)": lambda d, v: store.save_torch({"v": torch.full((3,), float(v))},
                                                                       d / "checkpoint.pt"),
    "save_model (models)": lambda d, v: checkpoint.save_model(d / "model.pt", GPT(dataclasses.replace(TINY, n_embd=16 * v))),
    "report.write_table (tables/)": lambda d, v: report.write_table(__import__("pandas").DataFrame({"v": [v]}), d,
                                                                    "smoke", "t"),
    "experiments.export (tables/<profile>/runs)": lambda d, v: E.export(_pretrain_run_stub(), {"v": v}, d),
    "book.record_run (book/_status.json)": lambda d, v: book.record_run(
        d, book.ChapterRun("00", "00_x", "00 X", "smoke", float(v), "ok", "now", "cpu")),
}


def _fail_replace(n_ok: int):
    """An ``os.replace`` that works ``n_ok`` times, then fails as on a full disk."""
    real, count = os.replace, {"n": 0}

    def replace(src, dst):
        count["n"] += 1
        if count["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    return replace


def _fail_fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fault", ["rename fails", "disk full while writing"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, monkeypatch, writer, fault):
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "out"
    WRITERS[writer](target, 1)
    before = tree(target)
    with monkeypatch.context() as m:
        if fault == "rename fails":
            m.setattr(store.os, "replace", _fail_replace(0))
        else:
            m.setattr(store.os, "fsync", _fail_fsync)
        with pytest.raises(OSError, match="No space left"):
            WRITERS[writer](target, 2)
    assert tree(target) == before  # old content intact, no temporary file left behind


@pytest.mark.parametrize("write,read", [
    (lambda p: store.save_torch({"v": torch.ones(2)}, p), store.load_torch),
    (lambda p: store.write_json_entry(p, {"v": 2.0}), store.read_json_verified),
])
def test_a_write_interrupted_between_file_and_checksum_is_detected(tmp_path, monkeypatch, write, read):
    path = tmp_path / "entry"
    store.atomic_write_bytes(path, b"old")
    store.atomic_write_text(Path(str(path) + ".sha256"), store.sha256_file(path))
    monkeypatch.setattr(store.os, "replace", _fail_replace(1))  # the file is renamed, its sidecar is not
    with pytest.raises(OSError):
        write(path)
    monkeypatch.undo()
    with pytest.raises(store.CorruptCacheError):
        read(path)


# Direct writes that bypass spdf_lib.store's atomic helpers (writes into an in-memory buffer are fine).
_DIRECT_WRITE = re.compile(r"open\([^)]*[\"'][wax]b?\+?[\"']|\.write_text\(|\.write_bytes\(|\.savefig\(|"
                           r"(?:torch|np)\.save\((?!buffer)|json\.dump\(|\.to_csv\((?!index)|\.to_json\(|"
                           r"shutil\.copy|\.to_parquet\(")


def test_library_and_chapters_write_only_through_the_atomic_helpers():
    offenders = []
    for path in sorted([*REPO.glob("spdf_lib/*.py"), *REPO.glob("notebooks/*.py")]):
        if path.name == "store.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _DIRECT_WRITE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "write these through spdf_lib.store.atomic_write_*:\n" + "\n".join(offenders)
