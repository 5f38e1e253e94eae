# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Gradient reversal layer (Ganin & Lempitsky, 2015, "Unsupervised Domain
Adaptation by Backpropagation", ICML).

The layer is the identity in the forward pass and multiplies the incoming
gradient by ``-lambda`` in the backward pass, so that whatever sits below it
(the feature extractor and the encoder) is trained to *maximise* the loss of
whatever sits above it (the language/domain discriminator), while the
discriminator itself still minimises that loss.
"""

import math

import torch
import torch.nn as nn


class GradientReversalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambda_):
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.neg() * ctx.lambda_, None


def grad_reverse(x, lambda_: float):
    return GradientReversalFunction.apply(x, lambda_)


def ganin_lambda(progress: float, max_lambda: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's schedule: ``max_lambda * (2 / (1 + exp(-gamma * p)) - 1)``
    for training progress ``p`` in [0, 1]; it ramps from 0 to ``max_lambda``."""
    progress = min(max(progress, 0.0), 1.0)
    return max_lambda * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class GradientReversal(nn.Module):
    """Gradient reversal with strength ``lambda_`` and an optional schedule.

    Args:
        lambda_ (float): the (maximum) strength of the reversed gradient.
        schedule (str): ``constant`` keeps ``lambda_``; ``ganin`` ramps it from 0
            to ``lambda_`` over ``max_update`` updates.
        max_update (int): length of the run, needed by the ``ganin`` schedule.
    """

    def __init__(self, lambda_: float, schedule: str = "constant", max_update: int = 0):
        super().__init__()
        if schedule not in ("constant", "ganin"):
            raise ValueError(f"unknown --grl-schedule {schedule!r} (expected constant or ganin)")
        if schedule == "ganin" and (max_update is None or max_update <= 0):
            raise ValueError("--grl-schedule ganin needs --max-update > 0 to know the length of the run")
        self.max_lambda = float(lambda_)
        self.schedule = schedule
        self.max_update = max_update
        self.lambda_ = self.max_lambda if schedule == "constant" else 0.0

    def set_num_updates(self, num_updates):
        """Called by fairseq on every submodule after each update."""
        if self.schedule == "ganin":
            self.lambda_ = ganin_lambda(num_updates / self.max_update, self.max_lambda)

    def forward(self, x):
        return grad_reverse(x, self.lambda_)

    def extra_repr(self):
        return f"lambda={self.max_lambda}, schedule={self.schedule}"
