from collections import Counter, OrderedDict

import numpy as np
import torch
from fairseq.data import FairseqDataset

from xlt_fairseq.data.round_robin import (
    MultilingualTaskDataset,
    MultitaskConcatDataset,
    RoundRobinMultitaskDataset,
    batch_without_dropping,
)


class ListDataset(FairseqDataset):
    """Items are {"id", "value"}; sizes are given."""

    def __init__(self, name, sizes):
        self.name = name
        self._sizes = np.asarray(sizes, dtype=np.int64)

    def __getitem__(self, index):
        return {"id": index, "value": (self.name, index)}

    def __len__(self):
        return len(self._sizes)

    def collater(self, samples):
        return {"id": torch.tensor([s["id"] for s in samples]), "values": [s["value"] for s in samples]}

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return int(self._sizes[index])

    def size(self, index):
        return int(self._sizes[index])


def _round_robin(seed=1):
    return RoundRobinMultitaskDataset(
        OrderedDict(
            [
                ("ner", ListDataset("ner", [3] * 10)),
                ("mlm", ListDataset("mlm", [5] * 3)),
                ("sentiment", ListDataset("sentiment", [2] * 4)),
            ]
        ),
        seed=seed,
    )


def test_every_item_has_every_task_in_fixed_order():
    rr = _round_robin()
    assert len(rr) == 10
    for i in range(len(rr)):
        assert list(rr[i].keys()) == ["ner", "mlm", "sentiment"]
    batch = rr.collater([rr[i] for i in (0, 4, 7)])
    assert list(batch.keys()) == ["ner", "mlm", "sentiment"]
    assert [v[1] for v in batch["ner"]["values"]] == [0, 4, 7]


def test_short_tasks_are_cycled_evenly():
    rr = _round_robin()
    mlm = Counter(rr[i]["mlm"]["value"][1] for i in range(10))
    sent = Counter(rr[i]["sentiment"]["value"][1] for i in range(10))
    assert set(mlm) == {0, 1, 2} and max(mlm.values()) - min(mlm.values()) <= 1
    assert set(sent) == {0, 1, 2, 3} and max(sent.values()) - min(sent.values()) <= 1
    assert [rr[i]["ner"]["value"][1] for i in range(10)] == list(range(10))  # the longest is not cycled


def test_cycling_is_deterministic_per_seed_and_epoch():
    a, b = _round_robin(seed=3), _round_robin(seed=3)
    seq = lambda rr: [rr[i]["sentiment"]["value"][1] for i in range(10)]  # noqa: E731
    assert seq(a) == seq(b)
    first = seq(a)
    orders = set()
    for epoch in range(2, 8):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert seq(a) == seq(b)
        orders.add(tuple(seq(a)))
    assert len(orders | {tuple(first)}) > 1


def test_sizes_are_max_over_tasks():
    rr = _round_robin()
    assert rr.num_tokens(0) == 5 and all(rr.sizes == 5)


def test_concat_covers_every_example_once_without_dropping():
    cat = MultitaskConcatDataset(
        OrderedDict([("ner", ListDataset("ner", [3, 1, 4, 1, 5])), ("sentiment", ListDataset("sentiment", [9, 2, 6]))])
    )
    assert len(cat) == 8
    indices = cat.ordered_indices()
    batches = cat.batch_by_size(indices, max_sentences=3, required_batch_size_multiple=8)
    seen = []
    for b in batches:
        batch = cat.collater([cat[i] for i in b])
        for name, sub in batch.items():
            seen += sub["values"]
    assert sorted(seen) == sorted([("ner", i) for i in range(5)] + [("sentiment", i) for i in range(3)])


def test_batch_without_dropping_keeps_the_tail():
    ds = ListDataset("x", [4] * 13)
    batches = batch_without_dropping(MultilingualTaskDataset([ds], {"lang_id": [0]}), np.arange(13), None, 8, 8)
    assert sum(len(b) for b in batches) == 13


def test_multilingual_dataset_tags_languages_after_reordering():
    a, b = ListDataset("a", [2, 2]), ListDataset("b", [2, 2, 2])
    ds = MultilingualTaskDataset([a, b], {"lang_id": [7, 9], "corpus_id": [0, 1]})

    class Reversing(ListDataset):
        def collater(self, samples):  # like LanguagePairDataset, which sorts by length
            return super().collater(samples[::-1])

    ds.datasets[0] = Reversing("a", [2, 2])
    batch = ds.collater([ds[i] for i in (0, 3, 1, 4)])
    assert batch["id"].tolist() == [4, 1, 3, 0]
    assert batch["lang_id"].tolist() == [9, 7, 9, 7]
    assert batch["corpus_id"].tolist() == [1, 0, 1, 0]


def test_temperature_sampling_flattens_the_language_mixture():
    from xlt_fairseq.tasks.xlt_multitask import temperature_resample

    big, small = ListDataset("big", [3] * 900), ListDataset("small", [3] * 100)
    ds = MultilingualTaskDataset([big, small], {"lang_id": [0, 1]})

    def share_of_small(temperature):
        r = temperature_resample(ds, [900, 100], temperature, seed=1, epoch=1)
        items = [r[i] for i in range(len(r))]
        return sum(ds.id_of("lang_id", it["id"]) == 1 for it in items) / len(items)

    assert len(temperature_resample(ds, [900, 100], 5.0, 1, 1)) == 1000
    assert abs(share_of_small(1.0) - 0.1) < 0.03
    # T=5: p ~ 0.1^0.2 / (0.9^0.2 + 0.1^0.2) = 0.389
    assert abs(share_of_small(5.0) - 0.389) < 0.05
    assert abs(share_of_small(1000.0) - 0.5) < 0.05
