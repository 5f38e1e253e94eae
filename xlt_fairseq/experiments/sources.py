# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Ranking candidate source languages for a target language on its dev set.

From the result lines of zero-shot runs (the target not among the run's
training languages), scored on the target's dev file or a half of it
(``eval_split`` ``dev`` or ``dev-half``: a test file is never used for a
choice), each candidate source set (the run's training languages) gets the mean
F1 over its seeds, each seed's F1, and the paired bootstrap 95 % interval of its
difference to the best candidate on the same sentences (:mod:`.bootstrap`, from
the stored predictions). Ranked per selection rule, best first.

    python -m xlt_fairseq.experiments.sources runs/sources/results.jsonl --target zu
"""

import argparse
import json
import os
import sys
from collections import OrderedDict
from typing import List, Optional, Sequence

from .bootstrap import DEFAULT_SAMPLES, DEFAULT_SEED, language_from_files, paired_bootstrap

DEV_SPLITS = ("dev", "dev-half")


def rank_sources(
    rows: Sequence[dict],
    target: str,
    task: str = "ner",
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
) -> List[dict]:
    """One entry per (selection rule, source set), best first within a rule (see the module docstring)."""
    groups = OrderedDict()
    for r in rows:
        if r.get("task") != task or r.get("lang") != target or target in r.get("train_languages", []):
            continue
        if r.get("eval_split") not in DEV_SPLITS:
            continue
        key = (r["selection_rule"], "+".join(r["train_languages"]))
        groups.setdefault(key, {})[r["seed"]] = r  # the last line of a seed wins
    if not groups:
        raise ValueError(f"no zero-shot {task} result on a {target} dev file (eval_split dev or dev-half)")
    out = []
    for rule in OrderedDict.fromkeys(k[0] for k in groups):
        ranked = []
        for (rl, sources), by_seed in groups.items():
            if rl != rule:
                continue
            lines = [by_seed[s] for s in sorted(by_seed)]
            f1s = [float(x["metrics"]["f1"]) for x in lines]
            ranked.append(
                {
                    "selection_rule": rule,
                    "target": target,
                    "sources": sources,
                    "systems": sorted({x["system"] for x in lines}),
                    "seeds": sorted(by_seed),
                    "f1_per_seed": f1s,
                    "f1": sum(f1s) / len(f1s),
                    "eval_paths": sorted({str(x.get("eval_path")) for x in lines}),
                    "_lines": lines,
                }
            )
        ranked.sort(key=lambda e: -e["f1"])
        best = ranked[0]
        for rank, e in enumerate(ranked, start=1):
            e["rank"] = rank
            e["diff_to_best"], e["ci_to_best"] = 0.0, [0.0, 0.0]
            if e is not best:
                e["diff_to_best"], e["ci_to_best"] = _to_best(e, best, samples, seed)
        for e in ranked:
            del e["_lines"]
        out += ranked
    return out


def _to_best(e: dict, best: dict, samples: int, seed: int):
    """(difference, interval) of ``e`` - ``best`` on the same sentences; (None, None) when they cannot be paired."""
    if e["eval_paths"] != best["eval_paths"] or len(e["eval_paths"]) != 1:
        return None, None
    a = [x.get("predictions") for x in e["_lines"]]
    b = [x.get("predictions") for x in best["_lines"]]
    if not all(p and os.path.exists(p) for p in a + b):
        return None, None
    r = paired_bootstrap([language_from_files(a, b, name=e["target"])], samples, seed)["languages"][e["target"]]
    return r["diff"], r["ci"]


def main(argv: Optional[List[str]] = None) -> int:
    from .result_tables import load_many

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="results.jsonl of xlt-run-experiments (several are merged)")
    parser.add_argument("--target", required=True, help="the target language")
    parser.add_argument("--task", default="ner")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        ranked = rank_sources(load_many(args.results), args.target, args.task, args.samples, args.seed)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(ranked, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
