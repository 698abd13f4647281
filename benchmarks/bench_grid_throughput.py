"""The grid as scheduled against one run alone: does sharing the GPU lose throughput?

The published gpu run shares one GPU among up to ``profile.workers`` processes (pre-trainings and
fine-tunings side by side, chosen by ``spdf_lib.scheduler``). This benchmark reads what that run did
from its committed results and log, and sets it against what one run does alone on an idle GPU of
the same kind (measured by ``bench_pretrain_throughput.py --loops dense --json`` and
``bench_finetune_concurrency.py --processes 1``, saved beside the run):

* pre-training: every pre-training token of the grid over the wall time during which any
  pre-training was still running (the gaps between commands left out), against gpu-large alone;
* fine-tuning: every fine-tuning step of the grid over the wall time from the first fine-tuning to
  the last, against one fine-tuning process alone.

A ratio of at least 1 means the schedule gets at least as much out of the GPU as one run alone.
Then the whole: every computed run of a size whose rates alone were both measured (pre-training
tokens at its pre-training rate alone, fine-tuning steps at its fine-tuning rate alone) counted as
the seconds it would take alone, their sum over the wall time of the commands. That is a lower
bound of the work done in units of one run alone: the runs of other sizes, the pruning runs and every
evaluation are left out, and the fine-tuning rates alone were timed on E2E-like batches, the shortest
of the tasks. Each reference rate is a single measurement, without a spread. With a pre-training
rate alone for every size, the pre-training line also weights each token by its own size's rate.
``bash scripts/gpu_device_step.sh bench`` measures both sizes; the committed H200 references
measure ``gpu-large`` only.

Only the runs that the logged commands computed count (a run read from committed results does not).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

DONE = re.compile(r"^\[(\d\d:\d\d:\d\d)\] done (\w+) (\S+)")


def command_windows(times_file: Path) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of every command that ran the grid (``reruns.grid_commands``: the
    set-up and benchmark steps run no part of the grid and are left out)."""
    from spdf_lib.reruns import grid_commands

    return [(start, end) for _, start, end in grid_commands(times_file)]


def done_times(log: Path, windows: list[tuple[float, float]]) -> list[tuple[float, str, str]]:
    """(epoch, stage, run_id) of every 'done' line, the clock time placed inside its command window."""
    out = []
    for line in log.read_text().splitlines():
        m = DONE.match(line)
        if not m:
            continue
        for start, end in windows:
            day = datetime.utcfromtimestamp(start).date()
            t = datetime.combine(day, datetime.strptime(m.group(1), "%H:%M:%S").time()).timestamp()
            if t < start - 1:
                t += timedelta(days=1).total_seconds()
            if start - 1 <= t <= end + 1:
                out.append((t, m.group(2), m.group(3)))
                break
    return out


def busy_seconds(first: float, last: float, windows: list[tuple[float, float]]) -> float:
    """Seconds between ``first`` and ``last`` that fall inside a command window."""
    return sum(max(0.0, min(end, last) - max(start, first)) for start, end in windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="tables/gpu", help="the profile's tables folder")
    parser.add_argument("--alone-pretrain", required=True, help="JSON of bench_pretrain_throughput.py --json")
    parser.add_argument("--alone-finetune", default=None, help="logs of bench_finetune_concurrency.py --processes 1, "
                                                               "comma-separated (one per preset)")
    parser.add_argument("--logs", default=None, help="the folder of command_times.txt and gpu_run.log "
                                                     "(default: <tables>/logs; chapter 09's stage: <tables>/logs/beyond)")
    args = parser.parse_args()
    tables = Path(args.tables)
    logs = Path(args.logs) if args.logs else tables / "logs"
    windows = command_windows(logs / "command_times.txt")
    events = done_times(logs / "gpu_run.log", windows)
    computed = {(stage, run_id) for _, stage, run_id in events}  # the runs these commands computed, no others
    runs = {}
    for stage in ("pretrain", "finetune"):
        for path in (tables / "runs" / stage).glob("*.json"):
            r = json.loads(path.read_text())
            if (stage, r["run_id"]) in computed:
                runs[(stage, r["run_id"])] = r
    first = windows[0][0]
    pre_end = max(t for t, s, _ in events if s == "pretrain")
    pre_busy = busy_seconds(first, pre_end, windows)
    pre_tokens = sum(r["tokens"] for (s, _), r in runs.items() if s == "pretrain")
    pre_rate = pre_tokens / pre_busy
    alone = pretrain_alone_rates(Path(args.alone_pretrain))
    alone_rate = alone["gpu-large"]
    line = (f"pre-training: {pre_tokens / 1e9:.2f} G tokens of {sum(s == 'pretrain' for s, _ in runs)} runs in "
            f"{pre_busy:.0f} s of commands: {pre_rate / 1e6:.2f} M tokens/s as scheduled; "
            f"gpu-large alone {alone_rate / 1e6:.2f} M tokens/s; ratio {pre_rate / alone_rate:.2f}x")
    sizes = {r.get("size") for (s, _), r in runs.items() if s == "pretrain"}
    if sizes <= set(alone):  # every size's own rate alone: the ratio weighted by what each token costs
        pre_alone_s = sum(r["tokens"] / alone[r["size"]] for (s, _), r in runs.items() if s == "pretrain")
        line += (f"; each size at its own rate alone ({', '.join(sorted(sizes))}): {pre_alone_s:,.0f} s of work "
                 f"alone in {pre_busy:.0f} s, {pre_alone_s / pre_busy:.2f}x")
    print(line)
    ft_times = [t for t, s, _ in events if s == "finetune"]
    ft_steps = sum(r["steps"] for (s, _), r in runs.items() if s == "finetune")
    ft_wall = busy_seconds(first, max(ft_times), windows) - busy_seconds(first, min(ft_times), windows)
    line = (f"fine-tuning: {ft_steps:,} steps of {sum(s == 'finetune' for s, _ in runs)} runs in {ft_wall:.0f} s "
            f"(first to last finished): {ft_steps / ft_wall:.1f} steps/s as scheduled")
    ft_alone = finetune_alone_rates([Path(p) for p in args.alone_finetune.split(",")] if args.alone_finetune else [])
    if "gpu-large" in ft_alone:
        line += f"; one gpu-large process alone {ft_alone['gpu-large']:.1f} steps/s; ratio " \
                f"{ft_steps / ft_wall / ft_alone['gpu-large']:.2f}x"
    print(line)
    known = set(alone) & set(ft_alone)  # sizes whose pre-training and fine-tuning rates alone were measured
    if not known:
        print("all together: not computed, no size has both a pre-training and a fine-tuning rate alone")
        return
    counted = [(s, r) for (s, _), r in runs.items() if r.get("size") in known]
    alone_s = sum(r["tokens"] / alone[r["size"]] if s == "pretrain" else r["steps"] / ft_alone[r["size"]]
                  for s, r in counted)
    wall = sum(end - start for start, end in windows)
    left_out = sorted({r.get("size") for r in runs.values()} - known)
    print(f"all together: the {len(counted)} {', '.join(sorted(known))} runs computed would take {alone_s:,.0f} s one "
          f"at a time alone; the commands took {wall:,.0f} s: {alone_s / wall:.2f}x one run alone, a lower bound "
          f"(left out: {', '.join(left_out) + ' runs, ' if left_out else ''}the pruning runs and every evaluation)")


def pretrain_alone_rates(path: Path) -> dict[str, float]:
    """Tokens/s of the dense loop alone by preset, from ``bench_pretrain_throughput.py --json``."""
    rows = json.loads(path.read_text())["rows"]
    return {r["preset"]: r["tokens_per_s"] for r in rows if r.get("loop") == "dense" and "tokens_per_s" in r}


def finetune_alone_rates(paths: list[Path]) -> dict[str, float]:
    """Steps/s of one fine-tuning process alone by preset, from logs of ``bench_finetune_concurrency.py
    --processes 1`` (the preset read from each log's first line)."""
    out = {}
    for path in paths:
        text = path.read_text()
        preset = re.search(r"preset (\S+?)[,;]", text)
        one = re.search(r"^\s*1\s+([\d.]+)\s+([\d.]+)\s", text, re.MULTILINE)  # the 1-process row
        if preset and one:
            out[preset.group(1)] = float(one.group(2))
    return out


if __name__ == "__main__":
    main()
