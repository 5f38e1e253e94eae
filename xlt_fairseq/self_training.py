# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Self-training for low-resource tagging: a trained model labels unlabelled
text of the target language, the predictions it is confident about are kept as
pseudo-labelled training data, and a model is trained again on the gold data
plus them (the recipe of CROP, Yang et al., 2022, and CoLaDa, Ma et al., 2023,
without their label projection and neighbourhood denoising: sentence-level
confidence filtering, the common core of both).

A sentence is kept when the model's probability of its predicted label is at
least ``threshold`` for *every* word (one unsure word drops the sentence, so a
kept sentence has no half-trusted spans); predicted tags are repaired to valid
IOB2 (an ``I-X`` that does not continue an ``X`` entity starts one); sentences
with no entity are kept only up to ``empty_ratio`` times the number of kept
sentences with entities (unlabelled text is mostly entity-free and a model
trained on it learns to predict ``O``). The most confident sentences come first
when ``max_sentences`` caps the number kept.
"""

from typing import Iterable, List, Optional, Sequence, Tuple

Example = Tuple[List[str], List[str], float]


def repair_iob2(tags: Sequence[str]) -> List[str]:
    """``O I-PER I-PER B-LOC I-ORG`` -> ``O B-PER I-PER B-LOC B-ORG``."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def read_unlabelled(path: str, max_words: int = 200, exclude: Iterable[Sequence[str]] = ()) -> List[List[str]]:
    """One sentence per line, split at whitespace (as CoNLL tokens are); blank
    lines, lines over ``max_words`` words and sentences in ``exclude`` (e.g. the
    gold training set) are left out; duplicates are kept once."""
    seen = {tuple(s) for s in exclude}
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not words or len(words) > max_words or tuple(words) in seen:
                continue
            seen.add(tuple(words))
            out.append(words)
    return out


def select_confident(
    sentences: Sequence[List[str]],
    probs,
    labels: Sequence[str],
    threshold: float,
    max_sentences: Optional[int] = None,
    empty_ratio: float = 1.0,
) -> List[Example]:
    """``probs``: per sentence a (words x labels) tensor. Returns the kept
    ``(words, tags, confidence)``, most confident first."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the confidence threshold must be in [0, 1], not {threshold}")
    with_entities, without = [], []
    for words, p in zip(sentences, probs):
        if not words:
            continue
        best, idx = p.max(dim=-1)
        confidence = float(best.min())
        if confidence < threshold:
            continue
        tags = repair_iob2([labels[int(i)] for i in idx])
        (with_entities if any(t != "O" for t in tags) else without).append((list(words), tags, confidence))
    with_entities.sort(key=lambda e: -e[2])
    without.sort(key=lambda e: -e[2])
    kept = with_entities + without[: int(round(empty_ratio * max(len(with_entities), 1)))]
    kept.sort(key=lambda e: -e[2])
    return kept[:max_sentences] if max_sentences else kept


def pseudo_label(
    hub,
    sentences: Sequence[List[str]],
    threshold: float,
    task: str = "ner",
    batch_size: int = 32,
    max_sentences: Optional[int] = None,
    empty_ratio: float = 1.0,
) -> List[Example]:
    """Labels ``sentences`` with a hub model (:meth:`XLTHubInterface.tag_probs`) and keeps the confident ones."""
    probs = hub.tag_probs(sentences, task=task, batch_size=batch_size)
    return select_confident(sentences, probs, hub.labels(task), threshold, max_sentences, empty_ratio)


def write_conll(path: str, examples: Iterable[Tuple[List[str], List[str]]], inputs=()) -> int:
    """Writes ``token<TAB>tag`` lines, a blank line after each sentence (atomically, never onto one of
    ``inputs``); returns the count."""
    from .data.textio import write_text_atomic

    blocks = ["".join(f"{w}\t{t}\n" for w, t in zip(e[0], e[1])) + "\n" for e in examples]
    write_text_atomic(path, "".join(blocks), inputs, "--out")
    return len(blocks)
