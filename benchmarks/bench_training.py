#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Training speed of the plugin against vanilla fairseq, on CPU, in one process.

P1  single-task words/s, xlt vs fairseq's nearest task on the same encoder, data and batches:
    NER tagging vs sentence_prediction, sentiment vs sentence_prediction, masked LM vs
    masked_lm (roberta), translation vs translation (transformer, same decoder)
P2  time per multi-task update with the adversarial branch (discriminator behind the
    gradient reversal layer) vs without it
P3  one multi-task update (4 task sub-batches) vs the 4 single-task updates it replaces
and the peak memory of every variant (each in a fresh process).

Every variant is a fairseq Trainer built through fairseq's own parser and driven
with ``Trainer.train_step`` on the same pre-collated batches (drawn from the xlt
task's training iterator; for the vanilla tasks the same tensors in their format).

    python benchmarks/bench_training.py --workdir /tmp/xlt_bench --out benchmarks/results
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402

P1_TASKS = ("ner", "sentiment", "mlm", "translation")
# xlt's defaults (the transformer arch has no attention dropout by default)
SAME_DROPOUT = ["--dropout", "0.1", "--attention-dropout", "0.1", "--activation-dropout", "0.0"]


def xlt_single(paths, name):
    corpora = {name: ["aa-bb"] if name == "translation" else ["aa"]}
    # one language: the discriminator has one class and the adversarial loss weight 0
    return common.xlt_argv(paths["data"], corpora, **common.decoder_settings(), adversarial_weight=0)


def vanilla(paths, name):
    d = common.DIMS
    if name in ("ner", "sentiment"):
        return [
            paths["vanilla"]["sentence_prediction"],
            "--task",
            "sentence_prediction",
            "--num-classes",
            "3",
            "--arch",
            "roberta_base",
            *common.encoder_args(),
            *SAME_DROPOUT,
            "--pooler-dropout",
            "0.1",
            "--max-positions",
            "512",
            "--criterion",
            "sentence_prediction",
            *common.COMMON_TRAIN,
        ]
    if name == "mlm":
        return [
            paths["vanilla"]["masked_lm"],
            "--task",
            "masked_lm",
            "--tokens-per-sample",
            "64",
            "--arch",
            "roberta_base",
            *common.encoder_args(),
            *SAME_DROPOUT,
            "--max-positions",
            "512",
            "--criterion",
            "masked_lm",
            *common.COMMON_TRAIN,
        ]
    # the xlt decoder: post-LayerNorm, learned positions, embedding LayerNorm, no
    # embedding scaling, GELU, input/output embeddings shared with the encoder, xlt's dropout
    return [
        paths["vanilla"]["translation"],
        "--task",
        "translation",
        "--source-lang",
        "aa",
        "--target-lang",
        "bb",
        "--arch",
        "transformer",
        *common.encoder_args(),
        "--decoder-layers",
        str(d["dec_layers"]),
        "--decoder-embed-dim",
        str(d["dim"]),
        "--decoder-ffn-embed-dim",
        str(d["ffn"]),
        "--decoder-attention-heads",
        str(d["heads"]),
        "--share-all-embeddings",
        "--encoder-learned-pos",
        "--decoder-learned-pos",
        "--layernorm-embedding",
        "--no-scale-embedding",
        "--activation-fn",
        "gelu",
        *SAME_DROPOUT,
        "--max-source-positions",
        "512",
        "--max-target-positions",
        "512",
        "--criterion",
        "label_smoothed_cross_entropy",
        *common.COMMON_TRAIN,
    ]


def to_vanilla(name, sub):
    """The xlt sub-batch in the vanilla task's format (the same tensors)."""
    if name == "ner":
        # sentence_prediction wants one label per sentence: any fixed one will do
        sub = dict(sub, target=sub["id"] % 3)
    keep = ("id", "nsentences", "ntokens", "net_input", "target")
    return {k: sub[k] for k in keep}


def words(batches, name=None):
    if name is None:
        return sum(sub["ntokens"] for b in batches for sub in b.values())
    return sum(b[name]["ntokens"] for b in batches)


# ---- variants ------------------------------------------------------------------------------


def make_variant(paths, which, n_batches, batch_size):
    """Returns (trainer, batches fed to it, words per block) for a variant name."""
    part, name, side = (which.split(":") + [None])[:3]
    if part == "p1":
        # the batches come from the xlt task in every case; only the variant's own model is built
        _, task = common.setup_task(xlt_single(paths, name))
        batches = common.xlt_batches(task, n_batches, batch_size)
        n_words = words(batches, name)
        if side == "vanilla":
            _, _, trainer = common.build_trainer(vanilla(paths, name))
            batches = [to_vanilla(name, b[name]) for b in batches]
        else:
            _, _, trainer = common.build_trainer(xlt_single(paths, name))
            ablate(trainer.model, side)
        return trainer, batches, n_words
    _, task, trainer = common.build_trainer(common.xlt_argv(paths["data"], common.ALL_TASKS, **common.decoder_settings()))
    batches = common.xlt_batches(task, n_batches, batch_size)
    if part == "p2" and name == "off":
        # the model without its adversarial branch (removed before the optimizer is built)
        trainer.model.discriminator = None
    if part == "p3" and name == "single":
        batches = [{task_name: sub} for b in batches for task_name, sub in b.items()]
    return trainer, batches, words(batches)


def ablate(model, side):
    """Profiling variants (before the optimizer is built): ``xlt-nodisc`` without the
    discriminator, ``xlt-nodisc-nofe`` also without the feature extractor's dense
    layer and activation (its dropout stays)."""
    import torch.nn as nn

    if "nodisc" in side:
        model.discriminator = None
    if "nofe" in side:
        model.encoder.feature_extractor.dense = nn.Identity()
        model.encoder.feature_extractor.activation_fn = nn.Identity()


def block(trainer, batches):
    def run():
        for b in batches:
            trainer.train_step([b])

    return run


def probe(args):
    """One variant in a fresh process: the peak memory of building it and training two blocks."""
    import xlt_fairseq  # noqa: F401  (imported by both variants before the mark is reset)

    common.set_threads(args.threads)
    paths = json.load(open(os.path.join(args.workdir, "prepared.json")))
    before = common.rss_mb()
    common.reset_peak_rss()
    trainer, batches, _ = make_variant(paths, args.probe, args.batches, args.batch_size)
    block(trainer, batches)()
    block(trainer, batches)()
    peak = common.peak_rss_mb()
    print(json.dumps({"variant": args.probe, "rss_before_mb": before, "peak_rss_mb": peak, "added_mb": peak - before}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/xlt_bench", help="data (made once, reused)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="where the JSON and markdown go")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (fixed)")
    parser.add_argument("--rounds", type=int, default=9, help="timed A/B rounds per comparison (>= 5)")
    parser.add_argument("--batches", type=int, default=4, help="batches per timed block")
    parser.add_argument("--batch-size", type=int, default=16, help="sentences per task per batch")
    parser.add_argument(
        "--only",
        help="comma-separated subset of p1,p1base,p2,p3,memory (default: all), or "
        "flops,p1ablation (profiling, not in the default run)",
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        common.quiet_logging()
        return probe(args)

    common.quiet_logging()
    common.set_threads(args.threads)
    paths = common.prepare(args.workdir)
    parts = set((args.only or "p1,p1base,p2,p3,memory").split(","))
    results = {
        "machine": common.machine(),
        "threads": args.threads,
        "rounds": args.rounds,
        "dims": common.DIMS,
        "batches_per_block": args.batches,
        "batch_size": args.batch_size,
    }

    # the profiling parts alone go to their own file
    out_file = os.path.join(args.out, "profile.json" if parts <= {"flops", "p1ablation"} else "training.json")

    def save():
        os.makedirs(args.out, exist_ok=True)
        with open(out_file, "w") as f:
            json.dump(results, f, indent=1)

    def compare(a, b):
        """Alternates variants a and b; returns their CPU and wall seconds per block and words per block."""
        ta, ba, wa = make_variant(paths, a, args.batches, args.batch_size)
        tb, bb, wb = make_variant(paths, b, args.batches, args.batch_size)
        assert wa == wb, (a, b, wa, wb)
        cpu, wall = common.alternate({a: block(ta, ba), b: block(tb, bb)}, args.rounds)
        return cpu, wall, wa

    def summary(label, r, wr):
        print(
            f"{label} = {r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}] (wall clock: {wr['median']:.3f} "
            f"[{wr['min']:.3f}, {wr['max']:.3f}])",
            flush=True,
        )

    def p1(key):
        results[key] = {"dims": dict(common.DIMS), "batches_per_block": args.batches, "batch_size": args.batch_size}
        for name in P1_TASKS:
            xlt, van = f"p1:{name}:xlt", f"p1:{name}:vanilla"
            cpu, wall, w = compare(xlt, van)
            # words/s ratio xlt/vanilla = time ratio vanilla/xlt (the same words)
            r, wr = common.ratio_stats(cpu[van], cpu[xlt]), common.ratio_stats(wall[van], wall[xlt])
            results[key][name] = {
                "xlt_words_per_s": w / common.median(cpu[xlt]),
                "vanilla_words_per_s": w / common.median(cpu[van]),
                "ratio": r,
                "wall_ratio": wr,
                "words_per_block": w,
                "cpu_seconds": cpu,
                "wall_seconds": wall,
            }
            summary(f"{key.upper()} {name} ({common.DIMS['name']}): xlt/vanilla words/s", r, wr)

    if "p1" in parts:
        p1("p1")
        save()
    if "flops" in parts:
        # counted matmul FLOPs (forward + backward) of one block of every P1 variant
        from torch.utils.flop_counter import FlopCounterMode

        results["flops"] = {}
        for name in P1_TASKS:
            counts = {}
            for side in ("xlt", "vanilla"):
                trainer, batches, _ = make_variant(paths, f"p1:{name}:{side}", args.batches, args.batch_size)
                block(trainer, batches)()
                with FlopCounterMode(display=False) as counter:
                    block(trainer, batches)()
                counts[side] = counter.get_total_flops()
            results["flops"][name] = dict(counts, ratio=counts["vanilla"] / counts["xlt"])
            print(
                f"FLOPs {name}: xlt {counts['xlt'] / 1e9:.2f} G, vanilla {counts['vanilla'] / 1e9:.2f} G per block, "
                f"vanilla/xlt {counts['vanilla'] / counts['xlt']:.3f}",
                flush=True,
            )
        save()
    if "p1ablation" in parts:
        # where the single-task gap comes from (opt-in: about 5 minutes)
        results["p1ablation"] = {}
        for name in ("ner", "sentiment", "mlm"):
            names = [f"p1:{name}:{v}" for v in ("vanilla", "xlt", "xlt-nodisc", "xlt-nodisc-nofe")]
            built = {v: make_variant(paths, v, args.batches, args.batch_size) for v in names}
            cpu, _ = common.alternate({v: block(t, b) for v, (t, b, _) in built.items()}, args.rounds)
            results["p1ablation"][name] = {}
            for v in names[1:]:
                r = common.ratio_stats(cpu[names[0]], cpu[v])
                results["p1ablation"][name][v.split(":")[2]] = r
                print(
                    f"P1 ablation {name} {v.split(':')[2]}: words/s vs vanilla {r['median']:.3f} "
                    f"[{r['min']:.3f}, {r['max']:.3f}]",
                    flush=True,
                )
        save()
    if "p1base" in parts:
        # the same comparison at XLM-R base's width: one batch of 8 sentences per block
        small = (dict(common.DIMS), args.batches, args.batch_size, args.rounds)
        common.set_dims(common.BASE)
        args.batches, args.batch_size, args.rounds = 1, 8, min(args.rounds, 7)
        p1("p1base")
        common.set_dims(small[0])
        args.batches, args.batch_size, args.rounds = small[1:]
        save()
    n = args.batches

    def paired(key, a, b, names, title):
        cpu, wall, _ = compare(a, b)
        r, wr = common.ratio_stats(cpu[a], cpu[b]), common.ratio_stats(wall[a], wall[b])
        results[key] = {
            names[0]: common.median(cpu[a]) / n,
            names[1]: common.median(cpu[b]) / n,
            "ratio": r,
            "wall_ratio": wr,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
        }
        summary(title, r, wr)
        save()

    if "p2" in parts:
        paired(
            "p2", "p2:on", "p2:off", ("on_s_per_update", "off_s_per_update"), "P2 adversarial branch on/off, time per update"
        )
    if "p3" in parts:
        paired(
            "p3",
            "p3:multi",
            "p3:single",
            ("multi_s_per_update", "singles_s_per_multi_update"),
            "P3 multi-task update / sum of single-task updates",
        )
    if "memory" in parts:
        variants = [f"p1:{n}:{s}" for n in P1_TASKS for s in ("xlt", "vanilla")] + [
            "p2:on",
            "p2:off",
            "p3:multi",
            "p3:single",
        ]
        results["memory"] = {}
        for v in variants:
            res = common.run_probe(
                os.path.abspath(__file__),
                [
                    v,
                    "--workdir",
                    args.workdir,
                    "--threads",
                    str(args.threads),
                    "--batches",
                    str(args.batches),
                    "--batch-size",
                    str(args.batch_size),
                ],
                args.threads,
            )
            results["memory"][v] = res
            print(
                f"memory {v}: peak {res['peak_rss_mb']:.0f} MB, {res['added_mb']:.0f} MB above the imports", flush=True
            )

    save()
    print(f"wrote {out_file}")


if __name__ == "__main__":
    sys.exit(main())
