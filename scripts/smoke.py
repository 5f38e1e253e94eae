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

import xlt_fairseq
from xlt_fairseq.data.synthetic import LANGS, write_raw_data

HERE = os.path.dirname(os.path.abspath(__file__))
USER_DIR = os.path.dirname(os.path.abspath(xlt_fairseq.__file__))
BIN = os.path.dirname(sys.executable)


def run(cmd, log=None):
    print("+ " + " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True)
        return ""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        for line in proc.stdout:
            f.write(line)
            out.append(line)
            if "| train_inner |" in line or "| valid |" in line:
                print("  " + line.split(" | ", 3)[-1].strip()[:160], flush=True)
        if proc.wait() != 0:
            sys.exit(f"command failed (exit {proc.returncode}); see {log}")
    return "".join(out)


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
    for lang in LANGS:
        for task in ("ner", "sentiment", "mlm"):
            cmd = [
                py,
                os.path.join(HERE, "preprocess.py"),
                task,
                "--lang",
                lang,
                "--encoder-dir",
                enc,
                "--destdir",
                data,
            ]
            for split in ("train", "valid", "test") if task != "mlm" else ("train", "valid"):
                cmd += [f"--{split}", raw[(task, lang, split)]]
            run(cmd)
    run(
        [
            py,
            os.path.join(HERE, "preprocess.py"),
            "translation",
            "--src-lang",
            "aa",
            "--tgt-lang",
            "bb",
            "--encoder-dir",
            enc,
            "--destdir",
            data,
            "--train",
            mt["train"],
            "--valid",
            mt["valid"],
            "--test",
            mt["test"],
        ]
    )
    log = run(
        [
            os.path.join(BIN, "fairseq-train"),
            data,
            "--user-dir",
            USER_DIR,
            "--task",
            "xlt_multitask",
            "--ner-langs",
            "aa,bb",
            "--sentiment-langs",
            "aa,bb",
            "--mlm-langs",
            "aa,bb",
            "--translation-pairs",
            "aa-bb",
            "--arch",
            "xlt_tiny",
            "--criterion",
            "xlt_multitask_adversarial",
            "--grl-lambda",
            "0.01",
            "--optimizer",
            "adam",
            "--lr",
            "0.003",
            "--lr-scheduler",
            "inverse_sqrt",
            "--warmup-updates",
            "30",
            "--batch-size",
            "16",
            "--max-update",
            str(args.max_update),
            "--tokens-per-sample",
            "32",
            "--save-dir",
            ckpt,
            "--no-epoch-checkpoints",
            "--best-checkpoint-metric",
            "ner_f1",
            "--maximize-best-checkpoint-metric",
            "--log-format",
            "json",
            "--log-interval",
            "50",
            "--seed",
            "1",
            "--cpu",
            "--num-workers",
            "0",
        ],
        log=os.path.join(out, "train.log"),
    )
    valid = [json.loads(line.split(" | ", 3)[-1]) for line in log.splitlines() if "| valid |" in line][-1]
    gen = run(
        [
            os.path.join(BIN, "fairseq-generate"),
            data,
            "--user-dir",
            USER_DIR,
            "--task",
            "xlt_multitask",
            "--source-lang",
            "aa",
            "--target-lang",
            "bb",
            "--path",
            os.path.join(ckpt, "checkpoint_best.pt"),
            "--gen-subset",
            "test",
            "--beam",
            "4",
            "--batch-size",
            "16",
            "--cpu",
            "--remove-bpe",
            "sentencepiece",
            "--scoring",
            "sacrebleu",
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
