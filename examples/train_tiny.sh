#!/usr/bin/env bash
# Train the full framework (NER + sentiment + masked LM + translation, adversarial
# branch on) with the tiny architecture on a data root holding languages aa and
# bb (e.g. the one `make demo` writes to demo_out/data-bin), then translate its
# test set. Usage: examples/train_tiny.sh DATA_BIN SAVE_DIR [extra fairseq-train args]
set -euo pipefail
DATA_BIN=$1
SAVE_DIR=$2
shift 2
USER_DIR=$(python -c 'import os, xlt_fairseq; print(os.path.dirname(xlt_fairseq.__file__))')

fairseq-train "$DATA_BIN" --user-dir "$USER_DIR" \
    --task xlt_multitask --ner-langs aa,bb --sentiment-langs aa,bb --mlm-langs aa,bb --translation-pairs aa-bb \
    --arch xlt_tiny --criterion xlt_multitask_adversarial \
    --ner-weight 1 --sentiment-weight 1 --translation-weight 1 --mlm-weight 1 --adversarial-weight 1 \
    --grl-lambda 0.01 --grl-schedule constant \
    --optimizer adam --lr 0.003 --lr-scheduler inverse_sqrt --warmup-updates 30 \
    --batch-size 16 --tokens-per-sample 32 --max-update 300 \
    --best-checkpoint-metric ner_f1 --maximize-best-checkpoint-metric \
    --save-dir "$SAVE_DIR" --no-epoch-checkpoints --log-format json --log-interval 50 --seed 1 --cpu "$@"

fairseq-generate "$DATA_BIN" --user-dir "$USER_DIR" --task xlt_multitask --source-lang aa --target-lang bb \
    --path "$SAVE_DIR/checkpoint_best.pt" --gen-subset test --beam 4 --batch-size 16 --cpu \
    --remove-bpe sentencepiece --scoring sacrebleu
