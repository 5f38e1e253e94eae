# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Regenerate the paper's tables and figures from a results file written by
xlt-run-experiments: Tables 1-4 (mean ± std over seeds, relative
improvement over monolingual fine-tuning), the discriminator's accuracy
(language invariance), Figure 2 (metric against the percentage of training
data), Figure 3 (t-SNE before/after training) and an entity-type confusion
matrix, and for every NER cell each seed's F1 and the paired bootstrap 95 %
interval of its difference to the baseline (per language and for the mean over
the low-resource languages) from the stored predictions. Markdown + CSV + PNG;
a table without inputs is omitted with a note.

    xlt-report runs/tiny/results.jsonl [--out runs/tiny/report]
"""

import argparse
import logging
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.jsonl of xlt-run-experiments (several are merged)")
    parser.add_argument("--out", help="output folder (default: report/ next to the first results file)")
    parser.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib, no t-SNE)")
    parser.add_argument(
        "--baseline", help="system the paired bootstrap compares every other with (default: monolingual)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples of the test sentences (0: none)"
    )
    parser.add_argument("--bootstrap-seed", type=int, default=1, help="random seed of the resampling (default: 1)")
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
        from xlt_fairseq.experiments.report import make_report

        written = make_report(
            args.results,
            args.out,
            figures=not args.no_figures,
            baseline=args.baseline,
            bootstrap_samples=args.bootstrap,
            bootstrap_seed=args.bootstrap_seed,
        )
        for name, path in written.items():
            print(f"{name}	{path}")
        return 0

    return guarded(body, (OSError, ValueError))
