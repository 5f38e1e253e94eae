# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The shared encoder of ``xlt_model``: fairseq's RoBERTa encoder (XLM-R's
parameter names) plus the feature extractor that feeds every head, the decoder
and the discriminator; and the fairseq namespaces its encoder and the
translation decoder are built from."""

import argparse
import copy

import torch
import torch.nn as nn
from fairseq.models.roberta import model as roberta
from fairseq.models.roberta.model import RobertaEncoder
from fairseq.models.transformer import base_architecture as transformer_base_architecture

from .heads import FeatureExtractor


def _own_lm_output(cfg) -> bool:
    tasks = (getattr(cfg, "task_names", "") or "").split(",")
    return "mlm" in tasks and bool(getattr(cfg, "untie_output_embeddings", False))


def encoder_namespace(cfg) -> argparse.Namespace:
    args = argparse.Namespace(
        encoder_layers=cfg.encoder_layers,
        encoder_embed_dim=cfg.encoder_embed_dim,
        encoder_ffn_embed_dim=cfg.encoder_ffn_embed_dim,
        encoder_attention_heads=cfg.encoder_attention_heads,
        max_positions=cfg.max_positions,
        activation_fn=cfg.activation_fn,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        pooler_dropout=cfg.pooler_dropout,
        encoder_layerdrop=cfg.encoder_layerdrop,
        # --untie-output-embeddings: a trained masked-LM head gets its own output layer
        untie_weights_roberta=_own_lm_output(cfg),
        encoder_layers_to_keep=None,
    )
    roberta.base_architecture(args)
    return args


def decoder_namespace(cfg) -> argparse.Namespace:
    args = argparse.Namespace(
        decoder_embed_dim=cfg.encoder_embed_dim,
        decoder_output_dim=cfg.encoder_embed_dim,
        decoder_input_dim=cfg.encoder_embed_dim,
        decoder_ffn_embed_dim=cfg.decoder_ffn_embed_dim,
        decoder_layers=cfg.decoder_layers,
        decoder_attention_heads=cfg.decoder_attention_heads,
        decoder_learned_pos=True,
        decoder_normalize_before=False,
        layernorm_embedding=True,
        no_scale_embedding=True,
        # the decoder attends to the feature extractor's output
        encoder_embed_dim=cfg.feature_extractor_dim,
        max_target_positions=cfg.max_target_positions,
        activation_fn=cfg.activation_fn,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        share_decoder_input_output_embed=True,
    )
    transformer_base_architecture(args)
    return args


class XLTEncoder(RobertaEncoder):
    """fairseq's RoBERTa encoder (parameter names ``sentence_encoder.*`` and
    ``lm_head.*`` as in XLM-R checkpoints) plus the shared feature extractor.

    Its ``forward`` returns fairseq's ``encoder_out`` dict with the feature
    extractor's output as ``encoder_out``, so that ``fairseq-generate`` can drive
    the translation decoder."""

    def __init__(self, args, dictionary, feature_extractor_dim):
        super().__init__(args, dictionary)
        self.feature_extractor = FeatureExtractor(
            args.encoder_embed_dim, feature_extractor_dim, args.activation_fn, args.dropout
        )

        # soft parameter sharing: task name -> its own copy of the trainable layers
        self.task_layers = nn.ModuleDict()
        self.shared_layers = 0
        self.decoder_task = "translation"

    def enable_soft_sharing(self, task_names, frozen_layers):
        """Gives every task but the first its own copy of the layers above
        ``frozen_layers`` (the first task uses the original layers), all
        starting from the same (pretrained) weights."""
        self.shared_layers = frozen_layers
        for name in task_names[1:]:
            self.task_layers[name] = copy.deepcopy(self.sentence_encoder.layers[frozen_layers:])

    def _layers_of(self, task):
        return self.task_layers[task] if task in self.task_layers else None

    def _encode(self, src_tokens, src_lengths=None, task=None, return_all_hiddens=False):
        own = self._layers_of(task)
        if own is None:
            return self.sentence_encoder(src_tokens, src_lengths=src_lengths, return_all_hiddens=return_all_hiddens)
        # fairseq's TransformerEncoder.forward_scriptable with the task's own upper layers
        se = self.sentence_encoder
        padding_mask = src_tokens.eq(se.padding_idx)
        has_pads = bool(padding_mask.any())
        x, embedding = se.forward_embedding(src_tokens)
        if has_pads:
            x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)
        states = [x] if return_all_hiddens else []
        for layer in list(se.layers[: self.shared_layers]) + list(own):
            x = layer(x, encoder_padding_mask=padding_mask if has_pads else None)
            if isinstance(x, tuple):
                x = x[0]
            if return_all_hiddens:
                states.append(x)
        if se.layer_norm is not None:
            x = se.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding_mask],
            "encoder_embedding": [embedding],
            "encoder_states": states,
            "fc_results": [],
            "src_tokens": [],
            "src_lengths": [src_lengths] if src_lengths is not None else [],
        }

    def hidden_states(self, src_tokens, src_lengths=None, task=None):
        """Encoder states (B x T x C) and the padding mask (B x T)."""
        out = self._encode(src_tokens, src_lengths, task)
        return out["encoder_out"][0].transpose(0, 1), out["encoder_padding_mask"][0]

    def forward(self, src_tokens, src_lengths=None, return_all_hiddens=False, task=None, **unused):
        out = self._encode(src_tokens, src_lengths, task or self.decoder_task, return_all_hiddens)
        out = dict(out)
        out["encoder_out"] = [self.feature_extractor(out["encoder_out"][0])]
        return out

    def soft_sharing_penalty(self):
        """Sum over tasks of the squared L2 distance between each task's copy of
        the trainable layers and their mean (0 when all copies are equal)."""
        if len(self.task_layers) == 0:
            return None
        stacks = [self.sentence_encoder.layers[self.shared_layers :]] + list(self.task_layers.values())
        total = None
        for params in zip(*[list(stack.parameters()) for stack in stacks]):
            if not params[0].requires_grad:
                continue
            # accumulated in fp32: with --fp16 the sum over all weights can exceed 65504
            mean = torch.stack([p.float() for p in params]).mean(dim=0)
            term = sum(((p.float() - mean) ** 2).sum() for p in params)
            total = term if total is None else total + term
        return total

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out, new_order):
        return self.sentence_encoder.reorder_encoder_out(encoder_out, new_order)
