# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""How language-specific a model's sentence representations are, measured on
frozen features (the runner's ``features.npz``: pooled features of dev
sentences before and after training, with their languages):

- **probe accuracy**: a fresh logistic-regression probe (scikit-learn) trained
  to recognise the language, scored on held-out sentences (stratified k-fold);
  chance is ``1 / languages``. This is the question gradient reversal must
  answer, asked of the features rather than of the discriminator that was
  trained against them (the discriminator's own dev accuracy, ``adv_acc``, can
  be at chance while the features still carry the language);
- **silhouette by language** (cosine): how separated the languages' clouds are;
- **input probe accuracy**: the same probe on the sentences' bags of word pieces
  (the model's input, no model at all): how much of the language any
  representation that keeps the words must carry. Where it is near 1, a
  sentence feature can only be language-invariant by losing what the words are;
- **raw probe accuracy** (after training): the probe without standardising the
  features, and the **share of the variance in the top 5 principal directions**:
  an encoder can fool a discriminator by shrinking the language into directions
  of tiny variance under a few huge ones (the raw probe then fails, the
  standardised one does not): docs/results.md measured exactly that.
"""

import json
from typing import Dict, Sequence

import numpy as np

PROBE_FIELDS = (
    "chance",
    "probe_acc_input",
    "probe_acc_before",
    "probe_acc_after",
    "silhouette_before",
    "silhouette_after",
    "probe_acc_raw_after",
    "top5_variance_before",
    "top5_variance_after",
)


def top_variance_share(x: np.ndarray, k: int = 5) -> float:
    """The share of the total variance of ``x`` (N x C) in its ``k`` largest principal directions."""
    x = np.asarray(x, dtype=np.float64)
    values = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    return float(values[:k].sum() / max(values.sum(), 1e-12))


def probe_accuracy(
    x: np.ndarray, langs: Sequence[str], folds: int = 5, seed: int = 1, standardise: bool = True
) -> float:
    """Held-out accuracy of a logistic-regression language probe on ``x`` (standardised
    per dimension first, unless ``standardise`` is False)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray([str(v) for v in langs])
    if len(set(y.tolist())) < 2:
        return float("nan")
    folds = max(2, min(folds, int(min(np.unique(y, return_counts=True)[1]))))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if not standardise:
        probe = LogisticRegression(max_iter=2000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(probe, np.asarray(x, dtype=np.float64), y, cv=cv)))


def input_probe_accuracy(pieces: np.ndarray, offsets: np.ndarray, langs: Sequence[str], folds: int = 5) -> float:
    """The probe of :func:`probe_accuracy` on bags of word pieces: sentence ``i`` is
    ``pieces[offsets[i]:offsets[i + 1]]`` (piece ids), counted into a sparse row."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray([str(v) for v in langs])
    if len(set(y.tolist())) < 2:
        return float("nan")
    pieces, offsets = np.asarray(pieces, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
    vocab, columns = np.unique(pieces, return_inverse=True)
    x = csr_matrix((np.ones(len(pieces)), columns, offsets), shape=(len(offsets) - 1, len(vocab)))
    x.sum_duplicates()
    folds = max(2, min(folds, int(min(np.unique(y, return_counts=True)[1]))))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=1)
    return float(np.mean(cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=cv)))


def measure(features_path: str) -> Dict[str, float]:
    """Probe accuracy and silhouette before and after training, and chance."""
    from .experiments.figures import silhouette_by_language

    data = np.load(features_path)
    langs = [str(v) for v in data["langs"]]
    out = {"chance": 1.0 / len(set(langs)), "sentences": len(langs), "probe_acc_input": float("nan")}
    if "pieces" in data:  # features files written before the input probe have no pieces
        out["probe_acc_input"] = input_probe_accuracy(data["pieces"], data["offsets"], langs)
    for which in ("before", "after"):
        x = np.asarray(data[which], dtype=np.float64)
        out[f"probe_acc_{which}"] = probe_accuracy(x, langs)
        out[f"silhouette_{which}"] = silhouette_by_language(x, langs)
        out[f"top5_variance_{which}"] = top_variance_share(x)
    out["probe_acc_raw_after"] = probe_accuracy(np.asarray(data["after"], dtype=np.float64), langs, standardise=False)
    if "meta" in data:
        out["meta"] = json.loads(str(data["meta"]))
    return out
