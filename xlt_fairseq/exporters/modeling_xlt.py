# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Hugging Face transformers classes for xlt_fairseq models exported by
``xlt-export-hf`` (this file is copied into the exported folder as
``modeling_xlt.py``; it needs only torch and transformers).

The body is transformers' own ``XLMRobertaModel`` (weights ``roberta.*``, as in
``XLMRobertaFor*``). On top of it sits the plugin's shared feature extractor,
``x + dropout(gelu(dense(x)))`` (``dropout(gelu(dense(x)))`` when its width
differs from the encoder's), then the task's linear classifier: per token
(``XLTForTokenClassification``) or over the mean of the non-padding tokens'
features (``XLTForSequenceClassification``; ``sentence_pooling="first"``: the
``<s>`` token's). Stock ``XLMRobertaFor*Classification`` cannot express either
exactly (a linear classifier cannot fold the GELU block; the stock sequence head
reads ``<s>`` through a tanh layer), hence these classes.
"""

import torch
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers import XLMRobertaConfig
from transformers.activations import ACT2FN
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaModel, XLMRobertaPreTrainedModel


class XLTConfig(XLMRobertaConfig):
    """``XLMRobertaConfig`` plus the feature extractor and the sentence pooling."""

    model_type = "xlt-xlm-roberta"

    feature_extractor_dim: int | None = None
    feature_extractor_residual: bool = True
    feature_extractor_act: str = "gelu"
    sentence_pooling: str = "mean"


class XLTFeatureExtractor(nn.Module):
    def __init__(self, config):
        super().__init__()
        out_dim = config.feature_extractor_dim or config.hidden_size
        self.residual = bool(config.feature_extractor_residual) and out_dim == config.hidden_size
        self.dense = nn.Linear(config.hidden_size, out_dim)
        self.act = ACT2FN[config.feature_extractor_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x):
        y = self.dropout(self.act(self.dense(x)))
        return x + y if self.residual else y


def _masked_mean(features, attention_mask):
    if attention_mask is None:
        return features.mean(dim=1)
    keep = attention_mask.unsqueeze(-1).to(features.dtype)
    total = (features * keep).sum(dim=1, dtype=torch.float32)
    return (total / keep.sum(dim=1, dtype=torch.float32).clamp(min=1.0)).to(features.dtype)


class _XLTHeadModel(XLMRobertaPreTrainedModel):
    config_class = XLTConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self.feature_extractor = XLTFeatureExtractor(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.feature_extractor_dim or config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        **kwargs,
    ):
        outputs = self.roberta(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        features = self.feature_extractor(outputs[0])
        if attention_mask is None and input_ids is not None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        logits = self.classifier(self.dropout(self._head_input(features, attention_mask)))
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.to(logits.device).view(-1))
        return self.output_class(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class XLTForTokenClassification(_XLTHeadModel):
    """Token classification (NER, POS): logits per piece, read at each word's first piece."""

    output_class = TokenClassifierOutput

    def _head_input(self, features, attention_mask):
        return features


class XLTForSequenceClassification(_XLTHeadModel):
    """Sentence classification (sentiment) over the mean of the tokens' features."""

    output_class = SequenceClassifierOutput

    def _head_input(self, features, attention_mask):
        if self.config.sentence_pooling == "first":
            return features[:, 0]
        return _masked_mean(features, attention_mask)


def register():
    """Registers the classes with transformers' Auto classes (no ``trust_remote_code`` needed afterwards)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

    try:
        AutoConfig.register(XLTConfig.model_type, XLTConfig)
    except ValueError:  # already registered
        return
    AutoModelForTokenClassification.register(XLTConfig, XLTForTokenClassification)
    AutoModelForSequenceClassification.register(XLTConfig, XLTForSequenceClassification)
