# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""CPU training speed: P9 bf16 mixed precision (--bf16-autocast) against fp32,
and P10 the slowdown of a 2-core run when another CPU-bound process shares the
machine, with the plugin's default threads against torch's.

P9: ``xlt_e5_small`` (12 x 384, e5-small's shape, random weights: speed does not
depend on them) on the benchmark data (4,000-piece vocabulary), NER alone and the
full multi-task batch (NER + sentiment + translation + masked LM + discriminator);
the two trainers' update steps alternated A B A B in one process, one thread.

P10: the same NER update in a fresh process, timed on a quiet machine and
while one other CPU-bound process (a busy Python loop) runs, for each thread
policy: torch's default (as many threads as cores) and the plugin's
(``xlt_fairseq.hardware.configure_threads``).

    python benchmarks/bench_cpu.py --workdir /tmp/xlt_bench --out benchmarks/results
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402

from xlt_fairseq.experiments.command import train_command  # noqa: E402

TASKS = {"ner": {"ner": ["aa", "bb"]}, "multitask": common.ALL_TASKS}


def argv(paths, which, **settings):
    return train_command(
        paths["data"],
        TASKS[which],
        {
            "arch": "xlt_e5_small",
            "decoder_layers": 2,
            "tokens_per_sample": 64,
            **common.COMMON,
            "max_update": 1000,
            **settings,
        },
    ).argv()


def p9(paths, which, rounds, n_batches):
    import torch

    fp32 = common.build_trainer(argv(paths, which))[2]
    bf16 = common.build_trainer(argv(paths, which, bf16_autocast=True))[2]
    batches = common.xlt_batches(fp32.task, n_batches, 16)

    def block(trainer):
        def go():
            for b in batches:
                trainer.train_step([b])
        return go

    cpu, wall = common.alternate({"fp32": block(fp32), "bf16": block(bf16)}, rounds)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    steps = len(batches)
    return {
        "updates_per_s": {k: steps / common.median(v) for k, v in cpu.items()},
        "speedup_bf16": common.ratio_stats(cpu["fp32"], cpu["bf16"]),
        "cpu_s": cpu,
        "wall_s": wall,
        "batches": steps,
    }


# ---- P10 ------------------------------------------------------------------------------------------------------------


def probe(args):
    """One policy, one measurement: seconds per NER update (wall clock) in this fresh process."""
    if args.policy == "plugin":
        from xlt_fairseq.hardware import configure_threads

        configure_threads()
    import torch

    paths = common.prepare(args.workdir)
    trainer = common.build_trainer(argv(paths, "ner"))[2]
    batches = common.xlt_batches(trainer.task, 4, 16)
    for b in batches[:2]:  # warm-up
        trainer.train_step([b])
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        for b in batches:
            trainer.train_step([b])
    per_update = (time.perf_counter() - t0) / (args.repeats * len(batches))
    print(json.dumps({"policy": args.policy, "threads": torch.get_num_threads(), "s_per_update": per_update}))


def busy():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def p10(args, rounds):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = {}
    for policy in ("torch", "plugin"):
        quiet, loaded = [], []
        for _ in range(rounds):
            for load in (False, True):
                hog = busy() if load else None
                try:
                    res = subprocess.run(
                        [sys.executable, __file__, "--probe", policy, "--workdir", args.workdir, "--repeats", "2"],
                        capture_output=True, text=True, env=env, timeout=1800,
                    )
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
                if res.returncode != 0:
                    raise RuntimeError(res.stderr[-3000:])
                r = json.loads([line for line in res.stdout.splitlines() if line.startswith("{")][-1])
                (loaded if load else quiet).append(r["s_per_update"])
        out[policy] = {
            "threads": r["threads"],
            "quiet_s_per_update": common.median(quiet),
            "loaded_s_per_update": common.median(loaded),
            "slowdown": common.ratio_stats(loaded, quiet),
        }
    return out


def main(argv_=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/xlt_bench")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--only", default="p9,p10")
    parser.add_argument("--probe", choices=("torch", "plugin"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv_)
    if args.probe:
        args.policy = args.probe
        common.quiet_logging()
        return probe(args)
    common.quiet_logging()
    paths = common.prepare(args.workdir)
    result = {"machine": common.machine()}
    only = args.only.split(",")
    if "p9" in only:
        common.set_threads(1)
        result["p9"] = {which: p9(paths, which, args.rounds, args.batches) for which in TASKS}
        print(json.dumps({k: v["speedup_bf16"]["median"] for k, v in result["p9"].items()}), flush=True)
    if "p10" in only:
        result["p10"] = p10(args, max(args.rounds // 2, 2))
        print(json.dumps({k: v["slowdown"]["median"] for k, v in result["p10"].items()}), flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "cpu.json")
    if os.path.exists(path):  # keep the part not re-run (--only)
        with open(path) as f:
            result = {**json.load(f), **result}
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main())
