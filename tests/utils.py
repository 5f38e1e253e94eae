"""Test helpers: tiny synthetic data, prepared through the real scripts."""

import os
import sys

from xlt_fairseq.data.synthetic import LANGS, write_raw_data  # noqa: F401
from xlt_fairseq.experiments.command import synthetic_preprocess_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare_all(tmp_dir, vocab_size=200, seed=0, sizes=None):
    """Raw data -> build_vocab -> preprocess for every task; returns (encoder dir, data root, raw paths)."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import build_vocab
    import preprocess

    raw = write_raw_data(os.path.join(tmp_dir, "raw"), seed=seed, sizes=sizes)
    enc = os.path.join(tmp_dir, "encoder")
    texts = [p for (task, _, split), p in raw.items() if task in ("mlm", "sentiment") and split == "train"]
    texts += [raw[("translation", "aa-bb", "train")] + ".aa", raw[("translation", "aa-bb", "train")] + ".bb"]
    assert build_vocab.main(["--text", *texts, "--vocab-size", str(vocab_size), "--out", enc]) == 0
    data = os.path.join(tmp_dir, "data-bin")
    for args in synthetic_preprocess_args(raw, enc, data):
        assert preprocess.main(args) == 0, args
    return enc, data, raw
