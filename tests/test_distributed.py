"""Data-parallel pre-training (spdf_lib.distributed): 1 and 2 ranks on the CPU (gloo) agree, masks hold,
a checkpoint resumes on another number of ranks, and bad input stops before any step.

The 2-rank runs are two processes forked from the test process with the environment ``torchrun``
gives its workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), one
thread each; forking skips the seconds of imports a fresh interpreter would need.

Tolerance. The runs agree within ``ATOL`` = 1e-5 per weight, not bit for bit: on 2 ranks each
rank's gradient is the mean over its 4 rows and DDP averages the two, while one process averages the
8 rows at once, so the float additions happen in another order (and the matrix products run on
other shapes); float32 rounding (relative 6e-8 per operation) then differs in the last bits, and 24
AdamW steps carry the difference along. Measured: at most about 1e-6 on this run. A real
disagreement is far larger: one AdamW step moves a weight by up to the learning rate (3e-3), 300
times ``ATOL``, and the test checks that training moved the weights by more than 100 x ``ATOL``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch

from conftest import needs_data
from spdf_lib import distributed, training
from spdf_lib.distributed import IncompatibleCheckpointError
from spdf_lib.model import GPT, get_config

ATOL = 1e-5
CPU = torch.device("cpu")
RUN_ARGS = ["--profile", "smoke", "--size", "smoke-small", "--seed", "0", "--quiet", "--threads", "1"]


# ----------------------------------------------------------------------------- pure checks

def test_rows_per_rank_splits_the_global_batch_or_says_which_world_sizes_fit():
    assert distributed.rows_per_rank(8, 1) == 8
    assert distributed.rows_per_rank(8, 2) == 4
    with pytest.raises(ValueError, match=r"8 sequences .* 3 ranks.*1, 2, 4, 8"):
        distributed.rows_per_rank(8, 3)
    with pytest.raises(ValueError, match="16 ranks"):
        distributed.rows_per_rank(8, 16)


def test_backend_defaults_and_nccl_needs_cuda():
    assert distributed.choose_backend(None, "cpu", cuda_available=False) == "gloo"
    assert distributed.choose_backend(None, "cuda", cuda_available=True) == "nccl"
    assert distributed.choose_backend("gloo", "cpu", cuda_available=True) == "gloo"
    with pytest.raises(ValueError, match="nccl needs CUDA"):
        distributed.choose_backend("nccl", "cpu", cuda_available=False)
    with pytest.raises(ValueError, match="--device cuda"):
        distributed.choose_backend("nccl", "cpu", cuda_available=True)
    with pytest.raises(ValueError, match="--backend must be one of gloo, nccl"):
        distributed.choose_backend("mpi", "cpu", cuda_available=False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        distributed.choose_device("cuda", cuda_available=False)


def test_world_from_env_reads_torchrun_variables_and_refuses_a_partial_set():
    assert distributed.world_from_env({}) == (0, 0, 1, 1)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert distributed.world_from_env(env) == (3, 1, 4, 2)
    with pytest.raises(ValueError, match="not LOCAL_RANK, WORLD_SIZE"):
        distributed.world_from_env({"RANK": "0"})
    with pytest.raises(ValueError, match="inconsistent"):
        distributed.world_from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_runs_are_chosen_by_size_sparsity_and_seed_and_an_unknown_value_is_named():
    from types import SimpleNamespace as Run

    grid = [Run(size=z, sparsity=s, seed=p) for z in ("a", "b") for s in (0.0, 0.75) for p in (0, 1)]
    assert distributed.select_runs(grid) == grid
    chosen = distributed.select_runs(grid, sizes=["b"], sparsities=[0.75], seeds=[1])
    assert [(r.size, r.sparsity, r.seed) for r in chosen] == [("b", 0.75, 1)]
    with pytest.raises(ValueError, match="sparsity 0.5; the profile's runs have sparsity 0.0, 0.75$"):
        distributed.select_runs(grid, sparsities=[0.5])
    with pytest.raises(ValueError, match="size c"):
        distributed.select_runs(grid, sizes=["c"])


class _Run:  # the fields of a PretrainRun that the checkpoint check reads
    run_id, steps = "tiny", 24

    class settings:
        batch_size, seq_len = 8, 64


def test_a_checkpoint_resumes_on_any_world_size_with_the_same_global_batch(tmp_path):
    path = tmp_path / "checkpoint.pt"
    written_on_2 = distributed.checkpoint_meta(_Run, world_size=2)
    assert distributed.check_checkpoint(written_on_2, _Run, 2, path) == ""
    assert "written on 2 rank(s) on 4" in distributed.check_checkpoint(written_on_2, _Run, 4, path)
    assert "written on 1 rank(s) on 2" in distributed.check_checkpoint({}, _Run, 2, path)  # runners.do_pretrain's
    with pytest.raises(ValueError, match="3 ranks"):
        distributed.check_checkpoint(written_on_2, _Run, 3, path)
    for name, value in (("global_batch", 16), ("seq_len", 128), ("total_steps", 12)):
        with pytest.raises(IncompatibleCheckpointError, match=rf"checkpoint\.pt: checkpoint written with {name}="):
            distributed.check_checkpoint({**written_on_2, name: value}, _Run, 2, path)


# ----------------------------------------------------------------------------- the loop's hooks

def _tiny():
    torch.manual_seed(0)
    return GPT(get_config("smoke-small", vocab_size=64))


def _batch(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, 64, (4, 8), generator=g)
    return x, x


OPTIM = training.OptimConfig(lr=1e-3, total_steps=6, warmup_steps=1)


def test_a_refused_checkpoint_stops_the_loop_before_any_step(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    meta = {"world_size": 2, "global_batch": 4}
    training.train(_tiny(), batch_at=_batch, optim=training.OptimConfig(lr=1e-3, total_steps=2, warmup_steps=1),
                   device=CPU, checkpoint_path=ckpt, checkpoint_every=1, progress=False,
                   parallel=training.Parallel(checkpoint_meta=meta))
    assert training.store.load_torch(ckpt)["meta"] == meta
    model, before, seen, steps = _tiny(), None, [], []
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def refuse(stored, path):
        seen.append((dict(stored), path))
        raise IncompatibleCheckpointError(f"{path}: no")

    with pytest.raises(IncompatibleCheckpointError, match="checkpoint.pt: no"):
        training.train(model, batch_at=lambda s: steps.append(s) or _batch(s), optim=OPTIM, device=CPU,
                       checkpoint_path=ckpt, progress=False, parallel=training.Parallel(check_resume=refuse))
    assert seen == [(meta, ckpt)] and steps == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_only_the_writer_writes_checkpoints_and_every_process_stops_at_the_agreed_step(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    training.train(_tiny(), batch_at=_batch, optim=OPTIM, device=CPU, checkpoint_path=ckpt, checkpoint_every=2,
                   progress=False, parallel=training.Parallel(writes_checkpoints=False))
    assert not ckpt.exists()
    asked = []

    def agree(flag: bool) -> bool:  # another rank is past its deadline from the third step on
        asked.append(flag)
        return len(asked) >= 3

    with pytest.raises(training.DeadlineReached, match="step 3 of 6"):
        training.train(_tiny(), batch_at=_batch, optim=OPTIM, device=CPU, checkpoint_path=ckpt, progress=False,
                       deadline=1e18, parallel=training.Parallel(agree=agree))
    assert asked == [False, False, False] and training.store.load_torch(ckpt)["step"] == 3


# ----------------------------------------------------------------------------- bad input, before any step

@pytest.mark.parametrize("env, args, message", [
    ({"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0"}, [], "does not split evenly over 3 ranks"),
    ({"RANK": "0", "WORLD_SIZE": "16", "LOCAL_RANK": "0"}, [], "over 16 ranks"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, ["--backend", "nccl", "--device", "cpu"], "nccl"),
    ({}, ["--backend", "mpi"], "--backend must be one of"),
    ({"RANK": "1"}, [], "torchrun"),
])
def test_bad_input_is_refused_before_any_process_group_or_file(env, args, message, tmp_path, monkeypatch, capsys):
    if "nccl" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "unused"))
    code = distributed.main(["--profile", "smoke", "--cache", str(tmp_path / "cache"), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing was written, so no step was taken
    assert not torch.distributed.is_initialized()


def test_nccl_without_cuda_is_refused_on_one_process_too(tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "unused"))
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    assert distributed.main(["--profile", "smoke", "--backend", "nccl"]) == 2
    assert "--backend nccl needs CUDA GPUs" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 1 rank against 2 ranks

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, argv: list[str], log: str) -> None:
    handle = open(log, "w", buffering=1)  # noqa: SIM115 (closed when the process ends)
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    sys.stdout = sys.stderr = handle  # pytest replaced both in the parent
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                      **distributed.NCCL_SAFE_ENV)
    code = distributed.main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_ranks(world: int, argv: list[str], tmp: Path) -> list[str]:
    """Run ``distributed.main(argv)`` as ``world`` forked ranks; returns their outputs."""
    ctx = multiprocessing.get_context("fork")
    port = _free_port()
    logs = [str(tmp / f"rank{r}.log") for r in range(world)]
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, argv, logs[r])) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    outputs = [Path(log).read_text() for log in logs]
    for p, out in zip(procs, outputs):
        if p.is_alive():
            p.kill()
        assert p.exitcode == 0, f"rank exited with {p.exitcode}:\n{out[-3000:]}"
    return outputs


def _saved(cache: Path, run) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(weights, masks) of the model a run saved in ``cache``."""
    from spdf_lib.checkpoint import read_checkpoint
    from spdf_lib.runs import run_key

    payload = read_checkpoint(cache / "pretrain" / run_key(run) / "model.pt")
    return payload["model"], payload["masks"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Three caches that share the smoke tokenizer and token streams (prepared once)."""
    from spdf_lib import runs as R
    from spdf_lib.profiles import get_profile

    root = tmp_path_factory.mktemp("distributed")
    base = root / "base"
    old = os.environ.get("SPDF_CACHE")
    os.environ["SPDF_CACHE"] = str(base)
    try:
        profile = get_profile("smoke")
        bases = R.pretraining_runs(profile, R.tokenizer_spec(profile))
        distributed.runners._pretraining_streams(bases[0])
        runs = {level: next(b for b in bases if b.size == "smoke-small" and b.sparsity == level and b.seed == 0)
                for level in (0.5, 0.75)}
    finally:
        if old is None:
            del os.environ["SPDF_CACHE"]
        else:
            os.environ["SPDF_CACHE"] = old
    for name in ("one", "two", "ref", "bad"):
        shutil.copytree(base, root / name)
    return root, runs


@pytest.fixture(scope="module")
def one_rank(caches):
    """Both runs on one process (no torchrun) in cache ``one``; in cache ``two`` the 50% run stopped by its
    deadline after its first step, so that 2 ranks resume a checkpoint written by 1."""
    root, _ = caches
    threads, old = torch.get_num_threads(), os.environ.get("SPDF_CACHE")
    try:
        assert distributed.main([*RUN_ARGS, "--sparsity", "0.5", "0.75", "--cache", str(root / "one")]) == 0
        assert distributed.main([*RUN_ARGS, "--sparsity", "0.5", "--cache", str(root / "two"), "--minutes", "0"]) == 3
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("SPDF_CACHE", None)
        else:
            os.environ["SPDF_CACHE"] = old
    return root / "one"


@needs_data
def test_one_process_is_the_single_process_runner_bit_for_bit(caches, one_rank, monkeypatch):
    """Without torchrun the loop is runners.do_pretrain's: same weights, bit for bit, and the same log."""
    from spdf_lib import results, runners

    root, runs = caches
    run = runs[0.75]
    monkeypatch.setenv("SPDF_CACHE", str(root / "ref"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = runners.do_pretrain(run, CPU, progress=False)
    finally:
        torch.set_num_threads(threads)
    a, b = _saved(root / "ref", run)[0], _saved(one_rank, run)[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    monkeypatch.setenv("SPDF_CACHE", str(one_rank))
    mine = results.cached_result(run)
    assert mine.pop("data_parallel")["world_size"] == 1
    for result in (mine, ref):
        for name in ("environment", "finished_utc"):
            result.pop(name)
        for name in ("wall_s", "tokens_per_s"):
            result["log"].pop(name)
    assert mine == ref  # every field of runners.do_pretrain's result, the losses of the log bit for bit


@needs_data
def test_a_checkpoint_of_another_global_batch_is_refused_before_any_step(caches, monkeypatch, capsys):
    from spdf_lib import results

    root, runs = caches
    run = runs[0.75]
    monkeypatch.setenv("SPDF_CACHE", str(root / "bad"))
    ckpt = results.run_dir(run) / "checkpoint.pt"
    distributed.store.save_torch({"meta": {**distributed.checkpoint_meta(run, 2), "global_batch": 16}}, ckpt)
    threads = torch.get_num_threads()
    try:
        code = distributed.main([*RUN_ARGS, "--sparsity", "0.75", "--cache", str(root / "bad")])
    finally:
        torch.set_num_threads(threads)
    assert code == 2
    err = capsys.readouterr().err
    assert f"{ckpt}: checkpoint written with global_batch=16 (on 2 ranks)" in err and "global_batch=8" in err
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["checkpoint.pt", "checkpoint.pt.sha256"]


@needs_data
def test_one_and_two_ranks_end_with_the_same_weights_and_exact_zeros(caches, one_rank, monkeypatch):
    root, runs = caches
    one, two = one_rank, root / "two"
    monkeypatch.setenv("SPDF_CACHE", str(two))
    from spdf_lib.runs import run_key

    assert distributed.store.load_torch(two / "pretrain" / run_key(runs[0.5]) / "checkpoint.pt")["step"] == 1
    # two ranks: the 75% run from scratch, the 50% run resumed; a deadline far away makes the ranks agree
    # on it at every step
    out = _on_ranks(2, [*RUN_ARGS, "--sparsity", "0.5", "0.75", "--cache", str(two), "--minutes", "60"], root)
    assert '"world_size": 2' in out[0] and '"world_size"' not in out[1]  # only rank 0 reports
    assert "resuming a checkpoint written on 1 rank(s) on 2" in out[0]

    from spdf_lib.sparsity import SparsitySpec, sparsify

    for level, run in runs.items():
        (a, masks_a), (b, masks_b) = _saved(one, run), _saved(two, run)
        assert a.keys() == b.keys()
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        assert worst <= ATOL, f"{run.run_id}: 1 and 2 ranks differ by {worst:.3g} > {ATOL}"
        torch.manual_seed(run.seed)
        init = GPT(run.model)
        drawn = sparsify(init, SparsitySpec(level=level, seed=run.seed))
        moved = max(float((a[k].float() - v.float()).abs().max()) for k, v in init.state_dict().items() if k in a)
        assert moved > 100 * ATOL  # the comparison can tell a trained model from another
        assert drawn and masks_a.keys() == masks_b.keys() == drawn.keys()
        for name, mask in drawn.items():
            for weights, saved in ((a, masks_a), (b, masks_b)):
                assert torch.equal(saved[name], mask)  # the masks the seed draws, on 1 and on 2 ranks
                assert torch.count_nonzero(weights[name][~mask]) == 0  # masked weights exactly zero
                assert torch.count_nonzero(weights[name][mask]) == mask.sum()  # the kept ones trained

        from spdf_lib import results

        monkeypatch.setenv("SPDF_CACHE", str(two))
        result = results.cached_result(run)
        assert result["data_parallel"]["world_size"] == 2 and result["data_parallel"]["rows_per_rank"] == 4
        assert result["tokens"] == run.tokens  # the tokens of the global batch, not of one rank
        assert not (results.run_dir(run) / "checkpoint.pt").exists()
        monkeypatch.setenv("SPDF_CACHE", str(one))
        ref = results.cached_result(run)
        assert ref["log"]["train_step"] == result["log"]["train_step"]
        assert result["val_loss"] == pytest.approx(ref["val_loss"], abs=1e-4)
