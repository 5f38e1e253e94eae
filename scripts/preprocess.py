#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Encode a corpus with an encoder directory's sentencepiece model and
dictionary and add it, binarised, to a data root (one folder per task and
language; see README "Data layout").

    python scripts/preprocess.py ner --lang sw --encoder-dir ENC --destdir DATA_BIN \\
        --train train.conll --valid dev.conll [--test test.conll]
    python scripts/preprocess.py sentiment --lang en ... --train train.tsv --valid dev.tsv
    python scripts/preprocess.py mlm --lang yo ... --train text.txt [--valid dev.txt]
    python scripts/preprocess.py translation --src-lang en --tgt-lang fr ... --train PREFIX --valid PREFIX
"""

import argparse
import json
import logging
import sys

from xlt_fairseq.data import prepare
from xlt_fairseq.data.binarize import EncoderVocabularyError
from xlt_fairseq.data.corpora import CorpusError
from xlt_fairseq.data.formats import DataFormatError


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True)
    for name in ("ner", "sentiment", "mlm", "translation"):
        p = sub.add_parser(name)
        p.add_argument("--encoder-dir", required=True, help="folder with sentencepiece.bpe.model and dict.txt")
        p.add_argument("--destdir", required=True, help="data root (shared by all corpora of an experiment)")
        p.add_argument("--domain", default="general", help="domain label for --adversarial-target domain")
        if name == "translation":
            p.add_argument("--src-lang", required=True)
            p.add_argument("--tgt-lang", required=True)
            help_ = "file prefix: reads PREFIX.SRC_LANG and PREFIX.TGT_LANG"
        else:
            p.add_argument("--lang", required=True, help="language code of the corpus")
            help_ = "file"
        p.add_argument("--train", help=f"training {help_} (omit for a zero-shot evaluation-only corpus)")
        p.add_argument("--valid", help=f"validation {help_}")
        p.add_argument("--test", help=f"test {help_}")
        if name != "mlm":
            p.add_argument("--max-positions", type=int, default=512, help="the encoder's positions")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    files = {"train": args.train, "valid": args.valid, "test": args.test}
    files = {k: v for k, v in files.items() if v}
    try:
        if args.task == "ner":
            meta = prepare.prepare_tagging(
                "ner", args.lang, files, args.encoder_dir, args.destdir, args.domain, args.max_positions
            )
        elif args.task == "sentiment":
            meta = prepare.prepare_classification(
                "sentiment", args.lang, files, args.encoder_dir, args.destdir, args.domain, args.max_positions
            )
        elif args.task == "mlm":
            meta = prepare.prepare_mlm(args.lang, files, args.encoder_dir, args.destdir, args.domain)
        else:
            meta = prepare.prepare_translation(
                args.src_lang, args.tgt_lang, files, args.encoder_dir, args.destdir, args.domain, args.max_positions
            )
    except (DataFormatError, EncoderVocabularyError, CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"task": meta["task"], "key": meta["key"], "splits": meta["splits"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
