# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The paper's model variants: soft sharing, alternating adversarial updates,
uncertainty task weighting and auxiliary tagging tasks."""

import math
import os
import shutil

import pytest
import torch
from fairseq.trainer import Trainer

from tests.conftest import run_train, train_args
from tests.test_model_criterion import batch, setup
from xlt_fairseq.data.synthetic import LANGS, ner_sentence


def test_soft_sharing_penalty_is_zero_at_init_and_grows(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(
        tiny_data, tmp_path, "--sharing", "soft", "--freeze-layers", "1", "--soft-sharing-weight", "0.001"
    )
    enc = model.encoder
    assert set(enc.task_layers.keys()) == {"sentiment", "translation", "mlm"}  # ner uses the original layers
    assert len(enc.task_layers["mlm"]) == 1  # only the layer above the frozen one is copied
    assert float(model.soft_sharing_penalty()) == 0.0
    trainer = Trainer(cfg, task, model, criterion)
    logs = [trainer.train_step([batch(task, n=8, start=8 * i)]) for i in range(4)]
    penalty = float(model.soft_sharing_penalty())
    assert penalty > 0
    assert float(logs[-1]["soft_sharing_penalty"]) > 0
    # the copies diverge but the frozen, shared layer is one module
    a = dict(enc.sentence_encoder.layers[1].named_parameters())
    b = dict(enc.task_layers["mlm"][0].named_parameters())
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_soft_sharing_trains_and_generates_end_to_end(tiny_data, tmp_path):
    logs = run_train(train_args(tiny_data["data"], str(tmp_path), "--sharing", "soft", max_update=30))
    valid = logs["valid"][-1]
    assert math.isfinite(float(valid["valid_ner_f1"])) and "valid_bleu" in valid
    assert float(logs["train_inner"][-1]["soft_sharing_penalty"]) > 0
    from fairseq import options
    from fairseq_cli import generate

    from xlt_fairseq.experiments.command import generate_command

    argv = generate_command(
        tiny_data["data"],
        os.path.join(str(tmp_path), "checkpoint_last.pt"),
        "aa",
        "bb",
        "valid",
        beam=2,
        batch_size=8,
        cpu=True,
        results_path=str(tmp_path / "gen"),
    )
    args = options.parse_args_and_arch(options.get_generation_parser(), argv)
    generate.main(args)
    out = open(tmp_path / "gen" / "generate-valid.txt", encoding="utf-8").read()
    assert sum(1 for line in out.splitlines() if line.startswith("H-")) == 41


def test_alternating_updates_change_each_side_only_in_its_steps(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(
        tiny_data,
        tmp_path,
        "--adversarial-mode",
        "alternating",
        "--critic-steps",
        "2",
        "--grl-lambda",
        "0.5",
        "--lr-scheduler",
        "fixed",
        "--warmup-updates",
        "0",
    )
    trainer = Trainer(cfg, task, model, criterion)
    disc = {n for n, _ in model.named_parameters() if n.startswith("discriminator.")}
    phases = []
    for step in range(6):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.train()
        model.set_num_updates(trainer.get_num_updates())
        phases.append(model.adversarial_phase())
        trainer.train_step([batch(task, n=8, start=8 * step)])
        changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
        if phases[-1] == "critic":
            assert changed and changed <= disc, sorted(changed - disc)[:5]
        else:
            assert changed and not (changed & disc), sorted(changed & disc)[:5]
            assert "encoder.feature_extractor.dense.weight" in changed
    assert phases == ["critic", "critic", "encoder"] * 2


def test_uncertainty_weights_move_apart_for_tasks_of_different_noise(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--task-weighting", "uncertainty", "--lr", "0.01")
    trainer = Trainer(cfg, task, model, criterion)
    assert {n for n, _ in criterion.named_parameters()} == {f"log_vars.{t}" for t in task.task_names}
    for step in range(25):
        log = trainer.train_step([batch(task, n=16, start=(16 * step) % 400)])
    weights = {t: float(log[f"weight_{t}"]) for t in task.task_names}
    assert max(weights.values()) - min(weights.values()) > 0.1, weights
    # the masked LM (high, noisy loss) is down-weighted relative to clean, easy NER
    assert weights["mlm"] < weights["ner"], weights


@pytest.fixture(scope="module")
def pos_data(tiny_data, tmp_path_factory):
    """An auxiliary POS-like task in CoNLL-U (UPOS column), prepared with
    ``scripts/preprocess.py tagging``: tags follow from the word class. Into a copy of
    the session's data root, which other test files read as it is."""
    import random

    import preprocess

    rng = random.Random(5)
    tmp = tmp_path_factory.mktemp("pos")
    data, raw = str(tmp / "data"), str(tmp / "raw-pos")
    shutil.copytree(tiny_data["data"], data)
    os.makedirs(raw, exist_ok=True)
    for lang in LANGS:
        args = [
            "tagging",
            "--name",
            "pos",
            "--lang",
            lang,
            "--encoder-dir",
            tiny_data["encoder"],
            "--destdir",
            data,
        ]
        for split, n in (("train", 200), ("valid", 30)):
            path = os.path.join(raw, f"pos.{lang}.{split}.conllu")
            with open(path, "w", encoding="utf-8") as f:
                for k in range(n):
                    words, tags = ner_sentence(rng, lang)
                    pos = ["PROPN" if t != "O" else ("NOUN" if w[1] in "kmt" else "VERB") for w, t in zip(words, tags)]
                    f.write(f"# sent_id = {k}\n# text = {' '.join(words)}\n")
                    f.write(f"1-2\t{words[0]}{words[0]}\t_\t_\t_\t_\t_\t_\t_\t_\n")  # a multi-word token range
                    for i, (w, p) in enumerate(zip(words, pos), start=1):
                        f.write(f"{i}\t{w}\t{w.lower()}\t{p}\t_\t_\t0\tdep\t_\t_\n")
                    f.write("\n")
            args += [f"--{split}", path]
        assert preprocess.main(args) == 0
    return {**tiny_data, "data": data}


def test_auxiliary_pos_task_trains_and_reports_accuracy(pos_data, tmp_path):
    logs = run_train(
        train_args(
            pos_data["data"], str(tmp_path), "--tagging-tasks", "pos", "--tagging-weights", "pos=0.5", max_update=120
        )
    )
    valid = logs["valid"][-1]
    for key in ("valid_pos_acc", "valid_pos_acc_aa", "valid_pos_acc_bb", "valid_pos_loss", "valid_ner_f1"):
        assert key in valid, key
    assert float(valid["valid_pos_acc"]) >= 0.85
    assert "pos_loss" in logs["train_inner"][-1]


@pytest.mark.parametrize("row", ["base", "adversarial", "multitask", "language_modelling", "full"])
def test_every_ablation_row_trains(row, tiny_data, tmp_path):
    from xlt_fairseq.experiments.ablations import ablation_flags

    corpora = {"ner": ["aa", "bb"], "sentiment": ["aa", "bb"], "translation": ["aa-bb"], "mlm": ["aa", "bb"]}
    flags = ablation_flags(row, "ner", corpora)
    args = train_args(tiny_data["data"], str(tmp_path), max_update=6)
    # replace the default task lists with the row's
    for flag in ("--ner-langs", "--sentiment-langs", "--mlm-langs", "--translation-pairs"):
        i = args.index(flag)
        del args[i : i + 2]
    logs = run_train(args + flags + ["--no-eval-bleu"])
    last = logs["train"][-1]
    names = {k[len("train_") : -len("_loss")] for k in last if k.endswith("_loss")}
    names -= {"", "adv", "translation_nll"}
    expected = {
        "base": {"ner"},
        "adversarial": {"ner"},
        "multitask": {"ner", "sentiment", "translation"},
        "language_modelling": {"ner", "sentiment", "translation", "mlm"},
        "full": {"ner", "sentiment", "translation", "mlm"},
    }
    assert names == expected[row]
    lam = float(last["train_grl_lambda"])
    assert lam == (0.01 if row in ("adversarial", "full") else 0.0)


def test_domain_adversarial_target(tiny_data, tmp_path):
    """The discriminator predicts each corpus' domain, not its language: bb's NER and
    sentiment corpora are "tweets", bb's masked-LM corpus stays "general", so domain
    and language disagree on those MLM examples."""
    import json
    import shutil

    data = str(tmp_path / "data")
    shutil.copytree(tiny_data["data"], data)
    for task_name in ("ner", "sentiment"):
        meta_path = os.path.join(data, task_name, "bb", "meta.json")
        meta = json.load(open(meta_path))
        meta["domain"] = "tweets"
        json.dump(meta, open(meta_path, "w"))
    cfg, task, model, criterion = setup({"data": data}, tmp_path, "--adversarial-target", "domain", "--dropout", "0")
    assert task.domains == ["general", "tweets"]
    assert model.discriminator.layers[-1].out_features == 2
    ds = task.dataset("train")  # every 16th item: both languages of every task (items 0-31 are all aa)
    sample = ds.collater([ds[i] for i in range(0, len(ds), 16)])
    bb = task.languages.index("bb")
    for name, sub in sample.items():
        expected = sub["lang_id"].eq(bb).long() if name in ("ner", "sentiment") else torch.zeros_like(sub["lang_id"])
        assert torch.equal(sub["domain_id"], expected), name
    domains = torch.cat([s["domain_id"] for s in sample.values()])
    assert set(domains.tolist()) == {0, 1}
    assert bool((sample["mlm"]["lang_id"].eq(bb) & sample["mlm"]["domain_id"].eq(0)).any())

    model.eval()  # deterministic: the losses below differ only by the targets given
    _, _, log = criterion(model, sample)
    assert log["adv_count"] == domains.numel() == sum(int(s["nsentences"]) for s in sample.values())

    def adv_loss_with(key, values):
        changed = {name: {**sub, key: values(sub[key])} for name, sub in sample.items()}
        return float(criterion(model, changed)[2]["adv_loss"])

    # the loss reads domain ids: other language ids change nothing, other domain ids change it
    assert adv_loss_with("lang_id", lambda ids: 1 - ids) == pytest.approx(float(log["adv_loss"]), rel=1e-6)
    assert adv_loss_with("domain_id", lambda ids: 1 - ids) != pytest.approx(float(log["adv_loss"]), rel=1e-3)


@pytest.mark.parametrize("objective", ["reverse", "confusion"])
def test_alternating_encoder_update_follows_the_adversarial_loss(tiny_data, tmp_path, objective):
    """In an encoder update the discriminator is fixed; the encoder's adversarial term is
    ``-lambda * w * CE(D(f), language)`` under reverse and ``lambda * w * CE(D(f), uniform)`` under
    confusion (bounded below by log K: a confidently wrong discriminator does not satisfy it)."""
    no_dropout = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]
    cfg, task, model, criterion = setup(
        tiny_data, tmp_path, "--adversarial-mode", "alternating", "--critic-steps", "1", "--grl-lambda", "0.5",
        "--adversarial-weight", "2", "--adversarial-loss", objective, *no_dropout,
    )
    model.train()
    model.set_num_updates(1)
    assert model.adversarial_phase() == "encoder"
    sample = batch(task, n=8)
    # a fixed discriminator that always names language 0 with great confidence
    wrong = torch.tensor([12.0] + [0.0] * (len(LANGS) - 1))
    model.discriminator.forward_frozen = lambda f: wrong.to(f.dtype).expand(f.shape[0], -1) + 0.0 * f.sum()
    loss, _, log = criterion(model, sample)
    weight = 2.0
    criterion.cfg.adversarial_weight = 0.0  # the same update's task terms alone
    tasks_only, _, _ = criterion(model, sample)
    term = float(loss - tasks_only)
    lprobs = torch.log_softmax(wrong, dim=-1)
    targets = torch.cat([s["lang_id"] for s in sample.values() if s])
    ce = float(-lprobs[targets].mean())
    if objective == "reverse":
        assert term == pytest.approx(-0.5 * weight * ce, rel=1e-4)
        assert term < 0
    else:
        assert term == pytest.approx(0.5 * weight * float(-lprobs.mean()), rel=1e-4)
        assert term >= 0.5 * weight * math.log(len(LANGS)) - 1e-4
