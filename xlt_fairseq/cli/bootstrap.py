# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-bootstrap: the paired bootstrap 95 % interval of the entity-F1 difference
between two systems on the same sentences, per language and for the mean over
languages, from stored predictions (no model is run). Each prediction file is
``LANG=PATH`` (or just ``PATH`` for one language); several files of one
language and system are its seeds (F1 averaged over them inside each
replicate). Files: ``xlt-evaluate --save-predictions`` / the experiment
runner's ``predictions/*.jsonl`` (they carry the gold tags), ``xlt-predict``'s
JSON Lines, or CoNLL ``word<TAB>tag`` (then give ``--gold``). Prints JSON.

    xlt-bootstrap --gold ner/sw/test.conll --a predA.conll --b predB.conll
    xlt-bootstrap --samples 1000 --seed 1 \\
        --a sw=mt1/sw.jsonl sw=mt2/sw.jsonl sw=mt3/sw.jsonl yo=mt1/yo.jsonl ... \\
        --b sw=ner1/sw.jsonl sw=ner2/sw.jsonl sw=ner3/sw.jsonl yo=ner1/yo.jsonl ...

See xlt_fairseq/experiments/bootstrap.py for the resampling scheme.
"""

import argparse
import json
import os
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

from .errors import run


def build_parser() -> argparse.ArgumentParser:
    from ..experiments.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_SAMPLES, DEFAULT_SEED

    parser = argparse.ArgumentParser(
        prog="xlt-bootstrap", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--a",
        nargs="+",
        action="extend",
        required=True,
        metavar="[LANG=]FILE",
        help="predictions of system A (one file per language and seed)",
    )
    parser.add_argument(
        "--b",
        nargs="+",
        action="extend",
        required=True,
        metavar="[LANG=]FILE",
        help="predictions of system B, the baseline (the difference is A - B)",
    )
    parser.add_argument(
        "--gold",
        nargs="+",
        action="extend",
        default=[],
        metavar="[LANG=]FILE",
        help="gold file per language (default: the gold tags the prediction files carry)",
    )
    parser.add_argument("--gold-format", default="conll", help="format of the gold files (default: conll)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="bootstrap replicates (default: 1000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed of the resampling (default: 1)")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="interval level (default: 0.95)")
    parser.add_argument("--output", help="also write the JSON here")
    return parser


def split_lang(value: str) -> tuple:
    """``LANG=PATH`` -> (LANG, PATH); a plain path (or one whose part before ``=`` looks like a folder) -> ("", PATH)."""
    lang, eq, path = value.partition("=")
    if eq and lang and os.sep not in lang and not os.path.exists(value):
        return lang, path
    return "", value


def by_language(values: List[str], what: str) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = OrderedDict()
    for v in values:
        lang, path = split_lang(v)
        out.setdefault(lang, []).append(path)
    if "" in out and len(out) > 1:
        raise ValueError(f"--{what}: name the language of every file (LANG=FILE) when there are several languages")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.staging import signals_as_exceptions

    def body() -> int:
        with signals_as_exceptions():  # SIGTERM and SIGHUP clean up as Ctrl-C does
            return _bootstrap(args)

    return run(body)


def _bootstrap(args) -> int:
    from ..data.outputs import check_file_output, check_outputs
    from ..experiments.bootstrap import bootstrap_files

    a, b = by_language(args.a, "a"), by_language(args.b, "b")
    inputs = [(f"--{what}", p) for what, files in (("a", a), ("b", b)) for paths in files.values() for p in paths]
    inputs += [("--gold", split_lang(v)[1]) for v in args.gold]
    check_outputs([("--output", args.output)], inputs)  # before any work
    if args.output:
        check_file_output(args.output, "--output")
    gold: Dict[str, str] = {}
    for lang, paths in by_language(args.gold, "gold").items():
        if len(paths) > 1:
            raise ValueError(f"--gold: {len(paths)} gold files for language {lang or '(none)'}")
        gold[lang] = paths[0]
    out = bootstrap_files(
        a,
        b,
        gold,
        samples=args.samples,
        seed=args.seed,
        confidence=args.confidence,
        gold_format=args.gold_format,
    )
    text = json.dumps(out, indent=1, ensure_ascii=False)
    if args.output:
        from ..data.textio import write_text_atomic

        write_text_atomic(args.output, text + "\n", inputs, "--output")  # the inputs checked again
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
