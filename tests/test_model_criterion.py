import pytest
import torch
from fairseq import options, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer

from tests.conftest import train_args


def setup(tiny_data, tmp_path, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, train_args(tiny_data["data"], str(tmp_path), *extra))
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    utils.set_torch_seed(1)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    task.load_dataset("valid")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def batch(task, split="train", n=8, start=0):
    ds = task.dataset(split)
    return ds.collater([ds[i] for i in range(start, start + n)])


def test_total_loss_is_the_weighted_sum_of_its_parts(tiny_data, tmp_path):
    weights = {"ner": 0.7, "sentiment": 1.3, "translation": 0.4, "mlm": 0.25}
    extra = [f"--{k}-weight={v}" for k, v in weights.items()] + ["--adversarial-weight", "0.6"]
    cfg, task, model, criterion = setup(tiny_data, tmp_path, *extra)
    model.eval()
    sample = batch(task)
    assert set(sample.keys()) == set(weights)
    loss, sample_size, log = criterion(model, sample)
    assert sample_size == 1
    expected = sum(w * log[f"{t}_loss"] / log[f"{t}_count"] for t, w in weights.items())
    expected += 0.6 * log["adv_loss"] / log["adv_count"]
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    # each part is what the task's own loss is on its own
    for t in weights:
        _, _, single = criterion(model, {t: sample[t]})
        assert float(single[f"{t}_loss"]) == pytest.approx(float(log[f"{t}_loss"]), rel=1e-6)
    assert log["adv_count"] == sum(int(s["nsentences"]) for s in sample.values())
    assert log["_grl_lambda"] == pytest.approx(0.01)


def test_every_trainable_parameter_gets_a_gradient_and_frozen_ones_none(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--freeze-embeddings", "--freeze-layers", "1")
    model.train()
    loss, _, _ = criterion(model, batch(task, n=16))
    loss.backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("encoder.sentence_encoder.layers.0.") for n in frozen)
    assert "encoder.sentence_encoder.embed_tokens.weight" in frozen
    assert not any(n.startswith("encoder.sentence_encoder.layers.1.") for n in frozen)
    for name, p in model.named_parameters():
        if name in frozen:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


def test_frozen_parameters_stay_bit_identical_through_fairseq_training(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--freeze-embeddings", "--freeze-layers", "1")
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = Trainer(cfg, task, model, criterion)
    optimized = {id(p) for group in trainer.optimizer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) not in optimized for n, p in model.named_parameters() if n in frozen)
    for step in range(3):
        trainer.train_step([batch(task, n=8, start=8 * step)])
    params = dict(model.named_parameters())
    for name, before in frozen.items():
        assert torch.equal(params[name].detach(), before), name
    assert any(not torch.equal(params[n].detach(), before) for n, before in trained.items())


def test_freeze_layers_larger_than_encoder_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="--freeze-layers 3"):
        setup(tiny_data, tmp_path, "--freeze-layers", "3")


def test_gradient_reversal_reaches_the_encoder_scaled_by_lambda(tiny_data, tmp_path):
    """With only the adversarial term, the feature extractor's gradient under
    GRL(lambda) is -lambda times its gradient without reversal."""
    extra = [
        "--ner-weight=0",
        "--sentiment-weight=0",
        "--translation-weight=0",
        "--mlm-weight=0",
        "--grl-lambda",
        "0.3",
        "--dropout",
        "0",
        "--attention-dropout",
        "0",
        "--pooler-dropout",
        "0",
    ]
    cfg, task, model, criterion = setup(tiny_data, tmp_path, *extra)
    model.train()
    sample = batch(task)
    fe = model.encoder.feature_extractor.dense.weight
    loss, _, _ = criterion(model, sample)
    loss.backward()
    reversed_grad = fe.grad.clone()
    model.zero_grad()
    model.discriminator.grl.lambda_ = -1.0  # -(-1) = plain gradient
    loss, _, _ = criterion(model, sample)
    loss.backward()
    assert torch.allclose(reversed_grad, -0.3 * fe.grad, atol=1e-7)


def test_validation_metric_counts_cover_every_example(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(tiny_data, tmp_path)
    model.eval()
    ds = task.dataset("valid")
    itr = task.get_batch_iterator(ds, max_sentences=8, required_batch_size_multiple=8).next_epoch_itr(shuffle=False)
    n = {"ner": 0, "sentiment": 0, "translation": 0, "mlm": 0}
    gold = {"": 0, ":aa": 0, ":bb": 0}
    for sample in itr:
        _, _, log = task.valid_step(sample, model, criterion)
        for t in n:
            n[t] += int(sample[t]["nsentences"]) if t in sample else 0
        for suffix in gold:
            gold[suffix] += log[f"_ner_gold{suffix}"]
        assert log["_sentiment_total"] == (int(sample["sentiment"]["nsentences"]) if "sentiment" in sample else 0)
    assert n["ner"] == 82 and n["sentiment"] == 82 and n["translation"] == 41
    # the gold entities the metric counts are exactly seqeval's on the raw dev files, per language: every
    # sentence scored once, tags read from each word's first piece only, B-/I- kept apart
    expected = {f":{lang}": _entities_in_conll(tiny_data["raw"][("ner", lang, "valid")]) for lang in ("aa", "bb")}
    expected[""] = expected[":aa"] + expected[":bb"]
    assert expected[""] > 40  # the dev files hold entities of every type
    assert gold == expected


def _entities_in_conll(path):
    from seqeval.metrics.sequence_labeling import get_entities

    blocks = open(path, encoding="utf-8").read().split("\n\n")
    tags = [[line.split("\t")[1] for line in block.splitlines()] for block in blocks if block.strip()]
    return sum(len(get_entities(t)) for t in tags)
