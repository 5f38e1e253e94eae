"""The numbers docs/results.md reads off the ner_tiers grid: per tier, system and selection rule the NER F1 on each
language's reporting half (mean over the seeds run), the mean over sw/yo/zu, and the issue's three targets.

    python examples/experiments/ner_tiers_summary.py runs/tiers_a/results.jsonl runs/tiers_b/results.jsonl \
        [--probe runs/ner_tiers_report/probe.csv] > runs/ner_tiers_summary.md
"""

import argparse
import csv
import statistics
import sys
from collections import defaultdict

from xlt_fairseq.experiments.result_tables import load_many

LOW = ("sw", "yo", "zu")
TIERS = ("tier-1pct", "tier-10pct", "tier-100pct")


def table(rows):
    """{(scenario, rule, system): {"per_seed": {seed: mean F1 sw/yo/zu}, lang: [F1 per seed]}}"""
    cells = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        system = r["system"]
        cells[(r["scenario"], r["selection_rule"], system)][r["lang"]][(r.get("target"), r["seed"])] = r["metrics"][
            "f1"
        ]
    out = {}
    for key, by_lang in cells.items():
        # a per-language system (monolingual) has one run per language: its seed's mean is over those runs
        seeds = sorted({s for lang in LOW for (_, s) in by_lang.get(lang, {})})
        per_seed = {}
        for s in seeds:
            scores = [v for lang in LOW for (t, s2), v in by_lang.get(lang, {}).items() if s2 == s]
            if len(scores) == len(LOW):
                per_seed[s] = statistics.mean(scores)
        langs = {lang: [v for (_, s), v in sorted(by_lang.get(lang, {}).items(), key=lambda kv: kv[0][1])] for lang in
                 ("en",) + LOW}
        out[key] = {"per_seed": per_seed, **langs}
    return out


def fmt(values):
    if not values:
        return "–"
    m = statistics.mean(values)
    return f"{m:.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "") + f" ({len(values)})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--probe", help="the report's probe.csv (target 3)")
    args = parser.parse_args(argv)
    rows = load_many(args.results)
    cells = table(rows)
    titles = {r["system"]: r["system_title"] for r in rows}
    order = list(dict.fromkeys(r["system"] for r in sorted(rows, key=lambda r: r["system_order"])))
    print("| tier | rule | system | en | sw | yo | zu | **mean sw/yo/zu** (seeds) |")
    print("|---|---|---|---|---|---|---|---|")
    for tier in TIERS:
        for rule in ("target-dev", "english-dev"):
            for system in order:
                c = cells.get((tier, rule, system))
                if not c:
                    continue
                print(
                    f"| {tier} | {rule} | {titles[system]} | {fmt(c['en'])} | {fmt(c['sw'])} | {fmt(c['yo'])} | "
                    f"{fmt(c['zu'])} | **{fmt(list(c['per_seed'].values()))}** |"
                )
    print()

    def mean_of(tier, rule, system):
        c = cells.get((tier, rule, system))
        return (statistics.mean(c["per_seed"].values()), len(c["per_seed"])) if c and c["per_seed"] else (None, 0)

    for rule in ("target-dev", "english-dev"):
        cl, n_cl = mean_of("tier-1pct", rule, "cross_lingual")
        baselines = ("cross_lingual", "monolingual", "multilingual")  # the paper's baselines 1-3
        candidates = [(mean_of("tier-1pct", rule, s), s) for s in order if s not in baselines]
        candidates = [(m, n, s) for (m, n), s in candidates if m is not None]
        if cl is not None and candidates:
            best, n, system = max(candidates)
            verdict = "met" if best >= cl + 0.05 else "missed"
            print(
                f"- Target 1 ({rule}): best configuration at 1 % {titles[system]} {best:.3f} ({n} seeds) vs "
                f"cross-lingual {cl:.3f} ({n_cl} seeds) + 0.05 = {cl + 0.05:.3f}: **{verdict}** "
                f"(difference {best - cl:+.3f})"
            )
        full, n_f = mean_of("tier-100pct", rule, "full")
        mono, n_m = mean_of("tier-100pct", rule, "monolingual")
        if full is not None and mono is not None:
            verdict = "met" if full >= mono - 0.01 else "missed"
            print(
                f"- Target 2 ({rule}): at 100 % full {full:.3f} ({n_f} seeds) vs monolingual {mono:.3f} ({n_m}) - "
                f"0.01: **{verdict}** (difference {full - mono:+.3f})"
            )
    if args.probe:
        with open(args.probe, encoding="utf-8") as f:
            probes = {p["system"]: p for p in csv.DictReader(f) if p["scenario"] == "tier-1pct"}
        base, _ = mean_of("tier-1pct", "target-dev", "multilingual")
        for system, p in probes.items():
            f1, n = mean_of("tier-1pct", "target-dev", system)
            if f1 is None or base is None:
                continue
            near = float(p["probe_acc_after"]) - float(p["chance"]) <= 0.10
            kept = f1 >= base - 0.01
            print(
                f"- Target 3, {titles[system]}: probe {float(p['probe_acc_after']):.3f} (chance {float(p['chance']):.2f}, "
                f"input {float(p['probe_acc_input']):.3f}), F1 {f1:.3f} vs lambda 0 {base:.3f}: "
                f"**{'met' if near and kept else 'missed'}**"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
