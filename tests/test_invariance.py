"""The held-out language probe of xlt_fairseq/invariance.py."""

import numpy as np

from xlt_fairseq.invariance import measure, probe_accuracy


def test_probe_finds_the_language_when_it_is_there_and_not_otherwise(tmp_path):
    rng = np.random.default_rng(0)
    langs = ["en", "sw", "yo", "zu"] * 50
    noise = rng.normal(size=(200, 16))
    shifted = noise + np.array([[5.0 * (i % 4 == j) for j in range(16)] for i in range(200)])
    assert probe_accuracy(shifted, langs) > 0.95
    assert abs(probe_accuracy(noise, langs) - 0.25) < 0.1
    path = str(tmp_path / "features.npz")
    np.savez(path, before=noise, after=shifted, langs=np.array(langs))
    m = measure(path)
    assert m["chance"] == 0.25 and m["probe_acc_after"] > 0.95 and m["silhouette_after"] > m["silhouette_before"]


def test_input_probe_reads_the_language_from_the_word_pieces(tmp_path):
    from xlt_fairseq.invariance import input_probe_accuracy

    rng = np.random.default_rng(0)
    langs = ["en", "sw"] * 60

    def bags(own_words):
        sentences = []
        for i, lang in enumerate(langs):
            shared = rng.integers(4, 50, size=6)  # words of both languages
            own = rng.integers(100, 110, size=2) + (100 if lang == "sw" and own_words else 0)
            sentences.append(np.concatenate([shared, own]))
        return np.concatenate(sentences), np.cumsum([0] + [len(s) for s in sentences])

    pieces, offsets = bags(own_words=True)
    assert input_probe_accuracy(pieces, offsets, langs) > 0.95
    pieces, offsets = bags(own_words=False)  # the same word distribution in both languages
    assert abs(input_probe_accuracy(pieces, offsets, langs) - 0.5) < 0.15
    path = str(tmp_path / "features.npz")
    x = rng.normal(size=(len(langs), 8))
    np.savez(path, before=x, after=x, langs=np.array(langs), pieces=pieces, offsets=offsets)
    assert abs(measure(path)["probe_acc_input"] - 0.5) < 0.15


def test_raw_probe_and_variance_share_tell_hidden_by_scale_from_removed(tmp_path):
    """Language in one direction of tiny variance under a few huge directions: the standardised
    probe finds it, the raw probe does not, and the top-5 variance share is near 1."""
    from xlt_fairseq.invariance import top_variance_share

    rng = np.random.default_rng(0)
    langs = ["en", "sw"] * 100
    y = np.array([0.0, 1.0] * 100)
    big = rng.normal(size=(200, 3)) * 1000.0
    small = rng.normal(size=(200, 13)) * 1e-3
    small[:, 0] = (y - 0.5) * 2e-3 + rng.normal(size=200) * 1e-4  # the language, at tiny scale
    hidden = np.concatenate([big, small], axis=1)
    assert probe_accuracy(hidden, langs) > 0.95
    assert probe_accuracy(hidden, langs, standardise=False) < 0.7
    assert top_variance_share(hidden) > 0.99
    assert top_variance_share(rng.normal(size=(200, 16))) < 0.6
    path = str(tmp_path / "features.npz")
    np.savez(path, before=rng.normal(size=(200, 16)), after=hidden, langs=np.array(langs))
    m = measure(path)
    assert m["probe_acc_after"] > 0.95 and m["probe_acc_raw_after"] < 0.7 and m["top5_variance_after"] > 0.99
