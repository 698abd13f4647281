#!/usr/bin/env bash
# One command of the published gpu run on a lent GPU machine that holds a command to 10 minutes and
# takes at most 64 MiB per call (README, "The published `gpu` run"). Called repeatedly:
#
#   bash scripts/gpu_device_step.sh setup     # the first calls: wheels and the data, in as many calls
#                                             # (each carrying some of .gpu/) as the 64 MiB limit needs
#   bash scripts/gpu_device_step.sh bench     # one pre-training and one fine-tuning of each size alone
#                                             # on the idle GPU (the reference of bench_grid_throughput.py)
#   bash scripts/gpu_device_step.sh bench-dynamic   # what RigL's and SET's mask updates cost on the GPU
#                                             # (gpu-large, static mask vs the two, chapter 09)
#   bash scripts/gpu_device_step.sh bench-contention   # what 4 or 8 fine-tunes or decodes beside a
#                                             # gpu-large pre-training cost it (Profile.side_workers; ~3 min)
#   bash scripts/gpu_device_step.sh 8.5       # later calls: unpack what came along, then run or
#                                             # resume the profile for at most 8.5 minutes
#   STAGES=beyond bash scripts/gpu_device_step.sh 8.5   # chapter 09's stage instead of the grid: its
#                                             # results folder starts from the committed gpu results,
#                                             # so the grid's runs it shares are read, not recomputed
#
# SPDF_COMMIT (the commit the working tree was sent from) is recorded in every result's environment.
# WORKERS, SIDE_WORKERS and SIZES pass through to scripts/gpu_profile.sh (worker processes, the cap on
# other runs beside the pre-trainings, the model sizes to run); each command's summary line in the log
# records the worker counts. The cache ($SPDF_CACHE) stays on this machine: a grid resumes only here.
#
# Carried, ignored folders it reads when present: .whl/ (wheels of packages the machine lacks),
# .gpu/part*/ (slices of the data folder: pretrain/<source>/ and finetune.tar.xz) and .gpu/tok/ (the
# gpu tokenizer, so that the machine need not train it). Results go to $TABLES (outside the
# checkout, so nothing committed is reused) and, with the log and the timings, to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export SPDF_DATA=${SPDF_DATA:-/root/spdf_data} SPDF_CACHE=${SPDF_CACHE:-/root/spdf_cache}
export TABLES=${TABLES:-/root/spdf_tables} OUT=${OUT:-/tmp/out}
STEP=${1:?usage: gpu_device_step.sh setup|bench|bench-dynamic|bench-contention|MINUTES}
export STAGES=${STAGES:-pretrain,finetune,eval,prune}
LOG=$(dirname "$TABLES")/spdf_run.log
[ "$STAGES" = beyond ] && LOG=$(dirname "$TABLES")/spdf_run_beyond.log
if [ "$STAGES" = beyond ] && [ ! -d "$TABLES/gpu/runs" ]; then
  mkdir -p "$TABLES/gpu" && cp -r tables/gpu/runs "$TABLES/gpu/"
fi
mkdir -p "$SPDF_DATA/pretrain" "$SPDF_CACHE/tokenizer" "$TABLES" "$OUT"
echo "$(date +%s) start $STEP" >>"$LOG.times"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD
for part in .gpu/part*/; do
  [ -d "$part/pretrain" ] && cp -rn "$part"/pretrain/* "$SPDF_DATA/pretrain/"
  [ -f "$part/finetune.tar.xz" ] && tar xJf "$part/finetune.tar.xz" -C "$SPDF_DATA"
done
[ -d .gpu/tok ] && cp -rn .gpu/tok/* "$SPDF_CACHE/tokenizer/"
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "cpu cores: $(nproc)"; } >"$OUT/gpu_env.txt"

status=0
if [ "$STEP" = bench ]; then
  python3 benchmarks/bench_pretrain_throughput.py --presets gpu-large,gpu-small --loops dense --rounds 1 --windows 4 \
    --json "$OUT/pretrain_alone.json" 2>&1 | tee "$OUT/pretrain_alone.log"
  python3 benchmarks/bench_finetune_concurrency.py --processes 1 --batch 64 --seconds 10 2>&1 | tee "$OUT/finetune_alone.log"
  python3 benchmarks/bench_finetune_concurrency.py --preset gpu-small --processes 1 --batch 64 --seconds 10 2>&1 \
    | tee "$OUT/finetune_alone_small.log"
elif [ "$STEP" = bench-dynamic ]; then
  python3 benchmarks/bench_pretrain_throughput.py --presets gpu-large --loops masked,rigl,set --rounds 1 \
    --windows 4 --dynamic-interval 20 --json "$OUT/dynamic_cost.json" 2>&1 | tee "$OUT/dynamic_cost.log"
elif [ "$STEP" = bench-contention ]; then
  python3 benchmarks/bench_contention.py 2>&1 | tee "$OUT/contention.log"
elif [ "$STEP" != setup ]; then
  MINUTES=$STEP TABLES=$TABLES bash scripts/gpu_profile.sh 2>&1 | grep --line-buffered -v "^data root:" | tee -a "$LOG"
  status=$?
fi
echo "$(date +%s) end $STEP" >>"$LOG.times"
cp "$LOG.times" "$OUT/times.txt"; [ -f "$LOG" ] && cp "$LOG" "$OUT/gpu_run.log"
tar czf "$OUT/tables.tgz" -C "$TABLES" .
exit $status
