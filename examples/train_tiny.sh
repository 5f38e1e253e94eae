#!/usr/bin/env bash
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
#
# Train the full framework (NER en+sw, sentiment sw+yo, masked LM sw, translation
# en-sw, adversarial language discriminator over en/sw/yo) with the tiny architecture
# on the data root of examples/tiny.yaml, then translate its dev set with
# fairseq-generate. Usage (see examples/README.md):
#   examples/train_tiny.sh DATA_BIN SAVE_DIR [extra fairseq-train args, e.g. --max-update 50]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 DATA_BIN SAVE_DIR [extra fairseq-train args]" >&2
    exit 2
fi
DATA_BIN=$1
SAVE_DIR=$2
shift 2
# --user-dir must be the installed package folder (README, "Install")
USER_DIR=$(python -c 'import os, xlt_fairseq; print(os.path.dirname(xlt_fairseq.__file__))')

fairseq-train "$DATA_BIN" --user-dir "$USER_DIR" \
    --task xlt_multitask --ner-langs en,sw --sentiment-langs sw,yo --mlm-langs sw --translation-pairs en-sw \
    --arch xlt_tiny --criterion xlt_multitask_adversarial \
    --ner-weight 1 --sentiment-weight 1 --translation-weight 1 --mlm-weight 0.5 --adversarial-weight 1 \
    --grl-lambda 0.01 --grl-schedule constant \
    --optimizer adam --lr 0.001 --lr-scheduler inverse_sqrt --warmup-updates 30 \
    --batch-size 16 --tokens-per-sample 64 --max-update 300 \
    --best-checkpoint-metric ner_f1 --maximize-best-checkpoint-metric \
    --save-dir "$SAVE_DIR" --no-epoch-checkpoints --log-format json --log-interval 50 --seed 1 --cpu --num-workers 0 "$@"

fairseq-generate "$DATA_BIN" --user-dir "$USER_DIR" --task xlt_multitask --source-lang en --target-lang sw \
    --path "$SAVE_DIR/checkpoint_best.pt" --gen-subset valid --beam 4 --batch-size 16 --cpu \
    --remove-bpe sentencepiece --scoring sacrebleu
