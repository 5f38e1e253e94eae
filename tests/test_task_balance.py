"""--task-balance main: each auxiliary task's gradient on the shared encoder
rescaled to alpha * ratio times the main task's, heads untouched, one backward
per task that adds up to the summed loss."""

import pytest
import torch

from tests.conftest import train_args
from xlt_fairseq.criterions.task_balance import TaskBalance


class _PlainOptimizer:
    scaler = None

    def backward(self, loss):
        loss.backward()


def _toy():
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4)
    heads = {"ner": torch.nn.Linear(4, 3), "mlm": torch.nn.Linear(4, 5), "sentiment": torch.nn.Linear(4, 2)}
    x = torch.randn(6, 4)
    weights = {"ner": 1.0, "mlm": 2.0, "sentiment": 1.0}

    def terms():
        h = torch.tanh(shared(x))
        return {name: weights[name] * head(h).pow(2).mean() for name, head in heads.items()}

    return shared, heads, weights, terms


def _grads(params):
    return [p.grad.clone() for p in params]


def test_auxiliary_gradients_are_rescaled_to_the_ratio_of_the_main_tasks():
    shared, heads, weights, terms = _toy()
    params = list(shared.parameters())
    # each task's own gradients, one at a time
    own = {}
    for name in heads:
        for p in list(params) + [q for h in heads.values() for q in h.parameters()]:
            p.grad = None
        terms()[name].backward()
        own[name] = (_grads(params), _grads(list(heads[name].parameters())))
    for p in list(params) + [q for h in heads.values() for q in h.parameters()]:
        p.grad = None

    def norm(gs):
        return torch.sqrt(sum((g**2).sum() for g in gs))

    ratio = 0.25
    stats = TaskBalance("ner", ratio, weights).backward(_PlainOptimizer(), terms(), params)
    main = norm(own["ner"][0])
    expected = [g.clone() for g in own["ner"][0]]
    for name in ("mlm", "sentiment"):
        scale = weights[name] * ratio * main / norm(own[name][0])
        expected = [e + scale * g for e, g in zip(expected, own[name][0])]
        assert stats[f"gnorm_{name}"] == pytest.approx(float(norm(own[name][0])), rel=1e-5)
        cos = sum((a * b).sum() for a, b in zip(own[name][0], own["ner"][0])) / (norm(own[name][0]) * main)
        assert stats[f"gcos_{name}"] == pytest.approx(float(cos), abs=1e-5)
    assert stats["gnorm_ner"] == pytest.approx(float(main), rel=1e-5)
    for p, e in zip(params, expected):
        assert torch.allclose(p.grad, e, atol=1e-6)
    # the heads keep their own, unscaled gradients
    for name, head in heads.items():
        for p, g in zip(head.parameters(), own[name][1]):
            assert torch.allclose(p.grad, g, atol=1e-6)


def test_gradients_accumulated_before_the_step_are_kept():
    shared, heads, weights, terms = _toy()
    params = list(shared.parameters())
    earlier = [torch.full_like(p, 0.5) for p in params]
    balance = TaskBalance("ner", 0.1, weights)
    balance.backward(_PlainOptimizer(), terms(), params)
    alone = _grads(params)
    for p, e in zip(params, earlier):
        p.grad = e.clone()
    for h in heads.values():
        h.zero_grad()
    balance.backward(_PlainOptimizer(), terms(), params)
    for p, a, e in zip(params, alone, earlier):
        assert torch.allclose(p.grad, a + e, atol=1e-6)


def test_the_per_task_terms_add_up_to_the_loss_with_the_discriminator(tiny_data, tmp_path):
    """Each task's term carries its examples' share of the adversarial loss: their sum is the criterion's loss,
    and one training step through the balance runs and logs the gradient statistics."""
    from benchmarks.common import build_trainer

    args = train_args(tiny_data["data"], str(tmp_path / "ck"), "--task-balance", "main", max_update=1)
    cfg, task, trainer = build_trainer(args)
    task.load_dataset("train")
    batch = next(iter(trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)))
    sample = trainer._prepare_sample(batch)[0]
    model, criterion = trainer.model, trainer.criterion
    model.train()
    loss, _, log = criterion(model, sample)
    terms = criterion.take_balance_terms()
    assert set(terms) == {"ner", "sentiment", "translation", "mlm"}
    assert float(sum(terms.values())) == pytest.approx(float(loss), rel=1e-5)
    assert criterion.take_balance_terms() is None  # taken once
    # the task's train step takes the balanced backward and logs each task's gradient statistics
    trainer.zero_grad()
    _, _, log = task.train_step(sample, model, criterion, trainer.optimizer, 0)
    for name in ("ner", "sentiment", "translation", "mlm"):
        assert log[f"_gnorm_{name}"] > 0
    for name in ("sentiment", "translation", "mlm"):
        assert -1.0 <= log[f"_gcos_{name}"] <= 1.0
    assert all(p.grad is not None for p in model.shared_parameters())


def test_balance_options_are_checked(tiny_data, tmp_path):
    from benchmarks.common import build_trainer

    for extra, message in (
        (["--task-balance", "main", "--main-task", "pos"], "--main-task pos is not an active task"),
        (["--task-balance", "main", "--aux-grad-ratio", "0"], "--aux-grad-ratio must be > 0"),
        (["--task-balance", "main", "--task-weighting", "uncertainty"], "--task-balance none"),
    ):
        with pytest.raises(ValueError, match=message):
            build_trainer(train_args(tiny_data["data"], str(tmp_path / "ck"), *extra, max_update=1))


def test_own_output_layers_start_as_the_embeddings_and_tied_checkpoints_load(tiny_data, tmp_path):
    """--untie-output-embeddings gives the masked-LM head and the decoder their own output layers, copies of the
    embeddings (the balance can then treat the embeddings as shared input); a model trained with them tied (the
    default) loads into an untied one with the same outputs."""
    from benchmarks.common import build_trainer

    args = train_args(tiny_data["data"], str(tmp_path / "a"), "--untie-output-embeddings", max_update=1)
    _, task, trainer = build_trainer(args)
    model = trainer.model
    embed = model.encoder.sentence_encoder.embed_tokens.weight
    assert model.encoder.lm_head.weight is not embed and torch.equal(model.encoder.lm_head.weight, embed)
    assert model.decoder.embed_tokens.weight is not embed and torch.equal(model.decoder.embed_tokens.weight, embed)
    assert any(p is embed for p in model.shared_parameters())

    _, _, tied_trainer = build_trainer(train_args(tiny_data["data"], str(tmp_path / "b"), max_update=1), seed=3)
    tied = tied_trainer.model
    assert tied.encoder.lm_head.weight is tied.encoder.sentence_encoder.embed_tokens.weight
    assert not any(p is tied.encoder.sentence_encoder.embed_tokens.weight for p in tied.shared_parameters())
    model.load_state_dict(tied.state_dict())
    model.eval()
    tied.eval()
    tokens = torch.tensor([[0, 5, 6, 7, 2]])
    masked = torch.tensor([[False, True, False, True, False]])
    with torch.no_grad():
        ours = model(tokens, task="mlm", masked_tokens=masked)["logits"]
        theirs = tied(tokens, task="mlm", masked_tokens=masked)["logits"]
    assert torch.allclose(ours, theirs, atol=1e-6)
