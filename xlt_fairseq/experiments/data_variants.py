# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The data variants of an experiment grid: the data root each run trains on,
prepared once per variant (scenario, resource-tier fractions, zero-shot
corpora, subset seed) through the data layer's manifest
(:mod:`xlt_fairseq.data.manifest`, :func:`xlt_fairseq.data.prepare.prepare_many`).
A prepared root is stamped with the hash of its manifest; a root prepared from
another manifest is refused rather than reused."""

import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import yaml

from .experiment import Experiment
from .grid import RunSpec, _hash

logger = logging.getLogger(__name__)


class DataManager:
    """Prepares (once) the data root of each data variant of the grid."""

    def __init__(self, exp: Experiment, out: str):
        self.exp, self.out = exp, out
        self.data_dir = os.path.join(out, "data")
        self._base = None
        self._specs = {}

    def base(self) -> Tuple[List[dict], str, dict]:
        """(corpus entries with absolute paths, encoder dir, manifest defaults/seed)."""
        if self._base is not None:
            return self._base
        d = self.exp.data
        if "synthetic" in d:
            entries, enc = self._synthetic(d["synthetic"] or {})
            extra = {}
        elif "manifest" in d:
            from ..data.manifest import load_yaml

            path = self.exp.resolve(d["manifest"])
            m = load_yaml(path)
            if m.get("scenario"):
                raise ValueError(f"{path}: the grid decides the scenario; remove 'scenario:' from the manifest")
            base = os.path.dirname(os.path.abspath(path))
            entries = [self._absolute(dict(e), base) for e in m.get("corpora") or []]
            enc = d.get("encoder_dir") and self.exp.resolve(d["encoder_dir"])
            enc = enc or (m.get("encoder_dir") and os.path.join(base, m["encoder_dir"]))
            extra = {k: m[k] for k in ("defaults",) if m.get(k)}
        else:
            base = os.path.dirname(self.exp.path)
            entries = [self._absolute(dict(e), base) for e in d["corpora"]]
            enc = d.get("encoder_dir") and self.exp.resolve(d["encoder_dir"])
            extra = {}
        if d.get("defaults"):
            extra["defaults"] = {**extra.get("defaults", {}), **d["defaults"]}
        if not enc:
            raise ValueError(f"{self.exp.path}: data needs an encoder_dir")
        self._base = (entries, enc, extra)
        return self._base

    def _absolute(self, entry, base):
        for split in ("train", "valid", "test", "extra_train"):
            if entry.get(split):
                p = os.path.expanduser(os.path.expandvars(str(entry[split])))
                entry[split] = p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
        return entry

    def _synthetic(self, opts):
        """Generated corpora in languages aa, bb (:mod:`xlt_fairseq.data.synthetic`) and a vocabulary."""
        from ..data.synthetic import LANGS, write_raw_data
        from ..data.vocab import build_vocab

        folder = os.path.join(self.data_dir, "synthetic")
        raw = os.path.join(folder, "raw")
        enc = os.path.join(folder, "encoder")
        paths = write_raw_data(raw, seed=int(opts.get("seed", 0)), sizes=opts.get("sizes"))
        if not os.path.exists(os.path.join(enc, "dict.txt")):
            texts = [p for (task, _, split), p in paths.items() if task in ("mlm", "sentiment") and split == "train"]
            texts += [paths[("translation", "aa-bb", "train")] + "." + lang for lang in LANGS]
            build_vocab(texts, int(opts.get("vocab_size", 200)), enc)
        entries = []
        for lang in LANGS:
            for task in ("ner", "sentiment", "mlm"):
                e = {
                    "task": task,
                    "lang": lang,
                    "train": paths[(task, lang, "train")],
                    "valid": paths[(task, lang, "valid")],
                }
                if task != "mlm":
                    e["test"] = paths[(task, lang, "test")]
                entries.append(e)
        pair = {s: paths[("translation", "aa-bb", s)] for s in ("train", "valid", "test")}
        entries.append({"task": "translation", "src_lang": "aa", "tgt_lang": "bb", **pair})
        return entries, enc

    def manifest_for(self, run: RunSpec, extra_train: Optional[Dict[Tuple[str, str], str]] = None) -> dict:
        """The data manifest of the run's variant; ``extra_train``: {(task, key): file} added to those
        corpora's training splits (self-training's pseudo-labelled text)."""
        entries, enc, extra = self.base()
        if extra_train:
            entries = [_with_extra(e, extra_train.get((e["task"], _entry_key(e)))) for e in entries]
        v = run.data_variant()
        manifest = {"encoder_dir": enc, "seed": v["subset_seed"], "corpora": entries, **extra}
        scenario = {"name": v["scenario"]}
        if v["kind"] == "low-resource":
            langs = {k: t for k, t in v["tiers"].items()}
            scenario["tiers"] = {
                "languages": langs,
                "fractions": v["fractions"],
                "default": "high",
                "tasks": v["tier_tasks"],
            }
        if v["zero_shot"]:
            scenario["zero_shot"] = {"languages": self._zero_shot_languages(run, v["zero_shot"]), "tasks": [v["task"]]}
        if len(scenario) > 1:
            manifest["scenario"] = scenario
        return manifest

    @staticmethod
    def _zero_shot_languages(run: RunSpec, keys):
        if run.task.name != "translation":
            return list(keys)
        # a pair loses its training split when either side is listed: list the sides no kept pair has
        kept = {lang for k in run.task.keys if k not in keys for lang in k.split("-")}
        langs = sorted({lang for k in keys for lang in k.split("-")} - kept)
        if not langs:
            raise ValueError(f"zero-shot pairs {keys} share both languages with training pairs")
        return langs

    def corpora_with(self, split: str) -> set:
        """(task, corpus key) of every corpus of the data with a ``split`` file (no data is prepared)."""
        entries, _, _ = self.base()
        return {(e["task"], _entry_key(e)) for e in entries if e.get(split)}

    def prepare(self, run: RunSpec, extra_train: Optional[Dict[Tuple[str, str], str]] = None):
        """(data root, specs by (task, key)) of the run's data variant, prepared if needed (``extra_train``:
        see :meth:`manifest_for`; such a variant is the run's own)."""
        from ..data.manifest import load_manifest
        from ..data.prepare import prepare_many

        name = run.data_variant_name()
        if extra_train:
            from ..data.binarize import file_md5

            name += "+extra-" + _hash({f"{t}/{k}": file_md5(p) for (t, k), p in sorted(extra_train.items())})
        if name in self._specs:
            return self._specs[name]
        root = os.path.join(self.data_dir, name)
        manifest = self.manifest_for(run, extra_train)
        digest = _hash(manifest)
        os.makedirs(self.data_dir, exist_ok=True)
        path = os.path.join(self.data_dir, name + ".manifest.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(manifest, f, sort_keys=False, allow_unicode=True)
        parsed = load_manifest(path)
        stamp = os.path.join(root, "variant.json")
        if os.path.exists(stamp):
            with open(stamp, encoding="utf-8") as f:
                old = json.load(f)
            if old.get("hash") != digest:
                raise ValueError(
                    f"{root} was prepared from another manifest ({old.get('manifest')}); the experiment's data "
                    "changed since: use a new --out, or delete that folder"
                )
        else:
            logger.info(f"preparing data variant {name}")
            prepare_many(
                parsed.specs,
                parsed.encoder_dir,
                root,
                parsed.workers or int(self.exp.data.get("workers", 1)),
                progress=False,
                extra_summary=parsed.scenario,
            )
            with open(stamp + ".tmp", "w", encoding="utf-8") as f:
                json.dump({"hash": digest, "manifest": path, "variant": run.data_variant()}, f, indent=2)
            os.replace(stamp + ".tmp", stamp)
        specs = OrderedDict(((s.folder, s.key), s) for s in parsed.specs)
        self._specs[name] = (root, specs, digest)
        return self._specs[name]


def _with_extra(entry: dict, path: Optional[str]) -> dict:
    return dict(entry, extra_train=path) if path else entry


def _entry_key(entry: dict) -> str:
    e = {k.replace("-", "_"): v for k, v in entry.items()}
    return f"{e.get('src_lang')}-{e.get('tgt_lang')}" if e.get("task") == "translation" else str(e.get("lang"))


def corpora_of(specs) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = OrderedDict()
    for task, key in specs:
        out.setdefault(task, []).append(key)
    return out
