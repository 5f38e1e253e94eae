# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Run an experiment grid (systems x scenarios x tasks x languages x seeds) from a
YAML file: prepare each scenario's data, train every run with fairseq-train,
select checkpoints on dev sets, evaluate them on every test set, and append one
JSON line per (run, test set, selection rule) to OUT/results.jsonl. Finished runs
are skipped, so an interrupted grid resumes. See docs/experiments.md.

    xlt-run-experiments examples/experiments/tiny.yaml --out runs/tiny
    xlt-report runs/tiny/results.jsonl
"""

import argparse
import json
import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment YAML (examples/experiments/*.yaml)")
    parser.add_argument("--out", help="output folder (default: the config's out:, else ./runs/NAME)")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="run only runs whose id contains one of these")
    parser.add_argument("--max-runs", type=int, help="stop after starting this many unfinished runs")
    parser.add_argument("--keep-going", action="store_true", help="log a failed run (failures.jsonl) and go on")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep every validated checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log at INFO level")
    args = parser.parse_args(argv)
    from xlt_fairseq.experiments.grid import ConfigError, load_experiment
    from xlt_fairseq.experiments.runner import RunFailed, Runner, default_out
    from xlt_fairseq.hardware import configure_threads

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s", force=True
    )
    from xlt_fairseq.data.outputs import check_outputs

    from .common import guarded

    def body():
        check_outputs([("--out", args.out)], [("config", args.config)])  # before any work
        exp = load_experiment(args.config)
        out = args.out or default_out(exp)
        check_outputs([("--out", out)], [("config", args.config)])  # before any work
        runner = Runner(exp, out, progress=not args.no_progress, keep_checkpoints=args.keep_checkpoints)
        if args.dry_run:
            for run in runner.plan():
                print(json.dumps(run))
            return 0
        # SIGTERM, SIGHUP and Ctrl-C stop the training in progress too (its whole process group)
        counts = runner.run(max_runs=args.max_runs, only=args.only, keep_going=args.keep_going)
        print(json.dumps({"out": runner.out, "results": runner.results, **counts}))
        return 0

    return guarded(body, (ConfigError, RunFailed, ValueError, RuntimeError))
