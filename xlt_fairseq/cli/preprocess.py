# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Encode a corpus with an encoder directory's sentencepiece model and
dictionary and add it, binarised, to a data root (one folder per task and
language; see docs/preprocessing.md for every format and option).

    xlt-preprocess ner --lang sw --encoder-dir ENC --destdir DATA_BIN \\
        --train train.conll --valid dev.conll [--test test.conll] [--format conll-space --map-label DATE=O]
    xlt-preprocess sentiment --lang en ... --train train.tsv --valid dev.tsv [--format marc-jsonl]
    xlt-preprocess mlm --lang yo ... --train text.txt [--valid dev.txt]
    xlt-preprocess translation --src-lang en --tgt-lang fr ... --train PREFIX --valid PREFIX
    xlt-preprocess tagging --name pos --lang en ... --train en_ewt-ud-train.conllu  (UPOS)
"""

import argparse
import json
import logging
from typing import List, Optional

from ..data.formats import FORMATS
from ..data.manifest import load_tier_file
from ..data.spec import CorpusSpec, add_spec_arguments, parse_label_map, spec_fields


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlt-preprocess", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="task", required=True)
    for name in ("ner", "sentiment", "mlm", "translation", "tagging"):
        p = sub.add_parser(name)
        if name == "tagging":
            p.add_argument("--name", dest="tagging_name", required=True, help="auxiliary task name, e.g. pos")
        p.add_argument("--encoder-dir", required=True, help="folder with sentencepiece.bpe.model and dict.txt")
        p.add_argument("--destdir", required=True, help="data root (shared by all corpora of an experiment)")
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
        add_spec_arguments(p, name)  # every other option, from CorpusSpec's fields
        p.add_argument("--tier-file", help="low-resource scenario: the subset fraction from this corpus' tier")
        p.add_argument("--workers", type=int, default=1, help="encoding processes")
    return parser


def spec_from_args(args: argparse.Namespace) -> CorpusSpec:
    options = {k: v for k, v in vars(args).items() if k in spec_fields() and v is not None}
    if "map_label" in options:
        options["map_label"] = parse_label_map(options["map_label"])
    spec = CorpusSpec(**options)
    if args.tier_file:
        if args.subsample is not None or args.max_examples is not None:
            raise ValueError("--tier-file decides the subset: drop --subsample/--max-examples")
        plan = load_tier_file(args.tier_file)
        tier = plan.tier_for(spec.task, spec.key, spec.langs)
        if tier and spec.train:
            spec.tier, spec.subsample, spec.floor = tier[0], (tier[1] if tier[1] < 1 else None), plan.floor
    return spec


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data import prepare
    from ..data.outputs import check_outputs
    from .errors import run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def body() -> int:
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        check_outputs([("--destdir", args.destdir)], [("--tier-file", args.tier_file)])  # the corpus: prepare_corpus
        spec = spec_from_args(args)
        meta = prepare.prepare_corpus(spec, args.encoder_dir, args.destdir, workers=args.workers)
        print(json.dumps({"task": meta["task"], "key": meta["key"], "splits": meta["splits"]}, ensure_ascii=False))
        return 0

    return run(body)
