# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The report's figures (matplotlib, Agg backend): Figure 2 (metric against the
percentage of training data), Figure 3 (t-SNE of sentence representations before
and after training, scikit-learn) and entity-type confusion matrices."""

import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

METRIC_LABELS = {"f1": "entity F1", "acc": "accuracy", "bleu": "BLEU"}


def _pyplot():
    from xlt_fairseq.optional import require

    require("matplotlib", "plotting figures").use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_data_fraction(points: List[dict], path: str, task: str):
    """One line per system: mean (± std over seeds) of the main metric on the
    low-resource languages against the percentage of their training data."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    systems = list(dict.fromkeys(p["system"] for p in points))
    for system in systems:
        mine = sorted((p for p in points if p["system"] == system), key=lambda p: p["percent_training_data"])
        x = [p["percent_training_data"] for p in mine]
        y = [p["mean"] for p in mine]
        err = [0.0 if p["std"] == "" else p["std"] for p in mine]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=mine[0]["system_title"])
    ax.set_xscale("symlog", linthresh=1.0)
    ticks = sorted({p["percent_training_data"] for p in points} | {1.0, 10.0, 100.0})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("training data of the low-resource languages (%)")
    ax.set_ylabel(METRIC_LABELS.get(points[0]["metric"], points[0]["metric"]))
    ax.set_title(f"{task}: low-resource languages")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(points: List[dict], path: str, title: str):
    """One line per training (system, seed): the dev score against the updates."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in dict.fromkeys((p["system"], p["seed"]) for p in points):
        mine = sorted((p for p in points if (p["system"], p["seed"]) == key), key=lambda p: p["update"])
        label = f"{mine[0]['system_title']}, seed {key[1]}"
        ax.plot([p["update"] for p in mine], [p["score"] for p in mine], marker=".", label=label)
    ax.set_xlabel("updates")
    ax.set_ylabel("dev score (mean of the low-resource languages)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def silhouette_by_language(x: np.ndarray, langs: Sequence[str]) -> float:
    """How separated the languages are in the representation space (scikit-learn, cosine)."""
    from sklearn.metrics import silhouette_score

    if len(set(langs)) < 2:
        return float("nan")
    return float(silhouette_score(x, list(langs), metric="cosine"))


def plot_tsne(features_path: str, path: str) -> Dict[str, float]:
    """Figure 3 from a ``features.npz`` of the runner (``before``, ``after``, ``langs``)."""
    import json

    data = np.load(features_path)
    langs = [str(v) for v in data["langs"]]
    meta = json.loads(str(data["meta"])) if "meta" in data else {}
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    scores = {}
    for ax, which in zip(axes, ("before", "after")):
        x = np.asarray(data[which], dtype=np.float64)
        scores[f"silhouette_{which}"] = silhouette_by_language(x, langs)
        y = tsne_2d(x)
        for lang in dict.fromkeys(langs):
            idx = [i for i, v in enumerate(langs) if v == lang]
            ax.scatter(y[idx, 0], y[idx, 1], s=8, alpha=0.7, label=lang)
        ax.set_title(f"{which} training (silhouette {scores[f'silhouette_{which}']:.2f})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(title="language", fontsize=8, markerscale=2)
    fig.suptitle(f"t-SNE of sentence representations: {meta.get('system', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return scores


def plot_confusions(mats: Dict[str, Tuple[List[str], np.ndarray]], path: str, title: str):
    """Row-normalised confusion matrices side by side (one per system), counts in the cells."""
    plt = _pyplot()
    n = len(mats)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.5, 3.6), squeeze=False)
    for ax, (name, (labels, mat)) in zip(axes[0], mats.items()):
        norm = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    str(int(mat[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"Entity-type confusion (tokens): {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
