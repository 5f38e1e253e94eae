#!/usr/bin/env bash
# XTREME PAN-X (WikiAnn in 40 languages, Rahimi et al. 2019 splits). Its distribution needs a
# manual download: save AmazonPhotos.zip from
#   https://www.amazon.com/clouddrive/share/d3KGCRCIYwhKJF0H3eWA26hjg2ZCRhjpEQtDL70FSBN
# (the link given by XTREME's scripts/download_data.sh), then:
#
#   scripts/download/panx.sh AmazonPhotos.zip OUT_DIR LANG [LANG ...]     e.g. sw yo fr
#
# Writes OUT_DIR/panx/<lang>/{train,dev,test}, lines "<lang>:token<TAB>tag" (IOB2, PER/ORG/LOC):
#   python scripts/preprocess.py ner --format panx --lang sw --train OUT_DIR/panx/sw/train ...
# Licence: not stated by XTREME; WikiAnn is Wikipedia text. Treat as research-only.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,11p' "$0"; exit 1; }
ZIP=$1; OUT=$2; shift 2
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
unzip -qq -j "$ZIP" -d "$TMP"
for lang in "$@"; do
    mkdir -p "$OUT/panx/$lang"
    tar -xzf "$TMP/$lang.tar.gz" -C "$OUT/panx/$lang"
    echo "panx/$lang: $(ls "$OUT/panx/$lang" | tr '\n' ' ')"
done
