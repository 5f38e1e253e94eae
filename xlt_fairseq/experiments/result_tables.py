# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The numbers of the report (:mod:`.report`) from results files written by
:mod:`.runner`: result lines indexed by system, language and seed
(:class:`Results`), mean ± sample standard deviation over seeds, the
discriminator's accuracy (language invariance), Figure 2's points and the
entity-type confusion counts."""

import json
import logging
import math
import os
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from .ablations import ABLATION_ROWS
from .results import read_results, result_key, with_evaluation_label

logger = logging.getLogger(__name__)

TIER_ORDER = {"high": 0, "medium": 1, "low": 2}
MAIN_METRIC = {"ner": "f1", "sentiment": "acc", "translation": "bleu"}


def load_results(path) -> List[dict]:
    """The complete lines of a results file (a half-written last line is ignored)."""
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


def load_many(paths: Sequence[str]) -> List[dict]:
    """The lines of several results files (e.g. grids run side by side in separate
    folders), their run-relative paths made absolute; a (run, rule, test set) twice is an error."""
    rows, seen = [], {}
    for path in paths:
        base = os.path.dirname(os.path.abspath(path))
        for r in map(with_evaluation_label, load_results(path)):
            for key in ("predictions", "features", "run_dir"):
                if r.get(key):
                    r[key] = os.path.join(base, r[key])
            k = result_key(r)
            if k in seen:
                raise ValueError(f"{path}: {k} is also in {seen[k]}; report each run once")
            seen[k] = path
            rows.append(r)
    return rows


def learning_curves(rows: Sequence[dict]) -> List[dict]:
    """The dev score at every validation of each training of the results (its ``train_done.json``): the mean of
    the run's low-resource languages' selection metric (all its languages where it has no low-resource one).
    A training shared by several systems (e.g. an averaging recipe) is listed once, under its first system."""
    out, seen = [], set()
    for r in rows:
        if r["selection_rule"] != "target-dev" or not r.get("run_dir") or r["run_dir"] in seen:
            continue
        path = os.path.join(r["run_dir"], "train_done.json")
        if not os.path.exists(path):
            continue
        seen.add(r["run_dir"])
        mine = [x for x in rows if x["run_id"] == r["run_id"] and x["selection_rule"] == "target-dev"]
        langs = sorted({x["lang"] for x in mine if x["lang_tier"] != "high"}) or sorted({x["lang"] for x in mine})
        metrics = {x["lang"]: x["selection_metric"] for x in mine if x["selection_metric"]}
        with open(path, encoding="utf-8") as f:
            valid = json.load(f)["valid"]
        for v in valid:
            scores = [float(v[metrics[k]]) for k in langs if k in metrics and v.get(metrics[k]) is not None]
            if scores:
                out.append(
                    {
                        "scenario": r["scenario"],
                        "system": r["system"] + (f"-{r['target']}" if r.get("target") else ""),
                        "system_title": r["system_title"] + (f" ({r['target']})" if r.get("target") else ""),
                        "seed": r["seed"],
                        "languages": " ".join(langs),
                        "update": int(v["valid_num_updates"]),
                        "score": round(sum(scores) / len(scores), 4),
                    }
                )
    return out


def seed_lines(res: Results, task, scenario, rule, system, lang) -> Dict[int, dict]:
    """{seed: result line} of one cell (the last line of a seed wins, as in :meth:`Results.cell`)."""
    out = {}
    for r in res.select(task=task, scenario=scenario, selection_rule=rule, system=system, lang=lang):
        out[r["seed"]] = r
    return dict(sorted(out.items()))


def bootstrap_cells(
    res: Results,
    scenario: str,
    rule: str,
    systems: Sequence[str],
    baseline: str,
    langs: Sequence[str],
    mean_langs: Sequence[str],
    samples: int = 1000,
    seed: int = 1,
) -> Tuple[List[dict], List[str]]:
    """NER cells of one (scenario, rule) block with their seeds and the paired bootstrap interval of the
    difference to ``baseline`` on the same sentences, from the stored predictions (:mod:`.bootstrap`): one row
    per (system, language) and per system for the mean over ``mean_langs``. Returns (rows, notes on what was
    left out and why)."""
    from .bootstrap import BootstrapError, Language, check_same_sentences, paired_bootstrap, read_tagged_predictions

    rows, notes = [], []
    cache: Dict[str, object] = {}

    def tags(path):
        if path not in cache:
            cache[path] = read_tagged_predictions(path)
        return cache[path]

    base_cells = {lang: seed_lines(res, "ner", scenario, rule, baseline, lang) for lang in langs}
    for system in systems:
        languages = OrderedDict()
        for lang in langs:
            mine, base = seed_lines(res, "ner", scenario, rule, system, lang), base_cells[lang]
            if not mine:
                continue
            row = {
                "scenario": scenario,
                "selection_rule": rule,
                "system": system,
                "system_title": res.titles[system],
                "lang": lang,
                "seeds": " ".join(map(str, mine)),
                "f1_per_seed": " ".join(f"{float(r['metrics']['f1']):.6f}" for r in mine.values()),
                "f1": round(sum(float(r["metrics"]["f1"]) for r in mine.values()) / len(mine), 6),
                "eval_split": " ".join(sorted({str(r.get("eval_split", "unknown")) for r in mine.values()})),
                "baseline": baseline,
            }
            rows.append(row)
            if system == baseline or not base:
                continue
            paths = {r.get("eval_path") for r in list(mine.values()) + list(base.values())}
            files = [r.get("predictions") for r in list(mine.values()) + list(base.values())]
            if len(paths) > 1:
                notes.append(f"{system} {lang}: scored on other files than {baseline} ({', '.join(map(str, paths))})")
                continue
            if not all(files) or not all(os.path.exists(p) for p in files):
                notes.append(f"{system} {lang}: predictions not stored or not found")
                continue
            try:
                preds = [tags(p) for p in files]
                gold = preds[0].gold
                if gold is None:
                    raise BootstrapError(f"{files[0]}: no gold tags")
                for p in preds[1:]:
                    check_same_sentences(preds[0], p)
                k = len(mine)
                languages[lang] = Language(gold, [p.pred for p in preds[:k]], [p.pred for p in preds[k:]], lang)
            except (BootstrapError, ValueError) as e:
                notes.append(f"{system} {lang}: {e}")
                continue
            b = paired_bootstrap([languages[lang]], samples, seed)["languages"][lang]
            row.update(_interval_fields(b, samples, " ".join(map(str, base))))
        wanted = [lang for lang in mean_langs if lang in languages]
        if system != baseline and len(wanted) > 1:
            if len(wanted) < len(mean_langs):
                notes.append(f"{system}: mean over {', '.join(wanted)} only (not {', '.join(mean_langs)})")
            b = paired_bootstrap([languages[k] for k in wanted], samples, seed)["mean"]
            splits = {r["eval_split"] for r in rows if r["system"] == system and r["lang"] in wanted}
            cell = {
                "scenario": scenario,
                "selection_rule": rule,
                "system": system,
                "system_title": res.titles[system],
                "lang": "mean(" + " ".join(wanted) + ")",
                "seeds": "",
                "f1_per_seed": "",
                "f1": round(b["f1_a"], 6),
                "eval_split": " ".join(sorted(splits)),
                "baseline": baseline,
            }
            cell.update(_interval_fields(b, samples, ""))
            rows.append(cell)
    return rows, notes


BOOTSTRAP_FIELDS = [
    "scenario",
    "selection_rule",
    "system",
    "system_title",
    "lang",
    "seeds",
    "f1_per_seed",
    "f1",
    "eval_split",
    "baseline",
    "baseline_seeds",
    "baseline_f1",
    "diff",
    "ci_low",
    "ci_high",
    "samples",
    "sentences",
]


def _interval_fields(b: dict, samples: int, baseline_seeds: str) -> dict:
    return {
        "baseline_seeds": baseline_seeds,
        "baseline_f1": round(b["f1_b"], 6),
        "diff": round(b["diff"], 6),
        "ci_low": round(b["ci"][0], 6),
        "ci_high": round(b["ci"][1], 6),
        "samples": samples,
        "sentences": b.get("sentences", ""),
    }
