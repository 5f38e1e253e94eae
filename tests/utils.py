"""Test helpers: tiny synthetic data, prepared through the real scripts."""

import os
import sys

from xlt_fairseq.data.synthetic import LANGS, write_raw_data  # noqa: F401
from xlt_fairseq.experiments.command import synthetic_preprocess_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare_all(tmp_dir, vocab_size=200, seed=0, sizes=None, ner="lexicon"):
    """Raw data -> build_vocab -> preprocess for every task; returns (encoder dir, data root, raw paths)."""
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    import build_vocab
    import preprocess

    raw = write_raw_data(os.path.join(tmp_dir, "raw"), seed=seed, sizes=sizes, ner=ner)
    enc = os.path.join(tmp_dir, "encoder")
    texts = [p for (task, _, split), p in raw.items() if task in ("mlm", "sentiment") and split == "train"]
    texts += [raw[("translation", "aa-bb", "train")] + ".aa", raw[("translation", "aa-bb", "train")] + ".bb"]
    assert build_vocab.main(["--text", *texts, "--vocab-size", str(vocab_size), "--out", enc]) == 0
    data = os.path.join(tmp_dir, "data-bin")
    for args in synthetic_preprocess_args(raw, enc, data):
        assert preprocess.main(args) == 0, args
    return enc, data, raw


# the validation scores of conftest.train_args' tiny run (NER and sentiment on aa, bb; translation aa-bb)
VALID_SCORES = (
    "valid_ner_f1",
    "valid_ner_f1_aa",
    "valid_ner_f1_bb",
    "valid_sentiment_acc",
    "valid_sentiment_macro_f1",
    "valid_sentiment_acc_aa",
    "valid_sentiment_acc_bb",
    "valid_bleu",
    "valid_bleu_aa_bb",
    "valid_adv_acc",
)


def distributed_recipe(port, rank, world_size=2):
    """Two CPU workers over gloo, started by hand (TOOLCHAIN.md's recipe)."""
    return [
        "--distributed-no-spawn",
        "--distributed-rank",
        str(rank),
        "--distributed-world-size",
        str(world_size),
        "--distributed-init-method",
        f"tcp://127.0.0.1:{port}",
        "--distributed-backend",
        "gloo",
        "--ddp-backend",
        "legacy_ddp",
    ]
