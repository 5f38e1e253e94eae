# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Sentencepiece encoding against an encoder directory, label alignment and
fairseq binarised (mmap) output."""

import hashlib
import logging
import os
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
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
        return self.ids(self.pieces(text))

    def encode_word(self, word: str) -> List[int]:
        ids = self._word_cache.get(word)
        if ids is None:
            ids = self.encode(word)
            if not ids:  # e.g. a token made only of characters the normaliser removes
                ids = [self.dictionary.unk_index]
            if len(self._word_cache) < 1_000_000:
                self._word_cache[word] = ids
        return ids

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


def write_indexed(prefix: str, items: Iterable[Sequence[int]], vocab_size: int) -> int:
    """Writes fairseq's mmap binarised dataset ``prefix.{bin,idx}``; returns the count."""
    builder = indexed_dataset.make_builder(indexed_dataset.data_file_path(prefix), impl="mmap", vocab_size=vocab_size)
    n = 0
    for item in items:
        builder.add_item(torch.from_numpy(np.asarray(item, dtype=np.int64)))
        n += 1
    builder.finalize(indexed_dataset.index_file_path(prefix))
    return n
