#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Encode a corpus with an encoder directory's sentencepiece model and
dictionary and add it, binarised, to a data root (one folder per task and
language; see docs/preprocessing.md for every format and option).

    python scripts/preprocess.py ner --lang sw --encoder-dir ENC --destdir DATA_BIN \\
        --train train.conll --valid dev.conll [--test test.conll] [--format conll-space --map-label DATE=O]
    python scripts/preprocess.py sentiment --lang en ... --train train.tsv --valid dev.tsv [--format marc-jsonl]
    python scripts/preprocess.py mlm --lang yo ... --train text.txt [--valid dev.txt]
    python scripts/preprocess.py translation --src-lang en --tgt-lang fr ... --train PREFIX --valid PREFIX
    python scripts/preprocess.py tagging --name pos --lang en ... --train en_ewt-ud-train.conllu  (UPOS)
"""

import argparse
import json
import logging
import sys

from xlt_fairseq.data import prepare
from xlt_fairseq.data.binarize import EncoderVocabularyError
from xlt_fairseq.data.corpora import CorpusError
from xlt_fairseq.data.formats import FORMATS, MARC_LABELS, DataFormatError
from xlt_fairseq.data.manifest import load_tier_file, parse_label_map
from xlt_fairseq.data.tags import SCHEMES


def _labels(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True)
    for name in ("ner", "sentiment", "mlm", "translation", "tagging"):
        p = sub.add_parser(name)
        if name == "tagging":
            p.add_argument("--name", dest="tagging_name", required=True, help="auxiliary task name, e.g. pos")
            p.add_argument("--conllu-column", default="upos", help="conllu: upos, xpos or deprel")
        p.add_argument("--encoder-dir", required=True, help="folder with sentencepiece.bpe.model and dict.txt")
        p.add_argument("--destdir", required=True, help="data root (shared by all corpora of an experiment)")
        p.add_argument("--domain", default="general", help="domain label for --adversarial-target domain")
        p.add_argument("--format", choices=FORMATS[name], help=f"input format (default {FORMATS[name][0]})")
        for split in ("train", "valid", "test"):
            p.add_argument(f"--{split}-format", choices=FORMATS[name], help=f"format of --{split} (default --format)")
        if name == "translation":
            p.add_argument("--src-lang", required=True)
            p.add_argument("--tgt-lang", required=True)
            help_ = "file prefix: reads PREFIX.SRC_LANG and PREFIX.TGT_LANG (iwslt-xml: PREFIX.SRC_LANG.xml, ...)"
        else:
            p.add_argument("--lang", required=True, help="language code of the corpus")
            help_ = "file"
        p.add_argument("--train", help=f"training {help_} (omit for a zero-shot evaluation-only corpus)")
        p.add_argument("--valid", help=f"validation {help_}")
        p.add_argument("--test", help=f"test {help_}")
        if name != "mlm":
            p.add_argument("--max-positions", type=int, default=512, help="the encoder's positions")
        if name in ("ner", "sentiment", "tagging"):
            p.add_argument(
                "--map-label",
                action="append",
                default=[],
                metavar="FROM=TO",
                help="repeatable; NER maps entity types (DATE=O)",
            )
            p.add_argument("--labels", type=_labels, help="closed label set, comma-separated (NER: entity types)")
        if name == "ner":
            p.add_argument("--tag-scheme", choices=SCHEMES, default="iob2", help="converted to IOB2")
            p.add_argument("--strict-tags", action="store_true", help="invalid tag sequences are errors, not repaired")
        if name == "sentiment":
            p.add_argument("--drop-label", action="append", default=[], help="drop examples with this label")
            p.add_argument("--text-column", default="text", help="csv: column of the text")
            p.add_argument("--label-column", default="label", help="csv: column of the label")
            p.add_argument("--delimiter", default=",", help="csv: field delimiter (tab for TSV)")
            p.add_argument("--marc-labels", choices=MARC_LABELS, default="binary", help="marc-jsonl: 2 or 5 classes")
            p.add_argument("--include-title", action="store_true", help="marc-jsonl: title before the review body")
        if name == "mlm":
            p.add_argument("--tokens-per-sample", type=int, default=512, help="longer lines are split to fit")
        if name == "translation":
            p.add_argument("--max-length", type=int, help="drop training pairs with a side longer (pieces)")
            p.add_argument("--length-ratio", type=float, help="drop training pairs with a larger length ratio")
        p.add_argument("--subsample", type=float, metavar="FRACTION", help="keep this fraction of the training data")
        p.add_argument("--max-examples", type=int, help="keep at most this many training examples")
        p.add_argument("--tier-file", help="low-resource scenario: the subset fraction from this corpus' tier")
        p.add_argument("--seed", type=int, default=1, help="subset seed")
        p.add_argument("--floor", type=int, default=prepare.DEFAULT_FLOOR, help="warn when a subset is smaller")
        p.add_argument("--workers", type=int, default=1, help="encoding processes")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    options = {k: v for k, v in vars(args).items() if k in prepare.spec_fields() and v is not None}
    try:
        if "map_label" in options:
            options["map_label"] = parse_label_map(options["map_label"])
        spec = prepare.CorpusSpec(**options)
        if args.tier_file:
            if args.subsample is not None or args.max_examples is not None:
                raise ValueError("--tier-file decides the subset: drop --subsample/--max-examples")
            plan = load_tier_file(args.tier_file)
            tier = plan.tier_for(spec.task, spec.key, spec.langs)
            if tier and spec.train:
                spec.tier, spec.subsample, spec.floor = tier[0], (tier[1] if tier[1] < 1 else None), plan.floor
        meta = prepare.prepare_corpus(spec, args.encoder_dir, args.destdir, workers=args.workers)
    except (DataFormatError, EncoderVocabularyError, CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"task": meta["task"], "key": meta["key"], "splits": meta["splits"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
