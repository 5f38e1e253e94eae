"""The training policy (xlt_fairseq/training_policy.py) on its own: which
parameter group an alternating update may change, through fairseq's grouped
optimizer step or by clearing the other side's gradients."""

import torch

from xlt_fairseq.training_policy import TrainingPolicy, nonfinite_terms


class _Optimizer:
    def __init__(self, params, supports_groups):
        self.params = params
        self.supports_groups = supports_groups
        self.calls = []

    def step(self, groups=None):
        self.calls.append((groups, [p.grad is not None for p in self.params]))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


class _Model:
    def __init__(self, group):
        self.group = group

    def get_groups_for_update(self, num_updates):
        return self.group


def _params():
    enc, disc = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    disc.param_group = "discriminator"
    for p in (enc, disc):
        p.grad = torch.ones(2)
    return [enc, disc]


def test_grouped_optimizer_steps_only_the_named_group():
    opt = _Optimizer(_params(), supports_groups=True)
    TrainingPolicy(5, 0, 2).step(opt, _Model("discriminator"), 0)
    assert opt.calls == [({"discriminator"}, [True, True])]


def test_plain_optimizer_sees_only_the_named_groups_gradients():
    for group, expected in (("discriminator", [False, True]), ("default", [True, False]), (None, [True, True])):
        opt = _Optimizer(_params(), supports_groups=False)
        TrainingPolicy(5, 0, 2).step(opt, _Model(group), 0)
        assert opt.calls == [(None, expected)], group


def test_skipped_update_does_not_step_and_counts_towards_the_stop():
    policy = TrainingPolicy(2, 0, 2)
    model = torch.nn.Linear(2, 1)
    log = {"ner_loss": torch.tensor(float("nan")), "nonfinite_ner": 1, "nonfinite_adv": 0}
    loss, skip = policy.after_forward(torch.tensor(float("nan")), log, model, 0)
    assert skip and float(loss) == 0.0 and float(log["ner_loss"]) == 0.0
    assert nonfinite_terms(log) == ["ner"]
    opt = _Optimizer(_params(), supports_groups=False)
    policy.step(opt, _Model(None), 0)
    assert opt.calls == [] and all(p.grad is None for p in opt.params)
