# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The on-disk layout of a data root and the fairseq datasets built from it.

::

    DATA_BIN/
      dict.txt                               the encoder's dictionary
      ner/<lang>/                            one folder per (task, language)
        meta.json                            task, language, domain, counts, vocabulary checksums
        labels.txt                           the corpus' label set, one label per line
        {train,valid,test}.input.{bin,idx}   piece ids + </s>
        {train,valid,test}.label.{bin,idx}   tag id + 1 on each word's first piece, 0 elsewhere
      sentiment/<lang>/                      same files; .label holds one class id per example
      mlm/<lang>/{train,valid}.input.{bin,idx}
      translation/<src>-<tgt>/{split}.src.{bin,idx}, {split}.tgt.{bin,idx}
"""

import json
import logging
import os
from typing import List, Tuple

import torch
from fairseq.data import (
    BaseWrapperDataset,
    Dictionary,
    IdDataset,
    LanguagePairDataset,
    MaskTokensDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RightPadDataset,
    TokenBlockDataset,
    data_utils,
)

from .task_names import BUILTIN_TASKS, CLASSIFICATION, MLM, TAGGING, TRANSLATION

logger = logging.getLogger(__name__)

TASKS = BUILTIN_TASKS
DICT_FILE = "dict.txt"
# the binarised streams of a corpus of each kind
STREAMS = {TAGGING: ("input", "label"), CLASSIFICATION: ("input", "label"), TRANSLATION: ("src", "tgt"), MLM: ("input",)}
META_FILE = "meta.json"
LABELS_FILE = "labels.txt"
IGNORE_INDEX = -100


class CorpusError(ValueError):
    pass


def corpus_dir(root, task, key):
    return os.path.join(root, task, key)


def read_meta(path) -> dict:
    """A corpus' ``meta.json``; a missing, unreadable, truncated or malformed file
    is a :class:`CorpusError` naming it."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.exists(meta_path):
        raise CorpusError(f"{meta_path}: missing; is {path} a corpus written by scripts/preprocess.py?")
    again = "the corpus folder is damaged: prepare the corpus again"
    try:
        with open(meta_path, "rb") as f:
            meta = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise CorpusError(f"{meta_path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{meta_path}: invalid UTF-8 at byte {e.start}; {again}") from None
    except json.JSONDecodeError as e:
        raise CorpusError(f"{meta_path}:{e.lineno}: not valid JSON ({e.msg}); {again}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict):
        raise CorpusError(f"{meta_path}: not a corpus description (no 'splits' mapping); {again}")
    return meta


def write_meta(path, meta):
    with open(os.path.join(path, META_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def read_labels(path) -> List[str]:
    labels_path = os.path.join(path, LABELS_FILE)
    try:
        with open(labels_path, "rb") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{labels_path}: missing; the corpus folder is incomplete: prepare the corpus again") from None
    except OSError as e:
        raise CorpusError(f"{labels_path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{labels_path}: invalid UTF-8 at byte {e.start}; prepare the corpus again") from None
    return [line for line in text.split("\n") if line.strip()]


def write_labels(path, labels: List[str]):
    with open(os.path.join(path, LABELS_FILE), "w", encoding="utf-8") as f:
        for label in labels:
            f.write(label + "\n")


def has_split(path, split, stream="input") -> bool:
    return os.path.exists(os.path.join(path, f"{split}.{stream}.idx"))


def load_indexed(path, split, stream):
    prefix = os.path.join(path, f"{split}.{stream}")
    ds = data_utils.load_indexed_dataset(prefix, None, "mmap")
    if ds is None:
        raise CorpusError(f"{prefix}.{{bin,idx}}: not found")
    return ds


def corpus_folders(root) -> List[Tuple[str, str]]:
    """Every ``(task, key)`` folder of a data root that holds a ``meta.json``
    (built-in tasks and auxiliary tagging tasks such as ``pos`` alike)."""
    out = []
    if not os.path.isdir(root):
        return out
    for task in sorted(os.listdir(root)):
        task_dir = os.path.join(root, task)
        if task.startswith(".") or not os.path.isdir(task_dir):
            continue
        for key in sorted(os.listdir(task_dir)):
            if not key.startswith(".") and ".old-" not in key and os.path.isfile(os.path.join(task_dir, key, META_FILE)):
                out.append((task, key))
    return out


def union_labels(label_sets: List[List[str]]) -> List[str]:
    """A deterministic label order for a task across its corpora: ``O`` first
    (when present), the rest sorted."""
    labels = sorted(set(label for ls in label_sets for label in ls))
    if "O" in labels:
        labels.remove("O")
        labels.insert(0, "O")
    return labels


class _MapLabelsDataset(BaseWrapperDataset):
    """Maps a corpus' on-disk label ids (id + 1, 0 = ignored) to the task's
    global label ids (``IGNORE_INDEX`` for ignored positions)."""

    def __init__(self, dataset, mapping: torch.Tensor):
        super().__init__(dataset)
        # index 0 (ignored) -> IGNORE_INDEX; local id + 1 -> global id
        self.table = torch.cat([torch.tensor([IGNORE_INDEX]), mapping.long()])

    def __getitem__(self, index):
        return self.table[self.dataset[index].long()]


class _PrependValueDataset(BaseWrapperDataset):
    def __init__(self, dataset, value):
        super().__init__(dataset)
        self.value = value

    def __getitem__(self, index):
        item = self.dataset[index]
        return torch.cat([item.new([self.value]), item])


class _ScalarDataset(BaseWrapperDataset):
    def __getitem__(self, index):
        return self.dataset[index][0]

    def collater(self, samples):
        return torch.stack(samples)


def _label_mapping(local: List[str], global_labels: List[str]) -> torch.Tensor:
    index = {label: i for i, label in enumerate(global_labels)}
    return torch.tensor([index[label] for label in local], dtype=torch.long)


def _load_labelled(path, split, dictionary: Dictionary, global_labels: List[str], make):
    tokens = load_indexed(path, split, "input")
    labels = load_indexed(path, split, "label")
    if len(tokens) != len(labels):
        raise CorpusError(f"{path}: {split}.input has {len(tokens)} items but {split}.label has {len(labels)}")
    return make(tokens, labels, dictionary, _label_mapping(read_labels(path), global_labels))


def load_tagging_corpus(path, split, dictionary: Dictionary, global_labels: List[str]):
    """A token-tagging corpus (NER, POS, ...) as a NestedDictionaryDataset."""
    return _load_labelled(path, split, dictionary, global_labels, tagging_dataset)


def tagging_dataset(tokens, labels, dictionary: Dictionary, mapping: torch.Tensor):
    """Token ids (``... </s>``) and on-disk tag ids (id + 1, 0 = ignored) of a
    tagging corpus, read from disk or encoded in memory (prediction), as the
    model's batches: ``<s>`` prepended, labels mapped to ``mapping``'s global ids."""
    src = PrependTokenDataset(tokens, dictionary.bos())
    tgt = _PrependValueDataset(_MapLabelsDataset(labels, mapping), IGNORE_INDEX)
    return NestedDictionaryDataset(
        {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(src, pad_idx=dictionary.pad()),
                "src_lengths": NumelDataset(src, reduce=False),
            },
            "target": RightPadDataset(tgt, pad_idx=IGNORE_INDEX),
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(src, reduce=True),
        },
        sizes=[src.sizes],
    )


def load_classification_corpus(path, split, dictionary: Dictionary, global_labels: List[str]):
    """A sentence-classification corpus (sentiment) as a NestedDictionaryDataset."""
    return _load_labelled(path, split, dictionary, global_labels, classification_dataset)


def classification_dataset(tokens, labels, dictionary: Dictionary, mapping: torch.Tensor):
    """Token ids (``... </s>``) and on-disk class ids of a classification corpus,
    read from disk or encoded in memory (prediction), as the model's batches."""
    src = PrependTokenDataset(tokens, dictionary.bos())
    return NestedDictionaryDataset(
        {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(src, pad_idx=dictionary.pad()),
                "src_lengths": NumelDataset(src, reduce=False),
            },
            "target": _ScalarDataset(_MapLabelsDataset(labels, mapping)),
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(src, reduce=True),
        },
        sizes=[src.sizes],
    )


def load_mlm_corpus(
    path,
    split,
    dictionary: Dictionary,
    mask_idx: int,
    tokens_per_sample: int,
    seed: int,
    mask_prob: float = 0.15,
    leave_unmasked_prob: float = 0.1,
    random_token_prob: float = 0.1,
):
    """Unlabelled text in blocks of ``tokens_per_sample`` with BERT masking, as
    fairseq's ``masked_lm`` task builds it."""
    tokens = load_indexed(path, split, "input")
    blocks = TokenBlockDataset(
        tokens,
        tokens.sizes,
        tokens_per_sample - 1,  # one position for <s>
        pad=dictionary.pad(),
        eos=dictionary.eos(),
        break_mode="complete",
    )
    blocks = PrependTokenDataset(blocks, dictionary.bos())
    src, tgt = MaskTokensDataset.apply_mask(
        blocks,
        dictionary,
        pad_idx=dictionary.pad(),
        mask_idx=mask_idx,
        seed=seed,
        mask_prob=mask_prob,
        leave_unmasked_prob=leave_unmasked_prob,
        random_token_prob=random_token_prob,
    )
    return NestedDictionaryDataset(
        {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(src, pad_idx=dictionary.pad()),
                "src_lengths": NumelDataset(src, reduce=False),
            },
            "target": RightPadDataset(tgt, pad_idx=dictionary.pad()),
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(src, reduce=True),
        },
        sizes=[blocks.sizes],
    )


def load_translation_corpus(path, split, dictionary: Dictionary, shuffle: bool = True):
    """A translation corpus as a LanguagePairDataset. The source gets XLM-R's
    ``<s> ... </s>`` framing; the target is ``... </s>`` with the decoder input
    shifted right."""
    src = load_indexed(path, split, "src")
    tgt = load_indexed(path, split, "tgt")
    if len(src) != len(tgt):
        raise CorpusError(f"{path}: {split}.src has {len(src)} items but {split}.tgt has {len(tgt)}")
    return build_translation_dataset(PrependTokenDataset(src, dictionary.bos()), tgt, dictionary, shuffle)


def build_translation_dataset(src, tgt, dictionary, shuffle=True):
    return LanguagePairDataset(
        src,
        src.sizes,
        dictionary,
        tgt,
        tgt.sizes if tgt is not None else None,
        dictionary,
        left_pad_source=False,
        left_pad_target=False,
        shuffle=shuffle,
    )
