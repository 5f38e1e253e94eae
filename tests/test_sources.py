# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Ranking source languages for a target on its dev set (xlt_fairseq/experiments/sources.py): zero-shot lines on
a dev file only, seeds averaged, the paired interval to the best source from the stored predictions."""

import json
import random

import pytest
from seqeval.metrics import f1_score

from xlt_fairseq.experiments import bootstrap as bs
from xlt_fairseq.experiments import sources

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]


def test_sources_are_ranked_on_the_target_dev_set_with_intervals(tmp_path, capsys):
    rng = random.Random(3)
    tokens = [[f"z{i}_{j}" for j in range(rng.randint(2, 6))] for i in range(30)]
    gold = [[rng.choice(TAGS) for _ in t] for t in tokens]
    noise = {"en": 0.6, "xho": 0.2, "en+xho": 0.35, "zu": 0.0}
    preds, lines = {}, []
    for src, p in noise.items():
        for seed in (1, 2):
            pred = [[t if rng.random() > p else rng.choice(TAGS) for t in g] for g in gold]
            preds.setdefault(src, []).append(pred)
            path = tmp_path / f"{src}.{seed}.jsonl"
            path.write_text(
                "".join(json.dumps({"tokens": w, "gold": g, "pred": q}) + "\n" for w, g, q in zip(tokens, gold, pred))
            )
            for split in ("dev-half", "test"):  # the test line must never count
                lines.append(
                    {
                        "run_id": f"{src}/{seed}/{split}",
                        "system": "cross_lingual",
                        "task": "ner",
                        "lang": "zu",
                        "train_languages": src.split("+"),  # "zu": in-language, not a zero-shot source
                        "seed": seed,
                        "selection_rule": "english-dev",
                        "metrics": {"f1": f1_score(gold, pred) if split == "dev-half" else 1.0},
                        "eval_split": split,
                        "eval_path": f"/data/{split}/zu.conll",
                        "test_set": f"ner/zu/{split}",
                        "predictions": str(path),
                    }
                )
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert sources.main([str(results), "--target", "zu", "--samples", "200", "--seed", "2"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [e["sources"] for e in ranked] == ["xho", "en+xho", "en"]  # zu trained on zu: not a candidate
    for e in ranked:
        want = [f1_score(gold, p) for p in preds[e["sources"]]]
        assert e["f1_per_seed"] == pytest.approx(want) and e["f1"] == pytest.approx(sum(want) / 2)
        assert e["seeds"] == [1, 2] and e["eval_paths"] == ["/data/dev-half/zu.conll"]
    assert ranked[0]["diff_to_best"] == 0.0 and [e["rank"] for e in ranked] == [1, 2, 3]
    direct = bs.paired_bootstrap([bs.Language(gold, preds["en"], preds["xho"], "zu")], 200, 2)["languages"]["zu"]
    assert ranked[2]["ci_to_best"] == pytest.approx(direct["ci"]) and ranked[2]["ci_to_best"][1] < 0
    assert ranked[2]["diff_to_best"] == pytest.approx(direct["diff"])
    assert sources.main([str(results), "--target", "yo"]) == 1
    assert "no zero-shot ner result on a yo dev file" in capsys.readouterr().err
