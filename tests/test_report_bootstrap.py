# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The report's paired bootstrap section (xlt-report): on synthetic result lines and the per-sentence predictions
stored next to them, every NER cell shows each seed's F1 and the interval of its difference to the baseline per
language and for the mean over the low-resource languages, equal to the bootstrap computed here from the tags."""

import csv
import json
import os
import random

import pytest
from seqeval.metrics import f1_score

from xlt_fairseq.experiments import bootstrap as bs
from xlt_fairseq.experiments.report import make_report

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
LANGS = {"en": "high", "sw": "low", "yo": "low", "zu": "low"}
SEEDS = {"monolingual": [1, 2], "full": [1, 2, 3]}
NOISE = {"monolingual": 0.5, "full": 0.3}


def _grid(tmp_path, other_file_for=None):
    """Result lines of monolingual (2 seeds) and full (3 seeds) on en/sw/yo/zu with their predictions files;
    returns (results path, {(system, lang): [predicted tags per seed]}, {lang: gold})."""
    rng = random.Random(0)
    gold, preds, lines = {}, {}, []
    for lang in LANGS:
        n = rng.randint(15, 25)
        tokens = [[f"{lang}{i}_{j}" for j in range(rng.randint(2, 7))] for i in range(n)]
        gold[lang] = [[rng.choice(TAGS) for _ in t] for t in tokens]
        for system, seeds in SEEDS.items():
            for seed in seeds:
                pred = [[t if rng.random() > NOISE[system] else rng.choice(TAGS) for t in g] for g in gold[lang]]
                preds.setdefault((system, lang), []).append(pred)
                rel = os.path.join("runs", system, f"seed{seed}", "predictions", f"checkpoint_9.ner.{lang}.jsonl")
                os.makedirs(os.path.dirname(tmp_path / rel), exist_ok=True)
                with open(tmp_path / rel, "w", encoding="utf-8") as f:
                    for w, g, p in zip(tokens, gold[lang], pred):
                        f.write(json.dumps({"tokens": w, "gold": g, "pred": p}) + "\n")
                test = f"/data/ner/{lang}/test.conll"
                if (system, lang) == other_file_for:
                    test = f"/data/ner/{lang}/dev.conll"
                lines.append(
                    {
                        "run_id": f"low-resource/ner/{system}/seed{seed}",
                        "system": system,
                        "system_title": system.title(),
                        "system_order": list(SEEDS).index(system),
                        "tables": ["main"],
                        "row": None,
                        "scenario": "low-resource",
                        "task": "ner",
                        "lang": lang,
                        "lang_tier": LANGS[lang],
                        "test_set": f"ner/{lang}",
                        "seed": seed,
                        "selection_rule": "target-dev",
                        "selection_metric": f"valid_ner_f1_{lang}",
                        "data_fraction": 1.0 if LANGS[lang] == "high" else 0.01,
                        "metrics": {"f1": f1_score(gold[lang], pred)},
                        "test_split": "test",
                        "test_path": test,
                        "eval_path": test,
                        "eval_split": "test",
                        "predictions": rel,
                    }
                )
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path), preds, gold


def test_every_cell_has_its_seeds_and_the_paired_interval_to_the_baseline(tmp_path):
    results, preds, gold = _grid(tmp_path)
    written = make_report(results, str(tmp_path / "report"), figures=False, bootstrap_samples=300, bootstrap_seed=4)
    with open(written["bootstrap_ner"], encoding="utf-8") as f:
        rows = {(r["system"], r["lang"]): r for r in csv.DictReader(f)}
    languages = {}
    for lang in LANGS:
        languages[lang] = bs.Language(gold[lang], preds[("full", lang)], preds[("monolingual", lang)], lang)
        for system in SEEDS:
            r = rows[(system, lang)]
            want = [f1_score(gold[lang], p) for p in preds[(system, lang)]]
            assert [float(x) for x in r["f1_per_seed"].split()] == pytest.approx(want, abs=1e-6)
            assert r["seeds"] == " ".join(map(str, SEEDS[system])) and r["eval_split"] == "test"
        r = rows[("full", lang)]
        direct = bs.paired_bootstrap([languages[lang]], samples=300, seed=4)["languages"][lang]
        assert (float(r["ci_low"]), float(r["ci_high"])) == pytest.approx(tuple(direct["ci"]), abs=1e-6)
        assert float(r["diff"]) == pytest.approx(direct["diff"], abs=1e-6) and int(r["sentences"]) == len(gold[lang])
        assert r["baseline_seeds"] == "1 2" and r["samples"] == "300"
        assert "diff" not in rows[("monolingual", lang)] or rows[("monolingual", lang)]["diff"] == ""
    # the mean over the low-resource languages only, each resampled on its own
    mean = rows[("full", "mean(sw yo zu)")]
    direct = bs.paired_bootstrap([languages[k] for k in ("sw", "yo", "zu")], samples=300, seed=4)["mean"]
    assert (float(mean["ci_low"]), float(mean["ci_high"])) == pytest.approx(tuple(direct["ci"]), abs=1e-6)
    assert float(mean["diff"]) == pytest.approx(direct["diff"], abs=1e-6)
    assert ("monolingual", "mean(sw yo zu)") not in rows
    md = open(written["report"], encoding="utf-8").read()
    assert "scored on: test" in md and "Scored on (per result line: `eval_split`, `eval_path`): test (4 files)" in md
    sw = rows[("full", "sw")]
    per_seed = " / ".join(f"{float(v):.3f}" for v in sw["f1_per_seed"].split())
    cell = (
        f"{float(sw['f1']):.3f} ({per_seed})<br>Δ {float(sw['diff']):+.3f} "
        f"[{float(sw['ci_low']):+.3f}, {float(sw['ci_high']):+.3f}]"
    )
    assert cell in md
    assert f"Δ {direct['diff']:+.3f} [{direct['ci'][0]:+.3f}, {direct['ci'][1]:+.3f}]" in md


def test_cells_on_other_files_than_the_baseline_get_no_interval_and_a_note(tmp_path):
    results, _, _ = _grid(tmp_path, other_file_for=("full", "yo"))
    written = make_report(results, str(tmp_path / "report"), figures=False, bootstrap_samples=50)
    with open(written["bootstrap_ner"], encoding="utf-8") as f:
        rows = {(r["system"], r["lang"]): r for r in csv.DictReader(f)}
    assert rows[("full", "yo")]["diff"] == "" and rows[("full", "sw")]["diff"] != ""
    assert ("full", "mean(sw zu)") in rows  # the mean over the languages that can be compared, said so
    md = open(written["report"], encoding="utf-8").read()
    assert "full yo: scored on other files than monolingual" in md and "full: mean over sw, zu only" in md
    with pytest.raises(ValueError, match="--baseline nosuch"):
        make_report(results, str(tmp_path / "r2"), figures=False, baseline="nosuch")
