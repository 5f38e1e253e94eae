# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Task heads and the adversarial discriminator of the xlt model."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import utils

from .gradient_reversal import GradientReversal


class FeatureExtractor(nn.Module):
    """The shared feature extractor (FE) of the paper's adversarial module: a
    dense layer with an activation over every token's encoder state. Its output
    feeds every task head, the translation decoder and the discriminator.

    When it keeps the encoder's width it is a residual block whose dense layer
    starts at zero, ``x + dropout(act(dense(x)))``, so that training starts from
    the pretrained features themselves. A randomly initialised bottleneck in
    front of every head (as in round 1) starts each head as a two-layer net whose
    input is several times smaller than the encoder's features: at a standard
    fine-tuning learning rate (5e-5) the heads then learned "is an entity" but not
    the entity types (MasakhaNER sw dev F1 0.33 against 0.73 for a plain
    transformers fine-tune; docs/benchmarks.md, "Quality").
    With another width it is a plain projection ``dropout(act(dense(x)))``."""

    # 1: round 1's plain projection (checkpoints without this buffer); 2: residual
    VERSION = 2

    def __init__(self, input_dim, output_dim, activation_fn="gelu", dropout=0.1):
        super().__init__()
        self.residual = input_dim == output_dim
        self.register_buffer("version", torch.tensor([self.VERSION], dtype=torch.long))
        self.dense = nn.Linear(input_dim, output_dim)
        self.activation_fn = utils.get_activation_fn(activation_fn)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self):
        """Zero for the residual block (identity at the start), BERT's init otherwise."""
        if self.residual:
            nn.init.zeros_(self.dense.weight)
        else:
            nn.init.normal_(self.dense.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.dense.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint of round 1 (no version) was trained without the residual path
        version = state_dict.setdefault(prefix + "version", torch.tensor([1], dtype=torch.long))
        self.residual = int(version.view(-1)[0]) >= 2 and self.dense.in_features == self.dense.out_features
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        y = self.dropout(self.activation_fn(self.dense(x)))
        return x + y if self.residual else y


class TokenTaggingHead(nn.Module):
    """One feed-forward layer over every token (NER, POS, ...)."""

    def __init__(self, input_dim, num_labels, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_dim, num_labels)

    def forward(self, features, padding_mask=None):
        return self.out_proj(self.dropout(features))


class SentenceClassificationHead(nn.Module):
    """One feed-forward layer over the mean of the tokens' features (padding
    excluded; ``pooling="first"``: the ``<s>`` token's), the pooling multilingual-e5 was trained with. Mean pooling also
    keeps a sentence task independent of what other tasks (translation, the masked
    LM) make of the ``<s>`` position: with the ``<s>`` features, a keyword
    sentiment task learned alone to accuracy 1.0 fell to chance next to
    translation."""

    def __init__(self, input_dim, num_classes, dropout=0.1, pooling="mean"):
        super().__init__()
        if pooling not in ("mean", "first"):
            raise ValueError(f"sentence pooling must be 'mean' or 'first', not {pooling!r}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features, padding_mask=None):
        pooled = features[:, 0, :] if self.pooling == "first" else masked_mean(features, padding_mask)
        return self.out_proj(self.dropout(pooled))


class Standardizer(nn.BatchNorm1d):
    """Each input dimension standardised over the batch (running statistics at
    evaluation), with no learnt scale: a discriminator behind it reads every
    direction of its input at unit variance, as a standardised probe does, so the
    encoder cannot hide the language by shrinking it under a few large directions.
    A one-example training batch has no statistics of its own: the running ones serve."""

    def __init__(self, dim):
        super().__init__(dim, affine=False)

    def forward(self, x):
        if self.training and x.size(0) < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)


class Discriminator(nn.Module):
    """Language/domain discriminator with two hidden layers behind a gradient
    reversal layer (paper section "Adversarial Training Module"); with
    ``input_norm="batch"`` its input is standardised first (:class:`Standardizer`)."""

    def __init__(
        self,
        input_dim,
        hidden_dim,
        num_classes,
        grl_lambda=0.01,
        grl_schedule="constant",
        max_update=0,
        dropout=0.1,
        input_norm="none",
    ):
        super().__init__()
        self.grl = GradientReversal(grl_lambda, grl_schedule, max_update)
        self.norm = Standardizer(input_dim) if input_norm == "batch" else None
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
        x = self.grl(pooled) if reverse else pooled
        return self.layers(x if self.norm is None else self.norm(x))

    def forward_frozen(self, pooled):
        """Logits computed with detached weights: gradients reach ``pooled`` (unreversed)
        but not the discriminator (the encoder step of alternating training)."""
        x = pooled if self.norm is None else self.norm(pooled)
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
