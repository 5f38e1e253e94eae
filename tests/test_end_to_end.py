"""End to end, in a temporary directory: build_vocab -> preprocess -> fairseq-train
(in-process, through the real argument parser) -> fairseq-generate -> resume."""

import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, run_train, train_args
from tests.utils import VALID_SCORES
from xlt_fairseq.experiments.command import generate_command

VALID_KEYS = [
    *VALID_SCORES,
    "valid_sentiment_macro_f1_aa",
    "valid_sentiment_macro_f1_bb",
    "valid_mlm_loss",
    "valid_ner_loss",
    "valid_sentiment_loss",
    "valid_translation_loss",
    "valid_adv_loss",
    "valid_loss",
]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("ckpt"))
    logs = run_train(
        train_args(
            tiny_data["data"],
            save,
            "--best-checkpoint-metric",
            "ner_f1",
            "--maximize-best-checkpoint-metric",
            max_update=300,
        )
    )
    return {"save": save, "logs": logs}


def test_training_logs_every_metric_and_learns(trained):
    valid = trained["logs"]["valid"][-1]
    for key in VALID_KEYS:
        assert key in valid, key
        assert math.isfinite(float(valid[key])), key
    # tags and labels follow from the tokens: a tiny model must learn them
    assert float(valid["valid_ner_f1"]) >= 0.9
    assert float(valid["valid_ner_f1_aa"]) >= 0.9 and float(valid["valid_ner_f1_bb"]) >= 0.9
    assert float(valid["valid_sentiment_acc"]) >= 0.9
    assert float(valid["valid_sentiment_macro_f1"]) >= 0.9
    # the discriminator tells the languages apart (their vocabularies are disjoint): near the majority
    # class (about 0.6) at the first validation, not at the end. Targets that are all one class (e.g.
    # every lang_id 0) would give 1.0 from the start; a discriminator that does not learn stays low.
    first = trained["logs"]["valid"][0]
    assert float(first["valid_adv_acc"]) < 0.8
    assert float(valid["valid_adv_acc"]) >= 0.95
    # the word-for-word translation is learned: BLEU of the greedy validation decoding, scored by
    # sacreBLEU on detokenised text, goes from about 0 to (nearly) 100; the one pair is the total
    assert float(first["valid_bleu"]) < 10.0
    assert float(valid["valid_bleu"]) >= 90.0
    assert float(valid["valid_bleu_aa_bb"]) == float(valid["valid_bleu"])
    inner = trained["logs"]["train_inner"]
    for key in ("ner_loss", "sentiment_loss", "translation_loss", "mlm_loss", "adv_loss", "adv_acc", "grl_lambda"):
        assert all(math.isfinite(float(r[key])) for r in inner), key
    assert float(inner[-1]["ner_loss"]) < float(inner[0]["ner_loss"])
    assert float(inner[-1]["translation_loss"]) < float(inner[0]["translation_loss"])
    assert float(inner[-1]["mlm_loss"]) < float(inner[0]["mlm_loss"])
    assert float(inner[0]["grl_lambda"]) == pytest.approx(0.01)


def test_best_checkpoint_follows_the_metric(trained):
    state = torch.load(os.path.join(trained["save"], "checkpoint_best.pt"), map_location="cpu")
    best = max(float(v["valid_ner_f1"]) for v in trained["logs"]["valid"])
    assert state["extra_state"]["best"] == pytest.approx(best)


def test_generate_translates_every_test_sentence(trained, tiny_data, tmp_path):
    from fairseq import options
    from fairseq_cli import generate

    parser = options.get_generation_parser()
    ckpt = os.path.join(trained["save"], "checkpoint_best.pt")
    argv = generate_command(tiny_data["data"], ckpt, "aa", "bb", "test", beam=3, batch_size=8, cpu=True)
    argv += ["--remove-bpe", "sentencepiece", "--results-path", str(tmp_path), "--scoring", "sacrebleu"]
    args = options.parse_args_and_arch(parser, argv)
    generate.main(args)
    out = open(os.path.join(tmp_path, "generate-test.txt"), encoding="utf-8").read()
    hyps = [line for line in out.splitlines() if line.startswith("H-")]
    assert len(hyps) == 37  # not a multiple of 8: no batch may be dropped
    assert sorted(int(h.split("\t")[0][2:]) for h in hyps) == list(range(37))
    assert re.search(r"BLEU = [\d.]+", out)


def test_resume_from_checkpoint_last(trained, tiny_data, tmp_path):
    save = str(tmp_path / "resume")
    shutil.copytree(trained["save"], save)
    logs = run_train(train_args(tiny_data["data"], save, max_update=340))
    updates = [int(r["num_updates"]) for r in logs["train_inner"]]
    assert updates and min(updates) > 300 and max(updates) == 340


def test_resumed_run_reproduces_the_uninterrupted_one(tiny_data, tmp_path):
    extra = ["--log-interval", "1", "--save-interval-updates", "20"]
    straight = run_train(train_args(tiny_data["data"], str(tmp_path / "a"), *extra, max_update=40))
    run_train(train_args(tiny_data["data"], str(tmp_path / "b"), *extra, max_update=20))
    resumed = run_train(train_args(tiny_data["data"], str(tmp_path / "b"), *extra, max_update=40))
    a = {int(r["num_updates"]): r for r in straight["train_inner"]}
    b = {int(r["num_updates"]): r for r in resumed["train_inner"]}
    assert set(b) == set(range(21, 41))  # resumed mid-epoch (an epoch here is 30 updates)
    for step in b:
        for key in ("loss", "ner_loss", "sentiment_loss", "translation_loss", "mlm_loss", "adv_loss"):
            assert float(b[step][key]) == pytest.approx(float(a[step][key]), abs=1e-3), (step, key)


def test_interactive_translates_raw_text(trained, tiny_data):
    raw = open(tiny_data["raw"][("translation", "aa-bb", "test")] + ".aa", encoding="utf-8").read().splitlines()[:5]
    ckpt = os.path.join(trained["save"], "checkpoint_best.pt")
    spm = os.path.join(tiny_data["encoder"], "sentencepiece.bpe.model")
    argv = generate_command(tiny_data["data"], ckpt, "aa", "bb", beam=2, cpu=True, buffer_size=4)
    argv += ["--bpe", "sentencepiece", "--sentencepiece-model", spm]
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "fairseq-interactive"), *argv],
        input="\n".join(raw) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hyps = [line for line in out.stdout.splitlines() if line.startswith("H-")]
    assert len(hyps) == 5
    # the source was framed as in training: <s> pieces </s>
    src = [line for line in out.stdout.splitlines() if line.startswith("S-")]
    assert src[0].split("\t", 1)[1].replace(" ", "").replace("\u2581", " ").strip() == raw[0]


def test_smoke_pipeline_runs_at_reduced_size(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "scripts", "smoke.py"),
            "--out",
            str(tmp_path / "demo"),
            "--max-update",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "fairseq-generate translated 37 test sentences" in out.stdout
    assert "| aa |" in out.stdout and "| bb |" in out.stdout
