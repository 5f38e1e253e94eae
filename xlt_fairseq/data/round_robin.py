# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Multi-task, multilingual dataset composition.

* :class:`MultilingualTaskDataset` concatenates the corpora of one task (one per
  language or language pair) and tags every example with the ids of its corpus,
  language and domain.
* :class:`RoundRobinMultitaskDataset` is the training dataset: index ``i`` holds
  one example of *every* task, so every batch (and so every update) contains a
  sub-batch of every active task. Tasks shorter than the longest one are cycled
  through a permutation that is re-drawn every epoch from the seed.
* :class:`MultitaskConcatDataset` is the evaluation dataset: every example of
  every task exactly once; a batch is split into per-task sub-batches.

Both multi-task datasets collate into ``{task_name: sub_batch}``.
"""

import bisect
import logging
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

logger = logging.getLogger(__name__)


def batch_without_dropping(dataset, indices, max_tokens, max_sentences, required_batch_size_multiple):
    """``data_utils.batch_by_size`` drops the last batch when its size is not a
    multiple of ``required_batch_size_multiple``; keep those examples as a final,
    smaller batch instead, so that no example is silently lost."""
    batches = data_utils.batch_by_size(
        indices,
        dataset.num_tokens,
        max_tokens=max_tokens,
        max_sentences=max_sentences,
        required_batch_size_multiple=required_batch_size_multiple,
        num_tokens_vec=dataset.num_tokens_vec(indices),
    )
    covered = sum(len(b) for b in batches)
    if covered < len(indices):
        batches = list(batches) + [np.asarray(indices[covered:], dtype=np.int64)]
    return batches


class MultilingualTaskDataset(FairseqDataset):
    """Concatenation of per-language datasets of one task.

    Args:
        datasets (List[FairseqDataset]): one dataset per corpus; they must share a
            collater (same type, same dictionaries).
        ids (Dict[str, List[int]]): per-corpus integer ids added to every batch
            as tensors, e.g. ``{"corpus_id": [...], "lang_id": [...], "domain_id": [...]}``.
    """

    def __init__(self, datasets: Sequence[FairseqDataset], ids: Dict[str, Sequence[int]]):
        super().__init__()
        assert len(datasets) > 0
        self.datasets = list(datasets)
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()
        self._ids = {}
        for key, per_corpus in ids.items():
            assert len(per_corpus) == len(self.datasets), key
            self._ids[key] = np.concatenate(
                [np.full(len(d), v, dtype=np.int64) for d, v in zip(self.datasets, per_corpus)]
            )
        self._sizes = np.concatenate([np.asarray(_sizes_of(d)) for d in self.datasets])

    def __len__(self):
        return self.cumulative_sizes[-1]

    def _locate(self, index):
        d = bisect.bisect_right(self.cumulative_sizes, index)
        local = index if d == 0 else index - self.cumulative_sizes[d - 1]
        return d, local

    def __getitem__(self, index):
        d, local = self._locate(index)
        item = self.datasets[d][local]
        # a global id lets the collater recover each example's language after the
        # inner collater has reordered the batch
        item["id"] = index
        return item

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        batch = self.datasets[0].collater(samples)
        if not batch:
            return batch
        order = batch["id"].numpy()
        for key, values in self._ids.items():
            batch[key] = torch.from_numpy(values[order])
        return batch

    def id_of(self, key, index):
        return int(self._ids[key][index])

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        d, local = self._locate(index)
        return self.datasets[d].num_tokens(local)

    def num_tokens_vec(self, indices):
        return _num_tokens_from_sizes(self._sizes, indices)

    def size(self, index):
        d, local = self._locate(index)
        return self.datasets[d].size(local)

    @property
    def supports_prefetch(self):
        return False

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return all(d.can_reuse_epoch_itr_across_epochs for d in self.datasets)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)


def _sizes_of(dataset):
    """One length per example: the longest of the example's streams."""
    sizes = dataset.sizes
    if isinstance(sizes, (list, tuple)):
        arrays = [np.asarray(x) for x in sizes if x is not None]
        return np.max(np.stack(arrays), axis=0) if len(arrays) > 1 else arrays[0]
    sizes = np.asarray(sizes)
    if sizes.ndim == 2:  # LanguagePairDataset: (n, 2) source and target lengths
        return sizes.max(axis=1)
    return sizes


def _num_tokens_from_sizes(sizes, indices):
    return np.asarray(sizes)[np.asarray(indices, dtype=np.int64)].astype(np.int64)


class RoundRobinMultitaskDataset(FairseqDataset):
    """Zips the datasets of several tasks: index ``i`` yields one example of
    every task. Its length is that of the longest task; a shorter task is cycled
    through a per-epoch permutation, so every update sees every task and the
    short tasks' examples recur evenly.

    Args:
        datasets (OrderedDict[str, FairseqDataset]): one dataset per task, in the
            fixed order in which tasks are visited.
        seed (int): seed of the cycling permutations.
    """

    def __init__(self, datasets: "OrderedDict[str, FairseqDataset]", seed: int = 1):
        super().__init__()
        assert len(datasets) > 0
        self.datasets = OrderedDict(datasets)
        self.seed = seed
        self.longest = max(len(d) for d in self.datasets.values())
        self.epoch = 1
        self._maps: Dict[str, np.ndarray] = {}
        self._build_maps()

    def _build_maps(self):
        for i, (name, d) in enumerate(self.datasets.items()):
            n = len(d)
            if n == self.longest:
                self._maps[name] = np.arange(n, dtype=np.int64)
                continue
            reps = -(-self.longest // n)
            with data_utils.numpy_seed(self.seed, self.epoch, i):
                order = np.concatenate([np.random.permutation(n) for _ in range(reps)])
            self._maps[name] = order[: self.longest].astype(np.int64)
        self._sizes = np.max(np.stack([_sizes_of(d)[self._maps[k]] for k, d in self.datasets.items()]), axis=0)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = epoch
        for d in self.datasets.values():
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)
        self._build_maps()

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        # the cycling permutation changes with the epoch
        return False

    def map_index(self, task, index):
        return int(self._maps[task][index])

    def __len__(self):
        return self.longest

    def __getitem__(self, index):
        return OrderedDict((k, d[self.map_index(k, index)]) for k, d in self.datasets.items())

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        return OrderedDict((k, d.collater([s[k] for s in samples])) for k, d in self.datasets.items())

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return max(d.num_tokens(self.map_index(k, index)) for k, d in self.datasets.items())

    def num_tokens_vec(self, indices):
        return _num_tokens_from_sizes(self._sizes, indices)

    def size(self, index):
        return self._sizes[index]

    def ordered_indices(self):
        # shuffled (fairseq seeds numpy with seed + epoch around this call), then
        # sorted by length so that batches have little padding
        indices = np.random.permutation(len(self))
        return indices[np.argsort(self._sizes[indices], kind="mergesort")]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        return batch_without_dropping(self, indices, max_tokens, max_sentences, required_batch_size_multiple)

    def filter_indices_by_size(self, indices, max_sizes):
        return indices, []

    @property
    def supports_prefetch(self):
        return False


class MultitaskConcatDataset(FairseqDataset):
    """Every example of every task exactly once (for validation and testing).
    A batch that spans several tasks is collated into one sub-batch per task."""

    def __init__(self, datasets: "OrderedDict[str, FairseqDataset]"):
        super().__init__()
        self.datasets = OrderedDict(datasets)
        self.names: List[str] = list(self.datasets.keys())
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets.values()]).tolist()
        self._sizes = np.concatenate([_sizes_of(d) for d in self.datasets.values()])

    def _locate(self, index):
        t = bisect.bisect_right(self.cumulative_sizes, index)
        local = index if t == 0 else index - self.cumulative_sizes[t - 1]
        return t, local

    def __len__(self):
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def __getitem__(self, index):
        t, local = self._locate(index)
        return (t, self.datasets[self.names[t]][local])

    def collater(self, samples):
        out = OrderedDict()
        for t, name in enumerate(self.names):
            items = [s for (tt, s) in samples if tt == t]
            if items:
                out[name] = self.datasets[name].collater(items)
        return out

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return int(self._sizes[index])

    def num_tokens_vec(self, indices):
        return _num_tokens_from_sizes(self._sizes, indices)

    def size(self, index):
        return int(self._sizes[index])

    def ordered_indices(self):
        return np.argsort(self._sizes, kind="mergesort")

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        return batch_without_dropping(self, indices, max_tokens, max_sentences, required_batch_size_multiple)

    def filter_indices_by_size(self, indices, max_sizes):
        return indices, []

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        for d in self.datasets.values():
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    @property
    def supports_prefetch(self):
        return False
