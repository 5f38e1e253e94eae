# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt model -> Hugging Face transformers folder (one task head).

The inverse of :mod:`xlt_fairseq.importers.hf`. The fairseq RoBERTa encoder
maps onto transformers' ``XLMRobertaModel`` exactly: the same post-LayerNorm
layers, the same learned positions (fairseq row ``2 + i`` holds position ``i``
in both, counting from ``padding_idx + 1``), a zero token-type embedding (a BERT
source such as multilingual-e5 had its type-0 row folded into the positions on
import), LayerNorm eps 1e-5. The plugin's feature extractor (a residual GELU
block) and the task's linear head are not expressible by the stock
``XLMRobertaFor*Classification`` heads, so the folder uses the small classes of
:mod:`.modeling_xlt` (``XLTForTokenClassification`` /
``XLTForSequenceClassification``), shipped in the folder and named in
``auto_map``:

* ``AutoModelFor*.from_pretrained(HF_DIR, trust_remote_code=True)`` loads it
  offline with torch + transformers only (the code is read from the folder);
* after ``import xlt_fairseq.exporters.modeling_xlt as m; m.register()`` no
  ``trust_remote_code`` is needed;
* without either, transformers refuses the unknown ``model_type`` with an error
  (never silently a stock head with other outputs).

The tokenizer is transformers' ``XLMRobertaTokenizer`` built from the model's
sentencepiece model (ids = fairseq dictionary ids). The export is checked
before the folder is moved into place: token ids equal the plugin's and logits
equal the plugin's within ``atol``.
"""

import json
import logging
import os
import shutil
from typing import List, Optional, Sequence

import torch

logger = logging.getLogger(__name__)

ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu", "tanh": "tanh"}
CHECK_TEXTS = (
    "Amina Mohamed alizaliwa Nairobi , Kenya .",
    "The European Union met in Brussels on Monday.",
    "Ọ̀gbẹ́ni Adé lọ sí Èkó lánàá.",
    "a",
)


class HFExportError(ValueError):
    """A model that cannot be exported exactly (the message says why)."""


def import_transformers():
    """transformers, with torchaudio reported absent: fairseq installs torchaudio, whose
    extension does not load next to a CPU-only torch, and transformers imports it eagerly."""
    try:
        import torchaudio  # noqa: F401
    except Exception:
        import transformers.utils as tu
        import transformers.utils.import_utils as iu

        iu.is_torchaudio_available = tu.is_torchaudio_available = lambda: False
    import transformers

    return transformers


def _layers(model, task):
    encoder = model.encoder
    layers = list(encoder.sentence_encoder.layers)
    own = encoder.task_layers[task] if task in encoder.task_layers else None
    if own is not None:
        layers = layers[: encoder.shared_layers] + list(own)
    return layers


def convert_state(hub, task: str) -> dict:
    """The transformers state dict (``roberta.*``, ``feature_extractor.*``, ``classifier.*``) of ``task``."""
    model = hub.model
    se = model.encoder.sentence_encoder
    if getattr(se, "layer_norm", None) is not None:
        raise HFExportError("the encoder is pre-LayerNorm (a final layer norm): XLM-R's layers are post-LayerNorm")
    if se.layernorm_embedding is None:
        raise HFExportError("the encoder has no embedding LayerNorm; XLM-R's has one")
    if se.embed_scale not in (None, 1.0):
        raise HFExportError(f"the encoder scales its embeddings by {se.embed_scale}; XLM-R does not")
    H = model.cfg.encoder_embed_dim
    out = {
        "roberta.embeddings.word_embeddings.weight": se.embed_tokens.weight,
        "roberta.embeddings.position_embeddings.weight": se.embed_positions.weight,
        "roberta.embeddings.token_type_embeddings.weight": torch.zeros(1, H),
        "roberta.embeddings.LayerNorm.weight": se.layernorm_embedding.weight,
        "roberta.embeddings.LayerNorm.bias": se.layernorm_embedding.bias,
    }
    pairs = [
        ("attention.self.query", "self_attn.q_proj"),
        ("attention.self.key", "self_attn.k_proj"),
        ("attention.self.value", "self_attn.v_proj"),
        ("attention.output.dense", "self_attn.out_proj"),
        ("attention.output.LayerNorm", "self_attn_layer_norm"),
        ("intermediate.dense", "fc1"),
        ("output.dense", "fc2"),
        ("output.LayerNorm", "final_layer_norm"),
    ]
    for i, layer in enumerate(_layers(model, task)):
        if getattr(layer, "normalize_before", False):
            raise HFExportError(f"encoder layer {i} is pre-LayerNorm; XLM-R's layers are post-LayerNorm")
        params = dict(layer.named_parameters())
        for hf_name, fs_name in pairs:
            for p in ("weight", "bias"):
                out[f"roberta.encoder.layer.{i}.{hf_name}.{p}"] = params[f"{fs_name}.{p}"]
    fe = model.encoder.feature_extractor
    out["feature_extractor.dense.weight"] = fe.dense.weight
    out["feature_extractor.dense.bias"] = fe.dense.bias
    head = model.heads[task]
    out["classifier.weight"] = head.out_proj.weight
    out["classifier.bias"] = head.out_proj.bias
    return {k: v.detach().float().cpu().clone().contiguous() for k, v in out.items()}


def hf_config(hub, task: str, kind: str):
    from .modeling_xlt import XLTConfig

    cfg = hub.model.cfg
    if cfg.activation_fn not in ACTIVATIONS:
        raise HFExportError(f"activation {cfg.activation_fn!r} has no transformers counterpart ({sorted(ACTIVATIONS)})")
    fe = hub.model.encoder.feature_extractor
    labels = hub.labels(task)
    architecture = "XLTForTokenClassification" if kind == "tagging" else "XLTForSequenceClassification"
    head = hub.model.heads[task]
    config = XLTConfig(
        vocab_size=len(hub.task.dictionary),
        hidden_size=cfg.encoder_embed_dim,
        num_hidden_layers=len(_layers(hub.model, task)),
        num_attention_heads=cfg.encoder_attention_heads,
        intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_act=ACTIVATIONS[cfg.activation_fn],
        hidden_dropout_prob=float(cfg.dropout),
        attention_probs_dropout_prob=float(cfg.attention_dropout),
        max_position_embeddings=int(cfg.max_positions) + 2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=hub.task.dictionary.pad(),
        bos_token_id=hub.task.dictionary.bos(),
        eos_token_id=hub.task.dictionary.eos(),
        classifier_dropout=float(cfg.pooler_dropout),
        feature_extractor_dim=fe.dense.out_features,
        feature_extractor_residual=bool(fe.residual),
        feature_extractor_act=ACTIVATIONS[cfg.activation_fn],
        sentence_pooling=getattr(head, "pooling", "mean"),
        num_labels=len(labels),
        id2label={i: label for i, label in enumerate(labels)},
        label2id={label: i for i, label in enumerate(labels)},
    )
    config.architectures = [architecture]
    config.auto_map = {
        "AutoConfig": "modeling_xlt.XLTConfig",
        "AutoModelForTokenClassification": "modeling_xlt.XLTForTokenClassification",
        "AutoModelForSequenceClassification": "modeling_xlt.XLTForSequenceClassification",
    }
    return config, architecture


def _model_class(architecture: str):
    from . import modeling_xlt

    return getattr(modeling_xlt, architecture)


def export_hf(
    model: str,
    task: str,
    out_dir: str,
    force: bool = False,
    check_texts: Optional[Sequence[str]] = None,
    atol: float = 1e-4,
) -> dict:
    """Writes ``out_dir``: ``config.json``, ``model.safetensors``, the tokenizer files and
    ``modeling_xlt.py`` for ``task``'s head of ``model`` (a model folder or a checkpoint).
    Returns a summary with the largest logit difference measured on ``check_texts``."""
    from ..data.binarize import SPM_FILE
    from ..data.task_names import builtin_kind
    from ..data import outputs
    from ..models.hub_interface import load_hub

    import_transformers()
    outputs.check_outputs([("--out", out_dir)], [("--model", model)])  # before any work; again at the end
    outputs.check_folder_output(out_dir, "xlt-export-hf", force)
    hub = load_hub(model, device="cpu").float()
    if task not in hub.heads:
        raise HFExportError(f"{model}: the model has no {task!r} head (heads: {', '.join(hub.heads) or 'none'})")
    kind = builtin_kind(task)
    if kind not in ("tagging", "classification"):
        raise HFExportError(f"{task}: only tagging and classification heads can be exported")
    config, architecture = hf_config(hub, task, kind)
    hf_model = _model_class(architecture)(config)
    missing, unexpected = hf_model.load_state_dict(convert_state(hub, task), strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise HFExportError(f"internal error: weights missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf_model.eval()

    sources = [("--model", model), ("the encoder directory", hub.encoder.encoder_dir)]
    with outputs.staged_folder(out_dir, "xlt-export-hf", force, sources) as tmp:
        hf_model.save_pretrained(tmp)
        shutil.copyfile(
            os.path.join(os.path.dirname(__file__), "modeling_xlt.py"), os.path.join(tmp, "modeling_xlt.py")
        )
        _write_tokenizer(hub, tmp, os.path.join(hub.encoder.encoder_dir, SPM_FILE))
        texts = list(check_texts or CHECK_TEXTS)
        diff = check_export(hub, task, tmp, texts, atol)
        with open(os.path.join(tmp, "xlt_export.json"), "w", encoding="utf-8") as f:
            json.dump(
                {"task": task, "architecture": architecture, "max_abs_logit_diff": diff, "checked_texts": len(texts)},
                f,
                indent=2,
            )
            f.write("\n")
    logger.info(f"wrote {out_dir} ({architecture}, {config.num_labels} labels; max logit difference {diff:.2e})")
    return {
        "out": out_dir,
        "task": task,
        "architecture": architecture,
        "labels": hub.labels(task),
        "max_abs_logit_diff": diff,
    }


def _write_tokenizer(hub, folder: str, spm_path: str):
    transformers = import_transformers()
    from ..data.binarize import SPM_FILE

    shutil.copyfile(spm_path, os.path.join(folder, SPM_FILE))
    tok = transformers.XLMRobertaTokenizer.from_pretrained(folder, model_max_length=int(hub.model.cfg.max_positions))
    if len(tok) != len(hub.task.dictionary):
        raise HFExportError(
            f"the tokenizer has {len(tok)} ids but the model's dictionary {len(hub.task.dictionary)}: "
            "the dictionary is not the sentencepiece model's (a pruned or hand-made dict.txt)"
        )
    tok.save_pretrained(folder)


def check_export(hub, task: str, folder: str, texts: List[str], atol: float) -> float:
    """Loads ``folder`` through the Auto classes and compares token ids and logits with the plugin's."""
    transformers = import_transformers()
    from . import modeling_xlt

    modeling_xlt.register()
    from ..data.task_names import builtin_kind

    tagging = builtin_kind(task) == "tagging"
    auto = transformers.AutoModelForTokenClassification if tagging else transformers.AutoModelForSequenceClassification
    model = auto.from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    worst = 0.0
    # one padded batch, as a user would run it
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    for row, text in enumerate(texts):
        ids = [int(i) for i, m in zip(batch["input_ids"][row], batch["attention_mask"][row]) if m]
        ours = hub.encode(text).tolist()
        if ids != ours:
            raise HFExportError(f"{folder}: the tokenizer gives {ids[:12]} for {text!r}, the plugin {ours[:12]}")
        theirs = logits[row, : len(ids)] if tagging else logits[row]
        mine = hub.logits(text, task).float()
        worst = max(worst, float((theirs - mine).abs().max()))
    if worst > atol:
        raise HFExportError(f"{folder}: the exported logits differ from the plugin's by {worst:.2e} (> {atol:g})")
    return worst
