# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Train a sentencepiece vocabulary on raw text and write an encoder directory
laid out like an XLM-R release (``sentencepiece.bpe.model`` + ``dict.txt``).

    xlt-build-vocab --text train.en train.sw --vocab-size 8000 --out encoder/
"""

import argparse
import logging
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlt-build-vocab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", nargs="+", required=True, help="raw text files, one sentence per line")
    parser.add_argument("--vocab-size", type=int, required=True, help="number of sentencepiece pieces")
    parser.add_argument("--out", required=True, help="encoder directory to write")
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"], help="as XLM-R: unigram")
    parser.add_argument("--character-coverage", type=float, default=0.9995)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import run
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def body() -> int:
        from ..data.staging import signals_as_exceptions
        from ..data.vocab import build_vocab

        with signals_as_exceptions():
            build_vocab(args.text, args.vocab_size, args.out, args.model_type, args.character_coverage)
        return 0

    return run(body)
