# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Sentencepiece encoding against an encoder directory, label alignment and
fairseq binarised (mmap) output."""

import hashlib
import logging
import os
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
from fairseq.data import Dictionary, indexed_dataset

logger = logging.getLogger(__name__)

SPM_FILE = "sentencepiece.bpe.model"
DICT_FILE = "dict.txt"
# On disk, tag ids are stored shifted by one so that 0 marks a position the loss
# and the metrics ignore (special tokens and non-initial pieces of a word).
IGNORED = 0


def file_md5(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EncoderVocabularyError(ValueError):
    pass


class PieceEncoder:
    """Encodes text with an encoder directory laid out like an XLM-R release
    (``sentencepiece.bpe.model`` + ``dict.txt``) into fairseq dictionary ids."""

    def __init__(self, encoder_dir):
        import sentencepiece as spm

        self.encoder_dir = encoder_dir
        spm_path = os.path.join(encoder_dir, SPM_FILE)
        dict_path = os.path.join(encoder_dir, DICT_FILE)
        for path in (spm_path, dict_path):
            if not os.path.exists(path):
                raise EncoderVocabularyError(f"{path}: missing from the encoder directory")
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(spm_path)
        except Exception as e:  # sentencepiece raises OSError/RuntimeError
            raise EncoderVocabularyError(f"{spm_path}: not a sentencepiece model ({e})") from None
        try:
            self.dictionary = Dictionary.load(dict_path)
        except Exception as e:
            raise EncoderVocabularyError(f"{dict_path}: not a fairseq dictionary ({e})") from None
        self._check_vocabularies(spm_path, dict_path)
        self.spm_md5 = file_md5(spm_path)
        self.dict_md5 = file_md5(dict_path)
        self._word_cache: Dict[str, List[int]] = {}
        # sentencepiece id -> dictionary id; the same as looking each piece up in the
        # dictionary (an unknown piece is <unk> either way), without building strings
        unk = self.dictionary.unk_index
        index = self.dictionary.indices
        self._table = [index.get(self.sp.IdToPiece(i), unk) for i in range(self.sp.GetPieceSize())]

    def _check_vocabularies(self, spm_path, dict_path):
        unk = self.sp.unk_id()
        d = self.dictionary
        missing = [(i, d.symbols[i]) for i in range(d.nspecial, len(d)) if self.sp.piece_to_id(d.symbols[i]) == unk]
        if missing:
            line = missing[0][0] - d.nspecial + 1
            raise EncoderVocabularyError(
                f"{dict_path}:{line}: piece {missing[0][1]!r} is not in {spm_path} "
                f"({len(missing)} of {len(d) - d.nspecial} dictionary entries are not): "
                "the dictionary and the sentencepiece model do not belong together"
            )

    def pieces(self, text: str) -> List[str]:
        return self.sp.EncodeAsPieces(text)

    def ids(self, pieces: Sequence[str]) -> List[int]:
        index = self.dictionary.indices
        unk = self.dictionary.unk_index
        return [index.get(p, unk) for p in pieces]

    def encode(self, text: str) -> List[int]:
        """Dictionary ids of ``text`` (equal to ``self.ids(self.pieces(text))``)."""
        table = self._table
        return [table[i] for i in self.sp.EncodeAsIds(text)]

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """:meth:`encode` of many texts in one sentencepiece call (one thread)."""
        table = self._table
        return [[table[i] for i in ids] for ids in self.sp.Encode(list(texts), num_threads=1)]

    def encode_word(self, word: str) -> List[int]:
        ids = self._word_cache.get(word)
        if ids is None:
            ids = self.encode(word)
            if not ids:  # e.g. a token made only of characters the normaliser removes
                ids = [self.dictionary.unk_index]
            if len(self._word_cache) < 1_000_000:
                self._word_cache[word] = ids
        return ids

    def cache_words(self, words: Iterable[str]):
        """Encodes the words not yet cached in one batch (speeds up :meth:`encode_word`)."""
        cache = self._word_cache
        new = list({w: None for w in words if w not in cache})
        if not new or len(cache) >= 1_000_000:
            return
        unk = self.dictionary.unk_index
        for w, ids in zip(new, self.encode_batch(new)):
            cache[w] = ids or [unk]

    def encode_words(self, words: Sequence[str]) -> Tuple[List[int], List[int]]:
        """Ids of a pre-tokenised sentence and the index of each word's first piece."""
        ids, firsts = [], []
        for w in words:
            firsts.append(len(ids))
            ids.extend(self.encode_word(w))
        return ids, firsts


def align_tags(num_pieces: int, firsts: Sequence[int], tag_ids: Sequence[int]) -> List[int]:
    """Tag ids (0-based) placed on each word's first piece, stored shifted by one;
    every other piece gets ``IGNORED``."""
    out = [IGNORED] * num_pieces
    for pos, t in zip(firsts, tag_ids):
        out[pos] = t + 1
    return out


class IndexedWriter:
    """Writes fairseq's mmap binarised dataset ``prefix.{bin,idx}`` (the format
    of ``indexed_dataset.MMapIndexedDatasetBuilder``, same dtype choice), taking
    whole chunks of items as one flat array plus item sizes."""

    def __init__(self, prefix: str, vocab_size: int):
        self.prefix = prefix
        self.dtype = indexed_dataset.best_fitting_int_dtype(vocab_size)
        self._file = open(indexed_dataset.data_file_path(prefix), "wb")
        self._sizes: List[int] = []

    def add_item(self, ids: Sequence[int]):
        self.add_flat(np.asarray(ids), [len(ids)])

    def add_flat(self, flat: np.ndarray, sizes: Sequence[int]):
        self._file.write(np.asarray(flat, dtype=self.dtype).tobytes(order="C"))
        self._sizes.extend(int(n) for n in sizes)

    def finalize(self) -> int:
        self._file.close()
        with indexed_dataset.MMapIndexedDataset.Index.writer(
            indexed_dataset.index_file_path(self.prefix), self.dtype
        ) as w:
            w.write(self._sizes)
        return len(self._sizes)


def write_indexed(prefix: str, items: Iterable[Sequence[int]], vocab_size: int) -> int:
    """Writes fairseq's mmap binarised dataset ``prefix.{bin,idx}``; returns the count."""
    writer = IndexedWriter(prefix, vocab_size)
    for item in items:
        writer.add_item(item)
    return writer.finalize()


# ---- chunk encoders: pure functions from parsed examples to flat id arrays ----------------------------------------
# Each returns {"streams": {name: (flat int64 array, sizes)}, "counts": {name: int}}; preprocessing runs them over
# chunks of a corpus, in worker processes or not, and concatenates the chunks in order.


def _stream(flat: List[int], sizes: List[int]):
    return np.asarray(flat, dtype=np.int64), np.asarray(sizes, dtype=np.int64)


def encode_tagged_chunk(encoder: PieceEncoder, chunk, max_pieces: int) -> dict:
    """``chunk``: (tokens, 0-based tag ids) per sentence. Each word's ids go in
    order, its tag id + 1 on its first piece (``IGNORED`` elsewhere). A sentence
    longer than ``max_pieces`` is split at word boundaries into windows (a single
    word longer than a window keeps its first pieces), never truncated."""
    encoder.cache_words(w for tokens, _ in chunk for w in tokens)
    eos = encoder.dictionary.eos()
    encode_word = encoder.encode_word
    ids, labels, sizes = [], [], []
    n_split = 0
    for tokens, tag_ids in chunk:
        windows, cur = 1, 0
        for word, tag in zip(tokens, tag_ids):
            w = encode_word(word)
            if len(w) > max_pieces:
                w = w[:max_pieces]
            if cur and cur + len(w) > max_pieces:
                ids.append(eos)
                labels.append(IGNORED)
                sizes.append(cur + 1)
                windows, cur = windows + 1, 0
            ids.extend(w)
            labels.append(tag + 1)
            if len(w) > 1:
                labels.extend([IGNORED] * (len(w) - 1))
            cur += len(w)
        ids.append(eos)
        labels.append(IGNORED)
        sizes.append(cur + 1)
        n_split += windows > 1
    return {"streams": {"input": _stream(ids, sizes), "label": _stream(labels, sizes)}, "counts": {"split": n_split}}


def encode_text_chunk(encoder: PieceEncoder, texts: Sequence[str], max_pieces: int, split_long: bool) -> dict:
    """Each text's ids + ``</s>``. A text longer than ``max_pieces`` is cut: with
    ``split_long`` into several items (masked-LM text), otherwise truncated."""
    eos = encoder.dictionary.eos()
    flat, sizes = [], []
    n_long = 0
    for ids in encoder.encode_batch(texts):
        if len(ids) > max_pieces:
            n_long += 1
            parts = (
                [ids[i : i + max_pieces] for i in range(0, len(ids), max_pieces)] if split_long else [ids[:max_pieces]]
            )
        else:
            parts = [ids]
        for part in parts:
            flat.extend(part)
            flat.append(eos)
            sizes.append(len(part) + 1)
    return {"streams": {"input": _stream(flat, sizes)}, "counts": {"long": n_long}}


def encode_pair_chunk(
    encoder: PieceEncoder,
    pairs: Sequence[Tuple[str, str]],
    max_source: int,
    max_target: int,
    filtering: bool,
    max_length: int = 0,
    length_ratio: float = 0.0,
) -> dict:
    """Source and target ids + ``</s>``. With ``filtering`` (training data) a pair
    is dropped when a side exceeds the model's positions (``max_source``/
    ``max_target`` pieces), ``max_length`` pieces, or when the longer side has
    more than ``length_ratio`` times the pieces of the shorter; without, too long
    sides are truncated (evaluation data keeps every pair)."""
    eos = encoder.dictionary.eos()
    src_ids = encoder.encode_batch([s for s, _ in pairs])
    tgt_ids = encoder.encode_batch([t for _, t in pairs])
    src, tgt, src_sizes, tgt_sizes = [], [], [], []
    counts = {"too_long": 0, "max_length": 0, "length_ratio": 0, "truncated": 0}
    for s, t in zip(src_ids, tgt_ids):
        if filtering:
            if len(s) > max_source or len(t) > max_target:
                counts["too_long"] += 1
                continue
            if max_length and max(len(s), len(t)) > max_length:
                counts["max_length"] += 1
                continue
            if length_ratio and max(len(s), len(t)) > length_ratio * max(1, min(len(s), len(t))):
                counts["length_ratio"] += 1
                continue
        elif len(s) > max_source or len(t) > max_target:
            s, t = s[:max_source], t[:max_target]
            counts["truncated"] += 1
        src.extend(s)
        src.append(eos)
        src_sizes.append(len(s) + 1)
        tgt.extend(t)
        tgt.append(eos)
        tgt_sizes.append(len(t) + 1)
    return {"streams": {"src": _stream(src, src_sizes), "tgt": _stream(tgt, tgt_sizes)}, "counts": counts}
