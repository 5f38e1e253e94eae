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
import struct
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
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

from .task_names import BUILTIN_TASKS, CLASSIFICATION, MLM, TAGGING, TRANSLATION, builtin_kind

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


# ---- verification: a corpus is checked against its data root before training or evaluation uses it -------------

_IDX_MAGIC = b"MMIDIDX\x00\x00"
_IDX_HEADER = len(_IDX_MAGIC) + 8 + 1 + 8  # magic, version, dtype code, item count
_IDX_DTYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 8, 8: 2, 9: 4}  # fairseq's dtype codes -> item size
_AGAIN = "prepare the corpus again"


# token and label ids are range-checked in data files up to this size (a full read; larger files only by size)
ID_CHECK_BYTES = 1 << 30


def check_indexed(prefix, bound: Optional[int] = None) -> np.ndarray:
    """Checks fairseq's mmap pair ``prefix.{idx,bin}`` without trusting it: the
    index header, the index's size for the item count it declares, item sizes
    and offsets, and the data file's size for the items the index lists.
    Returns the item sizes. A damaged pair is a :class:`CorpusError` naming the
    file, raised now rather than when a damaged item is drawn hours later."""
    idx, bin_ = f"{prefix}.idx", f"{prefix}.bin"
    for path in (idx, bin_):
        if not os.path.isfile(path):
            raise CorpusError(f"{path}: missing; the corpus folder is incomplete: {_AGAIN}")
    try:
        idx_size, bin_size = os.path.getsize(idx), os.path.getsize(bin_)
        with open(idx, "rb") as f:
            header = f.read(_IDX_HEADER)
    except OSError as e:
        raise CorpusError(f"{idx}: cannot be read ({e.strerror or e})") from None
    if len(header) < _IDX_HEADER or header[: len(_IDX_MAGIC)] != _IDX_MAGIC:
        raise CorpusError(f"{idx}: not a fairseq mmap index (bad or truncated header); {_AGAIN}")
    version = struct.unpack("<Q", header[9:17])[0]
    code = header[17]
    count = struct.unpack("<Q", header[18:26])[0]
    if version != 1 or code not in _IDX_DTYPES:
        raise CorpusError(f"{idx}: unknown index version {version} or data type {code}; {_AGAIN}")
    expected = _IDX_HEADER + 12 * count
    if idx_size != expected:
        raise CorpusError(
            f"{idx}: {idx_size} bytes, but an index of {count} items has {expected} "
            f"(truncated or damaged); {_AGAIN}"
        )
    if count == 0:
        sizes = np.zeros(0, dtype=np.int32)
        data_size = 0
    else:
        raw = np.memmap(idx, dtype=np.uint8, mode="r", offset=_IDX_HEADER, shape=(12 * count,))
        sizes = np.frombuffer(raw, dtype=np.int32, count=count)
        pointers = np.frombuffer(raw, dtype=np.int64, count=count, offset=4 * count)
        item = _IDX_DTYPES[code]
        ends = np.cumsum(sizes.astype(np.int64)) * item
        if (sizes < 0).any() or pointers[0] != 0 or not np.array_equal(pointers[1:], ends[:-1]):
            raise CorpusError(f"{idx}: item sizes and offsets do not agree (damaged index); {_AGAIN}")
        data_size = int(ends[-1])
        sizes = np.array(sizes)
    if bin_size != data_size:
        raise CorpusError(
            f"{bin_}: {bin_size} bytes, but {idx} lists {count} items in {data_size} bytes "
            f"({'truncated' if bin_size < data_size else 'damaged'}); {_AGAIN}"
        )
    if bound is not None and 0 < data_size <= ID_CHECK_BYTES:
        dtype = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16, 9: np.uint32}.get(code)
        if dtype is not None:
            values = np.memmap(bin_, dtype=dtype, mode="r")
            low, high = int(values.min()), int(values.max())
            del values
            if low < 0 or high >= bound:
                raise CorpusError(
                    f"{bin_}: holds id {high if high >= bound else low}, outside 0..{bound - 1} "
                    f"(damaged, or written for another dictionary or label set); {_AGAIN}"
                )
    return sizes


def root_dict_md5(root) -> str:
    from .binarize import file_md5

    path = os.path.join(root, DICT_FILE)
    try:
        return file_md5(path)
    except FileNotFoundError:
        raise CorpusError(f"{path}: missing; is {root} a data root written by scripts/preprocess.py?") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot be read ({e.strerror or e})") from None


def verify_corpus(root, name, key, dict_md5: Optional[str] = None, vocab_size: Optional[int] = None) -> dict:
    """Checks corpus ``root/name/key`` against its data root before anything uses
    it: its ``meta.json`` is readable, it was encoded with the root's
    ``dict.txt`` (``dict_md5``; computed when not given), every split it lists
    has all its streams, each stream's ``.idx``/``.bin`` sizes agree, the streams
    of a split have as many items as each other and as ``meta.json`` counted,
    a labelled corpus has the ``labels.txt`` its meta records, and (with
    ``vocab_size``, for files up to :data:`ID_CHECK_BYTES`) every id is in range.
    Returns the meta."""
    path = corpus_dir(root, name, key)
    meta_path = os.path.join(path, META_FILE)
    meta = read_meta(path)
    if dict_md5 is None:
        dict_md5 = root_dict_md5(root)
    if meta.get("dict_md5") not in (None, dict_md5):
        raise CorpusError(
            f"{meta_path}: corpus {name}/{key} was encoded with another dictionary (md5 {meta.get('dict_md5')}) "
            f"than this data root's {os.path.join(root, DICT_FILE)} (md5 {dict_md5}): its token ids mean other "
            f"pieces. Prepare it again into {root} with the encoder directory the root was made with"
        )
    kind = builtin_kind(name)
    bounds = {"input": vocab_size, "src": vocab_size, "tgt": vocab_size}
    if kind in (TAGGING, CLASSIFICATION):
        labels = read_labels(path)
        if isinstance(meta.get("labels"), list) and meta["labels"] != labels:
            raise CorpusError(
                f"{os.path.join(path, LABELS_FILE)}: its labels ({', '.join(labels)}) are not those {meta_path} "
                f"records ({', '.join(map(str, meta['labels']))}); {_AGAIN}"
            )
        bounds["label"] = len(labels) + 1
    for split, stats in sorted(meta["splits"].items()):
        counts, sizes = {}, {}
        for stream in STREAMS[kind]:
            prefix = os.path.join(path, f"{split}.{stream}")
            if not os.path.exists(prefix + ".idx") and not os.path.exists(prefix + ".bin"):
                raise CorpusError(
                    f"{prefix}.{{bin,idx}}: missing, although {meta_path} lists the {split} split "
                    f"(the corpus folder is incomplete); {_AGAIN}"
                )
            sizes[stream] = check_indexed(prefix, bounds.get(stream))
            counts[stream] = len(sizes[stream])
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{split}.{s} {n}" for s, n in counts.items())
            raise CorpusError(f"{path}: the {split} streams hold different numbers of items ({detail}); {_AGAIN}")
        # a tag per piece (tagging), one class per example (classification)
        if kind == TAGGING and not np.array_equal(sizes["input"], sizes["label"]):
            bad = int(np.flatnonzero(sizes["input"] != sizes["label"])[0])
            raise CorpusError(
                f"{os.path.join(path, f'{split}.label.idx')}: item {bad} has {sizes['label'][bad]} tags for "
                f"{sizes['input'][bad]} pieces (damaged index); {_AGAIN}"
            )
        if kind == CLASSIFICATION and len(sizes["label"]) and not (sizes["label"] == 1).all():
            raise CorpusError(f"{os.path.join(path, f'{split}.label.idx')}: items of more than one class id; {_AGAIN}")
        expected = stats.get("examples") if isinstance(stats, dict) else None
        found = next(iter(counts.values()))
        if isinstance(expected, int) and expected != found:
            raise CorpusError(
                f"{meta_path}: lists {expected} {split} examples but the binarised files hold {found}; {_AGAIN}"
            )
    return meta


def load_root_dictionary(root):
    """The data root's ``dict.txt`` as a fairseq Dictionary; a missing or damaged
    file is a CorpusError naming it."""
    path = os.path.join(root, DICT_FILE)
    if not os.path.exists(path):
        raise CorpusError(f"{path}: missing; is {root} a data root written by scripts/preprocess.py?")
    try:
        return Dictionary.load(path)
    except Exception as e:  # fairseq raises ValueError/RuntimeError/UnicodeDecodeError for damaged lines
        raise CorpusError(f"{path}: not a fairseq dictionary ({type(e).__name__}: {e})") from None


def verify_corpora(root, corpus_keys: Dict[str, Sequence[str]], vocab_size: Optional[int] = None):
    """:func:`verify_corpus` for every ``{task: [keys]}`` a run lists (training,
    evaluation and generation call it when the task is set up)."""
    dict_md5 = root_dict_md5(root)
    for name, keys in corpus_keys.items():
        for key in keys:
            verify_corpus(root, name, key, dict_md5, vocab_size)


def longest(dataset) -> Tuple[int, int]:
    """The longest source and target (0 without one) of a dataset built by this module."""
    if isinstance(dataset, LanguagePairDataset):
        tgt = int(dataset.tgt_sizes.max()) if dataset.tgt_sizes is not None and len(dataset.tgt_sizes) else 0
        return (int(dataset.src_sizes.max()) if len(dataset.src_sizes) else 0), tgt
    sizes = dataset.sizes
    sizes = sizes[0] if isinstance(sizes, (list, tuple)) else sizes
    return (int(np.max(sizes)) if len(sizes) else 0), 0


def check_positions(lengths: Iterable[Tuple[str, int, int]], max_positions, hint: str = ""):
    """Refuses, before the first update, a corpus whose longest example does not
    fit the model: ``lengths`` holds (name, longest source, longest target);
    ``max_positions`` is what fairseq resolves from the task and the model (an
    int, a (source, target) tuple, or None)."""
    if max_positions is None:
        return
    if isinstance(max_positions, (int, float)):
        limits = (max_positions, max_positions)
    else:
        limits = tuple(max_positions) + (None,) * (2 - len(tuple(max_positions)))
        limits = (limits[0], limits[1] if limits[1] is not None else limits[0])
    for name, src, tgt in lengths:
        for side, n, limit in (("source", src, limits[0]), ("target", tgt, limits[1])):
            if limit is not None and n > limit:
                raise CorpusError(
                    f"{name}: its longest {side} sequence has {n} positions (with <s>/</s>) but the model takes "
                    f"{int(limit)}: prepare the corpus again for the model's positions (scripts/preprocess.py "
                    f"--max-positions {int(limit)}, or --tokens-per-sample {int(limit)} for masked-LM text){hint}"
                )


def check_same_corpora(saved_cfg, cfg, checkpoint) -> None:
    """Refuses to resume ``checkpoint`` (trained with task configuration
    ``saved_cfg``) with another list of corpora or languages (``cfg``): the
    discriminator's classes and the corpus ids would silently change meaning."""
    fields = ("ner_langs", "sentiment_langs", "mlm_langs", "translation_pairs", "tagging_tasks")

    def listed(c, f):
        value = c.get(f) if hasattr(c, "get") else getattr(c, f, None)
        return [x.strip() for x in str(value or "").split(",") if x.strip()]

    diffs = [(f, listed(saved_cfg, f), listed(cfg, f)) for f in fields if listed(saved_cfg, f) != listed(cfg, f)]
    if diffs:
        def opt(f, v):
            return f"--{f.replace('_', '-')} {','.join(v) if v else '(none)'}"

        raise CorpusError(
            f"{checkpoint}: this checkpoint was trained with "
            + "; ".join(opt(f, old) for f, old, _ in diffs)
            + ", but this run gives "
            + "; ".join(opt(f, new) for f, _, new in diffs)
            + ". Resuming would silently give the language discriminator's classes and the corpora other "
            "meanings. Resume with the checkpoint's lists, start a new run in another --save-dir, or fine-tune "
            f"from it with --finetune-from-model {checkpoint}"
        )


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


def load_tagging_corpus(path, split, dictionary: Dictionary, global_labels: List[str]):
    """A token-tagging corpus (NER, POS, ...) as a NestedDictionaryDataset."""
    tokens = load_indexed(path, split, "input")
    labels = load_indexed(path, split, "label")
    if len(tokens) != len(labels):
        raise CorpusError(f"{path}: {split}.input has {len(tokens)} items but {split}.label has {len(labels)}")
    mapping = _label_mapping(read_labels(path), global_labels)
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
    tokens = load_indexed(path, split, "input")
    labels = load_indexed(path, split, "label")
    if len(tokens) != len(labels):
        raise CorpusError(f"{path}: {split}.input has {len(tokens)} items but {split}.label has {len(labels)}")
    mapping = _label_mapping(read_labels(path), global_labels)
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
