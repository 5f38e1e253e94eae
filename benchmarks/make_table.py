#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Markdown table of the benchmark results (training.json and generate.json).

python benchmarks/make_table.py benchmarks/results > benchmarks/results/table.md
"""

import json
import os
import sys

NAMES = {
    "ner": "NER tagging vs `sentence_prediction`",
    "sentiment": "sentiment vs `sentence_prediction`",
    "mlm": "masked LM vs `masked_lm`",
    "translation": "translation vs `translation` (transformer)",
}


def _memory(mem, a, b) -> str:
    """Peak RSS of variants a / b (and what each added), MB, or "" when not measured."""
    if a not in mem:
        return ""
    return (
        f"{mem[a]['peak_rss_mb']:.0f} / {mem[b]['peak_rss_mb']:.0f} "
        f"({mem[a]['added_mb']:.0f} / {mem[b]['added_mb']:.0f})"
    )


def _paired_row(name, what, a, b, res, bound, memory) -> str:
    """A table row: the two variants' values, the CPU-time ratio (median [min, max]), the wall ratio, the
    bound (``(">=", 0.97)``) and whether the median meets it, and the memory column."""
    op, x = bound
    return (
        f"| {name} | {what} | {a} | {b} | {_r(res['ratio'])} | {res['wall_ratio']['median']:.3f} | {op} {x:.2f} "
        f"({_met(res['ratio']['median'], x, op == '>=')}) | {memory} |"
    )


def _r(r):
    return f"**{r['median']:.3f}** [{r['min']:.3f}, {r['max']:.3f}]"


def _met(value, target, higher_is_better):
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "missed"


def table(results_dir):
    train = json.load(open(os.path.join(results_dir, "training.json")))
    gen_path = os.path.join(results_dir, "generate.json")
    gen = json.load(open(gen_path)) if os.path.exists(gen_path) else None
    mem = train.get("memory", {})
    rows = [
        "| | comparison | xlt | vanilla | ratio, median [min, max] | wall-clock ratio | target | "
        "peak RSS xlt / vanilla (MB above imports) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("p1", "p1base"):
        if key not in train:
            continue
        dims = train[key]["dims"]
        size = f"{dims['layers']}x{dims['dim']}"
        for name, label in NAMES.items():
            res = train[key][name]
            m = ""
            if key == "p1":
                m = _memory(mem, f"p1:{name}:xlt", f"p1:{name}:vanilla")
            a, b = f"{res['xlt_words_per_s']:.0f} w/s", f"{res['vanilla_words_per_s']:.0f} w/s"
            rows.append(_paired_row(f"P1 {size}", label, a, b, res, (">=", 0.97), m))
    if "p2" in train:
        res = train["p2"]
        m = _memory(mem, "p2:on", "p2:off")
        a, b = f"{res['on_s_per_update'] * 1000:.0f} ms/update", f"{res['off_s_per_update'] * 1000:.0f} ms/update"
        rows.append(_paired_row("P2", "multi-task update, adversarial branch on (xlt) vs off", a, b, res, ("<=", 1.03), m))
    if "p3" in train:
        res = train["p3"]
        m = _memory(mem, "p3:multi", "p3:single")
        a, b = f"{res['multi_s_per_update'] * 1000:.0f} ms", f"{res['singles_s_per_multi_update'] * 1000:.0f} ms"
        what = "one multi-task update (xlt) vs the 4 single-task updates it replaces"
        rows.append(_paired_row("P3", what, a, b, res, ("<=", 1.0), m))
    if gen is not None:
        gm = gen.get("memory", {})
        m = ""
        if "xlt" in gm:
            m = (
                f"{gm['xlt']['peak_rss_mb']:.0f} / {gm['vanilla']['peak_rss_mb']:.0f} "
                f"({gm['xlt']['added_mb']:.0f} / {gm['vanilla']['added_mb']:.0f})"
            )
        rows.append(
            f"| P4 | fairseq-generate, xlt translation head vs transformer (beam {gen['beam']}) | "
            f"{gen['xlt_sentences_per_s']:.1f} sent/s | {gen['vanilla_sentences_per_s']:.1f} sent/s | "
            f"{_r(gen['ratio'])} | {gen['wall_ratio']['median']:.3f} | >= 0.95 "
            f"({_met(gen['ratio']['median'], 0.95, True)}) | {m} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")))
