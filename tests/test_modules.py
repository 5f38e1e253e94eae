import math

import pytest
import torch

from xlt_fairseq.modules.gradient_reversal import GradientReversal, ganin_lambda, grad_reverse
from xlt_fairseq.modules.heads import Discriminator, masked_mean


@pytest.mark.parametrize("lam", [0.01, 0.5, 2.0])
def test_grl_identity_forward_reversed_scaled_backward(lam):
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_reverse(x, lam)
    assert torch.equal(y, x)
    upstream = torch.randn(4, 3)
    y.backward(upstream)
    assert torch.allclose(x.grad, -lam * upstream)


def test_grl_against_plain_gradient():
    w = torch.randn(3, 2)
    x1 = torch.randn(5, 3, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    (x1 @ w).pow(2).sum().backward()
    (grad_reverse(x2, 0.25) @ w).pow(2).sum().backward()
    assert torch.allclose(x2.grad, -0.25 * x1.grad)


def test_ganin_schedule():
    assert ganin_lambda(0.0, 1.0) == 0.0
    assert ganin_lambda(1.0, 0.01) == pytest.approx(0.01 * (2 / (1 + math.exp(-10)) - 1))
    values = [ganin_lambda(p / 10, 1.0) for p in range(11)]
    assert values == sorted(values) and values[-1] < 1.0
    grl = GradientReversal(0.1, "ganin", max_update=100)
    assert grl.lambda_ == 0.0
    grl.set_num_updates(50)
    assert grl.lambda_ == pytest.approx(ganin_lambda(0.5, 0.1))
    grl.set_num_updates(1000)  # clamped at the end of the run
    assert grl.lambda_ == pytest.approx(ganin_lambda(1.0, 0.1))
    with pytest.raises(ValueError, match="max-update"):
        GradientReversal(0.1, "ganin", max_update=0)


def test_constant_schedule_ignores_updates():
    grl = GradientReversal(0.01, "constant")
    grl.set_num_updates(10_000)
    assert grl.lambda_ == 0.01


def test_discriminator_has_two_hidden_layers_and_reverses():
    torch.manual_seed(0)
    d = Discriminator(8, 16, 3, grl_lambda=0.5, dropout=0.0)
    linears = [m for m in d.layers if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 8), (16, 16), (3, 16)]
    x = torch.randn(5, 8, requires_grad=True)
    x_plain = x.detach().clone().requires_grad_(True)
    d(x).sum().backward()
    d.zero_grad()
    d.layers(x_plain).sum().backward()
    assert torch.allclose(x.grad, -0.5 * x_plain.grad, atol=1e-6)


def test_masked_mean_ignores_padding():
    feats = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    pad = torch.tensor([[False, False, True], [False, False, False]])
    assert masked_mean(feats, pad).squeeze(-1).tolist() == [2.0, 4.0]
