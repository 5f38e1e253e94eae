# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Hugging Face XLM-RoBERTa (and BERT-architecture models that use XLM-R's
sentencepiece vocabulary) -> fairseq XLM-R checkpoint directory.

Reads ``config.json``, the weights (``model.safetensors``, sharded safetensors,
or ``pytorch_model.bin`` through safe loading) and the tokenizer
(``sentencepiece.bpe.model``, or the unigram model and normaliser of
``tokenizer.json`` when the sentencepiece file is absent). ``transformers``
itself is not needed.

Mapping (HF -> fairseq ``encoder.sentence_encoder.*``): word embeddings ->
``embed_tokens`` (same ids: both use fairseq's dictionary order);
``embeddings.LayerNorm`` -> ``layernorm_embedding``; per layer ``query/key/value``
-> ``self_attn.{q,k,v}_proj``, ``attention.output.dense`` -> ``self_attn.out_proj``,
``attention.output.LayerNorm`` -> ``self_attn_layer_norm``, ``intermediate.dense``
-> ``fc1``, ``output.dense`` -> ``fc2``, ``output.LayerNorm`` ->
``final_layer_norm``; the MLM head (``lm_head.*`` or ``cls.predictions.*``) ->
``encoder.lm_head.*``.

Positions: fairseq's learned positions start at ``padding_idx + 1 = 2``. RoBERTa-
family models do the same, so their table is copied; BERT counts from 0, so its
row ``i`` goes to fairseq row ``2 + i`` (rows 0-1 are never used). fairseq has
no token-type embedding: the type-0 row (the only one a single sentence uses) is
added to every used position row, which is exact.
"""

import base64
import json
import logging
import os
from typing import Dict, List, Optional, Tuple

import torch

from .. import checkpoint_safety
from ..data.binarize import SPM_FILE
from . import FAIRSEQ_SPECIALS, MASK, ConversionError, EncoderArch, fresh_lm_head, sentencepiece_model

logger = logging.getLogger(__name__)

ROBERTA_TYPES = ("xlm-roberta", "roberta", "camembert")
BERT_TYPES = ("bert",)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}
# weights that have no counterpart in a fairseq encoder and are dropped on purpose
IGNORED_SUFFIXES = ("position_ids", "token_type_ids")
IGNORED_PREFIXES = ("pooler.", "cls.seq_relationship.")
# fine-tuned task heads: dropped with a note (the encoder below them is kept)
TASK_HEAD_PREFIXES = ("classifier.", "qa_outputs.")

SE = "encoder.sentence_encoder."


def read_config(hf_dir: str) -> dict:
    path = os.path.join(hf_dir, "config.json")
    if not os.path.exists(path):
        raise ConversionError(f"{path}: missing (not a Hugging Face model directory)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_weights(hf_dir: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """The state dict of a Hugging Face checkpoint folder and the file it came from."""
    st = os.path.join(hf_dir, "model.safetensors")
    st_index = st + ".index.json"
    pt = os.path.join(hf_dir, "pytorch_model.bin")
    pt_index = pt + ".index.json"
    if os.path.exists(st) or os.path.exists(st_index):
        from xlt_fairseq.optional import MissingExtraError, require

        try:
            load_file = require("safetensors.torch", f"reading {st if os.path.exists(st) else st_index}").load_file
        except MissingExtraError as e:
            raise ConversionError(str(e)) from None

        if os.path.exists(st):
            return load_file(st), st
        files = sorted(set(json.load(open(st_index, encoding="utf-8"))["weight_map"].values()))
        state = {}
        for name in files:
            state.update(load_file(os.path.join(hf_dir, name)))
        return state, st_index
    if os.path.exists(pt):
        return checkpoint_safety.load(pt), pt
    if os.path.exists(pt_index):
        files = sorted(set(json.load(open(pt_index, encoding="utf-8"))["weight_map"].values()))
        state = {}
        for name in files:
            state.update(checkpoint_safety.load(os.path.join(hf_dir, name)))
        return state, pt_index
    raise ConversionError(f"{hf_dir}: no model.safetensors or pytorch_model.bin")


class _Taker:
    """Hands out source tensors by name and remembers which were used."""

    def __init__(self, state, source, prefix):
        self.state, self.source, self.prefix = state, source, prefix
        self.used = set()

    def has(self, name):
        return self.prefix + name in self.state

    def __call__(self, name, shape=None):
        key = self.prefix + name
        if key not in self.state:
            raise ConversionError(f"{self.source}: missing weight {key!r}")
        t = self.state[key].float()
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ConversionError(f"{self.source}: {key!r} has shape {tuple(t.shape)}, expected {tuple(shape)}")
        self.used.add(key)
        return t

    def head(self, name, shape=None):
        """A weight outside the encoder body (no prefix)."""
        saved, self.prefix = self.prefix, ""
        try:
            return self(name, shape)
        finally:
            self.prefix = saved

    def unused(self) -> List[str]:
        out = []
        for k in self.state:
            rel = k[len(self.prefix) :] if k.startswith(self.prefix) else k
            if k in self.used or rel.endswith(IGNORED_SUFFIXES) or rel.startswith(IGNORED_PREFIXES):
                continue
            out.append(k)
        return out


def _body_prefix(state, source) -> str:
    suffix = "embeddings.word_embeddings.weight"
    hits = [k[: -len(suffix)] for k in state if k.endswith(suffix)]
    if len(hits) != 1:
        raise ConversionError(f"{source}: expected one '*{suffix}' weight, found {len(hits)}")
    return hits[0]


def convert_state(
    state: Dict[str, torch.Tensor], config: dict, num_symbols: int, source: str = "checkpoint"
) -> Tuple[Dict[str, torch.Tensor], EncoderArch, List[str]]:
    """Maps a Hugging Face BERT/RoBERTa state dict onto fairseq's RoBERTa
    encoder. ``num_symbols`` is the size of fairseq's dictionary (with
    ``<mask>``); embedding rows beyond it are unreachable and dropped.
    Returns the fairseq state dict, the architecture and notes."""
    notes = []
    model_type = config.get("model_type")
    if model_type not in ROBERTA_TYPES + BERT_TYPES:
        raise ConversionError(f"{source}: model_type {model_type!r} is not one of {ROBERTA_TYPES + BERT_TYPES}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(
            f"{source}: position_embedding_type {config['position_embedding_type']!r} is not absolute"
        )
    if config.get("pad_token_id", 1) != 1:
        raise ConversionError(f"{source}: pad_token_id {config.get('pad_token_id')} is not XLM-R's 1")
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ConversionError(f"{source}: hidden_act {act!r} has no fairseq counterpart ({sorted(ACTIVATIONS)})")
    H, L = config["hidden_size"], config["num_hidden_layers"]
    F, heads = config["intermediate_size"], config["num_attention_heads"]
    eps = config.get("layer_norm_eps", 1e-5)
    if abs(eps - 1e-5) > 1e-9:
        notes.append(f"layer_norm_eps {eps:g} in the source; fairseq's LayerNorm uses 1e-5")

    take = _Taker(state, source, _body_prefix(state, source))
    out = {}
    words = take("embeddings.word_embeddings.weight")
    rows = words.shape[0]
    if words.shape[1] != H:
        raise ConversionError(f"{source}: word embeddings are {tuple(words.shape)}, hidden_size is {H}")
    if rows < num_symbols:
        raise ConversionError(
            f"{source}: the embedding has {rows} rows but the tokenizer's vocabulary has {num_symbols} symbols"
        )
    if rows > num_symbols:
        notes.append(f"embedding rows {num_symbols}..{rows - 1} are never produced by the tokenizer: dropped")
    out[SE + "embed_tokens.weight"] = words[:num_symbols]

    pos = take("embeddings.position_embeddings.weight")
    if pos.shape[1] != H:
        raise ConversionError(f"{source}: position embeddings are {tuple(pos.shape)}, hidden_size is {H}")
    if model_type in ROBERTA_TYPES:
        max_positions = pos.shape[0] - 2
        table = pos.clone()
    else:
        max_positions = pos.shape[0]
        table = torch.zeros(max_positions + 2, H)
        table[2:] = pos
    if take.has("embeddings.token_type_embeddings.weight"):
        types = take("embeddings.token_type_embeddings.weight")
        table[2:] += types[0]
        if types.shape[0] > 1:
            notes.append(
                f"token-type embedding: row 0 folded into the positions, {types.shape[0] - 1} other row(s) dropped"
            )
    out[SE + "embed_positions.weight"] = table
    out[SE + "layernorm_embedding.weight"] = take("embeddings.LayerNorm.weight", (H,))
    out[SE + "layernorm_embedding.bias"] = take("embeddings.LayerNorm.bias", (H,))

    pairs = [
        ("attention.self.query", "self_attn.q_proj", (H, H)),
        ("attention.self.key", "self_attn.k_proj", (H, H)),
        ("attention.self.value", "self_attn.v_proj", (H, H)),
        ("attention.output.dense", "self_attn.out_proj", (H, H)),
        ("attention.output.LayerNorm", "self_attn_layer_norm", (H,)),
        ("intermediate.dense", "fc1", (F, H)),
        ("output.dense", "fc2", (H, F)),
        ("output.LayerNorm", "final_layer_norm", (H,)),
    ]
    for i in range(L):
        for hf_name, fs_name, shape in pairs:
            out[f"{SE}layers.{i}.{fs_name}.weight"] = take(f"encoder.layer.{i}.{hf_name}.weight", shape)
            out[f"{SE}layers.{i}.{fs_name}.bias"] = take(f"encoder.layer.{i}.{hf_name}.bias", (shape[0],))

    out.update(_lm_head(take, words, H, num_symbols, source, notes))
    # tied to the embeddings, as fairseq saves it (one storage in the file)
    out["encoder.lm_head.weight"] = out[SE + "embed_tokens.weight"]
    extra = take.unused()
    task_heads = [k for k in extra if k.startswith(TASK_HEAD_PREFIXES)]
    if task_heads:
        notes.append(f"dropped {len(task_heads)} weights of a fine-tuned task head ({task_heads[0]}, ...)")
        extra = [k for k in extra if k not in task_heads]
    if extra:
        raise ConversionError(
            f"{source}: weight {extra[0]!r} has no place in a fairseq RoBERTa encoder "
            f"({len(extra)} such weights: {extra[:5]})"
        )
    arch = EncoderArch(L, H, F, heads, max_positions, num_symbols, ACTIVATIONS[act])
    return out, arch, notes


def _lm_head(take, words, H, num_symbols, source, notes) -> Dict[str, torch.Tensor]:
    if "lm_head.dense.weight" in take.state:
        names = ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder")
    elif "cls.predictions.transform.dense.weight" in take.state:
        names = (
            "cls.predictions.transform.dense",
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.bias",
            "cls.predictions.decoder",
        )
    else:
        notes.append("no masked-LM head in the source: encoder.lm_head initialised as fairseq does (untrained)")
        return fresh_lm_head(H, num_symbols)
    dense, norm, bias, decoder = names
    out = {
        "encoder.lm_head.dense.weight": take.head(dense + ".weight", (H, H)),
        "encoder.lm_head.dense.bias": take.head(dense + ".bias", (H,)),
        "encoder.lm_head.layer_norm.weight": take.head(norm + ".weight", (H,)),
        "encoder.lm_head.layer_norm.bias": take.head(norm + ".bias", (H,)),
    }
    b = take.head(bias) if bias in take.state else take.head(decoder + ".bias")
    if decoder + ".bias" in take.state and not torch.equal(take.head(decoder + ".bias"), b):
        raise ConversionError(f"{source}: {decoder}.bias differs from {bias}")
    out["encoder.lm_head.bias"] = b[:num_symbols]
    if decoder + ".weight" in take.state and not torch.equal(take.head(decoder + ".weight"), words):
        raise ConversionError(
            f"{source}: {decoder}.weight differs from the word embeddings; fairseq's RoBERTa ties them"
        )
    return out


# ------------------------------------------------------------------- tokenizer


def _charsmap(normalizer: Optional[dict], path: str) -> bytes:
    if normalizer is None:
        raise ConversionError(f"{path}: the tokenizer has no normaliser; XLM-R's uses a precompiled char map")
    if normalizer.get("type") == "Precompiled":
        return base64.b64decode(normalizer["precompiled_charsmap"])
    if normalizer.get("type") == "Sequence":
        maps = [n for n in normalizer["normalizers"] if n.get("type") == "Precompiled"]
        if maps:
            return base64.b64decode(maps[0]["precompiled_charsmap"])
    raise ConversionError(f"{path}: normaliser {normalizer.get('type')!r} is not a sentencepiece char map")


def tokenizer_vocab(hf_dir: str) -> Optional[List[Tuple[str, float]]]:
    """``tokenizer.json``'s unigram vocabulary (piece, score) in id order, or None."""
    path = os.path.join(hf_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        model = json.load(f)["model"]
    if model.get("type") != "Unigram":
        raise ConversionError(f"{path}: a {model.get('type')} tokenizer, not XLM-R's sentencepiece unigram")
    return [(p, float(s)) for p, s in model["vocab"]]


def sentencepiece_bytes(hf_dir: str) -> Tuple[bytes, str]:
    """The sentencepiece model of a Hugging Face folder: its
    ``sentencepiece.bpe.model``, or one rebuilt from ``tokenizer.json``."""
    path = os.path.join(hf_dir, SPM_FILE)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read(), path
    tj = os.path.join(hf_dir, "tokenizer.json")
    vocab = tokenizer_vocab(hf_dir)
    if vocab is None:
        raise ConversionError(f"{hf_dir}: no {SPM_FILE} and no tokenizer.json")
    with open(tj, encoding="utf-8") as f:
        normalizer = json.load(f).get("normalizer")
    symbols = [p for p, _ in vocab]
    return sentencepiece_model(symbols, [s for _, s in vocab], _charsmap(normalizer, tj)), tj + " (rebuilt)"


def check_tokenizer_order(hf_dir: str, symbols: List[str]):
    """The Hugging Face tokenizer's ids must be fairseq's: compare ``tokenizer.json``."""
    vocab = tokenizer_vocab(hf_dir)
    if vocab is None:
        return
    pieces = [p for p, _ in vocab]
    for i, (a, b) in enumerate(zip(pieces, symbols)):
        if a != b:
            raise ConversionError(
                f"{hf_dir}/tokenizer.json: id {i} is {a!r} but fairseq's dictionary from {SPM_FILE} has {b!r}"
            )
    if len(pieces) != len(symbols):
        raise ConversionError(
            f"{hf_dir}/tokenizer.json: {len(pieces)} tokens, fairseq's dictionary has {len(symbols)} (with {MASK})"
        )


def import_hf(hf_dir: str, out_dir: str) -> dict:
    """Converts a Hugging Face folder into a fairseq checkpoint directory;
    returns a summary (architecture, notes, the matching training flags)."""
    import tempfile

    from ..data.outputs import check_outputs
    from . import fairseq_symbols_of, write_encoder_dir

    check_outputs([("--out", out_dir)], [("--hf-dir", hf_dir)])  # before any work

    config = read_config(hf_dir)
    spm_bytes, spm_source = sentencepiece_bytes(hf_dir)
    with tempfile.NamedTemporaryFile(suffix=".model") as f:
        f.write(spm_bytes)
        f.flush()
        symbols = fairseq_symbols_of(f.name)
    check_tokenizer_order(hf_dir, symbols)
    assert tuple(symbols[:4]) == FAIRSEQ_SPECIALS
    state, source = read_weights(hf_dir)
    fs_state, arch, notes = convert_state(state, config, len(symbols), source)
    info = {
        "source": os.path.abspath(hf_dir),
        "source_weights": os.path.basename(source),
        "source_tokenizer": os.path.basename(spm_source),
        "model_type": config.get("model_type"),
        "notes": notes,
    }
    write_encoder_dir(out_dir, fs_state, arch, spm_bytes, info, [("--hf-dir", hf_dir)])
    for n in notes:
        logger.info(n)
    return {"architecture": arch, "notes": notes, "xlt_flags": arch.xlt_flags(os.path.abspath(out_dir))}
