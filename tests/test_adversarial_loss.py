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


def test_token_features_give_the_discriminator_every_token_labelled_with_its_sentence(tiny_data, tmp_path):
    """--adversarial-features token: one discriminator example per non-padding token of every task's
    sentences, each with its sentence's language; the adversarial term alone reaches the encoder."""
    extra = NO_TASKS + NO_DROPOUT + ["--adversarial-features", "token", "--grl-lambda", "1"]
    cfg, task, model, criterion = setup(tiny_data, tmp_path, *extra)
    sample = batch(task)
    model.train()
    loss, _, log = criterion(model, sample)
    pad = task.source_dictionary.pad()
    tokens = sum(int(sub["net_input"]["src_tokens"].ne(pad).sum()) for sub in sample.values())
    sentences = sum(int(sub["nsentences"]) for sub in sample.values())
    assert log["adv_count"] == tokens > sentences
    # the task weights are 0: the encoder's gradient comes from the token-level discriminator alone
    loss.backward()
    assert model.encoder.feature_extractor.dense.weight.grad.abs().sum() > 0
    # each token row is labelled with its sentence's language
    sub = sample["ner"]
    rows, sentence = model.adversarial_features(**sub["net_input"], task="ner")
    lengths = sub["net_input"]["src_tokens"].ne(pad).sum(1)
    assert rows.shape[0] == int(lengths.sum())
    assert torch.equal(sub["lang_id"][sentence], torch.repeat_interleave(sub["lang_id"], lengths))
    # with pooled features (the default) the same batch gives one example per sentence
    model.cfg.adversarial_features = "pooled"
    _, _, log = criterion(model, sample)
    assert log["adv_count"] == sentences


def test_a_standardised_discriminator_cannot_be_fooled_by_rescaling_its_input(tiny_data, tmp_path):
    """--discriminator-input-norm batch: the discriminator's prediction does not change when the encoder
    rescales or shifts feature directions (how trained features hid the language from a plain one:
    docs/results.md); without it, it does."""
    from xlt_fairseq.modules.heads import Discriminator

    torch.manual_seed(0)
    norm = Discriminator(16, 32, 3, grl_lambda=1.0, dropout=0.0, input_norm="batch")
    plain = Discriminator(16, 32, 3, grl_lambda=1.0, dropout=0.0)
    plain.layers.load_state_dict(norm.layers.state_dict())
    x = torch.randn(64, 16)
    moved = x * (torch.rand(16) * 100 + 0.01) + torch.randn(16) * 10
    assert torch.allclose(norm(x, reverse=False), norm(moved, reverse=False), atol=1e-3)
    assert torch.allclose(norm.forward_frozen(x), norm.forward_frozen(moved), atol=1e-3)
    assert not torch.allclose(plain(x, reverse=False), plain(moved, reverse=False), atol=1e-1)
    # the reversed gradient still reaches the features through the standardiser
    feats = x.clone().requires_grad_(True)
    F.cross_entropy(norm(feats), torch.randint(3, (64,))).backward()
    assert feats.grad.abs().sum() > 0
    norm(x[:1], reverse=False)  # one example: the running statistics serve
    # the model builds it from the flag, and a training step runs through it
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--discriminator-input-norm", "batch")
    assert model.discriminator.norm is not None
    model.train()
    loss, _, log = criterion(model, batch(task))
    loss.backward()
    assert log["adv_count"] > 0 and model.encoder.feature_extractor.dense.weight.grad is not None
