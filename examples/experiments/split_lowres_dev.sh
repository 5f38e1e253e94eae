#!/usr/bin/env bash
# Splits the dev files of examples/experiments/lowres_ner.yaml into a model-selection half and a reporting half
# (../shared/data has no test splits). Run from the repository root.
set -euo pipefail
D=${DATA:-../shared/data}
S=${OUT:-runs/dev-split}
for l in en sw yo zu; do
  max=""; [ "$l" = en ] && max="--max-examples 1000"   # English dev has 10,000 sentences: 1,000 per half
  python scripts/split_dev.py "$D/ner/$l/dev.conll" --format conll $max \
    --select "$S/ner/$l/select.conll" --report "$S/ner/$l/report.conll"
done
for c in xlmt-en afrisenti-sw afrisenti-yo; do
  python scripts/split_dev.py "$D/sentiment/$c/dev.tsv" --format tsv \
    --select "$S/sentiment/$c/select.tsv" --report "$S/sentiment/$c/report.tsv"
done
