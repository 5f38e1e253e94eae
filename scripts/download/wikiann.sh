#!/usr/bin/env bash
# WikiAnn NER (Pan et al., 2017; Rahimi et al., 2019 splits) for de en es nl pl ru, from the
# Babelscape/wikineural repository's copy (data/wikiann/<lang>/{train,val,test}.conllu).
# Other languages: see panx.sh (XTREME PAN-X, manual download).
#
#   scripts/download/wikiann.sh OUT_DIR [LANG ...]      (default: en de es)
#
# Writes OUT_DIR/wikiann/<lang>/{train,val,test}.conllu, lines "idx<TAB>token<TAB>tag" (IOB2, PER/ORG/LOC):
#   python scripts/preprocess.py ner --format wikiann-idx --lang en --train OUT_DIR/wikiann/en/train.conllu \
#       --valid OUT_DIR/wikiann/en/val.conllu --test OUT_DIR/wikiann/en/test.conllu ...
# Licence: CC BY-NC-SA 4.0 (non-commercial).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 1; }
OUT=$1; shift
LANGS=("$@")
[ $# -gt 0 ] || LANGS=(en de es)
COMMIT=d2e28c770cba2b285e742529ae18ed849e336c65
BASE=https://raw.githubusercontent.com/Babelscape/wikineural/$COMMIT/data/wikiann
for lang in "${LANGS[@]}"; do
    mkdir -p "$OUT/wikiann/$lang"
    for split in train val test; do
        curl -fsSL --retry 3 -o "$OUT/wikiann/$lang/$split.conllu" "$BASE/$lang/$split.conllu"
    done
    echo "wikiann/$lang: $(grep -c '^$' "$OUT/wikiann/$lang/train.conllu") training sentences"
done
