# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Paired bootstrap confidence intervals of an entity-F1 difference between two
systems scored on the same sentences (Koehn, 2004; Berg-Kirkpatrick et al., 2012).

Entity F1 is seqeval's (default mode): ``2 * correct / (predicted + gold)``
over the entities of all sentences, so each sentence contributes three counts
(correct, predicted, gold entities; seqeval's ``get_entities`` per sentence)
and the F1 of any resample of sentences is a sum of rows. A replicate draws the
sentences of each language with replacement (the same draw for both systems and
for every seed of each, so seeds and systems stay paired), computes each seed's
F1, averages it over the seeds of a system, and takes the difference
A - B; over several languages, the replicate's difference is the mean of the
languages' differences (each language resampled on its own). The interval is
the percentile interval of the replicates' differences (``numpy.percentile``,
linear interpolation).

The random stream, so that a replicate can be re-drawn by anyone:
``rng = numpy.random.default_rng(seed)``, then for each replicate, for each
language in the order given, ``rng.integers(0, n, size=n)`` (``n``: that
language's number of sentences) are the indices of the resample.

Predictions are read from (:func:`read_tagged_predictions`): the evaluation's
JSON Lines (``{"tokens", "gold", "pred"}``: ``xlt-evaluate --save-predictions``
and the experiment runner's ``predictions/`` files), ``xlt-predict``'s JSON
Lines (``{"tokens", "words": [{"word", "label"}, ...]}``) or CoNLL
(``word<TAB>tag``, e.g. ``xlt-predict --output-format conll``). The command
line is :mod:`xlt_fairseq.cli.bootstrap` (``xlt-bootstrap``).
"""

import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.formats import DataFormatError, json_objects, read_lines, read_tagged

logger = logging.getLogger(__name__)

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 1
DEFAULT_CONFIDENCE = 0.95

Tags = List[List[str]]


class BootstrapError(ValueError):
    pass


# ---- entity counts ----------------------------------------------------------------------------------------------


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence [correct, predicted, gold] entity counts (seqeval's entities), shape (sentences, 3)."""
    from seqeval.metrics.sequence_labeling import get_entities

    if len(gold) != len(pred):
        raise BootstrapError(f"{len(pred)} predicted sentences for {len(gold)} gold sentences")
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise BootstrapError(f"sentence {i + 1}: {len(p)} predicted tags for {len(g)} gold tags")
        g_ents, p_ents = set(get_entities(list(g))), set(get_entities(list(p)))
        out[i] = (len(g_ents & p_ents), len(p_ents), len(g_ents))
    return out


def f1_of_counts(counts: np.ndarray) -> np.ndarray:
    """Entity F1 from summed [correct, predicted, gold] counts (last axis); 0 where nothing was predicted or gold,
    as seqeval with ``zero_division=0``."""
    counts = np.asarray(counts, dtype=np.float64)
    denom = counts[..., 1] + counts[..., 2]
    return np.divide(2.0 * counts[..., 0], denom, out=np.zeros_like(denom), where=denom > 0)


# ---- the bootstrap ------------------------------------------------------------------------------------------------


class Language:
    """One language's gold tags and the predictions of systems A and B on the same sentences (one list of
    sentences per seed)."""

    def __init__(self, gold: Tags, a: Sequence[Tags], b: Sequence[Tags], name: str = ""):
        if not a or not b:
            raise BootstrapError(f"{name or 'data'}: system {'A' if not a else 'B'} has no predictions")
        if not gold:
            raise BootstrapError(f"{name or 'data'}: no sentences")
        self.name, self.n = name, len(gold)
        self.a = np.stack([sentence_counts(gold, p) for p in a])  # (seeds, sentences, 3)
        self.b = np.stack([sentence_counts(gold, p) for p in b])

    def f1(self, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Per-seed F1 of A and B on the sentences weighted by ``weights`` (how often each was drawn; None: once)."""
        if weights is None:
            return f1_of_counts(self.a.sum(axis=1)), f1_of_counts(self.b.sum(axis=1))
        return f1_of_counts(np.tensordot(self.a, weights, axes=([1], [0]))), f1_of_counts(
            np.tensordot(self.b, weights, axes=([1], [0]))
        )


def paired_bootstrap(
    languages: Sequence[Language],
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict:
    """The paired bootstrap of F1(A) - F1(B) (each averaged over its seeds) per language and, for several
    languages, of the mean over languages of those differences. Returns a JSON-ready dict (see :func:`_summary`)."""
    if samples < 1:
        raise BootstrapError(f"the number of bootstrap samples must be at least 1, got {samples}")
    if not 0 < confidence < 1:
        raise BootstrapError(f"the confidence level must be between 0 and 1, got {confidence}")
    names = [lang.name for lang in languages]
    if not languages or len(set(names)) != len(names):
        raise BootstrapError(f"languages must be given once each, got {names}")
    rng = np.random.default_rng(seed)
    diffs = np.zeros((samples, len(languages)))
    for r in range(samples):
        for j, lang in enumerate(languages):
            weights = np.bincount(rng.integers(0, lang.n, size=lang.n), minlength=lang.n)
            fa, fb = lang.f1(weights)
            diffs[r, j] = fa.mean() - fb.mean()
    per_lang = OrderedDict()
    observed = []
    for j, lang in enumerate(languages):
        fa, fb = lang.f1()
        observed.append((fa, fb))
        per_lang[lang.name] = _summary(fa, fb, diffs[:, j], confidence, sentences=lang.n)
    out = {
        "metric": "entity F1 (seqeval)",
        "samples": samples,
        "seed": seed,
        "confidence": confidence,
        "languages": per_lang,
    }
    if len(languages) > 1:
        # per seed, the mean over languages (seeds paired by position; a system's mean is the mean of the means)
        fa = np.mean([a.mean() for a, _ in observed])
        fb = np.mean([b.mean() for _, b in observed])
        out["mean"] = _summary(np.array([fa]), np.array([fb]), diffs.mean(axis=1), confidence, names=names)
    return out


def _summary(fa: np.ndarray, fb: np.ndarray, diffs: np.ndarray, confidence: float, **extra) -> dict:
    """A's and B's F1 (mean over seeds, and each seed), the observed difference, the replicates' mean difference,
    the percentile interval and the share of replicates where A is not better than B."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(diffs, [tail, 100.0 - tail])
    out = dict(extra)
    out.update(
        {
            "f1_a": float(fa.mean()),
            "f1_b": float(fb.mean()),
            "diff": float(fa.mean() - fb.mean()),
            "bootstrap_mean": float(diffs.mean()),
            "ci": [float(lo), float(hi)],
            "share_a_not_better": float(np.mean(diffs <= 0)),
        }
    )
    if len(fa) > 1 or len(fb) > 1 or "sentences" in extra:
        out["f1_a_seeds"] = [float(x) for x in fa]
        out["f1_b_seeds"] = [float(x) for x in fb]
    return out


# ---- reading predictions ----------------------------------------------------------------------------------------


class Predictions:
    """The sentences of one prediction file: tokens (or None when the file has none), gold tags (or None) and
    predicted tags."""

    def __init__(self, path: str, tokens: List[Optional[List[str]]], gold: Optional[Tags], pred: Tags):
        self.path, self.tokens, self.gold, self.pred = path, tokens, gold, pred


def read_tagged_predictions(path: str) -> Predictions:
    """Predicted tags of a file in one of the formats of the module docstring (JSON Lines when the first non-blank
    character is ``{``, else CoNLL ``word<TAB>tag``)."""
    lines = read_lines(path)
    first = next((line.lstrip()[:1] for line in lines if line.strip()), "")
    if first != "{":
        sents = read_tagged(path, "conll")
        return Predictions(path, [s.tokens for s in sents], None, [s.tags for s in sents])
    tokens, gold, pred = [], [], []
    for lineno, obj in json_objects(path, enumerate(lines, start=1)):
        if "pred" in obj:  # the evaluation's rows
            p, g, t = obj["pred"], obj.get("gold"), obj.get("tokens")
        elif "words" in obj:  # xlt-predict's
            words = obj["words"]
            if not isinstance(words, list) or not all(isinstance(w, dict) and "label" in w for w in words):
                raise DataFormatError(path, lineno, "'words' must be a list of objects with a 'label'")
            p, g, t = [w["label"] for w in words], None, [w.get("word") for w in words]
        else:
            raise DataFormatError(
                path, lineno, "no predicted tags: expected 'pred' (xlt-evaluate) or 'words' (xlt-predict)"
            )
        for name, value in (("pred", p), ("gold", g), ("tokens", t)):
            if value is not None and not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
                raise DataFormatError(path, lineno, f"{name!r} must be a list of strings")
        if g is not None and len(g) != len(p):
            raise DataFormatError(path, lineno, f"{len(p)} predicted tags for {len(g)} gold tags")
        if t is not None and len(t) != len(p):
            raise DataFormatError(path, lineno, f"{len(p)} predicted tags for {len(t)} tokens")
        tokens.append(t)
        gold.append(g)
        pred.append(p)
    has_gold = [g is not None for g in gold]
    if any(has_gold) and not all(has_gold):
        raise BootstrapError(f"{path}: sentence {has_gold.index(False) + 1} has no gold tags while others do")
    return Predictions(path, tokens, gold if gold and all(has_gold) else None, pred)


def language_from_files(
    a: Sequence[str], b: Sequence[str], gold: Optional[str] = None, name: str = "", gold_format: str = "conll"
) -> Language:
    """A :class:`Language` from prediction files (one per seed of each system) and, optionally, the gold file; every
    file must hold the same sentences in the same order. Without ``gold`` the gold tags come from the prediction
    files (the evaluation's JSON Lines carry them), which must then agree."""
    files = [read_tagged_predictions(p) for p in list(a) + list(b)]
    if gold is not None:
        sents = read_tagged(gold, gold_format)
        ref = Predictions(gold, [s.tokens for s in sents], [s.tags for s in sents], [])
    else:
        with_gold = [f for f in files if f.gold is not None]
        if not with_gold:
            raise BootstrapError(
                f"{name or 'data'}: no gold tags: give the gold file, or predictions that carry them (xlt-evaluate's)"
            )
        ref = with_gold[0]
    for f in files:
        check_same_sentences(ref, f)
    return Language(ref.gold, [f.pred for f in files[: len(a)]], [f.pred for f in files[len(a) :]], name)


def check_same_sentences(ref: Predictions, f: Predictions):
    """Refuses ``f`` unless it holds the sentences of ``ref`` (which has gold tags) in the same order."""
    if len(f.pred) != len(ref.gold):
        raise BootstrapError(f"{f.path}: {len(f.pred)} sentences, but {ref.path} has {len(ref.gold)}")
    for i, p in enumerate(f.pred):
        where = f"{f.path}: sentence {i + 1}"
        if len(p) != len(ref.gold[i]):
            raise BootstrapError(f"{where} has {len(p)} tags, but {ref.path} has {len(ref.gold[i])}")
        if f.tokens[i] is not None and ref.tokens[i] is not None and f.tokens[i] != ref.tokens[i]:
            raise BootstrapError(
                f"{where} is not the sentence of {ref.path} (its words differ: another file or order?)"
            )
        if f.gold is not None and f.gold[i] != ref.gold[i]:
            raise BootstrapError(f"{where}: its gold tags differ from those of {ref.path}")


def bootstrap_files(
    a: Dict[str, Sequence[str]],
    b: Dict[str, Sequence[str]],
    gold: Optional[Dict[str, str]] = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
    gold_format: str = "conll",
) -> dict:
    """:func:`paired_bootstrap` of prediction files: ``a``, ``b``: {language: files, one per seed}; ``gold``:
    {language: gold file} (optional, see :func:`language_from_files`). Every language needs files of both systems."""
    gold = gold or {}
    langs = list(OrderedDict.fromkeys(list(a) + list(b)))
    for lang in langs:
        if not a.get(lang) or not b.get(lang):
            raise BootstrapError(
                f"language {lang or '(none)'}: predictions of system {'A' if not a.get(lang) else 'B'} missing"
            )
    extra = set(gold) - set(langs)
    if extra:
        raise BootstrapError(f"gold files of languages without predictions: {', '.join(sorted(extra))}")
    languages = [language_from_files(a[k], b[k], gold.get(k), k, gold_format) for k in langs]
    out = paired_bootstrap(languages, samples, seed, confidence)
    out["files"] = {k: {"a": list(a[k]), "b": list(b[k]), "gold": gold.get(k)} for k in langs}
    return out
