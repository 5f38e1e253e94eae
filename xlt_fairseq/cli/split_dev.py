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
input line is reported as FILE:LINE and nothing is written. Next to each half a
record, ``HALF.split.json``, says which half of which file it is: the experiment
runner labels a result scored on it ``dev-half``, never ``test``
(:mod:`xlt_fairseq.data.dev_split`).
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from ..data.dev_split import record, record_path, side, split  # noqa: F401  (side: scripts/split_dev.py's name)


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
    from ..data.staging import signals_as_exceptions
    from .errors import run

    def body() -> int:
        with signals_as_exceptions():
            return _split_and_write(args)

    return run(body)


def _split_and_write(args) -> int:
    from ..data.outputs import check_file_output, check_outputs, new_temporary
    from ..data.staging import os_errors, signals_deferred

    if args.max_examples is not None and args.max_examples < 1:
        raise ValueError(f"--max-examples must be at least 1, got {args.max_examples}")
    halves_out = [("select", "--select", args.select), ("report", "--report", args.report)]
    outputs = [(option, out) for _, option, out in halves_out]  # each half, and next to it its record
    outputs += [(f"{option} record", record_path(out)) for _, option, out in halves_out]
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
        for name, _, out in halves_out:
            text = "".join(halves[name])
            for path, content in (
                (out, text),
                (record_path(out), record(name, args.input, args.salt, len(halves[name]), text)),
            ):
                with os_errors(path):
                    temps.append((new_temporary(path), path))  # before writing: a failed write leaves none behind
                    with open(temps[-1][0], "w", encoding="utf-8", newline="") as f:
                        f.write(content)
        check_outputs(outputs, [("input", args.input)])  # again, now: a link may have been made meanwhile
        for option, out in outputs:
            check_file_output(out, option)
        with signals_deferred(), os_errors(args.select):  # both halves or neither
            for tmp, out in temps:
                os.replace(tmp, out)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
    print(json.dumps({"input": args.input, "select": len(halves["select"]), "report": len(halves["report"])}))
    return 0
