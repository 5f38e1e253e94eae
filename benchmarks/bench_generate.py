#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""P4: fairseq-generate sentences/s, the xlt translation head against a vanilla
fairseq transformer with the same encoder and decoder sizes, on the same test
set (the same binarised files), in one process, alternating; and the peak memory
of each in a fresh process.

Both models are saved untrained (the speed of beam search does not depend on the
weights once the output length is fixed): ``--min-len L --max-len-a 0
--max-len-b L`` makes every hypothesis exactly L tokens long, so both do the same
number of decoder steps. sentences/s is fairseq-generate's own figure (its
generation timer, which excludes loading).

    python benchmarks/bench_generate.py --workdir /tmp/xlt_bench --out benchmarks/results
"""

import argparse
import json
import logging
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bench_training  # noqa: E402
import common  # noqa: E402

from xlt_fairseq.experiments.command import flags_from_mapping, flags_to_list, generate_command  # noqa: E402

TRANSLATED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in [\d.]+s \(([\d.]+) sentences/s")


def save_models(paths, out_dir):
    """Untrained xlt (translation only) and vanilla transformer checkpoints."""
    os.makedirs(out_dir, exist_ok=True)
    ckpts = {"xlt": os.path.join(out_dir, "xlt.pt"), "vanilla": os.path.join(out_dir, "vanilla.pt")}
    if all(os.path.exists(p) for p in ckpts.values()):
        return ckpts
    for side, argv in (
        ("xlt", bench_training.xlt_single(paths, "translation")),
        ("vanilla", bench_training.vanilla(paths, "translation")),
    ):
        _, _, trainer = common.build_trainer(argv)
        trainer.consolidate_optimizer()
        trainer.save_checkpoint(ckpts[side], {})
    return ckpts


def generate_argv(paths, ckpts, side, length, beam, batch_size, results):
    settings = {
        "beam": beam,
        "batch_size": batch_size,
        "required_batch_size_multiple": 1,
        "max_len_a": 0,
        "max_len_b": length,
        "min_len": length,
        "cpu": True,
        "quiet": True,
        "num_workers": 0,
        "results_path": results,
    }
    if side == "xlt":
        return generate_command(paths["data"], ckpts[side], "aa", "bb", "test", **settings)
    # fairseq's own translation task on the same binarised files
    flags = {"task": "translation", "source-lang": "aa", "target-lang": "bb", "path": ckpts[side], "gen-subset": "test"}
    return [paths["vanilla"]["translation"], *flags_to_list({**flags, **flags_from_mapping(settings)})]


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.found = []

    def emit(self, record):
        m = TRANSLATED.search(record.getMessage())
        if m:
            self.found.append((int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), float(m.group(3))))


def run_generate(argv):
    """fairseq-generate in this process. Returns (sentences, tokens, sentences/s as
    fairseq-generate reports it, CPU seconds spent in the task's inference_step)."""
    from fairseq import options
    from fairseq.tasks.fairseq_task import FairseqTask
    from fairseq_cli import generate

    capture = _Capture()
    log = logging.getLogger("fairseq_cli.generate")
    log.addHandler(capture)
    log.setLevel(logging.INFO)
    log.propagate = False
    # the same span as fairseq-generate's own timer (neither task overrides inference_step)
    original, cpu = FairseqTask.inference_step, [0.0]

    def inference_step(self, *args, **kwargs):
        c0 = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            cpu[0] += time.process_time() - c0

    FairseqTask.inference_step = inference_step
    try:
        generate.main(options.parse_args_and_arch(options.get_generation_parser(), argv))
    finally:
        log.removeHandler(capture)
        FairseqTask.inference_step = original
    assert len(capture.found) == 1, "fairseq-generate reported no timing"
    return capture.found[0] + (cpu[0],)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/xlt_bench")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--length", type=int, default=24, help="output length of every hypothesis")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe", choices=["xlt", "vanilla"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    common.quiet_logging()
    common.set_threads(args.threads)
    paths = common.prepare(args.workdir)
    ckpts = save_models(paths, os.path.join(args.workdir, "p4"))
    results_dir = os.path.join(args.workdir, "p4", "generate")

    def gen(side):
        return run_generate(generate_argv(paths, ckpts, side, args.length, args.beam, args.batch_size, results_dir))

    if args.probe:
        import fairseq.sequence_generator  # noqa: F401

        before = common.rss_mb()
        common.reset_peak_rss()
        n, _, sps, _ = gen(args.probe)
        peak = common.peak_rss_mb()
        print(
            json.dumps(
                {
                    "variant": args.probe,
                    "rss_before_mb": before,
                    "peak_rss_mb": peak,
                    "added_mb": peak - before,
                    "sentences": n,
                    "sentences_per_s": sps,
                }
            )
        )
        return 0

    found = {"xlt": [], "vanilla": []}
    cpu, wall = common.alternate(
        {side: (lambda side=side: found[side].append(gen(side))) for side in found}, args.rounds
    )
    warm = {side: found[side][1:] for side in found}  # the first call of each was the warm-up
    wall_sps = {side: [f[2] for f in warm[side]] for side in warm}
    cpu_sps = {side: [f[0] / f[3] for f in warm[side]] for side in warm}
    counts = {side: {(f[0], f[1]) for f in warm[side]} for side in warm}
    assert len({next(iter(c)) for c in counts.values()}) == 1 and all(len(c) == 1 for c in counts.values()), counts
    r = common.ratio_stats(cpu_sps["xlt"], cpu_sps["vanilla"])
    wr = common.ratio_stats(wall_sps["xlt"], wall_sps["vanilla"])
    result = {
        "machine": common.machine(),
        "threads": args.threads,
        "beam": args.beam,
        "length": args.length,
        "batch_size": args.batch_size,
        "sentences_tokens": {side: list(next(iter(c))) for side, c in counts.items()},
        "xlt_sentences_per_s": common.median(cpu_sps["xlt"]),
        "vanilla_sentences_per_s": common.median(cpu_sps["vanilla"]),
        "ratio": r,
        "wall_ratio": wr,
        "sentences_per_cpu_s": cpu_sps,
        "sentences_per_s_reported": wall_sps,
        # whole fairseq-generate calls (loading included), for reference
        "call_cpu_seconds": cpu,
        "call_wall_seconds": wall,
    }
    print(
        f"P4 generate xlt/vanilla sentences/s = {r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}] (as "
        f"fairseq-generate reports it, wall clock: {wr['median']:.3f} [{wr['min']:.3f}, {wr['max']:.3f}])",
        flush=True,
    )
    result["memory"] = {}
    for side in ("xlt", "vanilla"):
        res = common.run_probe(
            os.path.abspath(__file__),
            [
                side,
                "--workdir",
                args.workdir,
                "--threads",
                str(args.threads),
                "--beam",
                str(args.beam),
                "--length",
                str(args.length),
                "--batch-size",
                str(args.batch_size),
            ],
            args.threads,
        )
        result["memory"][side] = res
        print(
            f"memory generate {side}: peak {res['peak_rss_mb']:.0f} MB, {res['added_mb']:.0f} MB above the imports",
            flush=True,
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "generate.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'generate.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
