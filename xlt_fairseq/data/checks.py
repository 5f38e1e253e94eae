# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Checks of a data root before training, evaluation or generation use it
(``setup_task``), and of a run against the checkpoint it resumes: every
problem is a :class:`~xlt_fairseq.data.corpora.CorpusError` naming the file and
the fix, raised before the first update rather than hours into training."""

import os
import struct
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
from fairseq.data import Dictionary, LanguagePairDataset

from .corpora import DICT_FILE, LABELS_FILE, META_FILE, STREAMS, CorpusError, corpus_dir, read_labels, read_meta
from .task_names import CLASSIFICATION, TAGGING, builtin_kind

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


def _get(c, f, default=None):
    if c is None:
        return default
    value = c.get(f, default) if hasattr(c, "get") else getattr(c, f, default)
    return default if value is None else value


def check_same_corpora(saved_cfg, cfg, checkpoint, model_cfg=None) -> None:
    """Refuses to resume ``checkpoint`` (whose saved configuration is
    ``saved_cfg``, with ``task`` and ``model`` sections) with another list of
    corpora or languages (task configuration ``cfg``) or another discriminator
    target (``model_cfg``): the discriminator's classes and the corpus ids
    would silently change meaning."""
    fields = ("ner_langs", "sentiment_langs", "mlm_langs", "translation_pairs", "tagging_tasks")
    saved_task = _get(saved_cfg, "task")

    def listed(c, f):
        return [x.strip() for x in str(_get(c, f, "")).split(",") if x.strip()]

    diffs = [(f, listed(saved_task, f), listed(cfg, f)) for f in fields if listed(saved_task, f) != listed(cfg, f)]
    saved_target = _get(_get(saved_cfg, "model"), "adversarial_target", "language")
    target = _get(model_cfg, "adversarial_target", saved_target)
    if target != saved_target:
        diffs.append(("adversarial_target", [str(saved_target)], [str(target)]))
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
