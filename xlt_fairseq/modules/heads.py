# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Task heads and the adversarial discriminator of the xlt model."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import utils

from .gradient_reversal import GradientReversal


class FeatureExtractor(nn.Module):
    """The shared feature extractor (FE) of the paper's adversarial module: one
    dense layer with an activation over every token's encoder state. Its output
    feeds every task head, the translation decoder and the discriminator."""

    def __init__(self, input_dim, output_dim, activation_fn="gelu", dropout=0.1):
        super().__init__()
        self.dense = nn.Linear(input_dim, output_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.activation_fn(self.dense(x)))


class TokenTaggingHead(nn.Module):
    """One feed-forward layer over every token (NER, POS, ...)."""

    def __init__(self, input_dim, num_labels, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_dim, num_labels)

    def forward(self, features):
        return self.out_proj(self.dropout(features))


class SentenceClassificationHead(nn.Module):
    """One feed-forward layer over the first token's (``<s>``) features."""

    def __init__(self, input_dim, num_classes, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features):
        return self.out_proj(self.dropout(features[:, 0, :]))


class Discriminator(nn.Module):
    """Language/domain discriminator with two hidden layers behind a gradient
    reversal layer (paper section "Adversarial Training Module")."""

    def __init__(
        self,
        input_dim,
        hidden_dim,
        num_classes,
        grl_lambda=0.01,
        grl_schedule="constant",
        max_update=0,
        dropout=0.1,
    ):
        super().__init__()
        self.grl = GradientReversal(grl_lambda, grl_schedule, max_update)
        self.layers = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes),
        )

    @property
    def grl_lambda(self):
        return self.grl.lambda_

    def forward(self, pooled, reverse: bool = True):
        """Logits over languages/domains. With ``reverse`` (the default) the
        gradient reaching ``pooled`` is reversed and scaled by lambda."""
        return self.layers(self.grl(pooled) if reverse else pooled)

    def forward_frozen(self, pooled):
        """Logits computed with detached weights: gradients reach ``pooled`` (unreversed)
        but not the discriminator (the encoder step of alternating training)."""
        x = pooled
        for module in self.layers:
            if isinstance(module, nn.Linear):
                x = F.linear(x, module.weight.detach(), module.bias.detach())
            else:
                x = module(x)
        return x


def masked_mean(features, padding_mask):
    """Mean of ``features`` (B x T x C) over the positions where ``padding_mask``
    (B x T, True at padding) is False.

    The sum is accumulated and divided in fp32 and the mean cast back to the
    input's dtype: in fp16 the sum over a long sequence overflows (65504) long
    before the mean does (512 tokens of a feature of 130 already do)."""
    if padding_mask is None:
        return features.mean(dim=1)
    keep = (~padding_mask).unsqueeze(-1).type_as(features)
    total = (features * keep).sum(dim=1, dtype=torch.float32)
    return (total / keep.sum(dim=1, dtype=torch.float32).clamp(min=1.0)).type_as(features)
