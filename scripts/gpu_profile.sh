#!/usr/bin/env bash
# Run, or resume, the experiment grid of the `gpu` profile on a machine with one CUDA GPU.
#
# Every run is cached under $SPDF_CACHE and its result exported to $TABLES/gpu/runs/ as soon as it
# finishes, so the script can be stopped at any time (or given MINUTES=9 to stop itself with
# checkpoints) and started again: it resumes where it stopped. Needs the package installed (make
# install, or PYTHONPATH=. with torch, datasets, tokenizers and sacrebleu present) and the data
# under $SPDF_DATA (see the README of the data folder). Chapters 04-08 then read $TABLES.
# STAGES=beyond runs chapter 09's stage instead of the grid (chapter 09 reads it); SIZES=gpu-small
# re-runs the grid of one size only (the re-run check of chapter 06); WORKERS and SIDE_WORKERS override
# the profile's workers and side_workers (each command's summary line in the log records them).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
TABLES=${TABLES:-tables}
exec python3 -m spdf_lib.experiments --profile gpu --stages "${STAGES:-pretrain,finetune,eval,prune}" \
  --tables-dir "$TABLES" ${MINUTES:+--minutes "$MINUTES"} ${WORKERS:+--workers "$WORKERS"} ${SIDE_WORKERS:+--side-workers "$SIDE_WORKERS"} ${SIZES:+--sizes "$SIZES"}
