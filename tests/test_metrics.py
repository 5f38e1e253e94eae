import random

import numpy as np
import pytest
import sacrebleu
from seqeval.metrics import classification_report, f1_score
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as sk_f1

from xlt_fairseq import metrics as m

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _random_tags(rng, n):
    return [rng.choice(TAGS) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_entity_f1_equals_seqeval_in_any_batching(seed):
    rng = random.Random(seed)
    gold = [_random_tags(rng, rng.randint(1, 12)) for _ in range(60)]
    pred = [[t if rng.random() < 0.7 else rng.choice(TAGS) for t in g] for g in gold]
    # summed over arbitrary batches
    correct = n_pred = n_gold = 0
    i = 0
    while i < len(gold):
        j = i + rng.randint(1, 9)
        c = m.entity_counts(gold[i:j], pred[i:j])
        correct, n_pred, n_gold = correct + c["correct"], n_pred + c["pred"], n_gold + c["gold"]
        i = j
    assert m.f1_from_counts(correct, n_pred, n_gold) == pytest.approx(f1_score(gold, pred), abs=1e-12)


def test_entity_counts_per_type_match_seqeval_report():
    rng = random.Random(7)
    gold = [_random_tags(rng, 8) for _ in range(40)]
    pred = [[t if rng.random() < 0.6 else rng.choice(TAGS) for t in g] for g in gold]
    c = m.entity_counts(gold, pred)
    report = classification_report(gold, pred, output_dict=True)
    for typ, (correct, n_pred, n_gold) in c["by_type"].items():
        assert m.f1_from_counts(correct, n_pred, n_gold) == pytest.approx(report[typ]["f1-score"])
        assert n_gold == report[typ]["support"]


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_f1_equal_sklearn(seed):
    rng = np.random.RandomState(seed)
    k = 4
    gold = rng.randint(0, k - 1, size=200)  # class k-1 never gold: sklearn still counts it if predicted
    pred = np.where(rng.rand(200) < 0.6, gold, rng.randint(0, k, size=200))
    counts = sum(m.confusion_counts(gold[i : i + 17], pred[i : i + 17], k) for i in range(0, 200, 17))
    assert counts[:, 0].sum() / 200 == pytest.approx(accuracy_score(gold, pred))
    assert m.macro_f1_from_counts(counts[:, 0], counts[:, 1], counts[:, 2]) == pytest.approx(
        sk_f1(gold, pred, average="macro"), abs=1e-12
    )


def test_bleu_from_batched_stats_equals_sacrebleu():
    rng = random.Random(3)
    words = "the a cat dog sat on mat red blue runs fast slowly".split()
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 10))) for _ in range(50)]
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(words) for w in r.split()) for r in refs]
    tot = {"sys_len": 0, "ref_len": 0, "counts": [0] * 4, "totals": [0] * 4}
    for i in range(0, 50, 7):
        s = m.bleu_stats(hyps[i : i + 7], refs[i : i + 7])
        tot["sys_len"] += s["sys_len"]
        tot["ref_len"] += s["ref_len"]
        tot["counts"] = [a + b for a, b in zip(tot["counts"], s["counts"])]
        tot["totals"] = [a + b for a, b in zip(tot["totals"], s["totals"])]
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert m.bleu_from_stats(tot["counts"], tot["totals"], tot["sys_len"], tot["ref_len"]) == pytest.approx(
        round(expected, 2)
    )


def test_ner_f1_mean_weighs_each_language_once():
    """A multilingual run's --best-checkpoint-metric and --patience follow ``ner_f1_mean``: the mean of the
    languages' F1, not the pooled F1 (which the largest dev set decides)."""
    from fairseq.logging import metrics as fs_metrics

    from xlt_fairseq.criterions.xlt_multitask_adversarial import XLTMultitaskAdversarialCriterion

    log = {"sample_size": 1, "loss": 0.0}
    # aa: 100 gold entities, all found (F1 1.0); bb: 10 gold, 5 predicted, all right (F1 2/3)
    # the criterion's keys: _ner_<count>:<language> (see _add_metric_counts)
    log.update({"_ner_correct:aa": 100, "_ner_pred:aa": 100, "_ner_gold:aa": 100})
    log.update({"_ner_correct:bb": 5, "_ner_pred:bb": 5, "_ner_gold:bb": 10})
    log.update({"_ner_correct": 105, "_ner_pred": 105, "_ner_gold": 110})
    with fs_metrics.aggregate() as agg:
        XLTMultitaskAdversarialCriterion.reduce_metrics([log])
        values = agg.get_smoothed_values()
    assert values["ner_f1_aa"] == 1.0 and values["ner_f1_bb"] == round(2 / 3, 4)
    assert values["ner_f1_mean"] == round((1.0 + 2 / 3) / 2, 4)
    assert values["ner_f1"] == round(2 * 105 / 215, 4)  # pooled: English-sized dev sets dominate it
    # fairseq reduces each validation batch on its own, and a batch may hold one language: the mean is over every
    # language of the whole validation, not of the last batch
    aa = {k: v for k, v in log.items() if not k.endswith(":bb")}
    bb = {k: v for k, v in log.items() if not k.endswith(":aa")}
    with fs_metrics.aggregate() as agg:
        XLTMultitaskAdversarialCriterion.reduce_metrics([aa])
        XLTMultitaskAdversarialCriterion.reduce_metrics([bb])
        assert agg.get_smoothed_values()["ner_f1_mean"] == round((1.0 + 2 / 3) / 2, 4)
    with fs_metrics.aggregate() as agg:  # one language: its own F1
        XLTMultitaskAdversarialCriterion.reduce_metrics([aa])
        assert agg.get_smoothed_values()["ner_f1_mean"] == 1.0
