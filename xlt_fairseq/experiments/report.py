# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The paper's tables (and the data of its figures) from a results file written
by :mod:`.runner`: one JSON line per (run, test set, selection rule).

* Tables 1-3: NER F1, sentiment accuracy / macro-F1, BLEU per language (pair) and
  system, mean ± sample standard deviation over seeds, and the relative
  improvement over monolingual fine-tuning averaged over the low-resource
  languages ("For low-resource languages, we also report the relative
  improvement over the monolingual fine-tuning baseline").
* Table 4: the ablation rows on the low-resource languages.
* Language invariance: the discriminator's dev accuracy at the selected
  checkpoints, against chance.
* Figure 2 data: the main metric on low-resource languages against the
  percentage of their training data the run saw.
* The entity-type confusion matrix (token level, scikit-learn) from the saved predictions.

One table per (scenario, selection rule); a table whose inputs are absent is
left out with a note. Markdown and long-format CSV (one row per cell).
"""

import csv
import json
import logging
import math
import os
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from .ablations import ABLATION_ROWS, ROW_TITLES

logger = logging.getLogger(__name__)

TIER_ORDER = {"high": 0, "medium": 1, "low": 2}
# (table file stem, title, task, metrics of the cell)
MAIN_TABLES = (
    ("table1_ner", "Table 1: NER (entity F1, seqeval)", "ner", ("f1",)),
    ("table2_sentiment", "Table 2: Sentiment (accuracy / macro-F1, scikit-learn)", "sentiment", ("acc", "macro_f1")),
    ("table3_translation", "Table 3: Translation (BLEU, sacreBLEU)", "translation", ("bleu",)),
)
MAIN_METRIC = {"ner": "f1", "sentiment": "acc", "translation": "bleu"}
CSV_FIELDS = [
    "table",
    "task",
    "scenario",
    "selection_rule",
    "system",
    "system_title",
    "lang",
    "tier",
    "metric",
    "mean",
    "std",
    "n",
    "seeds",
    "rel_impr_vs_mono_pct",
]


def load_results(path) -> List[dict]:
    """The complete lines of a results file (a half-written last line is ignored)."""
    from .runner import read_results

    rows = read_results(path)
    if not rows:
        raise ValueError(f"{path}: no results")
    return rows


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None for a single value)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def fmt(m, s, digits=3) -> str:
    if m is None:
        return "–"
    return f"{m:.{digits}f}" if s is None else f"{m:.{digits}f} ± {s:.{digits}f}"


def _ordered(values, key):
    return sorted(set(values), key=key)


class Results:
    """Result lines indexed for the tables."""

    def __init__(self, rows: List[dict], base_dir: str = "."):
        self.rows = rows
        self.base_dir = base_dir
        self.system_order = {}
        self.titles = {}
        self.tables_of = {}
        self.row_of = {}
        for r in rows:
            self.system_order.setdefault(r["system"], (r.get("system_order", 99), len(self.system_order)))
            self.titles[r["system"]] = r.get("system_title", r["system"])
            self.tables_of[r["system"]] = set(r.get("tables", ["main"]))
            self.row_of[r["system"]] = r.get("row")
        self.tiers = {}
        self.lang_order = {}
        for r in rows:
            self.tiers[(r["task"], r["lang"])] = r.get("lang_tier", "high")
            self.lang_order.setdefault((r["task"], r["lang"]), len(self.lang_order))

    def select(self, **match) -> List[dict]:
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    def scenarios(self, task=None) -> List[str]:
        return list(OrderedDict.fromkeys(r["scenario"] for r in self.rows if task is None or r["task"] == task))

    def rules(self, task=None) -> List[str]:
        return list(OrderedDict.fromkeys(r["selection_rule"] for r in self.rows if task is None or r["task"] == task))

    def langs(self, task, tiers=None) -> List[str]:
        langs = [lang for (t, lang) in self.lang_order if t == task]
        if tiers:
            langs = [lang for lang in langs if self.tiers[(task, lang)] in tiers]
        return sorted(
            langs, key=lambda lang: (TIER_ORDER.get(self.tiers[(task, lang)], 9), self.lang_order[(task, lang)])
        )

    def systems(self, table: str) -> List[str]:
        names = [s for s, t in self.tables_of.items() if table in t]
        if table == "ablation":
            return sorted(
                names, key=lambda s: (ABLATION_ROWS.index(self.row_of[s]) if self.row_of[s] in ABLATION_ROWS else 9, s)
            )
        return sorted(names, key=lambda s: self.system_order[s])

    def cell(self, task, scenario, rule, system, lang, metric) -> Optional[dict]:
        """mean/std/n over seeds of one (system, language) cell (the last line of a seed wins)."""
        by_seed = {}
        for r in self.rows:
            if (r["task"], r["scenario"], r["selection_rule"], r["system"], r["lang"]) == (
                task,
                scenario,
                rule,
                system,
                lang,
            ):
                v = r["metrics"].get(metric)
                if v is not None:
                    by_seed[r["seed"]] = float(v)
        if not by_seed:
            return None
        m, s = mean_std([by_seed[k] for k in sorted(by_seed)])
        return {"mean": m, "std": s, "n": len(by_seed), "seeds": sorted(by_seed)}

    def monolingual(self) -> Optional[str]:
        for s in self.system_order:
            if s == "monolingual" or (self.row_of.get(s) == "base" and s.startswith("mono")):
                return s
        return None


def relative_improvement(value: float, baseline: float) -> Optional[float]:
    """(value - baseline) / baseline in percent; None when the baseline is 0."""
    return None if not baseline else 100.0 * (value - baseline) / baseline


def _table(res: Results, stem, title, task, metrics, systems, langs_fn, out_dir) -> Tuple[List[str], List[dict]]:
    """Markdown lines and CSV rows of one table (one block per scenario and selection rule)."""
    md, rows = [], []
    mono = res.monolingual()
    for scenario in res.scenarios(task):
        for rule in res.rules(task):
            langs = langs_fn(scenario)
            present = [s for s in systems if any(res.cell(task, scenario, rule, s, lang, metrics[0]) for lang in langs)]
            if not present or not langs:
                continue
            low = [lang for lang in langs if res.tiers[(task, lang)] == "low"]
            with_rel = mono is not None and stem != "table4_ablation" and low
            head = ["System"] + [f"{lang} ({res.tiers[(task, lang)]})" for lang in langs]
            if with_rel:
                head.append("rel. impr. vs monolingual, low-resource avg. (%)")
            md += [f"### {title} — scenario {scenario}, selection {rule}", ""]
            md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for system in present:
                cells, rel = [], []
                for lang in langs:
                    parts = []
                    for metric in metrics:
                        c = res.cell(task, scenario, rule, system, lang, metric)
                        if c is None:
                            parts.append("–")
                            continue
                        r_impr = None
                        b = res.cell(task, scenario, rule, mono, lang, metric) if mono else None
                        if b is not None and system != mono:
                            r_impr = relative_improvement(c["mean"], b["mean"])
                            if metric == metrics[0] and lang in low and r_impr is not None:
                                rel.append(r_impr)
                        parts.append(fmt(c["mean"], c["std"], 1 if metric == "bleu" else 3))
                        rows.append(
                            {
                                "table": stem,
                                "task": task,
                                "scenario": scenario,
                                "selection_rule": rule,
                                "system": system,
                                "system_title": res.titles[system],
                                "lang": lang,
                                "tier": res.tiers[(task, lang)],
                                "metric": metric,
                                "mean": round(c["mean"], 6),
                                "std": "" if c["std"] is None else round(c["std"], 6),
                                "n": c["n"],
                                "seeds": " ".join(str(s) for s in c["seeds"]),
                                "rel_impr_vs_mono_pct": "" if r_impr is None else round(r_impr, 3),
                            }
                        )
                    cells.append(" / ".join(parts))
                title_cell = (
                    res.titles[system] if stem != "table4_ablation" else ROW_TITLES.get(res.row_of[system], system)
                )
                line = [title_cell] + cells
                if with_rel:
                    line.append("(baseline)" if system == mono else (f"{sum(rel) / len(rel):+.1f}" if rel else "–"))
                md.append("| " + " | ".join(line) + " |")
            ns = sorted({r["n"] for r in rows if r["scenario"] == scenario and r["selection_rule"] == rule})
            md += ["", f"Mean ± sample standard deviation over seeds (n = {', '.join(map(str, ns))}).", ""]
    return md, rows


def write_csv(path, rows, fields=CSV_FIELDS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def invariance_rows(res: Results) -> List[dict]:
    """Discriminator dev accuracy at the selected checkpoints: per (task, scenario,
    rule, system) the mean over a seed's result lines, then mean ± std over seeds."""
    groups = defaultdict(lambda: defaultdict(list))
    chance = {}
    for r in res.rows:
        if r.get("adv_acc_dev") is None:
            continue
        k = (r["task"], r["scenario"], r["selection_rule"], r["system"])
        groups[k][r["seed"]].append(float(r["adv_acc_dev"]))
        chance[k] = r.get("adv_chance")
    out = []
    for k in sorted(groups, key=lambda k: (k[0], k[1], k[2], res.system_order[k[3]])):
        per_seed = [sum(v) / len(v) for _, v in sorted(groups[k].items())]
        m, s = mean_std(per_seed)
        out.append(
            {
                "task": k[0],
                "scenario": k[1],
                "selection_rule": k[2],
                "system": k[3],
                "system_title": res.titles[k[3]],
                "adv_acc_mean": round(m, 6),
                "adv_acc_std": "" if s is None else round(s, 6),
                "n": len(per_seed),
                "chance": "" if chance[k] is None else round(chance[k], 6),
            }
        )
    return out


def data_fraction_rows(res: Results, task: str) -> List[dict]:
    """Figure 2's points: per (rule, system, scenario) the main metric on the low-resource
    languages (mean over them per seed, then mean ± std over seeds) at their training-data percentage."""
    metric = MAIN_METRIC[task]
    groups = defaultdict(lambda: defaultdict(list))
    for r in res.rows:
        if r["task"] != task or r.get("lang_tier") != "low" or "main" not in r.get("tables", ["main"]):
            continue
        pct = round(100.0 * float(r.get("data_fraction", 1.0)), 6)
        groups[(r["selection_rule"], r["system"], r["scenario"], pct)][r["seed"]].append(float(r["metrics"][metric]))
    out = []
    for (rule, system, scenario, pct), seeds in sorted(
        groups.items(), key=lambda kv: (kv[0][0], res.system_order[kv[0][1]], kv[0][3])
    ):
        per_seed = [sum(v) / len(v) for _, v in sorted(seeds.items())]
        m, s = mean_std(per_seed)
        out.append(
            {
                "task": task,
                "selection_rule": rule,
                "system": system,
                "system_title": res.titles[system],
                "scenario": scenario,
                "percent_training_data": pct,
                "metric": metric,
                "mean": round(m, 6),
                "std": "" if s is None else round(s, 6),
                "n": len(per_seed),
            }
        )
    return out


def entity_type(tag: str) -> str:
    return "O" if tag == "O" else tag[2:]


def confusion(res: Results, scenario: str, rule: str, system: str, langs: Sequence[str]):
    """(type labels, token-level entity-type confusion matrix: gold rows, predicted columns),
    summed over seeds, from the predictions the evaluation saved."""
    from sklearn.metrics import confusion_matrix

    gold, pred = [], []
    seen = set()
    for r in res.select(task="ner", scenario=scenario, selection_rule=rule, system=system):
        if r["lang"] not in langs or not r.get("predictions"):
            continue
        path = os.path.join(res.base_dir, r["predictions"])
        if path in seen:
            continue
        seen.add(path)
        if not os.path.exists(path):
            logger.warning(f"{path}: predictions not found; left out of the confusion matrix")
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                ex = json.loads(line)
                gold += [entity_type(t) for t in ex["gold"]]
                pred += [entity_type(t) for t in ex["pred"]]
    if not gold:
        return None, None
    labels = ["O"] + sorted(set(gold + pred) - {"O"})
    return labels, confusion_matrix(gold, pred, labels=labels)


# ---- the whole report ----------------------------------------------------------------------------------------------


def load_many(paths: Sequence[str]) -> List[dict]:
    """The lines of several results files (e.g. grids run side by side in separate
    folders), their run-relative paths made absolute; a (run, rule, test set) twice is an error."""
    from .runner import result_key

    rows, seen = [], {}
    for path in paths:
        base = os.path.dirname(os.path.abspath(path))
        for r in load_results(path):
            for key in ("predictions", "features"):
                if r.get(key):
                    r[key] = os.path.join(base, r[key])
            k = result_key(r)
            if k in seen:
                raise ValueError(f"{path}: {k} is also in {seen[k]}; report each run once")
            seen[k] = path
            rows.append(r)
    return rows


def make_report(results_path, out_dir: Optional[str] = None, figures: bool = True) -> Dict[str, str]:
    """Writes report.md, the tables' CSV files and the figures; returns {name: path}.
    ``results_path``: a results file, or a list of them (merged)."""
    from . import figures as figs

    paths = [results_path] if isinstance(results_path, str) else list(results_path)
    rows = load_many(paths)
    results_path = paths[0]
    base = os.path.dirname(os.path.abspath(results_path))
    out_dir = out_dir or os.path.join(base, "report")
    os.makedirs(out_dir, exist_ok=True)
    res = Results(rows, base)
    written: Dict[str, str] = {}
    runs = len({r["run_id"] for r in rows})
    md = [
        "# Results",
        "",
        f"From {', '.join(f'`{os.path.abspath(p)}`' for p in paths)}: {len(rows)} result lines, {runs} runs, "
        f"experiment(s) {', '.join(sorted({r.get('experiment', '?') for r in rows}))}.",
        "",
    ]
    md += ["Model selection (per result line: `selection_rule`, `selection_metric`):", ""]
    for rule in res.rules():
        examples = sorted({r["selection_metric"] for r in rows if r["selection_rule"] == rule})
        notes = sorted({r["selection_note"] for r in rows if r["selection_rule"] == rule and r.get("selection_note")})
        md.append(
            f"- `{rule}`: checkpoint with the best {', '.join(f'`{m}`' for m in examples[:6])}"
            + (" ..." if len(examples) > 6 else "")
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    splits = sorted({r.get("test_split", "test") for r in rows})
    if splits != ["test"]:
        md += [
            "",
            f"**Evaluated on the {', '.join(splits)} split(s), not on held-out test sets** "
            "(the dev set also selected the checkpoint: these numbers are optimistic).",
        ]
    md.append("")

    for stem, title, task, metrics in MAIN_TABLES:
        systems = res.systems("main")
        lines, csv_rows = _table(res, stem, title, task, metrics, systems, lambda sc, t=task: res.langs(t), out_dir)
        md += [f"## {title}", ""]
        if not csv_rows:
            md += [f"_Omitted: no {task} results of the main systems in the results file._", ""]
            continue
        md += lines
        write_csv(os.path.join(out_dir, stem + ".csv"), csv_rows)
        written[stem] = os.path.join(out_dir, stem + ".csv")

    title4 = "Table 4: Ablation on low-resource languages"
    md += [f"## {title4}", ""]
    abl = res.systems("ablation")
    ablation_rows = []
    for task in ("ner", "sentiment", "translation"):
        low = res.langs(task, tiers=("low",))
        if not abl or not low:
            continue
        lines, csv_rows = _table(
            res,
            "table4_ablation",
            f"{title4} ({task})",
            task,
            (MAIN_METRIC[task],),
            abl,
            lambda sc, low=low: low,
            out_dir,
        )
        md += lines
        ablation_rows += csv_rows
    if ablation_rows:
        write_csv(os.path.join(out_dir, "table4_ablation.csv"), ablation_rows)
        written["table4_ablation"] = os.path.join(out_dir, "table4_ablation.csv")
    else:
        md += [
            "_Omitted: no results of ablation systems (examples/systems/ablation_*.yaml) on low-resource languages._",
            "",
        ]

    md += ["## Language invariance: discriminator accuracy on dev", ""]
    inv = invariance_rows(res)
    if inv:
        fields = list(inv[0].keys())
        write_csv(os.path.join(out_dir, "invariance.csv"), inv, fields)
        written["invariance"] = os.path.join(out_dir, "invariance.csv")
        md += [
            "Accuracy of the language discriminator on the dev sets at the selected checkpoints (closer to chance: "
            "more language-invariant features). Systems without gradient reversal train it as a probe.",
            "",
            "| Task | Scenario | Selection | System | accuracy | chance |",
            "|---|---|---|---|---|---|",
        ]
        for r in inv:
            s = None if r["adv_acc_std"] == "" else r["adv_acc_std"]
            md.append(
                f"| {r['task']} | {r['scenario']} | {r['selection_rule']} | {r['system_title']} | "
                f"{fmt(r['adv_acc_mean'], s)} | {r['chance']} |"
            )
        md.append("")
    else:
        md += ["_Omitted: no run discriminated two or more languages._", ""]

    md += ["## Figure 2: performance against the percentage of training data (low-resource languages)", ""]
    any_fig2 = False
    for task in ("ner", "sentiment", "translation"):
        points = data_fraction_rows(res, task)
        if not points:
            continue
        any_fig2 = True
        csv_path = os.path.join(out_dir, f"fig2_{task}.csv")
        write_csv(csv_path, points, list(points[0].keys()))
        written[f"fig2_{task}_csv"] = csv_path
        if figures:
            for rule in sorted({p["selection_rule"] for p in points}):
                png = os.path.join(out_dir, f"fig2_{task}_{rule}.png")
                figs.plot_data_fraction([p for p in points if p["selection_rule"] == rule], png, task)
                written[f"fig2_{task}_{rule}"] = png
                md += [f"![Figure 2 ({task}, {rule})]({os.path.basename(png)})", ""]
        md += [f"Points: `{os.path.basename(csv_path)}`.", ""]
    if not any_fig2:
        md += ["_Omitted: no results on low-resource languages._", ""]

    md += ["## Figure 3: t-SNE of sentence representations before and after training", ""]
    feats = OrderedDict()
    for r in rows:
        if r.get("features"):
            feats.setdefault(os.path.join(base, r["features"]), r)
    if feats and figures:
        for path, r in feats.items():
            if not os.path.exists(path):
                md += [f"_{path}: not found._", ""]
                continue
            png = os.path.join(out_dir, f"fig3_tsne_{r['system']}_{r['scenario']}_seed{r['seed']}.png")
            scores = figs.plot_tsne(path, png)
            written[os.path.basename(png)[:-4]] = png
            md += [
                f"![Figure 3 ({r['system_title']}, {r['scenario']})]({os.path.basename(png)})",
                "",
                f"Mean-pooled feature-extractor outputs on dev sentences, {r['system_title']}, scenario "
                f"{r['scenario']}, seed {r['seed']}. Silhouette score by language (scikit-learn, cosine; higher = "
                f"languages more separated): before {scores['silhouette_before']:.3f}, "
                f"after {scores['silhouette_after']:.3f}.",
                "",
            ]
    else:
        md += [
            (
                "_Omitted: no saved sentence representations (the runner's `tsne:` setting)._"
                if not feats
                else "_Figures disabled._"
            ),
            "",
        ]

    md += ["## Error analysis: entity-type confusion (token level)", ""]
    conf_rows = []
    any_conf = False
    for scenario in res.scenarios("ner"):
        for rule in res.rules("ner"):
            langs = res.langs("ner", tiers=("low",)) or res.langs("ner")
            mats = OrderedDict()
            for system in res.systems("main"):
                labels, mat = confusion(res, scenario, rule, system, langs)
                if mat is None:
                    continue
                mats[system] = (labels, mat)
                for i, g in enumerate(labels):
                    for j, p in enumerate(labels):
                        conf_rows.append(
                            {
                                "scenario": scenario,
                                "selection_rule": rule,
                                "system": system,
                                "languages": " ".join(langs),
                                "gold": g,
                                "pred": p,
                                "tokens": int(mat[i, j]),
                            }
                        )
            if not mats:
                continue
            any_conf = True
            if figures:
                png = os.path.join(out_dir, f"confusion_{scenario}_{rule}.png")
                figs.plot_confusions(
                    {res.titles[s]: v for s, v in mats.items()}, png, f"{scenario}, {rule}, {', '.join(langs)}"
                )
                written[os.path.basename(png)[:-4]] = png
                md += [f"![Confusion ({scenario}, {rule})]({os.path.basename(png)})", ""]
    if any_conf:
        write_csv(os.path.join(out_dir, "confusion.csv"), conf_rows, list(conf_rows[0].keys()))
        written["confusion"] = os.path.join(out_dir, "confusion.csv")
        md += ["Rows: gold entity type of a token (O: outside), columns: predicted; counts in `confusion.csv`.", ""]
    else:
        md += ["_Omitted: no NER predictions._", ""]

    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    written["report"] = path
    return written
