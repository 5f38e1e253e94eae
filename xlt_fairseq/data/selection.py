# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What the ``xlt_multitask`` task's options select from a data root: the
corpora of every active task, their ``meta.json`` and label sets, the languages
and domains they cover; and the per-epoch temperature resampling of a task's
languages."""

import os
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
from fairseq import utils
from fairseq.data import ResamplingDataset

from . import corpora, task_names


def _split_list(value: Optional[str]) -> List[str]:
    if not value:
        return []
    return [v.strip() for v in str(value).split(",") if v.strip()]


def parse_tagging_tasks(value: str, data_root: str) -> "OrderedDict[str, List[str]]":
    """``pos:en+sw,chunk`` -> {"pos": ["en", "sw"], "chunk": [languages found under DATA/chunk]}."""
    out = OrderedDict()
    for item in _split_list(value):
        name, _, langs = item.partition(":")
        name = name.strip()
        if not task_names.is_valid_auxiliary_name(name):
            raise ValueError(f"--tagging-tasks: {name!r} is not a valid auxiliary task name")
        if name in out:
            raise ValueError(f"--tagging-tasks lists {name!r} twice")
        if langs:
            out[name] = [lang.strip() for lang in langs.split("+") if lang.strip()]
        else:
            folder = os.path.join(data_root, name)
            found = sorted(d for d in os.listdir(folder) if not d.startswith(".")) if os.path.isdir(folder) else []
            if not found:
                raise FileNotFoundError(f"{folder}: no corpora for auxiliary tagging task {name!r}")
            out[name] = found
    return out


def temperature_resample(dataset, corpus_sizes, temperature, seed, epoch):
    """Resamples a task's concatenated corpora so that corpus ``c`` is drawn with
    probability proportional to ``n_c ** (1 / T)`` (the same total size; re-drawn
    every epoch): T=1 is mixing by size, a large T approaches uniform."""
    sizes = np.asarray(corpus_sizes, dtype=np.float64)
    probs = (sizes / sizes.sum()) ** (1.0 / temperature)
    probs /= probs.sum()
    weights = np.concatenate([np.full(int(n), p / n) for n, p in zip(sizes, probs)])
    return ResamplingDataset(dataset, weights=weights, replace=True, size_ratio=1.0, seed=seed, epoch=epoch)


class CorporaView:
    """What the options select from a data root: the corpora of every active
    task (``corpus_keys``), their ``meta.json`` and label sets, and the
    languages and domains they cover. Read once by :meth:`XLTMultitaskTask.setup_task`."""

    def __init__(self, corpus_keys, tagging_tasks, meta, labels, languages, domains, generation_pair=None):
        self.corpus_keys: "OrderedDict[str, List[str]]" = corpus_keys
        self.tagging_tasks = tagging_tasks
        self.meta: Dict[str, Dict[str, dict]] = meta
        self.labels: Dict[str, List[str]] = labels
        self.languages: List[str] = languages
        self.domains: List[str] = domains
        self.generation_pair: Optional[str] = generation_pair

    @classmethod
    def read(cls, cfg) -> "CorporaView":
        """``cfg``: the task's config (``XLTMultitaskConfig``)."""
        pairs = _split_list(cfg.translation_pairs)
        generation_pair = None
        if cfg.source_lang or cfg.target_lang:
            if not (cfg.source_lang and cfg.target_lang):
                raise ValueError("--source-lang and --target-lang must be given together")
            generation_pair = f"{cfg.source_lang}-{cfg.target_lang}"
            if generation_pair not in pairs:
                pairs.append(generation_pair)
        tagging_tasks = parse_tagging_tasks(cfg.tagging_tasks, utils.split_paths(cfg.data)[0])
        corpus_keys = OrderedDict(
            (name, keys)
            for name, keys in (
                ("ner", _split_list(cfg.ner_langs)),
                ("sentiment", _split_list(cfg.sentiment_langs)),
                ("translation", pairs),
                ("mlm", _split_list(cfg.mlm_langs)),
                *tagging_tasks.items(),
            )
            if keys
        )
        for name, keys in corpus_keys.items():
            if len(set(keys)) != len(keys):
                raise ValueError(f"--{name.replace('_', '-')} lists a corpus twice: {keys}")
            if name == "translation":
                for k in keys:
                    if len(k.split("-")) != 2 or not all(k.split("-")):
                        raise ValueError(f"translation pair {k!r} is not of the form SRC-TGT")
        if not corpus_keys:
            raise ValueError(
                "no task is active: give at least one of --ner-langs, --sentiment-langs, --mlm-langs, "
                "--translation-pairs"
            )

        meta: Dict[str, Dict[str, dict]] = {name: {} for name in corpus_keys}
        for name, keys in corpus_keys.items():
            for key in keys:
                path = corpora.corpus_dir(cfg.data, name, key)
                if not os.path.isdir(path):
                    raise FileNotFoundError(
                        f"{path}: no {name} corpus for {key!r} in {cfg.data} (prepare it with scripts/preprocess.py)"
                    )
                meta[name][key] = corpora.read_meta(path)
                if name == "translation":
                    for split in ("train", "valid", "test"):
                        has_src = corpora.has_split(path, split, "src")
                        if has_src != corpora.has_split(path, split, "tgt"):
                            side = "target (.tgt)" if has_src else "source (.src)"
                            raise FileNotFoundError(
                                f"{path}: the {split} split of translation pair {key} has no {side} side"
                            )

        labels = {
            name: corpora.union_labels([corpora.read_labels(corpora.corpus_dir(cfg.data, name, k)) for k in keys])
            for name, keys in corpus_keys.items()
            if task_names.builtin_kind(name) in (task_names.TAGGING, task_names.CLASSIFICATION)
        }
        languages, domains = set(), set()
        for name, keys in corpus_keys.items():
            for key in keys:
                languages.add(corpus_language(name, key))
                domains.add(meta[name][key].get("domain", "general"))
        return cls(corpus_keys, tagging_tasks, meta, labels, sorted(languages), sorted(domains), generation_pair)


def corpus_language(name, key) -> str:
    """The language of a corpus: a translation pair's source language, else its key."""
    return key.split("-")[0] if name == "translation" else key
