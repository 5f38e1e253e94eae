#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Smoke run: the whole pipeline end to end on generated data, with the real
command-line tools a user runs (build_vocab -> preprocess -> fairseq-train ->
fairseq-generate), then a per-language results table.

    python scripts/smoke.py --out demo_out [--max-update 300]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

from xlt_fairseq.data.synthetic import LANGS, write_raw_data
from xlt_fairseq.experiments.command import generate_command, synthetic_command, synthetic_preprocess_args
from xlt_fairseq.experiments.train_records import TRAIN_INNER, console_tail, read_training_log, run_training

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def run(cmd, log=None):
    print("+ " + " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True)
        return ""
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"command failed (exit {proc.returncode}); see {log}")
    with open(log) as f:
        return f.read()


def show(tag, record):
    """A training record as it is written (fairseq's --log-file, read by train_records)."""
    if tag in (TRAIN_INNER, "valid"):
        print("  " + json.dumps(record)[:160], flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--max-update", type=int, default=300)
    args = parser.parse_args(argv)
    from xlt_fairseq.hardware import thread_env

    thread_env()  # OMP_NUM_THREADS for the fairseq-train/generate children: the cores free now
    start = time.time()
    out = os.path.abspath(args.out)
    raw = write_raw_data(os.path.join(out, "raw"))
    enc, data, ckpt = (os.path.join(out, d) for d in ("encoder", "data-bin", "checkpoints"))
    py = sys.executable
    texts = [p for (task, _, split), p in raw.items() if task in ("mlm", "sentiment") and split == "train"]
    mt = {s: raw[("translation", "aa-bb", s)] for s in ("train", "valid", "test")}
    run(
        [
            py,
            os.path.join(HERE, "build_vocab.py"),
            "--text",
            *texts,
            mt["train"] + ".aa",
            mt["train"] + ".bb",
            "--vocab-size",
            "200",
            "--out",
            enc,
        ]
    )
    for args_ in synthetic_preprocess_args(raw, enc, data):
        run([py, os.path.join(HERE, "preprocess.py"), *args_])
    train = synthetic_command(
        data,
        ckpt,
        args.max_update,
        grl_lambda=0.01,
        best_checkpoint_metric="ner_f1",
        maximize_best_checkpoint_metric=True,
        log_interval=50,
        log_file=os.path.join(out, "train_records.log"),
    )
    if os.path.exists(train.log_file):
        os.remove(train.log_file)  # this run's records only
    cmd = train.cli()
    print("+ " + " ".join(cmd), flush=True)
    console = os.path.join(out, "train.log")
    open(console, "w").close()
    rc = run_training(cmd, train.log_file, console, on_record=show)
    if rc != 0:
        sys.exit(console_tail(console) + f"\ncommand failed (exit {rc}); see {console}")
    valid = read_training_log(train.log_file)["valid"][-1]
    gen = run(
        [
            os.path.join(BIN, "fairseq-generate"),
            *generate_command(
                data,
                os.path.join(ckpt, "checkpoint_best.pt"),
                "aa",
                "bb",
                "test",
                beam=4,
                batch_size=16,
                cpu=True,
                remove_bpe="sentencepiece",
                scoring="sacrebleu",
            ),
        ],
        log=os.path.join(out, "generate.log"),
    )
    n_hyp = sum(1 for line in gen.splitlines() if line.startswith("H-"))
    bleu = re.search(r"BLEU\S* = ([\d.]+)", gen)

    print("\nvalidation results of the selected run (dev split of the generated data)")
    print("| language | NER F1 | sentiment acc | sentiment macro-F1 |")
    print("|---|---|---|---|")
    for lang in LANGS:
        print(
            f"| {lang} | {valid.get(f'valid_ner_f1_{lang}')} | {valid.get(f'valid_sentiment_acc_{lang}')} "
            f"| {valid.get(f'valid_sentiment_macro_f1_{lang}')} |"
        )
    print(
        f"| all | {valid.get('valid_ner_f1')} | {valid.get('valid_sentiment_acc')} | {valid.get('valid_sentiment_macro_f1')} |"
    )
    print(
        f"\ndiscriminator accuracy (valid): {valid.get('valid_adv_acc')}   masked-LM loss: {valid.get('valid_mlm_loss')}"
    )
    print(
        f"translation aa-bb: valid BLEU {valid.get('valid_bleu_aa_bb')}; fairseq-generate translated {n_hyp} test "
        f"sentences, sacreBLEU {bleu.group(1) if bleu else 'n/a'}"
    )
    print(f"done in {time.time() - start:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
