# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Vocabulary pruning: an encoder directory restricted to the pieces a corpus
uses.

XLM-R's 250,002-row embedding is most of the model (96M of e5-small's 118M
parameters) and, through Adam's two moments, most of the optimizer's memory;
the masked-LM head and the translation decoder's output projection also cost a
multiply-add per vocabulary row per predicted token. A corpus uses a small
fraction of the rows.

Why the pruned model gives identical features on the corpus: sentencepiece's
unigram segmentation is the highest-scoring segmentation over the vocabulary.
Every piece of the corpus' segmentations is kept, so each optimum is still
available in the smaller vocabulary and still the best. The one global input
of the search, the unknown-character penalty (lowest piece score - 10), is kept
by keeping the lowest-scoring piece. Kept pieces keep their scores, their
embedding rows and masked-LM biases; ids are renumbered in the original order.
"""

import glob
import json
import logging
import os
import shutil
from typing import Dict, Iterable, List, Sequence

import numpy as np
import torch

from .. import checkpoint_safety
from ..data.binarize import DICT_FILE, SPM_FILE, PieceEncoder, file_md5
from ..data.vocab import write_fairseq_dict
from . import INFO_FILE, MODEL_FILE, ConversionError, fairseq_symbols_of, finish_encoder_dir, stage_sentencepiece

logger = logging.getLogger(__name__)

# binarised token streams of a data root (labels are not tokens)
TOKEN_STREAMS = ("input", "src", "tgt")
# weights with one row per dictionary symbol
VOCAB_ROWS = ("encoder.sentence_encoder.embed_tokens.weight", "encoder.lm_head.weight", "encoder.lm_head.bias")


def ids_in_data_root(data_root: str, encoder_dir: str) -> np.ndarray:
    """Every dictionary id in a binarised data root's token streams (what
    training, validation and testing will see)."""
    from fairseq.data import indexed_dataset

    ours, theirs = os.path.join(data_root, DICT_FILE), os.path.join(encoder_dir, DICT_FILE)
    if not os.path.exists(ours):
        raise ConversionError(f"{ours}: missing; is {data_root} a data root written by scripts/preprocess.py?")
    if file_md5(ours) != file_md5(theirs):
        raise ConversionError(f"{ours}: this data root was binarised with another dictionary than {theirs}")
    seen = []
    files = sorted(glob.glob(os.path.join(data_root, "**", "*.bin"), recursive=True))
    for path in files:
        parts = os.path.basename(path).split(".")
        if len(parts) != 3 or parts[1] not in TOKEN_STREAMS:
            continue
        ds = indexed_dataset.MMapIndexedDataset(path[: -len(".bin")])
        seen.append(np.unique(np.concatenate([ds[i].numpy() for i in range(len(ds))] or [np.zeros(0, np.int64)])))
    if not seen:
        raise ConversionError(f"{data_root}: no binarised token streams ({', '.join(TOKEN_STREAMS)}) found")
    return np.unique(np.concatenate(seen))


def ids_in_text(encoder: PieceEncoder, paths: Sequence[str]) -> np.ndarray:
    """Every dictionary id of raw text files, one text per line, encoded as
    preprocessing encodes text (stripped lines)."""
    from ..data.formats import read_text_lines

    seen = set()
    for path in paths:
        for line in read_text_lines(path, allow_empty_lines=True):
            seen.update(encoder.encode(line))
    return np.array(sorted(seen), dtype=np.int64)


def ids_in_files(encoder: PieceEncoder, tagged: Sequence[str] = (), labelled: Sequence[str] = ()) -> np.ndarray:
    """Every dictionary id of tagged files (CoNLL ``token<TAB>tag``, words encoded
    one by one as NER preprocessing does) and ``label<TAB>text`` files."""
    from ..data.formats import read_classification, read_tagged

    seen = set()
    for path in tagged:
        for sent in read_tagged(path, "conll"):
            for word in sent.tokens:
                seen.update(encoder.encode_word(word))
    for path in labelled:
        for ids in encoder.encode_batch([ex.text for ex in read_classification(path, "tsv")]):
            seen.update(ids)
    return np.array(sorted(seen), dtype=np.int64)


def keep_ids(symbols: List[str], scores: Sequence[float], used: Iterable[int]) -> List[int]:
    """The fairseq ids to keep: the specials, ``<mask>``, the used ids and the
    lowest-scoring piece (it fixes sentencepiece's unknown-character penalty)."""
    keep = {0, 1, 2, 3, len(symbols) - 1}
    keep.update(int(i) for i in used)
    if max(keep) >= len(symbols) or min(keep) < 0:
        raise ConversionError(f"id {max(keep)} is outside the dictionary of {len(symbols)} symbols")
    pieces = range(4, len(symbols) - 1)
    keep.add(min(pieces, key=lambda i: scores[i]))
    return sorted(keep)


def _pruned_spm(proto, keep: List[int]) -> bytes:
    """The sentencepiece model with only the kept pieces (sentencepiece id =
    fairseq id - 1); scores, normaliser and settings unchanged."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.CopyFrom(proto)
    kept = [proto.pieces[i] for i in range(3)] + [proto.pieces[i - 1] for i in keep if 4 <= i <= len(proto.pieces)]
    del m.pieces[:]
    m.pieces.extend(kept)
    m.trainer_spec.vocab_size = len(kept)
    return m.SerializeToString()


def prune_encoder_dir(src_dir: str, out_dir: str, used_ids: Iterable[int], inputs: Sequence = ()) -> Dict[str, int]:
    """Writes ``out_dir``: ``src_dir`` restricted to the pieces in ``used_ids``
    (fairseq ids). Returns the old and new vocabulary and parameter counts.
    ``inputs``: what else was read (data roots, text files), never overwritten."""
    from ..data.outputs import check_outputs

    inputs = [("--encoder-dir", src_dir)] + list(inputs)
    check_outputs([("--out", out_dir)], inputs)  # before any work
    spm_path = os.path.join(src_dir, SPM_FILE)
    model_path = os.path.join(src_dir, MODEL_FILE)
    for p in (spm_path, model_path, os.path.join(src_dir, DICT_FILE)):
        if not os.path.exists(p):
            raise ConversionError(f"{p}: missing from the encoder directory")
    from fairseq.data import Dictionary
    from sentencepiece import sentencepiece_model_pb2 as pb

    symbols = fairseq_symbols_of(spm_path)
    if Dictionary.load(os.path.join(src_dir, DICT_FILE)).symbols != symbols[:-1]:
        raise ConversionError(f"{os.path.join(src_dir, DICT_FILE)}: does not follow {spm_path} (XLM-R layout)")

    proto = pb.ModelProto()
    with open(spm_path, "rb") as f:
        proto.ParseFromString(f.read())
    scores = [0.0] * 4 + [p.score for p in proto.pieces[3:]] + [0.0]
    keep = keep_ids(symbols, scores, used_ids)
    spm_bytes = _pruned_spm(proto, keep)

    state = checkpoint_safety.load(model_path)
    model = state["model"]
    index = torch.tensor(keep, dtype=torch.long)
    before = sum(v.numel() for k, v in model.items() if k != "encoder.lm_head.weight")
    for key in VOCAB_ROWS:
        if key in model:
            if model[key].shape[0] != len(symbols):
                raise ConversionError(f"{model_path}: {key} has {model[key].shape[0]} rows, not {len(symbols)}")
            model[key] = model[key].index_select(0, index)
    if "encoder.lm_head.weight" in model:  # keep it tied (one storage)
        model["encoder.lm_head.weight"] = model["encoder.sentence_encoder.embed_tokens.weight"]
    after = sum(v.numel() for k, v in model.items() if k != "encoder.lm_head.weight")
    state["last_optimizer_state"] = None  # rows no longer match
    extra = state.setdefault("extra_state", {}) or {}
    extra["xlt_pruned_from"] = {"encoder_dir": os.path.abspath(src_dir), "kept_ids": keep}
    state["extra_state"] = extra

    tmp, new_spm = stage_sentencepiece(out_dir, spm_bytes)
    try:
        new_symbols = fairseq_symbols_of(new_spm)
        if new_symbols != [symbols[i] for i in keep]:
            raise ConversionError(f"{out_dir}: internal error: the pruned dictionary is not the kept symbols")
        write_fairseq_dict(new_spm, os.path.join(tmp, DICT_FILE))
        torch.save(state, os.path.join(tmp, MODEL_FILE))
        finish_encoder_dir(tmp, out_dir, _info(src_dir, out_dir, len(symbols), len(keep), before, after), inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "symbols_before": len(symbols),
        "symbols_after": len(keep),
        "params_before": before,
        "params_after": after,
    }
    logger.info(f"wrote {out_dir}: {summary}")
    return summary


def _info(src_dir, out_dir, n_before, n_after, before, after) -> dict:
    info = {}
    src_info = os.path.join(src_dir, INFO_FILE)
    if os.path.exists(src_info):
        with open(src_info, encoding="utf-8") as f:
            info = json.load(f)
    if "architecture" in info:
        info["architecture"]["vocab_size"] = n_after
    if "xlt_train_flags" in info:
        info["xlt_train_flags"] = info["xlt_train_flags"].replace(os.path.abspath(src_dir), os.path.abspath(out_dir))
    info["pruned"] = {
        "from": os.path.abspath(src_dir),
        "symbols": [n_before, n_after],
        "parameters": [before, after],
        "note": "identical features on the corpus it was pruned for; other text may hit <unk> more often",
    }
    return info
