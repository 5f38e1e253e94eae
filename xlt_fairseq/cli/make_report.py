# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Regenerate the paper's tables and figures from a results file written by
xlt-run-experiments: Tables 1-4 (mean ± std over seeds, relative
improvement over monolingual fine-tuning), the discriminator's accuracy
(language invariance), Figure 2 (metric against the percentage of training
data), Figure 3 (t-SNE before/after training) and an entity-type confusion
matrix. Markdown + CSV + PNG; a table without inputs is omitted with a note.

    xlt-report runs/tiny/results.jsonl [--out runs/tiny/report]
"""

import argparse
import logging
import sys

from xlt_fairseq.experiments.report import make_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.jsonl of xlt-run-experiments (several are merged)")
    parser.add_argument("--out", help="output folder (default: report/ next to the first results file)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib, no t-SNE)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", force=True)
    if not args.no_figures:
        from xlt_fairseq.optional import MissingExtraError, require

        try:  # before anything is written, not after the tables
            require("matplotlib", "the report's figures (--no-figures for the tables alone)")
        except MissingExtraError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    from xlt_fairseq.data.outputs import check_outputs

    from .common import guarded

    def body():
        check_outputs([("--out", args.out)], [("results", p) for p in args.results])  # before any work
        written = make_report(args.results, args.out, figures=not args.no_figures)
        for name, path in written.items():
            print(f"{name}\t{path}")
        return 0

    return guarded(body, (OSError, ValueError))
