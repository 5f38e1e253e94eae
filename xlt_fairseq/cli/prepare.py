# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Prepare every corpus of an experiment from a YAML manifest (tasks, languages,
files, formats, scenario) in one all-or-nothing run, and write a summary table
(prepare_summary.md / .json) next to the data. See docs/preprocessing.md.

    xlt-prepare manifest.yaml --encoder-dir encoder --destdir data-bin --workers 2
"""

import argparse
import logging
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlt-prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", help="YAML manifest")
    parser.add_argument("--encoder-dir", help="folder with sentencepiece.bpe.model and dict.txt (or encoder_dir:)")
    parser.add_argument("--destdir", help="data root to write (or destdir: in the manifest)")
    parser.add_argument("--workers", type=int, help="corpora prepared in parallel (default: manifest's, else 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.manifest import load_manifest
    from ..data.outputs import check_outputs
    from ..data.prepare import SUMMARY_MD, format_summary, prepare_many, summary_rows
    from .errors import run
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def body() -> int:
        manifest = load_manifest(args.manifest)
        encoder_dir = args.encoder_dir or manifest.encoder_dir
        destdir = args.destdir or manifest.destdir
        if not encoder_dir or not destdir:
            raise ValueError("give --encoder-dir and --destdir (or encoder_dir: and destdir: in the manifest)")
        workers = args.workers if args.workers is not None else (manifest.workers or 1)
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        check_outputs([("--destdir", destdir)], [("the manifest", args.manifest)])  # its corpora: prepare_many
        metas = prepare_many(
            manifest.specs, encoder_dir, destdir, workers, progress=not args.no_progress, extra_summary=manifest.scenario
        )
        print(format_summary(summary_rows(metas)), end="")
        print(f"prepared {len(metas)} corpora into {destdir} (summary: {destdir}/{SUMMARY_MD})")
        return 0

    return run(body)
