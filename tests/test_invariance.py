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
