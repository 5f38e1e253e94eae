"""Self-training (xlt_fairseq/self_training.py): which pseudo-labelled sentences are kept."""

import pytest
import torch

from xlt_fairseq.self_training import read_unlabelled, repair_iob2, select_confident, write_conll

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _probs(rows):
    """rows: per word (label index, its probability); the rest spread evenly."""
    out = torch.zeros(len(rows), len(LABELS))
    for i, (j, p) in enumerate(rows):
        out[i] = (1 - p) / (len(LABELS) - 1)
        out[i, j] = p
    return out


def test_iob2_repair():
    got = repair_iob2(["O", "I-PER", "I-PER", "B-LOC", "I-PER", "I-LOC"])
    assert got == ["O", "B-PER", "I-PER", "B-LOC", "B-PER", "B-LOC"]


def test_one_unsure_word_drops_the_sentence_and_most_confident_come_first():
    sents = [["Amina", "anaishi"], ["Juma", "yuko", "Nairobi"], ["sawa"], ["habari", "Mombasa"]]
    probs = [
        _probs([(1, 0.95), (0, 0.99)]),  # kept, confidence 0.95
        _probs([(1, 0.99), (0, 0.5), (3, 0.99)]),  # one unsure word: dropped
        _probs([(0, 0.999)]),  # no entity: kept (empty_ratio 1 allows as many as with entities)
        _probs([(0, 0.97), (4, 0.98)]),  # kept; I-LOC repaired to B-LOC
    ]
    kept = select_confident(sents, probs, LABELS, threshold=0.9)
    assert [k[0] for k in kept] == [["sawa"], ["habari", "Mombasa"], ["Amina", "anaishi"]]
    assert kept[1][1] == ["O", "B-LOC"]
    assert [k[0] for k in select_confident(sents, probs, LABELS, 0.9, max_sentences=1)] == [["sawa"]]
    no_empty = select_confident(sents, probs, LABELS, 0.9, empty_ratio=0.0)
    assert all(any(t != "O" for t in k[1]) for k in no_empty) and len(no_empty) == 2
    with pytest.raises(ValueError, match="threshold"):
        select_confident(sents, probs, LABELS, 1.5)


def test_unlabelled_text_skips_gold_sentences_and_duplicates(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("Amina anaishi Nairobi\n\nJuma yuko\nJuma yuko\n" + " ".join(["x"] * 300) + "\n", encoding="utf-8")
    got = read_unlabelled(str(path), exclude=[["Amina", "anaishi", "Nairobi"]])
    assert got == [["Juma", "yuko"]]
    out = str(tmp_path / "pseudo.conll")
    assert write_conll(out, [(["Juma", "yuko"], ["B-PER", "O"], 0.9)]) == 1
    assert open(out, encoding="utf-8").read() == "Juma\tB-PER\nyuko\tO\n\n"


def test_cli_labels_text_with_a_trained_checkpoint(tiny_data, tmp_path, capsys):
    import json
    import os

    from tests.conftest import run_train, train_args
    from xlt_fairseq.cli.pseudo_label import main
    from xlt_fairseq.data.formats import read_tagged

    save = str(tmp_path / "ckpt")
    run_train(train_args(tiny_data["data"], save, max_update=40))
    ckpt = os.path.join(save, "checkpoint_last.pt")
    text = tiny_data["raw"][("mlm", "aa", "train")]
    gold = tiny_data["raw"][("ner", "aa", "train")]
    out = str(tmp_path / "pseudo.conll")
    assert main(["--model", ckpt, "--text", text, "--lang", "aa", "--exclude", gold, "--threshold", "0", "--out", out]) == 0
    summary = json.loads(capsys.readouterr().out)
    sents = read_tagged(out, "conll")
    assert summary["kept"] == len(sents) > 0
    labels = {t for s in sents for t in s.tags}
    assert labels <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}, labels
    assert main(["--model", ckpt, "--text", text, "--threshold", "1.0", "--out", out]) == 0
    assert json.loads(capsys.readouterr().out)["kept"] == 0
    assert main(["--model", str(tmp_path / "none.pt"), "--text", text, "--out", str(tmp_path / "x.conll")]) == 1
    assert "none.pt" in capsys.readouterr().err and not os.path.exists(str(tmp_path / "x.conll"))
