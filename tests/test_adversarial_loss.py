"""--adversarial-loss confusion: the discriminator learns exactly as with gradient
reversal, and the encoder's update makes the (fixed) discriminator less sure."""

import torch
import torch.nn.functional as F

from tests.test_model_criterion import batch, setup

NO_TASKS = ["--ner-weight=0", "--sentiment-weight=0", "--translation-weight=0", "--mlm-weight=0"]
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]


def _features(model, sample):
    model.eval()
    with torch.no_grad():
        return torch.cat([model.pooled_features(**sub["net_input"], task=name) for name, sub in sample.items()])


def _entropy(model, feats):
    with torch.no_grad():
        lp = F.log_softmax(model.discriminator(feats, reverse=False), dim=-1)
    return float(-(lp.exp() * lp).sum(-1).mean())


def test_confusion_trains_the_discriminator_as_reversal_does_and_confuses_it(tiny_data, tmp_path):
    extra = NO_TASKS + NO_DROPOUT + ["--grl-lambda", "0.5", "--adversarial-loss", "confusion"]
    cfg, task, model, criterion = setup(tiny_data, tmp_path, *extra)
    sample = batch(task)
    model.train()
    loss, _, log = criterion(model, sample)
    loss.backward()
    disc_grads = {n: p.grad.clone() for n, p in model.discriminator.named_parameters()}
    assert all(g.abs().sum() > 0 for g in disc_grads.values())

    criterion.cfg.adversarial_loss = "reverse"
    model.zero_grad()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    for n, p in model.discriminator.named_parameters():
        assert torch.allclose(p.grad, disc_grads[n], atol=1e-6), n

    # one small step of everything but the discriminator along the confusion gradient
    criterion.cfg.adversarial_loss = "confusion"
    before = _entropy(model, _features(model, sample))
    model.train()
    model.zero_grad()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    disc = {id(p) for p in model.discriminator.parameters()}
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None and id(p) not in disc:
                p -= 0.05 * p.grad
    after = _entropy(model, _features(model, sample))
    assert after > before, (before, after)
