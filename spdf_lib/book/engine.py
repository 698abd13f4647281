"""Executing one chapter with papermill (:func:`execute_chapter`).

The chapter, a jupytext percent file, is executed in the scratch folder through a papermill engine whose
notebook client records the kernel process it starts and the cell it is running. The kernel runs in a
worker thread while the main thread waits, so that Ctrl-C or SIGTERM (``_Stop``) can end the kernel and
everything it started, keep the partly executed notebook and name the running cell. A chapter whose
every cell succeeded is finished (:mod:`~spdf_lib.book.notebooks`) and moved into the book folder
atomically; a failing one is kept in ``failed/`` and reported with the paragraph of
:mod:`~spdf_lib.book.failures` (a kernel that died, with its signal and a memory kill the system
recorded)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from .chapters import Chapter
from .checks import has_parameters_cell
from .errors import BookError, ChapterFailed, _clean
from .failures import dead_kernel_paragraph, failure_paragraph
from .interrupts import _Stop
from .ledger import LEDGER_ENV, read_ledger
from .notebooks import finalize_notebook

__all__ = ["KERNELSPEC", "execute_chapter"]


KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _source_cell_number(nb_source, executed_index: int) -> int:
    """1-based cell number in the ``.py`` file for a cell index of the executed notebook.

    papermill inserts its parameter cell right after the cell tagged ``parameters``.
    """
    params_at = next((i for i, c in enumerate(nb_source.cells)
                      if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    return executed_index + 1 - (1 if executed_index > params_at else 0)


def _oom_kills() -> int | None:
    """The out-of-memory kills recorded for this process's cgroup (Linux cgroup v2), or None."""
    try:
        cgroup = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[-1]
        events = Path("/sys/fs/cgroup") / cgroup.lstrip("/") / "memory.events"
        for line in events.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


_ENGINE_NAME = "spdf_tracked"


def _register_engine():
    """A papermill engine like its default nbclient one, except that its notebook client records the
    kernel process it starts (so that the runner can end it on Ctrl-C and read how it died) and
    starts the kernel in the chapter's folder without changing this process's working folder."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class TrackedClient(PapermillNotebookClient):
        track: dict = {}

        def start_new_kernel(self, **kwargs):
            super().start_new_kernel(**kwargs)
            provisioner = getattr(self.km, "provisioner", None)
            self.track["process"] = getattr(provisioner, "process", None)

        def execute_cell(self, cell, cell_index, *args, **kwargs):
            self.track["cell"] = cell_index  # the last cell started: the one running when the kernel died
            return super().execute_cell(cell, cell_index, *args, **kwargs)

    class TrackedEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, track=None,
                                     kernel_cwd=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log=logger, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file,
                                 # a cell's last outputs may arrive late on a loaded machine: wait for
                                 # them, and fail the chapter rather than drop one silently
                                 iopub_timeout=60, raise_on_iopub_timeout=True,
                                 resources={"metadata": {"path": kernel_cwd}} if kernel_cwd else {})
            client = TrackedClient(nb_man, **final)
            client.track = track if track is not None else {}
            return client.execute()

    papermill_engines.register(_ENGINE_NAME, TrackedEngine)


def _kernel_process(track: dict):
    """The kernel's Popen object once the notebook client has started it, else None."""
    return track.get("process")


def _stop_kernel(process, grace_s: float = 3.0) -> None:
    """End the kernel this runner started and every process it started (its own session): SIGTERM,
    then SIGKILL after ``grace_s``."""
    if process is None or process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)  # the kernel leads its own session (jupyter_client starts it so)
        except ProcessLookupError:
            return
        except PermissionError:
            process.send_signal(sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.05)


def _keep(running: Path, folder: Path) -> Path | None:
    if not running.exists():
        return None
    target = folder / running.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(running, target)
    return target


def execute_chapter(chapter: Chapter, *, profile: str, book_dir: Path, tables_dir: Path, work_dir: Path,
                    progress_bar: bool = False, log_output: bool = False, later: Sequence[str] | None = None,
                    ledger: Path | None = None) -> float:
    """Execute one chapter into ``book_dir/<stem>.ipynb``; return its wall time in seconds.

    The notebook is executed into ``work_dir`` and moved into ``book_dir`` atomically once every cell
    has succeeded. On failure the executed notebook goes to ``work_dir/failed/`` and ChapterFailed is
    raised with the error paragraph; ``book_dir`` is not touched. ``progress_bar`` streams the chapter's
    stderr (its tqdm bars) to the console; ``log_output`` logs every cell output. ``ledger`` is the
    file the chapter's scheduler calls append their runs to (``SPDF_RUN_LEDGER``).

    The kernel runs while this thread waits for it, so that Ctrl-C or SIGTERM (turned into ``_Stop``
    by :func:`run`) can end the kernel and everything it started, keep the partly executed notebook in
    ``work_dir/interrupted/`` and name the cell that was running.
    """
    import jupytext
    import nbformat
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    from ..store import atomic_write_text

    nb = jupytext.read(chapter.path)
    if not has_parameters_cell(nb):
        raise BookError(f"chapter {chapter.path.name} has no cell tagged \"parameters\". Add, after the title, "
                        f"a cell starting with  # %% tags=[\"parameters\", \"remove-cell\"]  that sets "
                        f"profile and tables_dir.")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    _register_engine()

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    running = work_dir / f"{chapter.stem}.ipynb"
    track: dict = {}
    outcome: dict = {}

    def execute() -> None:
        try:
            pm.execute_notebook(nb, str(running), parameters={"profile": profile, "tables_dir": str(tables_dir)},
                                engine_name=_ENGINE_NAME, kernel_name="python3", language="python",
                                kernel_cwd=str(chapter.path.parent), track=track,
                                # Console feedback: the chapter's own stderr, i.e. its tqdm bars of long
                                # steps, is streamed live; papermill's per-cell bar would overwrite them.
                                progress_bar=False, stderr_file=sys.stderr if progress_bar else None,
                                log_output=log_output,
                                # Silences the kernel's own start-up notice about its local TCP transport;
                                # errors raised by chapter code still reach the notebook and this runner.
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error

    previous_ledger = os.environ.get(LEDGER_ENV)
    if ledger is not None:
        Path(ledger).parent.mkdir(parents=True, exist_ok=True)
        Path(ledger).unlink(missing_ok=True)
        os.environ[LEDGER_ENV] = str(ledger)
    import logging

    # The runner reports a failure itself; papermill's logger would add its own line about it.
    papermill_log = logging.getLogger("papermill")
    previous_level = papermill_log.level
    papermill_log.setLevel(logging.INFO if log_output else logging.CRITICAL)
    oom_before = _oom_kills()
    start = time.perf_counter()
    worker = threading.Thread(target=execute, name=f"chapter {chapter.stem}", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.25)
    except _Stop as stop:
        # End the kernel, and again if it was still starting, until the client thread gives up.
        deadline = time.monotonic() + 20
        while True:
            _stop_kernel(_kernel_process(track))
            worker.join(0.5)
            if not worker.is_alive() or time.monotonic() > deadline:
                break
        _stop_kernel(_kernel_process(track))
        index = track.get("cell")
        stop.cell = _source_cell_number(nb, index) if index is not None else None
        stop.partial = _keep(running, work_dir / "interrupted")
        raise
    finally:
        papermill_log.setLevel(previous_level)
        if ledger is not None:
            if previous_ledger is None:
                os.environ.pop(LEDGER_ENV, None)
            else:
                os.environ[LEDGER_ENV] = previous_ledger
    process = _kernel_process(track)
    error = outcome.get("error")
    if error is not None:
        index = track.get("cell")
        failed_copy = _keep(running, work_dir / "failed")
        if isinstance(error, pm.PapermillExecutionError):
            message = failure_paragraph(
                chapter, profile, cell_number=_source_cell_number(nb, error.cell_index),
                cell_source=error.source or "", ename=error.ename, evalue=_clean(str(error.evalue)),
                traceback=error.traceback or [], failed_copy=failed_copy, book_dir=book_dir, later=later)
        elif isinstance(error, DeadKernelError) or (process is not None and process.poll() is not None):
            for _ in range(40):  # the exit status arrives a moment after the client noticed the death
                if process is None or process.poll() is not None:
                    break
                time.sleep(0.05)
            oom_after = _oom_kills()
            number = _source_cell_number(nb, index) if index is not None else None
            message = dead_kernel_paragraph(
                chapter, profile, returncode=process.poll() if process is not None else None,
                oom=oom_before is not None and oom_after is not None and oom_after > oom_before,
                cell_number=number,
                cell_source=nb.cells[number - 1].source if number is not None and 0 < number <= len(nb.cells) else "",
                failed_copy=failed_copy, book_dir=book_dir, later=later)
        else:
            message = failure_paragraph(
                chapter, profile, cell_number=None, cell_source="", ename=type(error).__name__,
                evalue=_clean(str(error)), traceback=[], failed_copy=failed_copy, book_dir=book_dir, later=later)
        raise ChapterFailed(message) from error
    wall = time.perf_counter() - start
    executed = finalize_notebook(nbformat.read(running, as_version=4), chapter, book_dir, tables_dir=tables_dir,
                                 profile=profile, ledger=read_ledger(ledger), work_dir=work_dir)
    atomic_write_text(Path(book_dir) / f"{chapter.stem}.ipynb", nbformat.writes(executed) + "\n")
    running.unlink()
    for old in ("failed", "interrupted"):  # an older failure or interruption is now resolved
        (work_dir / old / running.name).unlink(missing_ok=True)
    return wall
