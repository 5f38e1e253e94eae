# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Summable statistics for the evaluation metrics.

Every metric is computed from counts that can be summed over batches and
workers, so that ``metrics.log_derived`` gives exactly the number the reference
library gives on the whole evaluation set:

* entity F1: seqeval's micro F1 (default, non-strict mode): entities are
  extracted with seqeval's own ``get_entities``;
* accuracy and macro-F1: scikit-learn's ``accuracy_score`` and
  ``f1_score(average="macro")`` over the labels that occur in the gold or
  predicted labels;
* BLEU: sacreBLEU's corpus BLEU from summed n-gram statistics.
"""

from typing import Dict, List, Sequence

import numpy as np

try:
    from seqeval.metrics.sequence_labeling import get_entities
except ImportError:  # pragma: no cover - seqeval is a hard requirement
    get_entities = None


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict[str, int]:
    """Counts of correct, predicted and gold entities (seqeval's definition),
    overall and per entity type (``{type: [correct, pred, gold]}`` in ``by_type``)."""
    correct = n_pred = n_gold = 0
    by_type: Dict[str, List[int]] = {}
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError(f"gold and predicted sequences differ in length: {len(g)} vs {len(p)}")
        g_ents = set(get_entities(list(g)))
        p_ents = set(get_entities(list(p)))
        correct += len(g_ents & p_ents)
        n_pred += len(p_ents)
        n_gold += len(g_ents)
        for ents, col in ((g_ents & p_ents, 0), (p_ents, 1), (g_ents, 2)):
            for ent in ents:
                by_type.setdefault(ent[0], [0, 0, 0])[col] += 1
    return {"correct": correct, "pred": n_pred, "gold": n_gold, "by_type": by_type}


def f1_from_counts(correct, n_pred, n_gold) -> float:
    """seqeval/sklearn F1 (0 when undefined) from summed counts."""
    denom = n_pred + n_gold
    return 0.0 if denom == 0 else 2.0 * correct / denom


def confusion_counts(gold: Sequence[int], pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Per-class [tp, fp, fn] counts, shape (num_classes, 3)."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    out = np.zeros((num_classes, 3), dtype=np.int64)
    out[:, 0] = np.bincount(gold[gold == pred], minlength=num_classes)[:num_classes]
    out[:, 1] = np.bincount(pred[gold != pred], minlength=num_classes)[:num_classes]
    out[:, 2] = np.bincount(gold[gold != pred], minlength=num_classes)[:num_classes]
    return out


def macro_f1_from_counts(tp: Sequence[float], fp: Sequence[float], fn: Sequence[float]) -> float:
    """scikit-learn's macro F1 over the classes that occur in gold or prediction."""
    scores = []
    for t, p, n in zip(tp, fp, fn):
        if t + p + n > 0:
            scores.append(2.0 * t / (2.0 * t + p + n))
    return float(np.mean(scores)) if scores else 0.0


def bleu_stats(hyps: List[str], refs: List[str]) -> Dict[str, object]:
    """sacreBLEU sufficient statistics of a corpus (summable over batches)."""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a")
    return {
        "sys_len": bleu.sys_len,
        "ref_len": bleu.ref_len,
        "counts": list(bleu.counts),
        "totals": list(bleu.totals),
    }


def bleu_from_stats(counts, totals, sys_len, ref_len) -> float:
    """Corpus BLEU from summed statistics, exactly as sacreBLEU computes it."""
    import inspect

    from sacrebleu.metrics import BLEU

    fn_sig = inspect.getfullargspec(BLEU.compute_bleu)[0]
    smooth = {"smooth_method": "exp"} if "smooth_method" in fn_sig else {"smooth": "exp"}
    bleu = BLEU.compute_bleu(
        correct=[int(c) for c in counts],
        total=[int(t) for t in totals],
        sys_len=int(sys_len),
        ref_len=int(ref_len),
        **smooth,
    )
    return round(bleu.score, 2)


# ---- validation BLEU through fairseq's metrics: summable n-gram counts per prefix ----------------

BLEU_ORDER = 4


def bleu_log_stats(prefixes: Sequence[str], by_corpus: Dict[int, tuple], corpus_prefixes: Sequence[str]) -> dict:
    """Logging-output counts of validation BLEU: for every prefix (``""`` for all
    pairs, ``"<pair>_"`` per pair), the n-gram counts/totals and lengths of
    ``by_corpus`` ({corpus id: (hyps, refs)}), summable across batches and workers."""
    out = {}
    for prefix in prefixes:
        out[f"_bleu_{prefix}sys_len"] = 0
        out[f"_bleu_{prefix}ref_len"] = 0
        for i in range(BLEU_ORDER):
            out[f"_bleu_{prefix}counts_{i}"] = 0
            out[f"_bleu_{prefix}totals_{i}"] = 0
    for corpus_id, (hyps, refs) in by_corpus.items():
        stats = bleu_stats(hyps, refs)
        for prefix in ("", corpus_prefixes[corpus_id]):
            out[f"_bleu_{prefix}sys_len"] += stats["sys_len"]
            out[f"_bleu_{prefix}ref_len"] += stats["ref_len"]
            for i in range(BLEU_ORDER):
                out[f"_bleu_{prefix}counts_{i}"] += stats["counts"][i]
                out[f"_bleu_{prefix}totals_{i}"] += stats["totals"][i]
    return out


def reduce_bleu(logging_outputs, prefixes: Sequence[str]):
    """Logs ``bleu`` and ``bleu_<pair>`` (derived from the summed counts, so exact
    across batches and workers) as fairseq's translation task does."""
    from fairseq import metrics, utils

    def total(key):
        return float(sum(utils.item(log.get(key, 0)) for log in logging_outputs))

    for prefix in prefixes:
        name = "bleu" if prefix == "" else "bleu_" + prefix[:-1]
        totals = [total(f"_bleu_{prefix}totals_{i}") for i in range(BLEU_ORDER)]
        if max(totals) <= 0:
            continue
        for i in range(BLEU_ORDER):
            metrics.log_scalar(f"_bleu_{prefix}counts_{i}", total(f"_bleu_{prefix}counts_{i}"))
            metrics.log_scalar(f"_bleu_{prefix}totals_{i}", totals[i])
        metrics.log_scalar(f"_bleu_{prefix}sys_len", total(f"_bleu_{prefix}sys_len"))
        metrics.log_scalar(f"_bleu_{prefix}ref_len", total(f"_bleu_{prefix}ref_len"))

        def compute(meters, prefix=prefix):
            return bleu_from_stats(
                [float(meters[f"_bleu_{prefix}counts_{i}"].sum) for i in range(BLEU_ORDER)],
                [float(meters[f"_bleu_{prefix}totals_{i}"].sum) for i in range(BLEU_ORDER)],
                float(meters[f"_bleu_{prefix}sys_len"].sum),
                float(meters[f"_bleu_{prefix}ref_len"].sum),
            )

        metrics.log_derived(name, compute)
