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
            if key == "p1" and f"p1:{name}:xlt" in mem:
                mx, mv = mem[f"p1:{name}:xlt"], mem[f"p1:{name}:vanilla"]
                m = f"{mx['peak_rss_mb']:.0f} / {mv['peak_rss_mb']:.0f} ({mx['added_mb']:.0f} / {mv['added_mb']:.0f})"
            rows.append(
                f"| P1 {size} | {label} | {res['xlt_words_per_s']:.0f} w/s | {res['vanilla_words_per_s']:.0f} w/s | "
                f"{_r(res['ratio'])} | {res['wall_ratio']['median']:.3f} | >= 0.97 "
                f"({_met(res['ratio']['median'], 0.97, True)}) | {m} |"
            )
    if "p2" in train:
        res = train["p2"]
        m = ""
        if "p2:on" in mem:
            m = (
                f"{mem['p2:on']['peak_rss_mb']:.0f} / {mem['p2:off']['peak_rss_mb']:.0f} "
                f"({mem['p2:on']['added_mb']:.0f} / {mem['p2:off']['added_mb']:.0f})"
            )
        rows.append(
            f"| P2 | multi-task update, adversarial branch on (xlt) vs off | {res['on_s_per_update'] * 1000:.0f} "
            f"ms/update | {res['off_s_per_update'] * 1000:.0f} ms/update | {_r(res['ratio'])} | "
            f"{res['wall_ratio']['median']:.3f} | <= 1.03 ({_met(res['ratio']['median'], 1.03, False)}) | {m} |"
        )
    if "p3" in train:
        res = train["p3"]
        m = ""
        if "p3:multi" in mem:
            m = (
                f"{mem['p3:multi']['peak_rss_mb']:.0f} / {mem['p3:single']['peak_rss_mb']:.0f} "
                f"({mem['p3:multi']['added_mb']:.0f} / {mem['p3:single']['added_mb']:.0f})"
            )
        rows.append(
            f"| P3 | one multi-task update (xlt) vs the 4 single-task updates it replaces | "
            f"{res['multi_s_per_update'] * 1000:.0f} ms | {res['singles_s_per_multi_update'] * 1000:.0f} ms | "
            f"{_r(res['ratio'])} | {res['wall_ratio']['median']:.3f} | <= 1.00 "
            f"({_met(res['ratio']['median'], 1.0, False)}) | {m} |"
        )
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
