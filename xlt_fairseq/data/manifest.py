# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Experiment manifests and tier files (YAML), read into :class:`CorpusSpec` lists.

A manifest names every corpus of an experiment (task, language(s), files,
format and options) and the scenario; ``scripts/prepare.py`` prepares it in
one all-or-nothing run::

    encoder_dir: encoder          # optional (--encoder-dir wins)
    destdir: data-bin             # optional (--destdir wins)
    seed: 1                       # subset seed of every corpus
    defaults: {max_positions: 512}
    scenario:
      name: low-resource
      tiers: tiers.yaml           # or the tier mapping inline
      zero_shot: [yo]             # or {languages: [yo], tasks: [ner]}
    corpora:
      - {task: ner, lang: en, format: wikiann-idx, train: en/train.conllu, valid: en/val.conllu}
      - {task: ner, lang: sw, format: conll-space, map_label: {DATE: O}, train: sw/train.txt, valid: sw/dev.txt}

Corpus keys are the fields of :class:`~xlt_fairseq.data.spec.CorpusSpec`
(``map-label`` and ``map_label`` both work); relative paths are relative to the
manifest's folder. Every problem is reported with the manifest's file name and
line: unknown keys, tasks and formats, missing files, bad values.
"""

import logging
import os
from dataclasses import dataclass, field, fields
from typing import List, Optional

from .formats import FORMATS, DataFormatError, check_exists, input_files
from .scenarios import ALL_TASKS, DEFAULT_FLOOR, DEFAULT_TIERS, TierPlan, ZeroShot
from .spec import CorpusSpec, coerce, parse_label_map  # noqa: F401  (parse_label_map: imported from here)
from .spec import as_list as _as_list
from .yaml_config import LineDict, check_keys, line_of, load_yaml  # noqa: F401  (load_yaml: imported from here)

logger = logging.getLogger(__name__)

_SPEC_FIELDS = {f.name: f for f in fields(CorpusSpec)}
# set by the scenario, not by a corpus entry
_SCENARIO_ONLY = {"tier", "zero_shot"}
_PATH_FIELDS = ("train", "valid", "test", "extra_train")
_TOP_KEYS = {"encoder_dir", "destdir", "workers", "seed", "defaults", "scenario", "corpora", "name"}
_SCENARIO_KEYS = {"name", "subsample", "max_examples", "tiers", "zero_shot", "floor"}
_TIER_KEYS = {"fractions", "languages", "default", "floor", "tasks"}


def parse_tiers(data, path, base_dir=".") -> TierPlan:
    """A tier plan from a mapping: tier names as keys with lists of languages
    (``high: [en, de]``) and/or ``languages: {yo: low}``; optional ``fractions``
    (default high 1.0, medium 0.1, low 0.01), ``default``, ``floor``, ``tasks``.
    A string is the path of a tier file holding that mapping."""
    if isinstance(data, str):
        return load_tier_file(os.path.join(base_dir, data))
    if not isinstance(data, dict):
        raise DataFormatError(path, None, "tiers must be a mapping or the path of a tier file")
    fractions = dict(DEFAULT_TIERS)
    if "fractions" in data:
        if not isinstance(data["fractions"], dict):
            raise DataFormatError(path, line_of(data, "fractions"), "fractions must map tier names to numbers")
        fractions = dict(data["fractions"])
    languages = {}
    for key, value in data.items():
        if key in _TIER_KEYS:
            continue
        if key not in fractions:
            raise DataFormatError(
                path,
                line_of(data, key),
                f"unknown key or tier {key!r} (tiers: {', '.join(fractions)}; other keys: {', '.join(sorted(_TIER_KEYS))})",
            )
        for lang in _as_list(value, path, line_of(data, key), f"tier {key}"):
            languages[lang] = key
    if "languages" in data:
        if not isinstance(data["languages"], dict):
            raise DataFormatError(path, line_of(data, "languages"), "languages must map languages to tier names")
        languages.update({str(k): str(v) for k, v in data["languages"].items()})
    if not languages:
        raise DataFormatError(path, line_of(data), "no language is assigned to a tier")
    floor = data.get("floor", DEFAULT_FLOOR)
    if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
        raise DataFormatError(path, line_of(data, "floor"), f"floor must be a non-negative integer, got {floor!r}")
    tasks = tuple(_as_list(data.get("tasks", list(ALL_TASKS)), path, line_of(data, "tasks"), "tasks"))
    try:
        return TierPlan(languages, fractions, data.get("default"), floor, tasks, source=str(path))
    except ValueError as e:
        raise DataFormatError(path, line_of(data), str(e).split(": ", 1)[-1]) from None


def load_tier_file(path) -> TierPlan:
    """A tier file (YAML, see :func:`parse_tiers`)."""
    return parse_tiers(load_yaml(path), path, os.path.dirname(os.path.abspath(path)))


def parse_zero_shot(value, path, line) -> ZeroShot:
    if isinstance(value, dict):
        check_keys(path, value, {"languages", "tasks"}, "zero_shot")
        langs = _as_list(value.get("languages", []), path, line_of(value, "languages"), "zero_shot languages")
        tasks = tuple(_as_list(value.get("tasks", list(ALL_TASKS)), path, line_of(value, "tasks"), "zero_shot tasks"))
        for t in tasks:
            if t not in ALL_TASKS:
                raise DataFormatError(path, line_of(value, "tasks"), f"unknown task {t!r} in zero_shot tasks")
        return ZeroShot(langs, tasks)
    return ZeroShot(_as_list(value, path, line, "zero_shot"))


@dataclass
class Manifest:
    """A parsed manifest: the corpora to prepare and the run's settings."""

    path: str
    specs: List[CorpusSpec]
    encoder_dir: Optional[str] = None
    destdir: Optional[str] = None
    workers: Optional[int] = None
    scenario: dict = field(default_factory=dict)


def load_manifest(path) -> Manifest:
    """Reads and checks a manifest: every key, task, format and option, and that
    every input file exists, before anything is prepared."""
    data = load_yaml(path)
    base = os.path.dirname(os.path.abspath(path))
    check_keys(path, data, _TOP_KEYS, "the manifest")

    def rel(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    corpora_list = data.get("corpora")
    if not isinstance(corpora_list, list) or not corpora_list:
        raise DataFormatError(path, line_of(data, "corpora"), "'corpora' must be a non-empty list of corpus entries")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise DataFormatError(path, line_of(data, "defaults"), "'defaults' must be a mapping")
    defaults = {k.replace("-", "_"): v for k, v in defaults.items()}
    check_keys(
        path, defaults, set(_SPEC_FIELDS) - _SCENARIO_ONLY - {"task", "lang", "src_lang", "tgt_lang"}, "defaults"
    )
    scenario = data.get("scenario") or {}
    if not isinstance(scenario, dict):
        raise DataFormatError(path, line_of(data, "scenario"), "'scenario' must be a mapping")
    check_keys(path, scenario, _SCENARIO_KEYS, "scenario")
    if "seed" in data:
        defaults.setdefault("seed", data["seed"])
    for key in ("subsample", "max_examples", "floor"):
        if key in scenario:
            defaults.setdefault(key, scenario[key])
    tiers = parse_tiers(scenario["tiers"], path, base) if "tiers" in scenario else None
    zero = (
        parse_zero_shot(scenario["zero_shot"], path, line_of(scenario, "zero_shot")) if "zero_shot" in scenario else None
    )

    specs = []
    for i, entry in enumerate(corpora_list, start=1):
        if not isinstance(entry, dict):
            raise DataFormatError(path, line_of(data, "corpora"), f"corpus entry {i} is not a mapping")
        lines = {k.replace("-", "_"): line_of(entry, k) for k in entry}
        entry = LineDict({k.replace("-", "_"): v for k, v in entry.items()})
        entry.line, entry.lines = line_of(data, "corpora") if not lines else min(lines.values()), lines
        check_keys(path, entry, set(_SPEC_FIELDS) - _SCENARIO_ONLY, f"corpus entry {i}")
        task = entry.get("task")
        if task not in FORMATS:
            raise DataFormatError(
                path,
                line_of(entry, "task"),
                f"corpus entry {i}: unknown task {task!r} (choose from {', '.join(FORMATS)})",
            )
        values = {}
        for name, value in list(defaults.items()) + list(entry.items()):
            if name == "task":
                continue
            line = line_of(entry, name) if name in entry else line_of(data, "defaults")
            values[name] = coerce(path, line, name, value)
        for split in _PATH_FIELDS:
            if values.get(split):
                values[split] = rel(values[split])
        spec = CorpusSpec(task=task, **values)
        for split in _PATH_FIELDS:
            fmt, key = spec.split_format(split), f"{split}_format" if f"{split}_format" in entry else "format"
            if fmt not in FORMATS[task]:
                raise DataFormatError(
                    path,
                    line_of(entry, key) if key in entry else line_of(data, "defaults"),
                    f"corpus entry {i} ({spec.name}): unknown format {fmt!r} for {task} "
                    f"(choose from {', '.join(FORMATS[task])})",
                )
        langs = spec.langs
        if zero is not None and zero.applies(task, langs):
            spec.zero_shot = True
            if not (spec.valid or spec.test):
                raise DataFormatError(
                    path,
                    line_of(entry),
                    f"corpus entry {i} ({spec.name}) is a zero-shot target but has no valid/test file",
                )
        if tiers is not None and spec.train and not spec.zero_shot:
            if "subsample" in entry or "max_examples" in entry:
                raise DataFormatError(
                    path,
                    line_of(entry, "subsample" if "subsample" in entry else "max_examples"),
                    f"corpus entry {i} ({spec.name}) sets its own subset, but the scenario's tiers decide it",
                )
            try:
                tier = tiers.tier_for(task, spec.key, langs)
            except ValueError as e:
                raise DataFormatError(path, line_of(entry), str(e)) from None
            if tier is not None:
                spec.tier = tier[0]
                spec.subsample = tier[1] if tier[1] < 1 else None
                spec.floor = tiers.floor
        try:
            spec.check()
        except ValueError as e:
            raise DataFormatError(path, line_of(entry), f"corpus entry {i}: {e}") from None
        for split in _PATH_FIELDS:
            if getattr(spec, split) and not (split == "train" and spec.zero_shot):
                for p in input_files(
                    task, getattr(spec, split), spec.split_format(split), spec.src_lang, spec.tgt_lang
                ):
                    try:
                        check_exists(p)
                    except DataFormatError as e:
                        raise DataFormatError(
                            path, line_of(entry, split), f"corpus entry {i} ({spec.name}) {split}: {p}: {e.message}"
                        ) from None
        specs.append(spec)

    names = {}
    for i, spec in enumerate(specs, start=1):
        if spec.name in names:
            raise DataFormatError(
                path, line_of(corpora_list[i - 1]), f"corpus entry {i} repeats {spec.name} (entry {names[spec.name]})"
            )
        names[spec.name] = i

    workers = data.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise DataFormatError(path, line_of(data, "workers"), f"workers must be a positive integer, got {workers!r}")
    summary = {"manifest": os.path.abspath(path)}
    if scenario:
        summary["scenario"] = {
            "name": scenario.get("name"),
            "subsample": scenario.get("subsample"),
            "max_examples": scenario.get("max_examples"),
            "tiers": (
                {"languages": tiers.languages, "fractions": tiers.fractions, "floor": tiers.floor} if tiers else None
            ),
            "zero_shot": zero.languages if zero else None,
        }
    return Manifest(
        path=path,
        specs=specs,
        encoder_dir=rel(data["encoder_dir"]) if data.get("encoder_dir") else None,
        destdir=rel(data["destdir"]) if data.get("destdir") else None,
        workers=workers,
        scenario=summary,
    )
