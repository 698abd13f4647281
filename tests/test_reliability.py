"""Reliability of the pipeline and of the book runner: interrupted runs, damaged caches, cache
invalidation, determinism, atomic writes, committed results checked against their manifest, FORCE,
Ctrl-C / SIGTERM / a dead kernel during a build, and one build at a time.

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
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import _reliability_helpers as H
import spdf_lib
import spdf_lib.data.streams as streams_module
import spdf_lib.data.tokenizer as tokenizer_module
from spdf_lib import (book, checkpoint, data, manifest, report, results, runners, runs as R, scheduler, store,
                      training, verdicts)
from spdf_lib.model import GPT, GPTConfig, get_config
from spdf_lib.profiles import SMOKE, get_profile
from spdf_lib.sparsity import SparsitySpec, sparsify

REPO = Path(__file__).resolve().parent.parent
# The only fields allowed to differ between two runs: times, and the date a result was stored.
WALL_CLOCK = {"wall_s", "tokens_per_s", "finished_utc", "date"}
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
    out = {"pretrain": H.execute(bases, tables_dir),
           "finetune": H.execute(fts, tables_dir),
           "eval": H.execute([R.eval_run(profile, r) for r in fts], tables_dir)}
    search = [{"size": r.base.size, "sparsity": r.base.sparsity, "task": r.task, "chosen": r.lr} for r in fts]
    cells = verdicts.collect(out["eval"].values(), search)
    frame = verdicts.results_table(cells, "smoke-small", "gpt2-small", (0.0, 0.75), ("e2e", "summarization"))
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
        found = pipeline(root / "tables")
        long_run = H.long_finetune_run(H.pretrain_run(sparsity=0.75))
        long_result = runners.do_finetune(long_run, CPU, progress=False)
        yield World(root, root / "data", root / "cache", root / "tables", found, long_run, long_result)
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
    d = cache / "pretrain" / R.run_key(run)

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
    _assert_same_run(d, world.cache / "pretrain" / R.run_key(run))


def test_finetuning_killed_at_four_points_resumes_and_ends_bit_identical(world, zygote, tmp_path):
    """do_finetune (75 steps, a checkpoint at 50) SIGKILLed four times, then run to the end."""
    cache = world.copy_cache(tmp_path / "cache", drop=("eval",))
    shutil.rmtree(cache / "finetune" / R.run_key(world.long_run))
    env = {"SPDF_CACHE": str(cache)}
    d = cache / "finetune" / R.run_key(world.long_run)

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
    _assert_same_run(d, world.cache / "finetune" / R.run_key(world.long_run))


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
    calls = [f"{path.name}: {line.strip()}" for path in sorted(REPO.glob("spdf_lib/**/*.py"))
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
    """Record every run that is computed (cached or committed ones are not): the runners return a
    cached result themselves, so a call counts only when its run has no valid cached result."""
    calls: list[tuple[str, str]] = []
    for stage, runner in list(runners.RUNNERS.items()):
        def counted(run, *args, _runner=runner, _stage=stage, **kwargs):
            if results.cached_result(run) is None:
                calls.append((_stage, run.run_id))
            return _runner(run, *args, **kwargs)

        monkeypatch.setitem(runners.RUNNERS, stage, counted)
    return calls


def test_a_damaged_result_or_model_is_recomputed_identically_and_alone(world, tmp_path, monkeypatch):
    cache = world.copy_cache(tmp_path / "cache")
    monkeypatch.setenv("SPDF_CACHE", str(cache))
    calls = _counting(monkeypatch)
    bases = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    dense, ft = bases[0], H.finetune_runs(bases)[1]
    # a flipped digit keeps the JSON valid: only the checksum sidecar tells
    result_path = results.run_dir(ft) / "result.json"
    text = result_path.read_text()
    digit = re.search(r'"dev_loss": \d\.(\d)', text)
    new = str((int(digit.group(1)) + 1) % 10)
    result_path.write_text(text[:digit.start(1)] + new + text[digit.end(1):])
    json.loads(result_path.read_text())  # still parses
    _flip(results.run_dir(dense) / "model.pt", -300)  # the model chapter 05 would load

    out = pipeline(tmp_path / "tables")

    assert sorted(calls) == sorted([("pretrain", dense.run_id), ("finetune", ft.run_id)])
    for stage in out:
        assert without_wall_clock(out[stage]) == without_wall_clock(world.results[stage])
    checkpoint.load_model(results.run_dir(dense) / "model.pt")  # rewritten and verified


def test_a_damaged_tokenizer_or_token_stream_cache_is_rebuilt(world, tmp_path, monkeypatch, capsys):
    cache = world.copy_cache(tmp_path / "cache")
    monkeypatch.setenv("SPDF_CACHE", str(cache))
    profile = get_profile(H.PROFILE)
    tok = R.load_tokenizer(R.tokenizer_spec(profile))
    (path,) = (cache / "tokenizer").rglob("tokenizer.json")
    original = path.read_bytes()
    spec = json.loads(original)
    vocab = spec["model"]["vocab"]
    a, b = list(vocab)[300:302]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # still a loadable tokenizer, but a different one
    path.write_text(json.dumps(spec))
    trained = []
    real_train = tokenizer_module.train_tokenizer
    monkeypatch.setattr(tokenizer_module, "train_tokenizer", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    again = data.get_tokenizer(profile.vocab_size, profile.tokenizer_train_chars,
                               limit_docs=profile.pretrain.corpus_docs)
    assert trained == [1] and again.fingerprint == tok.fingerprint and path.read_bytes() == original
    assert "is not the recorded" in capsys.readouterr().out

    stream_path = data.pretraining_tokens_path(tok, "train", profile.pretrain.corpus_docs)
    tokens = np.array(data.pretraining_tokens(tok, "train", profile.pretrain.corpus_docs, verbose=False))
    for damage in (lambda: _flip(stream_path, -7), lambda: stream_path.write_bytes(stream_path.read_bytes()[:150]),
                   lambda: (stream_path.parent / "meta.json").write_text('{"sha256": "')):
        streams_module._token_memo.clear()
        damage()
        assert np.array_equal(data.pretraining_tokens(tok, "train", profile.pretrain.corpus_docs, verbose=False),
                              tokens)


def test_a_damaged_pruning_state_is_recomputed_identically(world, tmp_path, monkeypatch, capsys):
    """Chapter 08's per-iteration state: a damaged ``state.pt`` restarts the pruning, same rows."""
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    settings = dataclasses.replace(get_profile(H.PROFILE).pruning, iterations=2)
    run = R.PruningRun(base=H.pretrain_run(sparsity=0.0), method="iterative", settings=settings)
    reference = runners.RUNNERS["prune"](run, CPU, progress=False)
    folder = results.run_dir(run)
    for name in ("result.json", "result.json.sha256"):  # as if killed after the last iteration
        (folder / name).unlink(missing_ok=True)
    _flip(folder / "state.pt", -200)
    again = runners.RUNNERS["prune"](run, CPU, progress=False)
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
    planned = bases + fts + [R.eval_run(profile, r) for r in fts]
    keys = [R.run_key(r) for r in planned]
    assert len(set(keys)) == len(planned) and keys == [R.run_key(r) for r in planned]  # distinct and stable
    # one config value of one run: that run's key (and its evaluation's) only
    changed = dataclasses.replace(fts[2], lr=2e-3)
    assert R.run_key(changed) != R.run_key(fts[2])
    assert R.run_key(R.eval_run(profile, changed)) != R.run_key(R.eval_run(profile, fts[2]))
    assert store.key("demo", {"a": 1, "b": 2}) == store.key("demo", {"b": 2, "a": 1})
    assert store.key("demo", {"a": 1}) != store.key("demo", {"a": 2}) != store.key("demo", {"a": 1}, "fp")
    # a pre-training file: every run changes (all models are scored on it), not the tokenizer
    tok_settings = data.tokenizer_settings(profile.vocab_size, profile.tokenizer_train_chars,
                                           profile.pretrain.corpus_docs)
    tok_key = store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train"))
    H.write_jsonl_xz(tmp_path / "data" / "pretrain" / "blog_authorship" / "valid.jsonl.xz",
                     [{"text": "One more validation document.\nIt is new."}])
    assert store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train")) == tok_key
    moved = [H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)]
    assert all(R.run_key(m) != R.run_key(b) for m, b in zip(moved, bases))
    assert [R.run_key(r) for r in H.finetune_runs(moved)] != [R.run_key(r) for r in fts]
    # a new library version: every key, of runs and of store entries
    for module in (spdf_lib, store, R):
        monkeypatch.setattr(module, "__version__", spdf_lib.__version__ + ".post1")
    assert all(R.run_key(r) != k for r, k in zip(planned, keys))
    assert store.key("tokenizer", tok_settings, data.pretraining_fingerprint("train")) != tok_key


def test_editing_a_task_file_recomputes_exactly_that_tasks_runs(world, tmp_path, monkeypatch):
    data_root = tmp_path / "data"
    shutil.copytree(world.data, data_root)
    monkeypatch.setenv("SPDF_DATA", str(data_root))
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    calls = _counting(monkeypatch)
    rebuilt = []
    monkeypatch.setattr(tokenizer_module, "train_tokenizer", lambda *a, **k: rebuilt.append("tokenizer"))
    monkeypatch.setattr(streams_module, "tokenize_documents", lambda *a, **k: rebuilt.append("tokens"))
    streams_module._token_memo.clear()

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
    streams_module._token_memo.clear()
    pipeline(tmp_path / "tables")
    first, second = tree(world.tables), tree(tmp_path / "tables")
    assert first.keys() == second.keys() and len(first) >= 12
    for name in first:
        if name.endswith(manifest.MANIFEST_NAME):  # checksums of results that differ in their times only
            assert json.loads(first[name])["files"].keys() == json.loads(second[name])["files"].keys()
        elif name.endswith(".json"):
            assert without_wall_clock(json.loads(first[name])) == without_wall_clock(json.loads(second[name])), name
        else:
            assert first[name] == second[name], name
    assert any(name.endswith(f".{results.OUTPUTS_NAME}") and gzip.decompress(first[name]).strip() for name in first)


def _graph_profile():
    """A smoke profile small enough to run whole: one size, two sparsities, one task, two fine-tuning
    seeds and a two-rate search without extensions (so the choice of rate, the later seeds and the
    masks-kept control all occur)."""
    from spdf_lib.profiles import LRSearch

    smoke = get_profile(H.PROFILE)
    finetune = dataclasses.replace(smoke.finetune, tasks=(smoke.task("e2e"),),
                                   lr_search=LRSearch(grid=(1e-3, 3e-3), max_extensions=0))
    return dataclasses.replace(smoke, sizes=("smoke-small",), sparsity_levels=(0.0, 0.75), pretrain_seeds=(0,),
                               finetune_seeds=(0, 1), finetune=finetune)


def test_the_scheduler_in_two_processes_computes_what_it_computes_inline(world, tmp_path, monkeypatch):
    """scheduler.run with two worker processes (each run started when its inputs exist), then inline
    in a fresh tables folder: the inline run finds every run in the cache, with identical results."""
    profile = _graph_profile()
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache", drop=("finetune", "eval"))))
    stages = ("pretrain", "finetune", "eval")
    two = scheduler.run(profile, tmp_path / "two", workers=2, stages=stages, progress=False)
    # fine-tuning: 2 rates searched x 2 models, the second seed of each at its chosen rate, the control;
    # evaluation: 2 seeds x 2 models, the control, and each model at its runner-up rate
    assert len(two["finetune"]) == 7 and len(two["eval"]) == 7
    assert len(two["pretrain"]) == 3  # the two models and chapter 08's static random baseline
    inline = scheduler.run(profile, tmp_path / "inline", workers=1, stages=stages, progress=False)
    for stage in stages:
        assert {k: v["key"] for k, v in two[stage].items()} == {k: v["key"] for k, v in inline[stage].items()}
        assert without_wall_clock(two[stage]) == without_wall_clock(inline[stage])
    assert tree(tmp_path / "two").keys() == tree(tmp_path / "inline").keys()


def test_the_scheduler_starts_nothing_after_its_deadline(world, tmp_path, monkeypatch):
    profile = _graph_profile()
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache", drop=("finetune", "eval"))))
    out = scheduler.run(profile, tmp_path / "tables", workers=1, deadline=0.0, stages=("pretrain", "finetune"),
                        progress=False)
    assert len(out["pretrain"]) == 2 and out["finetune"] == {}  # the two cached models; nothing started
    assert not (tmp_path / "cache" / "finetune").exists()


# ------------------------------------------------------------------------ 6. atomic writes

def _pretrain_run_stub():
    return R.PretrainRun(profile="smoke", size="smoke-small", sparsity=0.0, seed=0, model=get_config("smoke-small"),
                         settings=SMOKE.pretrain, tokens=512, tokenizer=R.TokenizerSpec(512, 1000, 2, "t" * 16),
                         data="d" * 16)


WRITERS = {
    "atomic_write_json": lambda d, v: store.atomic_write_json(d / "x.json", {"v": v}),
    "write_json_entry (cache results)": lambda d, v: store.write_json_entry(d / "result.json", {"v": v}),
    "save_torch (training checkpoints)": lambda d, v: store.save_torch({"v": torch.full((3,), float(v))},
                                                                       d / "checkpoint.pt"),
    "save_model (models)": lambda d, v: checkpoint.save_model(d / "model.pt", GPT(dataclasses.replace(TINY, n_embd=16 * v))),
    "report.write_table (tables/)": lambda d, v: report.write_table(__import__("pandas").DataFrame({"v": [v]}), d,
                                                                    "smoke", "t"),
    "results.export (tables/<profile>/runs and its manifest)": lambda d, v: results.export(_pretrain_run_stub(),
                                                                                             {"v": v}, d),
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
    for path in sorted([*REPO.glob("spdf_lib/**/*.py"), *REPO.glob("notebooks/*.py")]):
        if path.name == "store.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _DIRECT_WRITE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "write these through spdf_lib.store.atomic_write_*:\n" + "\n".join(offenders)


# ------------------------------------------------------------------------ 7. committed results and their manifest

def _committed(tmp_path: Path, profile: str = "gpu") -> Path:
    """A tables folder with three committed files recorded in the manifest of ``profile``."""
    tables = tmp_path / "tables"
    runs_dir = manifest.runs_dir(tables, profile)
    files = {"eval/a.json": '{"value": 67.43, "metric": "BLEU"}\n', "eval/a.outputs.jsonl.gz": "outputs\n",
             "pretrain/p.json": '{"val_loss": 3.1}\n'}
    for rel, text in files.items():
        (runs_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (runs_dir / rel).write_text(text)
    manifest.record(tables, profile, [runs_dir / rel for rel in files])
    return tables


def test_the_manifest_lists_every_committed_file_with_its_checksum_and_size(tmp_path):
    tables = _committed(tmp_path)
    doc = json.loads(manifest.manifest_path(tables, "gpu").read_text())
    assert doc["profile"] == "gpu" and sorted(doc["files"]) == ["eval/a.json", "eval/a.outputs.jsonl.gz",
                                                                "pretrain/p.json"]
    entry = doc["files"]["eval/a.json"]
    path = tables / "gpu" / "runs" / "eval" / "a.json"
    assert entry == {"sha256": store.sha256_file(path), "size": path.stat().st_size}
    for form in (path, "eval/a.json", Path("eval/a.json")):  # absolute, or relative to the runs folder
        manifest.verify(tables, "gpu", form)
    assert manifest.problems(tables, "gpu") == []


@pytest.mark.parametrize("damage,kind", [
    ("one digit changed", "changed"), ("truncated", "truncated"), ("not recorded", "not in the manifest"),
    ("no manifest", "not in the manifest"), ("deleted", "missing")])
def test_a_committed_file_that_is_not_what_was_recorded_is_refused_with_its_name(tmp_path, damage, kind):
    tables = _committed(tmp_path)
    path = tables / "gpu" / "runs" / "eval" / "a.json"
    if damage == "one digit changed":  # 67.43 -> 97.43: still valid JSON, same size
        path.write_text(path.read_text().replace("67.43", "97.43"))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:10])
    elif damage == "not recorded":
        path = path.with_name("b.json")
        path.write_text("{}")
    elif damage == "no manifest":
        manifest.manifest_path(tables, "gpu").unlink()
    else:
        path.unlink()
    with pytest.raises(manifest.CommittedResultError) as info:
        manifest.verify(tables, "gpu", path)
    assert info.value.problem == kind and info.value.path == path
    assert str(Path("eval") / path.name) in str(info.value) and kind in str(info.value)
    assert "python -m spdf_lib.manifest rebuild" in str(info.value)  # what to do after a real re-run


def test_manifest_check_lists_every_problem_and_rebuild_records_a_real_rerun(tmp_path):
    tables = _committed(tmp_path)
    runs_dir = tables / "gpu" / "runs"
    (runs_dir / "eval" / "a.json").write_text('{"value": 97.43, "metric": "BLEU"}\n')
    (runs_dir / "pretrain" / "p.json").write_bytes(b"{")
    (runs_dir / "eval" / "new.json").write_text("{}")
    (runs_dir / "eval" / ".a.json.x1y2.tmp").write_text("left by a killed write, never read")
    (runs_dir / "eval" / "a.outputs.jsonl.gz").unlink()
    cli = [sys.executable, "-m", "spdf_lib.manifest"]
    check = subprocess.run([*cli, "check", "--tables-dir", str(tables), "--profile", "gpu"], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 1
    lines = [ln.strip() for ln in check.stderr.splitlines()]
    assert lines[0] == "4 problem(s) with the committed results of profile 'gpu':"
    assert any(ln.endswith("eval/a.json: changed since it was recorded (sha256 "
                           + store.sha256_file(runs_dir / "eval" / "a.json")[:12]) or "a.json: changed" in ln
               for ln in lines)
    for needle in ("p.json: truncated (1 bytes, the manifest recorded 18)", "new.json: not in the manifest",
                   "a.outputs.jsonl.gz: missing"):
        assert any(needle in ln for ln in lines), (needle, lines)
    assert not any(".tmp" in ln for ln in lines)
    rebuild = subprocess.run([*cli, "rebuild", "--tables-dir", str(tables), "--profile", "gpu"], capture_output=True,
                             text=True, timeout=120)
    assert rebuild.returncode == 0 and "recorded 3 files" in rebuild.stdout, rebuild.stdout + rebuild.stderr
    again = subprocess.run([*cli, "check", "--tables-dir", str(tables), "--profile", "gpu"], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "all 3 files match" in again.stdout


def test_missing_names_the_expected_results_that_are_not_committed(tmp_path):
    tables = _committed(tmp_path)
    (tables / "gpu" / "runs" / "pretrain" / "p.json").unlink()
    expected = ["eval/a.json", "pretrain/p.json", "eval/never.json"]
    assert manifest.missing(tables, "gpu", expected) == ["eval/never.json", "pretrain/p.json"]
    assert manifest.missing(tables, "cpu", ["eval/a.json"]) == ["eval/a.json"]  # no manifest: all missing


def test_a_damaged_manifest_is_named(tmp_path):
    tables = _committed(tmp_path)
    manifest.manifest_path(tables, "gpu").write_text('{"files": {"eval/a.json": 3}}')
    with pytest.raises(manifest.CommittedResultError, match=r"MANIFEST\.json is not a readable manifest"):
        manifest.verify(tables, "gpu", "eval/a.json")


def test_exports_from_two_processes_at_once_keep_every_entry(tmp_path):
    tables = tmp_path / "tables"
    script = ("import sys; from pathlib import Path; from spdf_lib import manifest\n"
              "tables, tag = Path(sys.argv[1]), sys.argv[2]\n"
              "for i in range(40):\n"
              "    p = manifest.runs_dir(tables, 'smoke') / 'eval' / f'{tag}{i}.json'\n"
              "    p.parent.mkdir(parents=True, exist_ok=True); p.write_text(tag)\n"
              "    manifest.record(tables, 'smoke', [p])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tables), tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(manifest.load(tables, "smoke")) == 80 and manifest.problems(tables, "smoke") == []


def test_a_changed_or_truncated_committed_result_stops_the_pipeline_and_rewrites_nothing(world, tmp_path,
                                                                                        monkeypatch):
    """The case of a BLEU of 67.43 made 97.43 in a committed file: the results module refuses it
    through the manifest, naming the file, and nothing under tables/ is rewritten."""
    tables = tmp_path / "tables"
    shutil.copytree(world.tables, tables)
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    profile = get_profile(H.PROFILE)
    assert manifest.problems(tables, H.PROFILE) == []  # every export was recorded
    ev = R.eval_run(profile, H.finetune_runs([H.pretrain_run(sparsity=0.0), H.pretrain_run(sparsity=0.75)])[0])
    path = results.committed_path(ev, tables)
    text = path.read_text()
    value = json.loads(text)["value"]
    for damage, kind in ((lambda: path.write_text(text.replace(json.dumps(value), json.dumps(value + 30.0), 1)),
                          "changed"),
                         (lambda: path.write_text(text[: len(text) // 2]), "truncated")):
        damage()
        before = tree(tables)
        with pytest.raises(manifest.CommittedResultError, match=re.escape(path.name) + ".*" + kind):
            results.find(ev, tables)
        assert tree(tables) == before
    path.write_text(text)
    assert results.find(ev, tables)[1] == "committed"


# ------------------------------------------------------------------------ 8. FORCE

@pytest.mark.parametrize("value,expected", [("", False), ("0", False), ("1", True), (" 1 ", True)])
def test_force_accepts_only_its_documented_values(monkeypatch, value, expected):
    monkeypatch.setenv("FORCE", value)
    assert store.force_requested() is expected


@pytest.mark.parametrize("value", ["yes", "no", "true", "false", "2", "force"])
def test_any_other_force_value_is_an_error_naming_force_and_its_values(monkeypatch, value):
    monkeypatch.setenv("FORCE", value)
    with pytest.raises(ValueError, match=rf"FORCE='{value}' is not understood.*only 1 .* or 0"):
        store.force_requested()
    with pytest.raises(ValueError, match="FORCE"):
        store.force_recompute(Path("anything"))


def test_force_recomputes_committed_results_written_before_the_build_not_those_it_wrote(tmp_path, monkeypatch):
    tables = _committed(tmp_path)
    committed = tables / "gpu" / "runs" / "eval" / "a.json"
    monkeypatch.setenv("FORCE", "1")
    monkeypatch.setenv("SPDF_FORCE_BEFORE", repr(time.time() + 5))  # the build started after the commit
    assert store.force_recompute(committed)
    monkeypatch.setenv("SPDF_FORCE_BEFORE", repr(committed.stat().st_mtime - 5))  # rewritten by this build
    assert not store.force_recompute(committed)
    monkeypatch.setenv("FORCE", "0")
    monkeypatch.setenv("SPDF_FORCE_BEFORE", repr(time.time() + 5))
    assert not store.force_recompute(committed)


def test_force_makes_the_results_module_skip_a_committed_result(world, tmp_path, monkeypatch):
    tables = tmp_path / "tables"
    shutil.copytree(world.tables, tables)
    monkeypatch.setenv("SPDF_CACHE", str(world.copy_cache(tmp_path / "cache")))
    run = H.pretrain_run(sparsity=0.0)
    assert results.committed_result(run, tables) is not None
    monkeypatch.setenv("FORCE", "1")
    monkeypatch.setenv("SPDF_FORCE_BEFORE", repr(time.time() + 5))
    assert results.committed_result(run, tables) is None and results.cached_result(run) is None


# ------------------------------------------------------------------------ 9. a build interrupted

def _book_cli(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "spdf_lib.book", "run", "--profile", "smoke", "--notebooks-dir", str(root / "notebooks"),
           "--book-dir", str(root / "book"), "--tables-dir", str(root / "tables"), "--work-dir", str(root / "work"), *args]
    environ = {**os.environ, "SPDF_CACHE": str(root / "cache"), **(env or {})}
    environ.pop("FORCE", None)
    environ.pop(store.LOCK_HELD_ENV, None)
    return subprocess.Popen(cmd, cwd=root, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the build ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the chapter never reached its long cell")
        time.sleep(0.1)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True  # ended, waiting to be reaped by its new parent
        except FileNotFoundError:
            return True  # reaped between the two checks
        time.sleep(0.1)
    return False


@pytest.fixture
def interrupted_book(tmp_path):
    """Three chapters: 00 finishes, 01 computes one run (ledger) then waits in its cell 4, 02 never runs."""
    notebooks = tmp_path / "notebooks"
    H.write_chapter(notebooks, "00_first")
    H.write_chapter(notebooks, "01_long", body=f"""\
        import json, os, time, pathlib
        with open(os.environ["SPDF_RUN_LEDGER"], "a") as ledger:
            ledger.write(json.dumps({{"stage": "pretrain", "run_id": "r0", "source": "computed"}}) + "\\n")
        child = __import__("subprocess").Popen(["sleep", "300"])  # a worker the chapter started

        # %%
        pids = pathlib.Path({str(tmp_path / 'pids')!r})
        pids.with_suffix(".tmp").write_text(f"{{os.getpid()}} {{child.pid}}")
        pids.with_suffix(".tmp").rename(pids)  # whole or absent: the test reads it as soon as it exists
        time.sleep(300)
        """)
    H.write_chapter(notebooks, "02_after")
    previous = tmp_path / "book" / "01_long.ipynb"
    previous.parent.mkdir()
    previous.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    return tmp_path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_interrupted_build_says_what_was_kept_and_how_to_resume(interrupted_book, sig):
    root = interrupted_book
    before = (root / "book" / "01_long.ipynb").read_bytes()
    proc = _book_cli(root)
    _wait_for(root / "pids", proc)
    kernel, worker = map(int, (root / "pids").read_text().split())
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 6, err
    what = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"Stopped by {what} while chapter 01_long was running (cell 4 of notebooks/01_long.py)." in err
    assert "Kept: chapter(s) 00_first (in book/); 1 run(s) computed in this build" in err
    assert "Not kept: 01_long's output (book/01_long.ipynb is as it was; the partly executed copy is " \
           "work/interrupted/01_long.ipynb); chapter(s) 02_after not run; no HTML rendered." in err
    assert "To resume: " in err and "-m spdf_lib.book run --profile smoke --from 01" in err
    assert (root / "book" / "01_long.ipynb").read_bytes() == before
    assert (root / "book" / "00_first.ipynb").exists() and not (root / "book" / "02_after.ipynb").exists()
    assert (root / "work" / "interrupted" / "01_long.ipynb").exists()
    assert _gone(kernel) and _gone(worker), "the kernel and the processes it started must end with the build"
    status = json.loads((root / "book" / "_status.json").read_text())["chapters"]
    assert set(status) == {"00"}


def test_a_kernel_that_dies_is_reported_as_a_dead_kernel_with_its_cell(tmp_path):
    notebooks = tmp_path / "notebooks"
    H.write_chapter(notebooks, "00_dies", body="""\
        x = 1

        # %%
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
        """)
    proc = _book_cli(tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    assert "Failing cell: cell 4 of notebooks/00_dies.py, which begins: import os, signal" in err
    assert "DeadKernelError: the kernel executing the chapter was killed by SIGKILL" in err
    assert "out-of-memory" in err and "make book PROFILE=smoke CHAPTER=00" in err
    assert "fix that cell" not in err  # a dead kernel is not a bug of the cell
    assert "the later chapters" not in err  # nothing comes after it in this run
    assert (tmp_path / "work" / "failed" / "00_dies.ipynb").exists()


def test_the_memory_kill_is_named_when_the_system_recorded_one(monkeypatch):
    chapter = book.Chapter("05", Path("notebooks/05_x.py"), "05 X")
    text = book.dead_kernel_paragraph(chapter, "cpu", returncode=-9, oom=True, cell_number=7, cell_source="train()",
                                      failed_copy=None, book_dir=Path("book"), later=["06_y"])
    assert "cell 7 of notebooks/05_x.py, which begins: train()" in text
    assert "killed by SIGKILL, sent by the system's out-of-memory killer" in text
    assert "use a smaller profile (PROFILE=smoke)" in text and "06_y were not run" in text
    exited = book.dead_kernel_paragraph(chapter, "cpu", returncode=3, oom=False, cell_number=None, cell_source="",
                                        failed_copy=None, book_dir=Path("book"), later=[])
    assert "exited with status 3" in exited


# ------------------------------------------------------------------------ 10. one build at a time

def test_a_second_build_on_the_same_folders_stops_with_a_clear_message(tmp_path):
    H.write_chapter(tmp_path / "notebooks", "00_first")
    (tmp_path / "cache").mkdir()
    with store.build_lock([(tmp_path / "cache", "cache folder")]):
        os.environ.pop(store.LOCK_HELD_ENV)  # the second build is another process, which does not inherit it
        try:
            proc = _book_cli(tmp_path)
            out, err = proc.communicate(timeout=120)
        finally:
            os.environ[store.LOCK_HELD_ENV] = str(os.getpid())
    assert proc.returncode == 2
    assert f"another build is already using the cache folder {tmp_path / 'cache'} (process {os.getpid()})" in err
    assert "No chapter was run" in err
    assert not (tmp_path / "book").exists() or not any((tmp_path / "book").iterdir())


def test_the_build_lock_is_exclusive_released_and_not_taken_twice_by_a_chapter(tmp_path):
    folder = tmp_path / "book"
    with store.build_lock([(folder, "book dir"), (folder, "book dir")]):  # one folder named twice: one lock
        assert os.environ[store.LOCK_HELD_ENV] == str(os.getpid())
        with store.build_lock([(folder, "book dir")]):  # a chapter kernel inherits the variable: no-op
            pass
        held = os.environ.pop(store.LOCK_HELD_ENV)
        try:
            with pytest.raises(store.BuildLockedError, match=r"another build is already using the book dir"):
                with store.build_lock([(folder, "book dir")]):
                    pass
        finally:
            os.environ[store.LOCK_HELD_ENV] = held
    assert store.LOCK_HELD_ENV not in os.environ
    with store.build_lock([(folder, "book dir")]):  # released: free again
        pass


def test_a_build_killed_outright_leaves_no_lock_behind(tmp_path):
    script = ("import os, sys, signal; from pathlib import Path; from spdf_lib import store\n"
              "with store.build_lock([(Path(sys.argv[1]), 'cache folder')]):\n"
              "    print('locked', flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {k: v for k, v in os.environ.items() if k != store.LOCK_HELD_ENV}
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert killed.returncode == -signal.SIGKILL and "locked" in killed.stdout
    held = os.environ.pop(store.LOCK_HELD_ENV, None)
    try:
        with store.build_lock([(tmp_path, "cache folder")]):
            pass
    finally:
        if held is not None:
            os.environ[store.LOCK_HELD_ENV] = held


def test_a_cache_entry_without_its_checksum_is_recomputed_and_replaced(tmp_path, monkeypatch):
    """A cached result whose checksum file is missing (a process killed between the two writes, or
    a copy that lost it) is never read: it is recomputed and written again with its checksum."""
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path))
    computed = []
    compute = lambda: computed.append(1) or {"bleu": 12.5}  # noqa: E731
    store.cached_json("demo", {"a": 1}, compute)
    path = store.key("demo", {"a": 1}) / "result.json"
    Path(str(path) + ".sha256").unlink()
    path.write_text('{"bleu": 99.0}\n')
    with pytest.raises(store.CorruptCacheError, match="checksum file result.json.sha256 is missing"):
        store.read_json_verified(path, require_checksum=True)
    assert store.cached_json("demo", {"a": 1}, compute) == {"bleu": 12.5} and len(computed) == 2
    assert store.read_json_verified(path, require_checksum=True) == {"bleu": 12.5}


def test_ledger_lines_appended_by_many_processes_stay_whole(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    script = ("import json, sys; from spdf_lib import store\n"
              "for i in range(200):\n"
              "    store.append_line(sys.argv[1], json.dumps({'run_id': sys.argv[2] + str(i), 'pad': 'x' * 300}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(ledger), tag]) for tag in "abc"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    lines = ledger.read_text().splitlines()
    assert len(lines) == 600 and all(json.loads(line)["pad"] == "x" * 300 for line in lines)
    with pytest.raises(ValueError, match="one line"):
        store.append_line(ledger, "two\nlines")
