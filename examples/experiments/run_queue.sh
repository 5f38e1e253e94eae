#!/usr/bin/env bash
# Runs the runs of an experiment grid one by one, in the order of a queue file (one run id per line, as
# `xlt-run-experiments CONFIG --dry-run` lists them), each under /usr/bin/time (wall and CPU time per run, the
# numbers of docs/results.md), and stops at the first failure. Two queues into two --out folders run side by
# side on two cores (one thread each); the report merges their results files. The queue is re-read after every
# run, so it can be reordered or extended while it runs; finished runs are listed in OUT/queue_done.txt.
#
#   bash examples/experiments/run_queue.sh examples/experiments/ner_tiers.yaml runs/tiers_a queue_a.txt
set -uo pipefail
CONFIG=$1
OUT=$2
QUEUE=$3
RUN=${RUNNER:-xlt-run-experiments}   # or: RUNNER="python scripts/run_experiments.py" in a checkout
mkdir -p "$OUT"
LOG=$OUT/queue.log
DONE=$OUT/queue_done.txt
touch "$DONE"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
while true; do
  next=""
  while read -r id; do
    [ -z "$id" ] && continue
    grep -qxF "$id" "$DONE" && continue
    next=$id
    break
  done < "$QUEUE"
  if [ -z "$next" ]; then echo "queue empty $(date +%T)" >> "$LOG"; exit 0; fi
  echo "start $next $(date +%T)" >> "$LOG"
  /usr/bin/time -f "time $next wall=%e user=%U sys=%S maxrss_kb=%M" -a -o "$LOG" \
    $RUN "$CONFIG" --out "$OUT" --only "$next" --no-progress >> "$LOG" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then echo "stopped: $next failed (exit $rc) $(date +%T)" >> "$LOG"; exit $rc; fi
  echo "$next" >> "$DONE"
done
