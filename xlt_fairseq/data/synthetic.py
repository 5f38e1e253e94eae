# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Tiny synthetic corpora for every task, in two languages, with signals a tiny
model can learn: NER tags and sentiment labels follow from the words, and the
translation is a word-for-word mapping. Used by the tests and the smoke demo."""

import os
import random

LANGS = ("aa", "bb")


def _lexicon(lang):
    a = lang[0]
    common = [f"{a}{c}{v}" for c in "kmtrsl" for v in "aeiou"][:24]
    return {
        "common": common,
        "PER": [f"{a.upper()}per{i}" for i in range(5)],
        "LOC": [f"{a.upper()}loc{i}" for i in range(5)],
        "ORG": [f"{a.upper()}org{i}" for i in range(4)],
        "org_suffix": f"{a}inc",
        "pos": [f"{a}good{i}" for i in range(3)],
        "neg": [f"{a}bad{i}" for i in range(3)],
    }


def _names(lang, n=400):
    """Capitalised names of two or three syllables, the same pool for every entity type."""
    rng = random.Random(11 + ord(lang[0]))
    consonants = "kmtrslnpbdg" if lang == LANGS[0] else "xzpdgbvfhjw"
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(consonants) + rng.choice("aeiou") for _ in range(rng.randint(2, 3))).capitalize())
    return sorted(out)


def context_ner_sentence(rng, lang):
    """NER whose types only the context tells: every entity is a name drawn from one pool of 400
    (most of a dev set's names are unseen in training), typed by its neighbour: a title before a
    person or "said" after one, "in" before a place, the company suffix after an organisation."""
    a = lang[0]
    lex = _lexicon(lang)
    names = _names(lang)
    words, tags = [], []
    for _ in range(rng.randint(3, 8)):
        r = rng.random()
        name = rng.choice(names)
        if r < 0.12:
            words += [f"{a}mr", name]
            tags += ["O", "B-PER"]
        elif r < 0.20:
            words += [name, f"{a}said"]
            tags += ["B-PER", "O"]
        elif r < 0.30:
            words += [f"{a}in", name]
            tags += ["O", "B-LOC"]
        elif r < 0.38:
            words += [name, lex["org_suffix"]]
            tags += ["B-ORG", "I-ORG"]
        else:
            words.append(rng.choice(lex["common"]))
            tags.append("O")
    return words, tags


def ner_sentence(rng, lang):
    lex = _lexicon(lang)
    words, tags = [], []
    for _ in range(rng.randint(3, 8)):
        r = rng.random()
        if r < 0.15:
            words.append(rng.choice(lex["PER"]))
            tags.append("B-PER")
        elif r < 0.25:
            words.append(rng.choice(lex["LOC"]))
            tags.append("B-LOC")
        elif r < 0.32:
            words += [rng.choice(lex["ORG"]), lex["org_suffix"]]
            tags += ["B-ORG", "I-ORG"]
        else:
            words.append(rng.choice(lex["common"]))
            tags.append("O")
    return words, tags


def sentiment_example(rng, lang):
    lex = _lexicon(lang)
    label = rng.choice(["positive", "negative"])
    words = [rng.choice(lex["common"]) for _ in range(rng.randint(2, 6))]
    words.insert(rng.randint(0, len(words)), rng.choice(lex["pos" if label == "positive" else "neg"]))
    return label, " ".join(words)


def translation_pair(rng, src, tgt):
    s_lex, t_lex = _lexicon(src)["common"], _lexicon(tgt)["common"]
    idx = [rng.randrange(len(s_lex)) for _ in range(rng.randint(2, 6))]
    return " ".join(s_lex[i] for i in idx), " ".join(t_lex[i] for i in idx)


def text_line(rng, lang):
    lex = _lexicon(lang)
    pool = lex["common"] + lex["PER"] + lex["LOC"] + lex["ORG"] + [lex["org_suffix"]] + lex["pos"] + lex["neg"]
    return " ".join(rng.choice(pool) for _ in range(rng.randint(3, 9)))


SIZES = {"train": 240, "valid": 41, "test": 37}
# the multi-task balance case (benchmarks/bench_multitask_balance.py): NER typed by context, more data
CONTEXT_SIZES = {"train": 1000, "valid": 200, "test": 200}


def write_raw_data(raw_dir, seed=0, sizes=None, ner="lexicon"):
    """Writes raw files for every task in two languages; returns their paths. ``ner``: "lexicon" (each
    name has one type) or "context" (:func:`context_ner_sentence`)."""
    sizes = sizes or SIZES
    make_ner = {"lexicon": ner_sentence, "context": context_ner_sentence}[ner]
    rng = random.Random(seed)
    os.makedirs(raw_dir, exist_ok=True)
    paths = {}
    for lang in LANGS:
        for split, n in sizes.items():
            p = os.path.join(raw_dir, f"ner.{lang}.{split}.conll")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    words, tags = make_ner(rng, lang)
                    f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
            paths[("ner", lang, split)] = p
            p = os.path.join(raw_dir, f"sentiment.{lang}.{split}.tsv")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    f.write("%s\t%s\n" % sentiment_example(rng, lang))
            paths[("sentiment", lang, split)] = p
            p = os.path.join(raw_dir, f"mlm.{lang}.{split}.txt")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    f.write(text_line(rng, lang) + "\n")
            paths[("mlm", lang, split)] = p
    for split, n in sizes.items():
        prefix = os.path.join(raw_dir, f"mt.{split}")
        with open(prefix + ".aa", "w", encoding="utf-8") as fs, open(prefix + ".bb", "w", encoding="utf-8") as ft:
            for _ in range(n):
                s, t = translation_pair(rng, "aa", "bb")
                fs.write(s + "\n")
                ft.write(t + "\n")
        paths[("translation", "aa-bb", split)] = prefix
    return paths
