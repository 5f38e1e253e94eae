#!/usr/bin/env bash
# MasakhaNER 2.0 (Adelani et al., 2022): news NER in 20 African languages, from
# masakhane-io/masakhane-ner (MasakhaNER2.0/data/<code>/{train,dev,test}.txt).
#
#   scripts/download/masakhaner.sh OUT_DIR [CODE ...]      (default: swa yor zul; also hau ibo kin lug luo ...)
#
# Writes OUT_DIR/masakhaner/<code>/{train,dev,test}.txt, lines "token tag" (IOB2, PER/ORG/LOC/DATE). The
# paper's tag set has no DATE, so map it away:
#   python scripts/preprocess.py ner --format conll-space --map-label DATE=O --lang sw \
#       --train OUT_DIR/masakhaner/swa/train.txt --valid OUT_DIR/masakhaner/swa/dev.txt ...
# Licence: CC BY-NC 4.0 (non-commercial).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 1; }
OUT=$1; shift
CODES=("$@")
[ $# -gt 0 ] || CODES=(swa yor zul)
COMMIT=ba5843cd08aa491d5f96a5e809e71eb9ec461391
BASE=https://raw.githubusercontent.com/masakhane-io/masakhane-ner/$COMMIT/MasakhaNER2.0/data
for code in "${CODES[@]}"; do
    mkdir -p "$OUT/masakhaner/$code"
    for split in train dev test; do
        curl -fsSL --retry 3 -o "$OUT/masakhaner/$code/$split.txt" "$BASE/$code/$split.txt"
    done
    echo "masakhaner/$code: $(grep -c '^\s*$' "$OUT/masakhaner/$code/train.txt") training sentences"
done
