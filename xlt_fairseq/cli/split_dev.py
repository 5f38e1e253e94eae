# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Split a development file into a model-selection half and a reporting half.

When no test split is available (../shared/data holds train and dev only),
selecting checkpoints on the same dev set the results are reported on inflates
them. This splits a dev file in two by the SHA-1 of each example's text, so the
split is deterministic, independent of file order, and identical examples always
land on the same side:

    xlt-split-dev ../shared/data/ner/sw/dev.conll --format conll \\
        --select dev-split/ner/sw/select.conll --report dev-split/ner/sw/report.conll

Formats: ``conll`` (token<TAB>tag blocks; the text is the tokens joined by
spaces) and ``tsv`` (label<TAB>text). Both outputs are written atomically; a bad
input line is reported as FILE:LINE and nothing is written.
"""

import argparse
import hashlib
import os
import json
import sys

from typing import List, Optional

from ..data.formats import read_classification, read_tagged
from ..data.outputs import check_file_output, check_outputs, new_temporary
from ..data.staging import os_errors, signals_as_exceptions, signals_deferred
from .errors import run


def side(text: str, salt: str) -> str:
    """``select`` or ``report``: the parity of the SHA-1 of ``salt + text``."""
    digest = hashlib.sha1((salt + text).encode("utf-8")).digest()
    return "report" if digest[-1] % 2 else "select"


def split(path, fmt, salt=""):
    halves = {"select": [], "report": []}
    if fmt == "conll":
        for sent in read_tagged(path, "conll"):
            block = "".join(f"{tok}\t{tag}\n" for tok, tag in zip(sent.tokens, sent.tags)) + "\n"
            halves[side(" ".join(sent.tokens), salt)].append(block)
    elif fmt == "tsv":
        for ex in read_classification(path, "tsv"):
            halves[side(ex.text, salt)].append(f"{ex.label}\t{ex.text}\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return halves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlt-split-dev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="the dev file to split")
    parser.add_argument("--format", choices=["conll", "tsv"], required=True)
    parser.add_argument("--select", required=True, help="output: the half used for model selection")
    parser.add_argument("--report", required=True, help="output: the half the results are reported on")
    parser.add_argument("--max-examples", type=int, help="keep at most this many examples per half (file order)")
    parser.add_argument("--salt", default="", help="text prepended before hashing (another split of the same file)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        with signals_as_exceptions():
            return _split_and_write(args)

    return run(body)


def _split_and_write(args) -> int:
    if args.max_examples is not None and args.max_examples < 1:
        raise ValueError(f"--max-examples must be at least 1, got {args.max_examples}")
    outputs = [("--select", args.select), ("--report", args.report)]
    check_outputs(outputs, [("input", args.input)])  # before any work
    for option, out in outputs:
        check_file_output(out, option)
    halves = split(args.input, args.format, args.salt)
    if args.max_examples:
        halves = {k: v[: args.max_examples] for k, v in halves.items()}
    for name in ("select", "report"):
        if not halves[name]:
            print(f"error: {args.input}: too few examples to split (the {name} half is empty)", file=sys.stderr)
            return 1
    temps = []
    try:
        for option, out in outputs:
            with os_errors(out):
                temps.append(new_temporary(out))  # before writing: a failed write leaves none behind
                with open(temps[-1], "w", encoding="utf-8") as f:
                    f.write("".join(halves[option[2:]]))
        check_outputs(outputs, [("input", args.input)])  # again, now
        with signals_deferred(), os_errors(args.select):  # both halves or neither
            for tmp, (_, out) in zip(temps, outputs):
                os.replace(tmp, out)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
    print(json.dumps({"input": args.input, "select": len(halves["select"]), "report": len(halves["report"])}))
    return 0
