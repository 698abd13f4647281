"""Bad input: every wrong parameter, missing or unusable folder, or broken data file gives a clear error
that names the culprit, a non-zero exit on the command line, and nothing written to ``tables/`` or ``book/``.

Data cases use a small synthetic data folder laid out like the real one (tests/_reliability_helpers.py),
copied for every test and then broken in one place.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import _reliability_helpers as H
from spdf_lib import book, checkpoint, data, results, runs as R, scheduler, store
from spdf_lib.model import GPT, GPTConfig, get_config
from spdf_lib.profiles import get_profile
from spdf_lib.sparsity import SparsitySpec
from spdf_lib.training import OptimConfig

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A clean synthetic data folder and a cache holding the smoke tokenizer trained on it."""
    root = tmp_path_factory.mktemp("bad_input")
    H.make_data_root(root / "data", e2e_train=40)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPDF_DATA", str(root / "data"))
        mp.setenv("SPDF_CACHE", str(root / "cache"))
        R.tokenizer_spec(get_profile("smoke"))
    return root


@pytest.fixture
def env(base, tmp_path, monkeypatch):
    """A private copy of the data folder and the cache, selected through SPDF_DATA and SPDF_CACHE."""
    shutil.copytree(base / "data", tmp_path / "data")
    shutil.copytree(base / "cache", tmp_path / "cache")
    monkeypatch.setenv("SPDF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SPDF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FORCE", raising=False)
    return tmp_path


def files_under(*folders: Path) -> list[str]:
    return [str(p) for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


# ------------------------------------------------------------------------ library calls

def _rewrite(relative: str, text: str):
    def setup(root: Path) -> None:
        path = root / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return setup


def _write_bytes(relative: str, raw: bytes):
    def setup(root: Path) -> None:
        (root / "data" / relative).write_bytes(raw)
    return setup


def _truncate(relative: str, keep: int):
    def setup(root: Path) -> None:
        path = root / "data" / relative
        path.write_bytes(path.read_bytes()[:keep])
    return setup


def _nothing(root: Path) -> None:
    pass


DART_ENTRY = ('<entry category="MISC" eid="Id{n}" size="1"><modifiedtripleset><mtriple>{triple}</mtriple>'
              '</modifiedtripleset><lex comment="e2e" lid="Id1">A text.</lex></entry>')
SMOKE = get_profile("smoke")

# name: (break the data copy, the call, exception type, pattern its message must contain)
CASES = {
    "unknown profile": (_nothing, lambda: get_profile("laptop"), ValueError, r"unknown profile 'laptop'.*smoke"),
    "sparsity level 1.0": (_nothing, lambda: SparsitySpec(level=1.0), ValueError, r"sparsity level .*\[0, 1\), got 1\.0"),
    "negative sparsity level": (_nothing, lambda: SparsitySpec(level=-0.5), ValueError, r"sparsity level.*-0\.5"),
    "sparsity level as text": (_nothing, lambda: SparsitySpec(level="75%"), ValueError, r"sparsity level.*'75%'"),
    "unknown task": (_nothing, lambda: data.load_task("e3e", "train"), ValueError, r"unknown task 'e3e'.*e2e"),
    "unknown split": (_nothing, lambda: data.load_task("e2e", "dev"), ValueError, r"unknown split 'dev'.*validation"),
    "task not in the profile": (_nothing, lambda: SMOKE.task("squad"), ValueError, r"task 'squad'.*profile 'smoke'"),
    "subset limit 0": (_nothing, lambda: data.load_task("e2e", "train", limit=0), ValueError, r"limit must be positive, got 0"),
    "missing data file": ((lambda root: (root / "data" / "e2e" / "devset.csv").unlink()),
                          lambda: data.load_task("e2e", "validation"), data.DataNotFoundError, r"e2e/devset\.csv"),
    "CSV row with an extra field": (_rewrite("e2e/trainset.csv", 'mr,ref\n"name[A]",Fine.\n"name[B]",too,many\n'),
                                    lambda: data.load_task("e2e", "train"), ValueError,
                                    r"trainset\.csv: malformed CSV: data row 2 .*3 fields instead of 2"),
    "CSV with a wrong header": (_rewrite("e2e/devset.csv", 'meaning,text\n"name[A]",Fine.\n'),
                                lambda: data.load_task("e2e", "validation"), ValueError,
                                r"devset\.csv: malformed CSV: header \['meaning', 'text'\]"),
    "CSV that is not UTF-8": (_write_bytes("e2e/devset.csv", 'mr,ref\n"name[Café]",Nice café.\n'.encode("latin-1")),
                              lambda: data.load_task("e2e", "validation"), ValueError,
                              r"devset\.csv: malformed CSV: not UTF-8 text"),
    "CSV without data rows": (_rewrite("e2e/trainset.csv", "mr,ref\n"), lambda: data.load_task("e2e", "train"),
                              ValueError, r"trainset\.csv: malformed CSV: no data rows"),
    "CSV with an empty field": (_rewrite("e2e/devset.csv", 'mr,ref\n"name[A]",Fine.\n"name[B]",\n'),
                                lambda: data.load_task("e2e", "validation"), ValueError,
                                r"devset\.csv: data row 2: field 'ref' is empty"),
    "XML that is not well formed": (_rewrite("dart/dart-v1.1.1-full-test.xml", "<benchmark><entries><entry>\n"),
                                    lambda: data.load_task("dart", "test"), ValueError,
                                    r"full-test\.xml: malformed XML"),
    "XML triple without three parts": (
        _rewrite("dart/dart-v1.1.1-full-test.xml", "<benchmark><entries>" + DART_ENTRY.format(n=1, triple="a | b | c")
                 + DART_ENTRY.format(n=2, triple="a | b") + "</entries></benchmark>"),
        lambda: data.load_task("dart", "test"), ValueError, r"full-test\.xml: entry 2 \(eid='Id2'\): triple 'a \| b'"),
    "XML without entries": (_rewrite("dart/dart-v1.1.1-full-test.xml", "<benchmark><entries/></benchmark>"),
                            lambda: data.load_task("dart", "test"), ValueError, r"full-test\.xml: no <entry> elements"),
    "JSONL line cut short": (
        _rewrite("summarization/bbc_news_summary/valid.jsonl",
                 json.dumps({"category": "c", "file": "f", "article": "A.", "summary": "A."}) + '\n{"category": "c",\n'),
        lambda: data.load_task("summarization", "validation"), ValueError, r"valid\.jsonl: malformed JSON Lines file: line 2"),
    "JSONL row without a summary": (
        _rewrite("summarization/bbc_news_summary/test.jsonl", json.dumps({"category": "c", "file": "f", "article": "A."}) + "\n"),
        lambda: data.load_task("summarization", "test"), ValueError, r"test\.jsonl: missing field\(s\) \['summary'\]"),
    "empty JSONL file": (_rewrite("summarization/bbc_news_summary/train.jsonl", ""),
                         lambda: data.load_task("summarization", "train"), ValueError, r"train\.jsonl: .*file is empty"),
    "truncated .xz corpus file": (_truncate("pretrain/gutenberg/train.jsonl.xz", 100),
                                  lambda: data.load_pretraining("train", limit_docs=4), ValueError,
                                  r"gutenberg/train\.jsonl\.xz: unreadable .*EOFError"),
    "empty corpus": ((lambda root: H.write_jsonl_xz(root / "data" / "pretrain" / "wikipedia_en" / "train.jsonl.xz", [])),
                     lambda: data.load_pretraining("train", limit_docs=4), ValueError,
                     r"wikipedia_en/train\.jsonl\.xz: empty corpus file"),
    "corpus document without text": (
        (lambda root: H.write_jsonl_xz(root / "data" / "pretrain" / "blog_authorship" / "valid.jsonl.xz",
                                       [{"text": "A blog post."}, {"text": "  "}])),
        lambda: data.load_pretraining("validation"), ValueError, r"blog_authorship/valid\.jsonl\.xz: line 2: field 'text'"),
    "vocabulary size 0": (_nothing, lambda: data.get_tokenizer(0, 10_000, limit_docs=2, verbose=False),
                          ValueError, r"vocab_size=0 is too small"),
    "vocabulary size 100": (_nothing, lambda: data.get_tokenizer(100, 10_000, limit_docs=2, verbose=False),
                            ValueError, r"vocab_size=100 is too small"),
    "vocabulary size above uint16": (_nothing, lambda: data.get_tokenizer(70_000, 10_000, limit_docs=2, verbose=False),
                                     ValueError, r"vocab_size=70000 does not fit"),
    "tokenizer training characters 0": (_nothing, lambda: data.get_tokenizer(512, 0), ValueError,
                                        r"train_chars must be positive, got 0"),
    "token budget 0": (_nothing, lambda: R.planned_tokens(get_config("smoke-small", 512),
                                                          dataclasses.replace(SMOKE.pretrain, max_tokens=0)),
                       ValueError, r"token budget of 0 tokens .*max_tokens=0"),
    "zero optimizer steps": (_nothing, lambda: OptimConfig(lr=1e-3, total_steps=0, warmup_steps=1), ValueError,
                             r"total_steps must be positive, got 0"),
    "learning rate 0": (_nothing, lambda: OptimConfig(lr=0.0, total_steps=10, warmup_steps=1), ValueError,
                        r"learning rate must be positive, got 0\.0"),
    "heads do not divide the width": (_nothing, lambda: GPTConfig(1, 3, 32, 128, 64, 512), ValueError,
                                      r"n_embd=32 is not divisible by n_head=3"),
    "model vocabulary 0": (_nothing, lambda: GPTConfig(1, 2, 32, 128, 64, 0), ValueError,
                           r"GPTConfig\.vocab_size must be a positive int, got 0"),
    "unknown model preset": (_nothing, lambda: get_config("gpt5"), ValueError, r"unknown model preset 'gpt5'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_a_clear_error_naming_the_culprit(env, case):
    setup, call, error, pattern = CASES[case]
    setup(env)
    with pytest.raises(error) as info:
        call()
    assert re.search(pattern, str(info.value), re.S), f"{case}: unclear message: {info.value}"


def test_a_missing_data_folder_is_named(env, monkeypatch):
    missing = env / "no-such-data"
    monkeypatch.setenv("SPDF_DATA", str(missing))
    with pytest.raises(data.DataNotFoundError, match=re.escape(str(missing))):
        data.load_task("e2e", "train")


def test_a_file_that_is_not_a_checkpoint_is_refused_with_its_path(env):
    path = env / "model.pt"
    path.write_text('{"weights": []}')
    store.atomic_write_text(Path(str(path) + ".sha256"), store.sha256_file(path))  # even with a valid checksum
    with pytest.raises(store.CorruptCacheError, match=re.escape(str(path))):
        checkpoint.load_model(path)


# ------------------------------------------------------------------------ through the pipeline

def test_an_empty_corpus_stops_the_pipeline_before_anything_is_written(env):
    for corpus in data.PRETRAIN_CORPORA:
        H.write_jsonl_xz(env / "data" / "pretrain" / corpus / "train.jsonl.xz", [])
    shutil.rmtree(env / "cache" / "tokenizer")  # the tokenizer would be trained on the empty corpus
    with pytest.raises(ValueError, match=r"train\.jsonl\.xz: empty corpus file"):
        scheduler.run(SMOKE, env / "tables", stages=("pretrain",), progress=False)
    assert files_under(env / "tables") == []


def test_a_zero_token_budget_stops_the_pipeline_before_anything_is_written(env):
    zero = dataclasses.replace(SMOKE, pretrain=dataclasses.replace(SMOKE.pretrain, max_tokens=0))
    with pytest.raises(ValueError, match=r"token budget of 0 tokens"):
        scheduler.run(zero, env / "tables", stages=("pretrain",), progress=False)
    assert files_under(env / "tables") == [] and not (env / "cache" / "pretrain").exists()


def test_an_unknown_stage_is_named(env):
    with pytest.raises(ValueError, match=r"unknown stages \['bogus'\]"):
        scheduler.run(SMOKE, env / "tables", stages=("pretrain", "bogus"), progress=False)
    assert files_under(env / "tables") == []


def test_a_malformed_task_file_stops_fine_tuning_before_anything_is_written(env):
    base_run = H.pretrain_run(sparsity=0.0)
    checkpoint.save_model(results.run_dir(base_run) / "model.pt", GPT(base_run.model))  # a stand-in pre-trained model
    (env / "data" / "e2e" / "trainset.csv").write_text('mr,ref\n"name[A]",Fine.\n"name[B]",too,many\n')
    run = R.finetune_run(SMOKE, base_run, "e2e", 1e-3, 0)
    with pytest.raises(ValueError, match=r"trainset\.csv: malformed CSV: data row 2"):
        H.execute([run], env / "tables")
    assert files_under(env / "tables") == [] and not results.run_dir(run).exists()


# ------------------------------------------------------------------------ on the command line

def _chapter(notebooks: Path) -> None:
    """A chapter that would write to tables/ if it ever ran."""
    notebooks.mkdir(parents=True, exist_ok=True)
    (notebooks / "00_writes.py").write_text(textwrap.dedent('''\
        # %% [markdown]
        # # 00 Writes

        # %% tags=["parameters", "remove-cell"]
        profile = "cpu"
        tables_dir = "../tables"

        # %%
        from pathlib import Path
        (Path(tables_dir) / profile).mkdir(parents=True, exist_ok=True)
        (Path(tables_dir) / profile / "ran.txt").write_text("ran")
        '''))


def _drop_dac_override() -> None:
    """In the child: give up root's permission to write into read-only folders (CAP_DAC_OVERRIDE)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _cli(env_dir: Path, module: str, *args: str, spdf_data: str | None = None,
         extra_env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "SPDF_DATA": spdf_data or str(env_dir / "data"), "SPDF_CACHE": str(env_dir / "cache"),
               **(extra_env or {})}
    environ.pop(store.LOCK_HELD_ENV, None)
    if "FORCE" not in (extra_env or {}):
        environ.pop("FORCE", None)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=env_dir,
                          env=environ, timeout=120, preexec_fn=_drop_dac_override)


def _book(env_dir: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m spdf_lib.book run`` on one chapter that writes ``tables/<profile>/ran.txt`` if it runs."""
    _chapter(env_dir / "notebooks")
    return _cli(env_dir, "spdf_lib.book", "run", "--notebooks-dir", str(env_dir / "notebooks"),
                "--book-dir", str(env_dir / "book"), "--tables-dir", str(env_dir / "tables"),
                "--work-dir", str(env_dir / "work"), *args, **kwargs)


def _read_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    probe = subprocess.run([sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"], capture_output=True,
                           preexec_fn=_drop_dac_override)
    if probe.returncode == 0:
        folder.chmod(0o755)
        pytest.skip("cannot make a folder read-only for this user here")
    return folder


def _break_status(env_dir: Path) -> None:
    (env_dir / "book").mkdir()
    (env_dir / "book" / "_status.json").write_text('{"chapters": {"00": ')


def _replace_with_file(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("not a folder")


def _no_corpus(env_dir: Path) -> None:
    shutil.rmtree(env_dir / "data" / "pretrain" / "gutenberg")


# name: (break something, runner arguments, exit code, pattern of the message, environment)
CLI_CASES = {
    "unknown profile": (lambda d: None, ("--profile", "huge"), 2, r"unknown profile 'huge'", {}),
    "unknown chapter": (lambda d: None, ("--profile", "smoke", "--chapter", "42"), 2,
                        r"unknown chapter '42'.*00 \(00_writes\)", {}),
    "unknown chapter to start from": (lambda d: None, ("--profile", "smoke", "--from", "42"), 2,
                                      r"unknown chapter '42'.*make book FROM=00", {}),
    "one chapter and a start both": (lambda d: None, ("--profile", "smoke", "--chapter", "00", "--from", "00"), 2,
                                     r"CHAPTER=00 and FROM=00 were both given", {}),
    "FORCE=yes": (lambda d: None, ("--profile", "smoke"), 2,
                  r"FORCE='yes' is not understood\. FORCE accepts only 1 .* or 0 / empty / unset", {"FORCE": "yes"}),
    "FORCE=no": (lambda d: None, ("--profile", "smoke"), 2, r"FORCE='no' is not understood", {"FORCE": "no"}),
    "missing data folder": (lambda d: None, ("--profile", "smoke"), 2, r"data directory is missing.*no-such-data", {}),
    "data folder without a corpus": (_no_corpus, ("--profile", "smoke"), 2,
                                     r"the data directory .*data has no pretrain/gutenberg folder", {}),
    "read-only tables folder": (lambda d: _read_only(d / "tables"), ("--profile", "smoke"), 2,
                                r"the tables dir .*tables is not writable", {}),
    "read-only book folder": (lambda d: _read_only(d / "book"), ("--profile", "smoke"), 2,
                              r"the book dir .*book is not writable", {}),
    "read-only cache folder": (lambda d: _read_only(d / "cache"), ("--profile", "smoke"), 2,
                               r"the cache folder .*cache is not writable .*SPDF_CACHE", {}),
    "read-only work folder": (lambda d: _read_only(d / "work"), ("--profile", "smoke"), 2,
                              r"the work dir .*work is not writable", {}),
    "tables folder is a file": (lambda d: (d / "tables").write_text("not a folder"), ("--profile", "smoke"), 2,
                                r"the tables dir .*tables cannot be created: .*is a file", {}),
    "cache folder is a file": (lambda d: _replace_with_file(d / "cache"), ("--profile", "smoke"), 2,
                               r"the cache folder .*cache cannot be created: .*cache is a file", {}),
    "damaged status file": (_break_status, ("--profile", "smoke"), 2, r"_status\.json is not valid JSON", {}),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_book_runner_rejects_bad_input_and_writes_nothing(env, case):
    setup, args, code, pattern, extra_env = CLI_CASES[case]
    setup(env)
    before = {p: p.read_bytes() for p in map(Path, files_under(env / "book", env / "tables"))}
    spdf_data = str(env / "no-such-data") if case == "missing data folder" else None
    result = _book(env, *args, spdf_data=spdf_data, extra_env=extra_env)
    assert result.returncode == code, result.stdout + result.stderr
    assert re.search(pattern, result.stderr, re.S), result.stderr
    assert "Traceback" not in result.stderr
    after = {p: p.read_bytes() for p in map(Path, files_under(env / "book", env / "tables"))}
    assert after == before  # nothing written to book/ or tables/
    assert not (env / "work").is_dir() or files_under(env / "work") == []


@pytest.mark.parametrize("fault", ["too little free space", "no space left when writing"])
def test_a_full_disk_is_reported_before_the_first_chapter(env, monkeypatch, fault):
    import errno

    if fault == "too little free space":
        usage = shutil.disk_usage(env)
        monkeypatch.setattr(book.checks.shutil, "disk_usage", lambda path: usage._replace(free=50_000_000))
        pattern = r"the disk that holds the book dir .* is full: 50 MB free, and a build needs at least 200 MB"
    else:
        def no_space(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(book.checks.os, "fsync", no_space)
        pattern = r"the disk that holds the book dir .* is full \(No space left on device"
    _chapter(env / "notebooks")
    with pytest.raises(book.BookError, match=pattern):
        book.run("smoke", book_dir=env / "book", tables_dir=env / "tables", notebooks_dir=env / "notebooks",
                 work_dir=env / "work")
    assert files_under(env / "book", env / "tables", env / "work") == []


@pytest.mark.parametrize("args,code,pattern", [
    (("--profile", "huge"), 2, r"unknown profile 'huge'"),
    (("--profile", "smoke", "--stages", "pretrain,bogus"), 2, r"unknown stages \['bogus'\]"),
    (("--profile", "smoke", "--side-workers", "3"), 2, r"side_workers must be None or between 0 and workers \(1\)"),
    (("--profile", "smoke", "--workers", "0"), 2, r"workers and pretrain_workers must be at least 1"),
])
def test_the_experiment_runner_rejects_bad_input_and_writes_nothing(env, args, code, pattern):
    result = _cli(env, "spdf_lib.experiments", *args, "--tables-dir", str(env / "tables"))
    assert result.returncode == code and re.search(pattern, result.stderr), result.stderr
    assert files_under(env / "tables") == []
