"""The numbers docs/results.md reads off the ner_tiers grid: per tier, system and selection rule the NER F1 on each
language's reporting half (mean over the seeds run), the mean over sw/yo/zu, the issue's three targets, and Figure 2
over every tier.

    python examples/experiments/ner_tiers_summary.py runs/tiers_c/results.jsonl runs/tiers_d/results.jsonl \
        [--previous docs/results] [--probe docs/results/probe.csv] [--fig2 docs/results] > summary.md

``--previous`` adds the cells of an earlier part of the grid from its report folder (``table1_ner.csv``: F1 per
language, mean ± std over its seeds; ``fig2_ner.csv``: the mean over sw/yo/zu with its std over seeds), for the
(tier, rule, system, language) cells the results files do not have: parts of a grid whose results files are gone
still count, marked †. A single-seed cell of the earlier part is that seed's score, so it joins the results files'
seeds of the same cell (a seed's mean over sw/yo/zu, then mean ± std over seeds); a cell still mixing sources takes
the mean of its languages' means (no std).
"""

import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict

from xlt_fairseq.experiments.figures import plot_data_fraction
from xlt_fairseq.experiments.result_tables import load_many

LOW = ("sw", "yo", "zu")
TIERS = {"tier-1pct": 1.0, "tier-10pct": 10.0, "tier-100pct": 100.0}
RULES = ("target-dev", "english-dev")
PAPER_SYSTEMS = ("monolingual", "cross_lingual", "multilingual", "adversarial", "multitask", "full")


def _mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


class Cell:
    """One (tier, rule, system): per language (mean, std, n, from an earlier part?), and the mean over sw/yo/zu."""

    def __init__(self):
        self.langs = {}
        self.mean = None  # (mean, std or None, n, earlier?)


def cells_of(rows):
    by = defaultdict(lambda: defaultdict(dict))
    earlier = set()  # (key, lang): a value from an earlier part's report folder
    for r in rows:
        key = (r["scenario"], r["selection_rule"], r["system"])
        by[key][r["lang"]][r["seed"]] = r["metrics"]["f1"]
        if r.get("earlier"):
            earlier.add((key, r["lang"]))
    out = {}
    for key, langs in by.items():
        c = out[key] = Cell()
        for lang, seeds in langs.items():
            m, s = _mean_std(list(seeds.values()))
            c.langs[lang] = (m, s, len(seeds), (key, lang) in earlier)
        # a per-language system (monolingual) has one run per language: a seed's mean is over those runs
        common = set.intersection(*(set(langs.get(lang, {})) for lang in LOW))
        if common:
            m, s = _mean_std([statistics.mean(langs[lang][seed] for lang in LOW) for seed in sorted(common)])
            c.mean = (m, s, len(common), any((key, lang) in earlier for lang in LOW))
    return out


def earlier_rows(rows, folder):
    """The earlier part's single-seed cells (table1_ner.csv rows with n = 1) as result rows, where the results
    files lack that (tier, rule, system, language, seed): that seed's score, so later seeds of the cell join it."""
    have = {(r["scenario"], r["selection_rule"], r["system"], r["lang"], r["seed"]) for r in rows}
    out = []
    for r in _read_csv(os.path.join(folder, "table1_ner.csv")):
        if r["metric"] != "f1" or int(r["n"]) != 1:
            continue
        seed = int(r["seeds"])
        if (r["scenario"], r["selection_rule"], r["system"], r["lang"], seed) in have:
            continue
        out.append({"scenario": r["scenario"], "selection_rule": r["selection_rule"], "system": r["system"],
                    "system_title": r["system_title"], "lang": r["lang"], "seed": seed,
                    "metrics": {"f1": float(r["mean"])}, "earlier": True})
    return out


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _num(v):
    return None if v in ("", None) else float(v)


def add_previous(cells, titles, folder):
    """Fills the cells the results files lack from an earlier report folder (marked as earlier)."""
    for r in _read_csv(os.path.join(folder, "table1_ner.csv")):
        if r["metric"] != "f1":
            continue
        titles.setdefault(r["system"], r["system_title"])
        c = cells.setdefault((r["scenario"], r["selection_rule"], r["system"]), Cell())
        if r["lang"] not in c.langs:
            c.langs[r["lang"]] = (float(r["mean"]), _num(r["std"]), int(r["n"]), True)
    for r in _read_csv(os.path.join(folder, "fig2_ner.csv")):
        c = cells.get((r["scenario"], r["selection_rule"], r["system"]))
        if c is None or c.mean is not None:
            continue
        if all(c.langs.get(lang, (0, 0, 0, False))[3] for lang in LOW):  # the whole cell is the earlier part's
            c.mean = (float(r["mean"]), _num(r["std"]), int(r["n"]), True)
    for c in cells.values():  # a mixed cell: the mean of its languages' means
        if c.mean is None and all(lang in c.langs for lang in LOW):
            n = min(c.langs[lang][2] for lang in LOW)
            c.mean = (statistics.mean(c.langs[lang][0] for lang in LOW), None, n, True)


def fmt(value):
    if value is None:
        return "–"
    m, s, n, earlier = value
    return f"{m:.3f}" + (f" ± {s:.3f}" if s is not None else "") + f" ({n}){' †' if earlier else ''}"


def fig2_points(cells, titles):
    points = []
    for (tier, rule, system), c in cells.items():
        if system not in PAPER_SYSTEMS or c.mean is None or tier not in TIERS:
            continue
        pct = 0.0 if system == "cross_lingual" else TIERS[tier]
        if system == "cross_lingual" and any(p["system"] == system and p["selection_rule"] == rule for p in points):
            continue  # English only: the same training at every tier
        m, s, n, _ = c.mean
        points.append(
            {"task": "ner", "selection_rule": rule, "system": system, "system_title": titles[system],
             "scenario": tier, "percent_training_data": pct, "metric": "f1", "mean": round(m, 6),
             "std": "" if s is None else round(s, 6), "n": n}
        )
    points.sort(key=lambda p: (p["selection_rule"], PAPER_SYSTEMS.index(p["system"]), p["percent_training_data"]))
    return points


def print_times(logs):
    """The table of wall time, CPU time and peak memory per run, from run_queue.sh's /usr/bin/time lines."""
    print("| run | queue | wall | CPU (user + sys) | peak RSS |")
    print("|---|---|---|---|---|")
    wall_all = cpu_all = 0.0
    for log in logs:
        queue = os.path.basename(os.path.dirname(os.path.abspath(log)))
        with open(log, encoding="utf-8") as f:
            for line in f:
                if not line.startswith("time "):
                    continue
                _, run, *fields = line.split()
                values = dict(field.split("=") for field in fields)
                wall, cpu = float(values["wall"]), float(values["user"]) + float(values["sys"])
                wall_all, cpu_all = wall_all + wall, cpu_all + cpu
                print(f"| `{run}` | {queue} | {wall / 60:.1f} min | {cpu / 60:.1f} min | "
                      f"{int(values['maxrss_kb']) / 2**20:.1f} GiB |")
    print(f"| **all** | | **{wall_all / 3600:.2f} h** | **{cpu_all / 3600:.2f} h** | |")
    print()


SWEEP_FIELDS = (  # probe.csv column, heading: per system the mean over its seeds' rows
    ("probe_acc_after", "probe after"),
    ("probe_acc_raw_after", "raw probe after"),
    ("top5_variance_after", "top-5 variance after"),
    ("silhouette_after", "silhouette after"),
)


def print_sweep(probes, titles, mean_of):
    """The lambda sweep's table: per system with features at 1 %, the mean F1 on sw/yo/zu (target-dev) and the
    mean over its seeds of each language-invariance measure (a measure an older probe.csv lacks: –)."""
    print()
    print("| system (1 %) | mean F1 sw/yo/zu (seeds) | " + " | ".join(h for _, h in SWEEP_FIELDS) + " (seeds) |")
    print("|---|---|" + "---|" * len(SWEEP_FIELDS))
    for system, seeds in probes.items():
        f1, n = mean_of("tier-1pct", "target-dev", system)
        cols = []
        for field, _ in SWEEP_FIELDS:
            values = [float(p[field]) for p in seeds.values() if p.get(field) not in (None, "")]
            cols.append(f"{statistics.mean(values):.3f}" if values else "–")
        f1_text = "–" if f1 is None else f"{f1:.3f} ({n})"
        print(f"| {titles.get(system, system)} | {f1_text} | " + " | ".join(cols) + f" ({len(seeds)}) |")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*")
    parser.add_argument("--previous", action="append", default=[], help="an earlier part's report folder")
    parser.add_argument("--probe", action="append", default=[], help="a report's probe.csv (target 3)")
    parser.add_argument("--fig2", help="folder for fig2_ner_all.csv and fig2_ner_all_<rule>.png over every tier")
    parser.add_argument("--times", action="append", default=[], help="a run_queue.sh queue.log: the time per run")
    args = parser.parse_args(argv)
    if args.times:
        print_times(args.times)
    rows = load_many(args.results) if args.results else []
    order = list(dict.fromkeys(r["system"] for r in sorted(rows, key=lambda r: r["system_order"])))
    for folder in args.previous:
        rows += earlier_rows(rows, folder)
    cells = cells_of(rows)
    titles = {r["system"]: r["system_title"] for r in rows}
    for folder in args.previous:
        add_previous(cells, titles, folder)
        order += [s for s in dict.fromkeys(r["system"] for r in _read_csv(os.path.join(folder, "table1_ner.csv")))
                  if s not in order]
    order.sort(key=lambda s: (PAPER_SYSTEMS.index(s) if s in PAPER_SYSTEMS else len(PAPER_SYSTEMS)))
    if not cells:
        return 0
    print("| tier | rule | system | en | sw | yo | zu | **mean sw/yo/zu** (seeds) |")
    print("|---|---|---|---|---|---|---|---|")
    for tier in TIERS:
        for rule in RULES:
            for system in order:
                c = cells.get((tier, rule, system))
                if not c:
                    continue
                langs = " | ".join(fmt(c.langs.get(lang)) for lang in ("en",) + LOW)
                print(f"| {tier} | {rule} | {titles[system]} | {langs} | **{fmt(c.mean)}** |")
    if any(c.mean and c.mean[3] or any(v[3] for v in c.langs.values()) for c in cells.values()):
        print("\n† from an earlier part of the grid (its report folder); a mixed cell is the mean of its languages.")
    print()

    def mean_of(tier, rule, system):
        c = cells.get((tier, rule, system))
        return (c.mean[0], c.mean[2]) if c and c.mean else (None, 0)

    for rule in RULES:
        cl, n_cl = mean_of("tier-1pct", rule, "cross_lingual")
        # the paper's baselines 1-3, and multilingual's training under other names (lambda 0, a longer cap)
        baselines = ("cross_lingual", "monolingual", "multilingual", "grl_lambda_0", "multilingual_cap_1200")
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
        for tier in TIERS:
            full, n_f = mean_of(tier, rule, "full")
            mono, n_m = mean_of(tier, rule, "monolingual")
            if full is not None and mono is not None:
                verdict = "met" if full >= mono - 0.01 else "missed"
                label = "Target 2" if tier == "tier-100pct" else "(target 2's comparison)"
                print(
                    f"- {label} ({rule}): at {tier} full {full:.3f} ({n_f} seeds) vs monolingual {mono:.3f} "
                    f"({n_m}) - 0.01: **{verdict}** (difference {full - mono:+.3f})"
                )
    # target 3: per system the probe after training averaged over its seeds (every probe.csv given; a seed
    # measured twice counts once, the later file wins), against lambda 0's F1 (grl_lambda_0, else multilingual)
    probes = defaultdict(dict)
    for path in args.probe:
        for p in _read_csv(path):
            if p["scenario"] == "tier-1pct":
                probes[p["system"]][p["seed"]] = p
    base, n_base = mean_of("tier-1pct", "target-dev", "grl_lambda_0")
    if base is None:
        base, n_base = mean_of("tier-1pct", "target-dev", "multilingual")
    for system, seeds in probes.items():
        f1, n = mean_of("tier-1pct", "target-dev", system)
        if f1 is None or base is None:
            continue
        acc = statistics.mean(float(p["probe_acc_after"]) for p in seeds.values())
        chance = float(next(iter(seeds.values()))["chance"])
        near = acc - chance <= 0.10
        kept = f1 >= base - 0.01
        print(
            f"- Target 3, {titles[system]}: probe {acc:.3f} ({len(seeds)} seeds; chance {chance:.2f}), "
            f"F1 {f1:.3f} ({n} seeds) vs lambda 0 {base:.3f} ({n_base}): **{'met' if near and kept else 'missed'}**"
        )
    if probes:
        print_sweep(probes, titles, mean_of)
    if args.fig2:
        points = fig2_points(cells, titles)
        os.makedirs(args.fig2, exist_ok=True)
        fields = list(points[0]) if points else []
        with open(os.path.join(args.fig2, "fig2_ner_all.csv"), "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(points)
        for rule in RULES:
            mine = [p for p in points if p["selection_rule"] == rule]
            if mine:
                plot_data_fraction(mine, os.path.join(args.fig2, f"fig2_ner_all_{rule}.png"), "ner")
    return 0


if __name__ == "__main__":
    sys.exit(main())
