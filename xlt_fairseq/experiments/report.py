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
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from ..data.task_names import LABELLED_TASKS
from ..invariance import PROBE_FIELDS
from ..invariance import measure as measure_invariance
from .ablations import ROW_TITLES
from .result_tables import (
    BOOTSTRAP_FIELDS,
    MAIN_METRIC,
    Results,
    bootstrap_cells,
    confusion,
    data_fraction_rows,
    fmt,
    invariance_rows,
    learning_curves,
    load_many,
    relative_improvement,
)

logger = logging.getLogger(__name__)

# (table file stem, title, task, metrics of the cell)
MAIN_TABLES = (
    ("table1_ner", "Table 1: NER (entity F1, seqeval)", "ner", ("f1",)),
    ("table2_sentiment", "Table 2: Sentiment (accuracy / macro-F1, scikit-learn)", "sentiment", ("acc", "macro_f1")),
    ("table3_translation", "Table 3: Translation (BLEU, sacreBLEU)", "translation", ("bleu",)),
)
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


def _bootstrap_section(res: Results, baseline: Optional[str], samples: int, seed: int) -> Tuple[List[str], List[dict]]:
    """Markdown and CSV rows of the NER cells with each seed and the paired bootstrap interval of the difference
    to the baseline on the same sentences (per language and for the mean over the low-resource languages)."""
    title = "Differences to the baseline: paired bootstrap 95 % intervals (NER)"
    md = [f"## {title}", ""]
    baseline = baseline or res.monolingual()
    langs = res.langs("ner")
    if not langs or baseline is None or samples < 1:
        why = "no baseline system (--baseline)" if langs and baseline is None else "no NER results or --bootstrap 0"
        return md + [f"_Omitted: {why}._", ""], []
    if baseline not in res.system_order:
        raise ValueError(f"--baseline {baseline}: no such system in the results ({', '.join(res.system_order)})")
    low = res.langs("ner", tiers=("low",)) or langs
    systems = [baseline] + [s for s in res.systems("main") if s != baseline]
    md += [
        f"Each cell: the mean entity F1 over seeds (each seed's in brackets) and, below it, the difference to "
        f"{res.titles[baseline]} with its 95 % paired bootstrap interval ({samples} resamples of the test "
        "sentences, seed "
        f"{seed}; the same resamples for every seed of both systems, F1 averaged over seeds inside each), computed "
        f"from the stored predictions (`xlt_fairseq/experiments/bootstrap.py`). The last column: the mean over "
        f"{', '.join(low)}, each language resampled on its own.",
        "",
    ]
    all_rows = []
    for scenario in res.scenarios("ner"):
        for rule in res.rules("ner"):
            rows, notes = bootstrap_cells(res, scenario, rule, systems, baseline, langs, low, samples, seed)
            if not rows:
                continue
            all_rows += rows
            splits = sorted({x for r in rows for x in r["eval_split"].split()})
            md += [f"### Scenario {scenario}, selection {rule} (scored on: {', '.join(splits)})", ""]
            mean_col = f"mean {'/'.join(low)}"
            head = ["System"] + langs + [mean_col]
            md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            by = {(r["system"], r["lang"]): r for r in rows}
            for system in systems:
                cells = []
                for lang in langs:
                    r = by.get((system, lang))
                    if r is None:
                        cells.append("–")
                        continue
                    per_seed = " / ".join(f"{float(v):.3f}" for v in r["f1_per_seed"].split())
                    text = f"{r['f1']:.3f} ({per_seed})"
                    if system == baseline:
                        text += "<br>(baseline)"
                    elif "diff" in r:
                        text += f"<br>Δ {_interval(r)}"
                    cells.append(text)
                mean = next((r for r in rows if r["system"] == system and r["lang"].startswith("mean(")), None)
                cells.append("–" if mean is None else f"{mean['f1']:.3f}<br>Δ {_interval(mean)}")
                if any(c != "–" for c in cells):
                    md.append("| " + " | ".join([res.titles[system]] + cells) + " |")
            md.append("")
            md += [f"- {n}" for n in notes] + ([""] if notes else [])
    if not all_rows:
        md += ["_Omitted: no NER results._", ""]
    return md, all_rows


def _interval(r: dict) -> str:
    return f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"


def write_csv(path, rows, fields=CSV_FIELDS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)


# ---- the whole report ----------------------------------------------------------------------------------------------


def make_report(
    results_path,
    out_dir: Optional[str] = None,
    figures: bool = True,
    baseline: Optional[str] = None,
    bootstrap_samples: int = 1000,
    bootstrap_seed: int = 1,
) -> Dict[str, str]:
    """Writes report.md, the tables' CSV files and the figures; returns {name: path}.
    ``results_path``: a results file, or a list of them (merged); ``baseline``: the system the paired bootstrap
    compares every other with (default: monolingual); ``bootstrap_samples`` 0: no intervals."""
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
    splits = sorted({r.get("eval_split", "unknown") for r in rows})
    md += [
        "",
        "Scored on (per result line: `eval_split`, `eval_path`): "
        + ", ".join(
            f"{s} ({len({r['eval_path'] for r in rows if r.get('eval_split', 'unknown') == s and r.get('eval_path')})} files)"
            for s in splits
        )
        + ".",
    ]
    if splits != ["test"]:
        md += [
            "",
            f"**Not all on held-out test sets: {', '.join(s for s in splits if s != 'test')}** (a dev file or a half "
            "of one that also served choices, or a file that can no longer be told: these numbers are optimistic).",
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

    lines, boot_rows = _bootstrap_section(res, baseline, bootstrap_samples, bootstrap_seed)
    md += lines
    if boot_rows:
        write_csv(os.path.join(out_dir, "bootstrap_ner.csv"), boot_rows, BOOTSTRAP_FIELDS)
        written["bootstrap_ner"] = os.path.join(out_dir, "bootstrap_ner.csv")

    title4 = "Table 4: Ablation on low-resource languages"
    md += [f"## {title4}", ""]
    abl = res.systems("ablation")
    ablation_rows = []
    for task in LABELLED_TASKS:
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
    for task in LABELLED_TASKS:
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

    curves = learning_curves(rows)
    if curves:
        md += [
            "## Learning curves: the dev score at every validation",
            "",
            "Mean dev score of each training's low-resource languages (the `target-dev` selection metric) at every "
            "validation: whether a run had converged when it stopped (the cap or `--patience`).",
            "",
        ]
        write_csv(os.path.join(out_dir, "learning_curves.csv"), curves, list(curves[0]))
        written["learning_curves"] = os.path.join(out_dir, "learning_curves.csv")
        if figures:
            for scenario in dict.fromkeys(p["scenario"] for p in curves):
                png = os.path.join(out_dir, f"learning_curves_{scenario}.png")
                figs.plot_learning_curves([p for p in curves if p["scenario"] == scenario], png, scenario)
                written[os.path.basename(png)[:-4]] = png
                md += [f"![Learning curves ({scenario})]({os.path.basename(png)})", ""]
        md += ["Points: `learning_curves.csv`.", ""]

    md += ["## Figure 3: t-SNE of sentence representations before and after training", ""]
    feats = OrderedDict()
    for r in rows:
        if r.get("features"):
            feats.setdefault(os.path.join(base, r["features"]), r)
    probe_rows = []
    if feats and figures:
        for path, r in feats.items():
            if not os.path.exists(path):
                md += [f"_{path}: not found._", ""]
                continue
            png = os.path.join(out_dir, f"fig3_tsne_{r['system']}_{r['scenario']}_seed{r['seed']}.png")
            scores = figs.plot_tsne(path, png)
            probe = measure_invariance(path)
            probe_rows.append(
                {
                    "system": r["system"],
                    "system_title": r["system_title"],
                    "scenario": r["scenario"],
                    "seed": r["seed"],
                    **{k: probe.get(k, float("nan")) for k in PROBE_FIELDS},
                }
            )
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

    if probe_rows:
        md += [
            "## Language in the features: a held-out probe",
            "",
            "A fresh logistic-regression probe trained to recognise the language from the frozen features of "
            "Figure 3 (5-fold, held-out accuracy; chance = 1 / languages), before and after training "
            "(`xlt_fairseq/invariance.py`). Unlike the discriminator's own accuracy above, it shows whether the "
            "language is still *in* the features. The input probe is the same probe on the sentences' bags of "
            "word pieces (no model): the language any representation that keeps the words carries. The raw "
            "probe is the probe after training without standardising the features, and the top-5 variance the "
            "share of the features' variance in their 5 largest principal directions: a raw probe far below the "
            "standardised one with the variance in a few directions means the language was hidden by scale, "
            "not removed.",
            "",
            "| system | scenario | seed | chance | input probe | probe before | probe after | raw probe after | "
            "top-5 variance before → after | silhouette before | silhouette after |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in probe_rows:
            md.append(
                f"| {p['system_title']} | {p['scenario']} | {p['seed']} | {p['chance']:.2f} | "
                f"{p['probe_acc_input']:.3f} | "
                f"{p['probe_acc_before']:.3f} | {p['probe_acc_after']:.3f} | {p['probe_acc_raw_after']:.3f} | "
                f"{p['top5_variance_before']:.3f} → {p['top5_variance_after']:.3f} | {p['silhouette_before']:.3f} | "
                f"{p['silhouette_after']:.3f} |"
            )
        write_csv(os.path.join(out_dir, "probe.csv"), probe_rows, list(probe_rows[0]))
        written["probe"] = os.path.join(out_dir, "probe.csv")
        md += ["", "Table: `probe.csv`.", ""]

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
