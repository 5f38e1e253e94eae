#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Binarising NER data with label alignment (``prepare_corpus``, B) against
``fairseq-preprocess --only-source`` (A) on the same sentences and vocabulary,
both with the same number of worker processes.

A reads what fairseq-preprocess needs: the sentences already cut into the
sentencepiece pieces that B produces (one sentence per line, pieces separated by
spaces), so A's time excludes sentencepiece encoding while B's includes it, the
tag alignment and a second (label) dataset. Both run in this process through
their Python entry points (fairseq_cli.preprocess.main with the real argument
parser), alternating A B A B ... after a warm-up pair; the result is the median
of the per-pair ratio of sentences per second (B / A).

    python benchmarks/bench_preprocess.py --sentences 40000 --pairs 7 --workers 2 --out bench_out
"""

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))


def make_corpus(out_dir, n_sentences, seed):
    """Synthetic NER data with a Zipf-like vocabulary of 30k word types."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnoprstuvwyzáéíóúñ"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 11))) for _ in range(30000)]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    types = ["PER", "ORG", "LOC"]
    conll = os.path.join(out_dir, "train.conll")
    text = os.path.join(out_dir, "text.txt")
    sentences = []
    with open(conll, "w", encoding="utf-8") as f, open(text, "w", encoding="utf-8") as t:
        for _ in range(n_sentences):
            words = rng.choices(vocab, weights, k=rng.randint(5, 25))
            tags, i = [], 0
            while i < len(words):
                if rng.random() < 0.12:
                    etype, n = rng.choice(types), rng.randint(1, 3)
                    tags += [f"B-{etype}"] + [f"I-{etype}"] * (n - 1)
                    words[i : i + n] = [w.capitalize() for w in words[i : i + n]]
                    i += n
                else:
                    tags.append("O")
                    i += 1
            tags = tags[: len(words)]
            for w, tag in zip(words, tags):
                f.write(f"{w}\t{tag}\n")
            f.write("\n")
            t.write(" ".join(words) + "\n")
            sentences.append(words)
    return conll, text, sentences


def run_fairseq(pieces, dict_path, destdir, workers):
    from fairseq import options
    from fairseq_cli import preprocess

    parser = options.get_preprocessing_parser()
    args = parser.parse_args(
        [
            "--only-source",
            "--trainpref",
            pieces,
            "--srcdict",
            dict_path,
            "--destdir",
            destdir,
            "--workers",
            str(workers),
            "--dataset-impl",
            "mmap",
        ]
    )
    preprocess.main(args)


def run_ours(conll, encoder_dir, destdir, workers):
    from xlt_fairseq.data.prepare import CorpusSpec, prepare_corpus

    return prepare_corpus(CorpusSpec("ner", lang="xx", train=conll), encoder_dir, destdir, workers=workers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=40000)
    parser.add_argument("--pairs", type=int, default=7, help="A/B pairs after the warm-up pair (at least 5)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder for bench_preprocess.{json,md} (default: print only)")
    args = parser.parse_args(argv)
    if args.pairs < 5:
        parser.error("--pairs must be at least 5")

    import logging

    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    import build_vocab

    from xlt_fairseq.data.binarize import PieceEncoder

    tmp = tempfile.mkdtemp(prefix="bench-preprocess-")
    try:
        conll, text, sentences = make_corpus(tmp, args.sentences, args.seed)
        enc = os.path.join(tmp, "encoder")
        assert build_vocab.main(["--text", text, "--vocab-size", "8000", "--out", enc]) == 0
        encoder = PieceEncoder(enc)
        pieces = os.path.join(tmp, "pieces.txt")
        with open(pieces, "w", encoding="utf-8") as f:
            for words in sentences:
                f.write(" ".join(p for w in words for p in encoder.pieces(w)) + "\n")
        n_tokens = sum(len(s) for s in sentences)
        del sentences  # neither side should pay for it in garbage collection

        def timed(fn, *a):
            dest = tempfile.mkdtemp(dir=tmp)
            shutil.rmtree(dest)
            start = time.perf_counter()
            fn(*a, dest, args.workers)
            elapsed = time.perf_counter() - start
            shutil.rmtree(dest)
            return elapsed

        a_times, b_times = [], []
        for i in range(args.pairs + 1):  # the first pair warms caches up and is not counted
            ta = timed(run_fairseq, pieces, os.path.join(enc, "dict.txt"))
            tb = timed(run_ours, conll, enc)
            if i:
                a_times.append(ta)
                b_times.append(tb)
            print(f"pair {i}{' (warm-up)' if not i else ''}: fairseq-preprocess {ta:.3f}s, ours {tb:.3f}s", flush=True)
        n = args.sentences
        ratios = [ta / tb for ta, tb in zip(a_times, b_times)]  # (n / tb) / (n / ta)
        result = {
            "sentences": n,
            "tokens": n_tokens,
            "workers": args.workers,
            "pairs": args.pairs,
            "fairseq_preprocess_s_median": statistics.median(a_times),
            "ours_s_median": statistics.median(b_times),
            "fairseq_preprocess_sent_per_s_median": n / statistics.median(a_times),
            "ours_sent_per_s_median": n / statistics.median(b_times),
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(
        [
            "| | median time (s) | sentences/s |",
            "|---|---:|---:|",
            f"| fairseq-preprocess --only-source (pieces) | {result['fairseq_preprocess_s_median']:.3f} | "
            f"{result['fairseq_preprocess_sent_per_s_median']:,.0f} |",
            f"| prepare_corpus ner (raw conll, spm + label alignment) | {result['ours_s_median']:.3f} | "
            f"{result['ours_sent_per_s_median']:,.0f} |",
            "",
            f"{n:,} sentences ({n_tokens:,} tokens), {args.workers} workers, {args.pairs} alternating pairs; "
            f"median per-pair ratio (ours / fairseq) = **{result['ratio_median']:.2f}** "
            f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})",
        ]
    )
    print(table)
    print(f"ratio {result['ratio_median']:.3f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_preprocess.json"), "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.join(args.out, "bench_preprocess.md"), "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
