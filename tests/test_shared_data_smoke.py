"""Optional smoke test on the real datasets in ../shared/data (skipped when absent):
the readers reproduce the counts its README states, and a manifest prepares a
slice of every task (a few hundred lines, copied to a temporary folder)."""

import os
from collections import Counter

import build_vocab
import prepare as prepare_script
import pytest

from xlt_fairseq.data import corpora, formats, tags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")

pytestmark = pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data is not available")


def shared(*parts):
    return os.path.join(SHARED, *parts)


# counts from ../shared/data/README.md, section 9 (sentences, tokens, entities starting with I-)
NER_COUNTS = {
    ("yo", "train"): (6876, 175835, 1),
    ("zu", "train"): (5848, 89355, 6),
    ("yo-wikiann", "train"): (100, 564, 0),
    ("yo-wikiann", "dev"): (45, 234, 0),
    ("sw-wikiann", "dev"): (523, 2964, 0),
}


@pytest.mark.parametrize("corpus,split", sorted(NER_COUNTS))
def test_ner_counts_match_the_readme(corpus, split):
    sents = formats.read_tagged(shared("ner", corpus, f"{split}.conll"), "conll")
    repaired = sum(tags.to_iob2(s.tags, "iob2")[1] for s in sents)
    assert (len(sents), sum(len(s.tokens) for s in sents), repaired) == NER_COUNTS[(corpus, split)]
    assert tags.entity_types(t for s in sents for t in s.tags) <= {"PER", "ORG", "LOC"}


def test_sentiment_and_translation_counts_match_the_readme():
    rows = formats.read_classification(shared("sentiment", "afrisenti-sw", "train.tsv"), "tsv")
    assert Counter(x.label for x in rows) == {"negative": 191, "positive": 547}
    assert len(formats.read_classification(shared("sentiment", "afrisenti-ti", "dev.tsv"), "tsv")) == 276
    assert len(formats.read_translation(shared("mt", "en-sw", "train"), "src", "tgt")) == 1609
    assert len(formats.read_translation(shared("mt", "en-sw", "dev"), "src", "tgt")) == 190


def _head(src, dst, n, blocks=False):
    """The first ``n`` lines (``blocks``: the first ``n`` blank-line-separated sentences) of ``src``."""
    out, count = [], 0
    with open(src, encoding="utf-8") as f:
        for line in f:
            out.append(line)
            count += (line.strip() == "") if blocks else 1
            if count == n:
                break
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(out)
    return dst


def test_manifest_prepares_a_slice_of_every_task(tmp_path):
    t = str(tmp_path)
    _head(shared("ner", "sw", "train.conll"), os.path.join(t, "sw.train.conll"), 200, blocks=True)
    _head(shared("ner", "sw", "dev.conll"), os.path.join(t, "sw.dev.conll"), 50, blocks=True)
    _head(shared("ner", "zu", "dev.conll"), os.path.join(t, "zu.dev.conll"), 50, blocks=True)
    _head(shared("sentiment", "afrisenti-sw", "train.tsv"), os.path.join(t, "sent.train.tsv"), 300)
    _head(shared("sentiment", "afrisenti-sw", "dev.tsv"), os.path.join(t, "sent.dev.tsv"), 100)
    _head(shared("mt", "en-sw", "train.src"), os.path.join(t, "mt.en"), 300)
    _head(shared("mt", "en-sw", "train.tgt"), os.path.join(t, "mt.sw"), 300)
    _head(shared("mlm", "yo", "train.txt"), os.path.join(t, "yo.txt"), 300)
    text = [os.path.join(t, f) for f in ("sent.train.tsv", "mt.en", "mt.sw", "yo.txt")]
    enc = os.path.join(t, "encoder")
    assert build_vocab.main(["--text", *text, "--vocab-size", "2000", "--out", enc]) == 0
    yo = shared("ner", "yo-wikiann")
    manifest = os.path.join(t, "manifest.yaml")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(f"""scenario:
  name: low-resource
  tiers: {{high: [sw, en], low: [yo], floor: 10}}
  zero_shot: [zu]
corpora:
  - {{task: ner, lang: sw, train: sw.train.conll, valid: sw.dev.conll, domain: news}}
  - {{task: ner, lang: yo, train: {yo}/train.conll, valid: {yo}/dev.conll, domain: wiki}}
  - {{task: ner, lang: zu, valid: zu.dev.conll}}
  - {{task: sentiment, lang: sw, train: sent.train.tsv, valid: sent.dev.tsv, labels: [negative, positive]}}
  - {{task: translation, src_lang: en, tgt_lang: sw, train: mt, valid: mt, max_length: 200}}
  - {{task: mlm, lang: yo, train: yo.txt}}
""")
    data = os.path.join(t, "data-bin")
    assert prepare_script.main([manifest, "--encoder-dir", enc, "--destdir", data, "--workers", "2"]) == 0

    def splits(task, key):
        return corpora.read_meta(corpora.corpus_dir(data, task, key))["splits"]

    assert splits("ner", "sw")["train"]["sentences"] == 200 and splits("ner", "sw")["valid"]["sentences"] == 50
    yo_train = splits("ner", "yo")["train"]
    assert yo_train["read"] == 100 and yo_train["sentences"] == 1  # 1 % of WikiAnn Yoruba's 100 sentences
    assert "under the floor of 10" in yo_train["warnings"][0]
    assert splits("ner", "yo")["valid"]["sentences"] == 45
    assert set(splits("ner", "zu")) == {"valid"} and splits("ner", "zu")["valid"]["sentences"] == 50
    assert (
        splits("sentiment", "sw")["train"]["examples"] == 300 and splits("sentiment", "sw")["valid"]["examples"] == 100
    )
    assert splits("translation", "en-sw")["train"]["read"] == 300
    assert splits("mlm", "yo")["train"]["read"] == 300
    labels = corpora.read_labels(corpora.corpus_dir(data, "ner", "sw"))
    assert labels == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]
    assert "1/100 (low)" in open(os.path.join(data, "prepare_summary.md"), encoding="utf-8").read()
