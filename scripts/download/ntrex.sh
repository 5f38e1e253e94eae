#!/usr/bin/env bash
# NTREX-128 (Federmann et al., 2022): WMT newstest2019's 1,997 English sentences translated into 128
# languages, from MicrosoftTranslator/NTREX (NTREX-128/newstest2019-{src.eng,ref.<code>}.txt).
#
#   scripts/download/ntrex.sh OUT_DIR LANG:CODE [LANG:CODE ...]      e.g. fr:fra sw:swa yo:yor zu:zul
#
# Writes OUT_DIR/ntrex/en-<lang>/newstest2019.{en,<lang>} (aligned plain text, format plain; the English
# side is the same for every pair) and DOCUMENT_IDS.tsv (document of each line, for document-level splits):
#   python scripts/preprocess.py translation --src-lang en --tgt-lang sw --valid OUT_DIR/ntrex/en-sw/newstest2019 ...
# Licence: CC BY-SA 4.0 (attribution, share-alike).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 1; }
OUT=$1; shift
COMMIT=8561f6a622db9edad1217683e5c83daefd8bb2bf
BASE=https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/$COMMIT
mkdir -p "$OUT/ntrex"
curl -fsSL --retry 3 -o "$OUT/ntrex/newstest2019.en" "$BASE/NTREX-128/newstest2019-src.eng.txt"
curl -fsSL --retry 3 -o "$OUT/ntrex/DOCUMENT_IDS.tsv" "$BASE/DOCUMENT_IDS.tsv"
for spec in "$@"; do
    lang=${spec%%:*}; code=${spec#*:}
    mkdir -p "$OUT/ntrex/en-$lang"
    # CRLF -> LF (some reference files use Windows line ends)
    curl -fsSL --retry 3 "$BASE/NTREX-128/newstest2019-ref.$code.txt" | tr -d '\r' > "$OUT/ntrex/en-$lang/newstest2019.$lang"
    tr -d '\r' < "$OUT/ntrex/newstest2019.en" > "$OUT/ntrex/en-$lang/newstest2019.en"
    echo "ntrex/en-$lang: $(wc -l < "$OUT/ntrex/en-$lang/newstest2019.$lang") lines"
done
