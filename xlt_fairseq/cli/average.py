# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Average checkpoints into one (Schmidt et al., 2023: checkpoint averaging is a
consistent gain in zero- and few-shot cross-lingual transfer):

    # the last 3 numbered checkpoints of one run (keep them: no --keep-interval-updates 1)
    xlt-average --save-dir checkpoints/run1 --last 3 --out checkpoints/run1/checkpoint_avg.pt
    # run averaging: the best checkpoints of runs with different seeds, same data and architecture
    xlt-average --inputs seed1/checkpoint_best.pt seed2/checkpoint_best.pt seed3/checkpoint_best.pt --out avg.pt

The result loads wherever a checkpoint does (fairseq-generate, xlt-evaluate, xlt-export,
--finetune-from-model); it has no optimizer state, so it does not resume training.
"""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xlt-average", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--inputs", nargs="+", help="checkpoint files to average")
    which.add_argument("--save-dir", help="a run's checkpoint folder (with --last)")
    parser.add_argument("--last", type=int, default=3, help="with --save-dir: the N most recent numbered checkpoints")
    parser.add_argument("--out", required=True, help="the averaged checkpoint to write")
    return parser


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):
        from xlt_fairseq.averaging import AveragingError, average_checkpoints, last_checkpoints

        if args.last < 1:
            raise AveragingError(f"--last must be >= 1, not {args.last}")
        return average_checkpoints(args.inputs or last_checkpoints(args.save_dir, args.last), args.out)

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
