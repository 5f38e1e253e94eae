#!/usr/bin/env bash
# IWSLT 2017 TED talks (Cettolo et al., 2012, WIT3), the training archives 2017-01-trnted.
# Tries the WIT3 archive first, then the Hugging Face mirror of the same archives.
#
#   scripts/download/iwslt2017.sh OUT_DIR [SRC-TGT ...]      (default: en-fr en-de)
#
# Writes OUT_DIR/iwslt2017/<src>-<tgt>/ with train.tags.<src>-<tgt>.{<src>,<tgt>} (train, format iwslt-tags)
# and IWSLT17.TED.{dev2010,tst2010,...}.<src>-<tgt>.{<src>,<tgt>}.xml (format iwslt-xml):
#   D=OUT_DIR/iwslt2017/en-fr
#   python scripts/preprocess.py translation --src-lang en --tgt-lang fr --train-format iwslt-tags \
#       --train $D/train.tags.en-fr --valid-format iwslt-xml --valid $D/IWSLT17.TED.dev2010.en-fr ...
# Licence: CC BY-NC-ND (TED); non-commercial, no derivatives.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 1; }
OUT=$1; shift
PAIRS=("$@")
[ $# -gt 0 ] || PAIRS=(en-fr en-de)
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
for pair in "${PAIRS[@]}"; do
    src=${pair%-*}; tgt=${pair#*-}
    dest="$OUT/iwslt2017/$pair"
    mkdir -p "$dest" "$TMP/$pair"
    if curl -fsSL --retry 2 -o "$TMP/$pair.tgz" "https://wit3.fbk.eu/archive/2017-01-trnted/texts/$src/$tgt/$pair.tgz"; then
        tar -xzf "$TMP/$pair.tgz" -C "$TMP/$pair"
    else
        curl -fsSL --retry 3 -o "$TMP/$pair.zip" \
            "https://huggingface.co/datasets/IWSLT/iwslt2017/resolve/main/data/2017-01-trnted/texts/$src/$tgt/$pair.zip"
        unzip -qq "$TMP/$pair.zip" -d "$TMP/$pair"
    fi
    # the archives hold a folder <src>-<tgt>/ (possibly nested); keep the text and XML files
    find "$TMP/$pair" -type f \( -name "train.tags.$pair.*" -o -name "IWSLT17.TED.*.$pair.*.xml" \) \
        -exec mv {} "$dest/" \;
    echo "iwslt2017/$pair: $(ls "$dest" | wc -l) files"
done
