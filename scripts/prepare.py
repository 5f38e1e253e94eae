#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Prepare every corpus of an experiment from a YAML manifest (tasks, languages,
files, formats, scenario) in one all-or-nothing run, and write a summary table
(prepare_summary.md / .json) next to the data. See docs/preprocessing.md.

    python scripts/prepare.py manifest.yaml --encoder-dir encoder --destdir data-bin --workers 2
"""

import argparse
import logging
import sys

from xlt_fairseq.data.binarize import EncoderVocabularyError
from xlt_fairseq.data.corpora import CorpusError
from xlt_fairseq.data.formats import DataFormatError
from xlt_fairseq.data.manifest import load_manifest
from xlt_fairseq.data.prepare import SUMMARY_MD, format_summary, prepare_many, summary_rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="YAML manifest")
    parser.add_argument("--encoder-dir", help="folder with sentencepiece.bpe.model and dict.txt (or encoder_dir:)")
    parser.add_argument("--destdir", help="data root to write (or destdir: in the manifest)")
    parser.add_argument("--workers", type=int, help="corpora prepared in parallel (default: manifest's, else 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        manifest = load_manifest(args.manifest)
        encoder_dir = args.encoder_dir or manifest.encoder_dir
        destdir = args.destdir or manifest.destdir
        if not encoder_dir or not destdir:
            raise ValueError("give --encoder-dir and --destdir (or encoder_dir: and destdir: in the manifest)")
        workers = args.workers or manifest.workers or 1
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        metas = prepare_many(
            manifest.specs,
            encoder_dir,
            destdir,
            workers,
            progress=not args.no_progress,
            extra_summary=manifest.scenario,
        )
    except (DataFormatError, EncoderVocabularyError, CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary_rows(metas)), end="")
    print(f"prepared {len(metas)} corpora into {destdir} (summary: {destdir}/{SUMMARY_MD})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
