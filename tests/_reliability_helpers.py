"""Shared pieces of the reliability tests (tests/test_reliability.py, tests/test_bad_input.py).

* :func:`make_data_root` writes a tiny synthetic data folder laid out like the real one (pre-training
  corpora, E2E CSVs, BBC-style JSON Lines), so that the whole pipeline runs in seconds.
* :func:`pretrain_run`, :func:`finetune_runs` and :func:`long_finetune_run` plan the runs the tests use,
  the same in the test process and in the killed processes.
* :func:`execute` resolves a list of runs the way the scheduler does (committed, else cached, else
  computed and exported), so that a test can run exactly the runs it names.
* :func:`write_chapter` writes a tiny chapter for the book runner's tests.
* Run as a script, this module is a *zygote*: it imports torch and spdf_lib once, then forks one fresh
  process per job. A job trains one run with ``spdf_lib.runners`` under a fault plan that SIGKILLs
  the process at a chosen point (before a training step, just before or after a file is renamed into
  place, or after a seeded random delay). Forking skips the seconds of imports and kernel warm-up
  that a new interpreter would need for every kill.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import lzma
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HELPER = Path(__file__).resolve()
PROFILE = "smoke"

WORDS = ("the river city coffee shop near a quiet park serves french food with cheap prices and "
         "friendly staff where families often meet after long walks along old stone bridges under "
         "grey skies while children play games and parents read books about history science music "
         "travel gardens kitchens markets trains ships castles mountains forests lakes").split()
NAMES = ("The Eagle", "Blue Spice", "The Mill", "Green Man", "The Vaults", "Aromi", "Zizzi", "Fitzbillies")
FOODS = ("French", "Italian", "English", "Chinese", "Indian", "Japanese")
AREAS = ("riverside", "city centre")
TYPES = ("pub", "coffee shop", "restaurant")


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _document(rng: random.Random, paragraphs: int) -> str:
    return "\n".join(" ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(5)) for _ in range(paragraphs))


def write_jsonl_xz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _e2e_pair(rng: random.Random) -> tuple[str, str]:
    name, food, area, kind = rng.choice(NAMES), rng.choice(FOODS), rng.choice(AREAS), rng.choice(TYPES)
    mr = f"name[{name}], eatType[{kind}], food[{food}], area[{area}]"
    ref = rng.choice([f"{name} is a {kind} serving {food} food in the {area}.",
                      f"In the {area} there is a {food} {kind} called {name}.",
                      f"{name} serves {food} food; it is a {kind} in the {area}."])
    return mr, ref


def make_data_root(root: Path, *, e2e_train: int = 200, seed: int = 0) -> Path:
    """Write a small synthetic data folder with the real layout (enough for the e2e and summarization
    tasks and the pre-training mixture); returns ``root``."""
    rng = random.Random(seed)
    root = Path(root)
    for corpus in ("wikipedia_en", "gutenberg", "blog_authorship"):
        for split, n_docs in (("train", 6), ("valid", 3)):
            docs = []
            for i in range(n_docs):
                text = _document(rng, 4)
                if corpus == "gutenberg":
                    text = (f"The Project Gutenberg EBook of Book {i}\nlicence\n"
                            f"*** START OF THIS PROJECT GUTENBERG EBOOK BOOK {i} ***\n{text}\n"
                            f"*** END OF THIS PROJECT GUTENBERG EBOOK BOOK {i} ***\nlicence\n")
                docs.append({"text": text})
            write_jsonl_xz(root / "pretrain" / corpus / f"{split}.jsonl.xz", docs)
    e2e = root / "e2e"
    write_csv(e2e / "trainset.csv", ["mr", "ref"], [list(_e2e_pair(rng)) for _ in range(e2e_train)])
    write_csv(e2e / "devset.csv", ["mr", "ref"], [list(_e2e_pair(rng)) for _ in range(24)])
    test_rows, inputs = [], []
    for _ in range(6):
        mr, ref = _e2e_pair(rng)
        inputs.append([mr])
        test_rows += [[mr, ref], [mr, _e2e_pair(rng)[1]]]
    write_csv(e2e / "testset_w_refs.csv", ["mr", "ref"], test_rows)
    write_csv(e2e / "testset.csv", ["MR"], inputs)
    bbc = root / "summarization" / "bbc_news_summary"
    bbc.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 24), ("valid", 8), ("test", 6)):
        lines = []
        for i in range(n):
            first = _sentence(rng, 10)
            article = f"Headline {i}\n\n{first} {_sentence(rng, 12)} {_sentence(rng, 9)}"
            lines.append(json.dumps({"category": "tech", "file": f"{i:03d}.txt", "article": article,
                                     "summary": first}))
        (bbc / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------ runs

def pretrain_run(size: str = "smoke-small", sparsity: float = 0.75):
    """One planned smoke pre-training run (plans, and if needed trains, the smoke tokenizer)."""
    from spdf_lib import runs
    from spdf_lib.profiles import get_profile

    planned = runs.pretraining_runs(get_profile(PROFILE))
    return next(r for r in planned if r.size == size and r.sparsity == sparsity)


def finetune_runs(bases) -> list:
    """The fine-tuning runs of the small pipeline: e2e on every base, summarization on the first."""
    from spdf_lib import runs
    from spdf_lib.profiles import get_profile

    profile = get_profile(PROFILE)
    planned = [runs.finetune_run(profile, base, "e2e", 1e-3, 0) for base in bases]
    return planned + [runs.finetune_run(profile, bases[0], "summarization", 1e-3, 0)]


def long_finetune_run(base):
    """A fine-tuning run long enough to write a checkpoint (3 epochs over 200 pairs: 75 steps,
    a checkpoint every 50)."""
    from spdf_lib import runs
    from spdf_lib.profiles import get_profile

    run = runs.finetune_run(get_profile(PROFILE), base, "e2e", 1e-3, 0)
    return dataclasses.replace(run, epochs=3, max_train_examples=None)


def execute(planned, tables_dir: Path, device=None) -> dict[str, dict]:
    """Results of ``planned`` by run id, resolved like the scheduler resolves each run: a committed
    result (verified against the manifest), else a cached one (exported), else computed on the CPU by
    ``runners.RUNNERS`` and exported."""
    import torch

    from spdf_lib import results, runners

    device = device or torch.device("cpu")
    out = {}
    for run in planned:
        found, source = results.find(run, tables_dir)
        if found is None:
            found = runners.RUNNERS[run.stage](run, device, progress=False)
            results.export(run, found, tables_dir)
            source = "computed"
        results.note_source(run, source)
        out[run.run_id] = found
    return out


CHAPTER = '''\
# %% [markdown]
# # {number} {title}

# %% tags=["parameters", "remove-cell"]
profile = "cpu"
tables_dir = "../tables"

# %%
{body}
'''


def write_chapter(notebooks: Path, stem: str, body: str = "print(profile)", title: str = "A chapter") -> Path:
    """A tiny percent-format chapter ``notebooks/<stem>.py`` whose third cell is ``body``."""
    import textwrap

    notebooks.mkdir(parents=True, exist_ok=True)
    path = notebooks / f"{stem}.py"
    path.write_text(CHAPTER.format(number=stem[:2], title=title, body=textwrap.dedent(body)), encoding="utf-8")
    return path


def child_run(stage: str):
    if stage == "pretrain":
        return pretrain_run()
    if stage == "finetune":
        return long_finetune_run(pretrain_run())
    raise ValueError(f"unknown stage {stage!r}")


# ---------------------------------------------------------------------------- the child process

def _die(what: str) -> None:
    """SIGKILL this process: no ``finally``, no ``atexit``, no buffered write survives."""
    print(f"\nKILLED {what}", flush=True)  # on a line of its own, even in the middle of another print
    os.kill(os.getpid(), signal.SIGKILL)


def _install_faults(plan: str) -> None:
    """The fault plan of one child:

    * ``step:N``: SIGKILL just before optimizer step N;
    * ``replace:NAME:K:before|after``: SIGKILL just before or just after the K-th rename onto a file
      called NAME (before: the new content is complete in its temporary file; after: it is in place but
      a file written next, e.g. the checksum sidecar, is not);
    * ``random:SEED``: SIGKILL at a delay drawn from ``random.Random(SEED)`` after the first training
      step began, each step slowed down by 20 ms (the loss is unchanged), so that the kill lands at an
      arbitrary point of the training loop (a step, an evaluation or a checkpoint write).
    """
    from spdf_lib import training

    original_lr_at = training.lr_at
    kind, _, arg = plan.partition(":")
    kill_step = int(arg) if kind == "step" else -1
    slow = 0.02 if kind == "random" else 0.0

    timer = None
    if kind == "random":
        delay = random.Random(int(arg)).uniform(0.05, 0.6)
        timer = threading.Timer(delay, _die, args=(f"after {delay:.3f} s",))

    last = {"step": None}

    def lr_at(step, cfg):  # called once per parameter group at the start of every step
        if step != last["step"]:
            last["step"] = step
            print(f"STEP {step}", flush=True)
            if timer is not None and not timer.is_alive() and not timer.finished.is_set():
                timer.start()
            if step == kill_step:
                _die(f"before step {step}")
            if slow:
                time.sleep(slow)
        return original_lr_at(step, cfg)

    training.lr_at = lr_at
    if kind == "replace":
        name, k, when = arg.split(":")
        original_replace = os.replace
        seen = {"n": 0}

        def replace(src, dst, *args, **kwargs):
            hit = False
            if Path(dst).name == name:
                seen["n"] += 1
                hit = seen["n"] == int(k)
            if hit and when == "before":
                _die(f"before replacing {name}")
            original_replace(src, dst, *args, **kwargs)
            if hit and when == "after":
                _die(f"after replacing {name}")

        os.replace = replace


def _job(stage: str, fault: str) -> None:
    import torch

    from spdf_lib import runners

    run = child_run(stage)
    print("READY", flush=True)
    _install_faults(fault)
    runner = runners.do_pretrain if stage == "pretrain" else runners.do_finetune
    runner(run, torch.device("cpu"), progress=False)
    print("DONE", flush=True)


def _warm_up() -> None:
    """A few training steps, so that every forked job starts with torch's kernels initialised (the
    first steps of a fresh process are many times slower). One thread: no worker threads exist
    when the zygote forks."""
    import tempfile

    import torch

    from spdf_lib import training
    from spdf_lib.model import GPT, GPTConfig
    from spdf_lib.sparsity import SparsitySpec, sparsify

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, d_ff=128, block_size=64, vocab_size=64))
    sparsify(model, SparsitySpec(level=0.5, seed=0))
    x = torch.randint(0, 64, (8, 33))
    batch = (x[:, :-1].contiguous(), x[:, 1:].contiguous())
    with tempfile.TemporaryDirectory() as tmp:
        training.train(model, batch_at=lambda step: batch, optim=training.OptimConfig(1e-3, 4, 1),
                       device=torch.device("cpu"), checkpoint_path=Path(tmp) / "c.pt", checkpoint_every=2,
                       evaluate=lambda: training.mean_loss(model, [batch], torch.device("cpu")),
                       eval_every=2, progress=False)


def zygote_main() -> None:
    """Import torch and spdf_lib once, then fork one fresh process per job read from stdin (a JSON
    line ``{"stage", "fault", "env"}``) and report ``EXIT <code>`` when it ends (-9: SIGKILL)."""
    import traceback

    import datasets  # noqa: F401 - preloaded: the fine-tuning jobs read the task files with it
    import torch

    torch.set_num_threads(1)
    import spdf_lib.checkpoint  # noqa: F401
    import spdf_lib.data  # noqa: F401
    import spdf_lib.runners  # noqa: F401

    _warm_up()
    print("ZYGOTE READY", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.environ.update(job["env"])
                _job(job["stage"], job["fault"])
            except BaseException:  # noqa: BLE001 - reported to the parent through the exit code
                traceback.print_exc(file=sys.stdout)
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {os.waitstatus_to_exitcode(status)}", flush=True)


# ------------------------------------------------------------------------- driving a child

@dataclass
class Outcome:
    exit_code: int
    lines: list[str]

    @property
    def killed(self) -> bool:
        return self.exit_code == -signal.SIGKILL

    @property
    def steps(self) -> list[int]:
        return [int(m.group(1)) for ln in self.lines if (m := re.match(r"STEP (\d+)", ln))]

    def says(self, text: str) -> bool:
        return any(text in ln for ln in self.lines)


class Zygote:
    """The parent's handle on the zygote process (one per test module)."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen([sys.executable, str(HELPER), "zygote"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.proc.stdout.readline()
        if not first.startswith("ZYGOTE READY"):
            raise RuntimeError(f"the zygote did not start: {first}{self.proc.stdout.read()}")

    def run(self, stage: str, env: dict, fault: str = "", timeout: float = 120.0) -> Outcome:
        """Run one job in a fresh forked process; returns its output and exit code."""
        guard = threading.Timer(timeout, self.proc.kill)
        guard.start()
        try:
            self.proc.stdin.write(json.dumps({"stage": stage, "fault": fault, "env": env}) + "\n")
            self.proc.stdin.flush()
            lines = []
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                if line.startswith("EXIT "):
                    return Outcome(int(line.split()[1]), lines)
                lines.append(line)
        finally:
            guard.cancel()
        raise RuntimeError("the zygote died:\n" + "\n".join(lines[-30:]))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    zygote_main()
