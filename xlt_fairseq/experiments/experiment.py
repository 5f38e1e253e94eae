# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""An experiment file (``examples/experiments/*.yaml``, docs/experiments.md):
its data, main tasks with their languages by resource tier, systems
(:mod:`.systems`), scenarios, seeds, selection rules and shared fairseq
settings. :func:`load_experiment` reads and checks it; errors name the file and
line. :mod:`.grid` expands it into runs.
"""

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..data.task_names import DEFAULT_METRIC, LABELLED_TASKS
from ..data.yaml_config import ConfigError, as_list, check_keys, line_of, load_yaml, plain
from .command import flags_from_mapping
from .systems import System, load_system, refuse_runner_flags

TIERS = ("high", "medium", "low")
DEFAULT_FRACTIONS = {"high": 1.0, "medium": 0.1, "low": 0.01}
SCENARIO_KINDS = ("full", "low-resource", "zero-shot")
SELECTION_RULES = ("english-dev", "target-dev")
# flags whose relative paths are relative to the experiment file
PATH_FLAGS = {"pretrained-encoder", "restore-file", "finetune-from-model", "tensorboard-logdir"}


@dataclass
class Scenario:
    """A data scenario of the paper: ``full``, ``low-resource`` (a fraction of the
    training data per resource tier) or ``zero-shot`` (only high-resource languages
    keep their main-task training data)."""

    name: str
    kind: str
    fractions: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    tier_tasks: Tuple[str, ...] = LABELLED_TASKS

    def fraction(self, tier: str) -> float:
        """The fraction of its main-task training data a language of ``tier`` keeps."""
        if self.kind == "full":
            return 1.0
        if self.kind == "zero-shot":
            return 1.0 if tier == "high" else 0.0
        return float(self.fractions[tier])


def _load_scenario(entry, path, line) -> Scenario:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(path, line, f"a scenario is a name or a mapping with a name, got {entry!r}")
    line = line_of(entry) or line
    check_keys(path, entry, {"name", "kind", "fractions", "tier_tasks"}, f"scenario {entry.get('name')}", ConfigError)
    name = str(entry["name"])
    kind = entry.get("kind", name)
    if kind not in SCENARIO_KINDS:
        raise ConfigError(path, line, f"scenario {name}: kind must be one of {', '.join(SCENARIO_KINDS)}, got {kind!r}")
    fractions = dict(DEFAULT_FRACTIONS)
    given = entry.get("fractions") or {}
    for tier, frac in given.items():
        if tier not in TIERS:
            raise ConfigError(path, line_of(given, tier), f"scenario {name}: unknown tier {tier!r}")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ConfigError(
                path, line_of(given, tier), f"scenario {name}: fraction of {tier} must be in (0, 1], got {frac!r}"
            )
        fractions[tier] = float(frac)
    tier_tasks = as_list(entry.get("tier_tasks", list(LABELLED_TASKS)), path, line, "tier_tasks", ConfigError)
    return Scenario(name, kind, fractions, tuple(tier_tasks))


@dataclass
class MainTask:
    """A main task of the grid: its corpora (languages, or pairs for translation)
    by resource tier, the pivot ("English") corpus and the dev metric."""

    name: str
    tiers: "OrderedDict[str, str]"  # corpus key -> tier, in table order
    pivot: str
    metric: str

    @property
    def keys(self) -> List[str]:
        return list(self.tiers)

    def dev_metric(self, key: str) -> str:
        """The validation log's name of the dev metric of corpus ``key``."""
        suffix = key.replace("-", "_") if self.name == "translation" else key
        return f"valid_{self.metric}_{suffix}"


def _load_task(name, entry, path, line) -> MainTask:
    if name not in LABELLED_TASKS:
        raise ConfigError(path, line, f"main task must be one of {', '.join(LABELLED_TASKS)}, got {name!r}")
    if not isinstance(entry, dict):
        raise ConfigError(path, line, f"tasks.{name} must be a mapping")
    check_keys(path, entry, {"languages", "pivot", "metric"}, f"tasks.{name}", ConfigError)
    langs = entry.get("languages")
    if not isinstance(langs, dict) or not langs:
        raise ConfigError(path, line, f"tasks.{name}.languages must map tiers (high, medium, low) to languages")
    check_keys(path, langs, TIERS, f"tasks.{name}.languages", ConfigError)
    tiers = OrderedDict()
    for tier in TIERS:
        where = line_of(langs, tier)
        for key in as_list(langs.get(tier, []), path, where, f"tasks.{name}.languages.{tier}", ConfigError):
            if key in tiers:
                raise ConfigError(path, where, f"tasks.{name}: {key} is listed in two tiers")
            tiers[key] = tier
    if not any(t == "high" for t in tiers.values()):
        raise ConfigError(path, line, f"tasks.{name} needs at least one high-resource language")
    pivot = str(entry.get("pivot") or next(k for k, t in tiers.items() if t == "high"))
    if pivot not in tiers:
        raise ConfigError(path, line_of(entry, "pivot"), f"tasks.{name}.pivot {pivot!r} is not one of its languages")
    return MainTask(name, tiers, pivot, str(entry.get("metric") or DEFAULT_METRIC[name]))


@dataclass
class SystemEntry:
    system: System
    languages: Optional[List[str]] = None  # restrict a per-language system to these targets


@dataclass
class Experiment:
    path: str
    name: str
    data: dict
    tasks: List[MainTask]
    systems: List[SystemEntry]
    scenarios: List[Scenario]
    seeds: List[int]
    selection: List[str]
    train_flags: "OrderedDict[str, Optional[str]]"
    evaluate_on: str = "test"
    env: Dict[str, str] = field(default_factory=dict)
    tsne: dict = field(default_factory=dict)
    eval_options: dict = field(default_factory=dict)
    out: Optional[str] = None

    def resolve(self, p: str) -> str:
        """A path of the config (``$VARS`` expanded) relative to the config's folder."""
        p = os.path.expanduser(os.path.expandvars(str(p)))
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), p))


_TOP_KEYS = {
    "name",
    "data",
    "tasks",
    "systems",
    "systems_dir",
    "scenarios",
    "seeds",
    "selection",
    "train",
    "evaluate_on",
    "env",
    "tsne",
    "evaluation",
    "out",
    "description",
}
_DATA_KEYS = {"manifest", "corpora", "encoder_dir", "synthetic", "subset_seed", "workers", "defaults"}


def _load_systems(data, path, here) -> List[SystemEntry]:
    systems_dir = os.path.normpath(os.path.join(here, os.path.expandvars(data.get("systems_dir", "../systems"))))
    line = line_of(data, "systems")
    systems = []
    for entry in data.get("systems") or []:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(path, line, f"a system is a name or a mapping with a name, got {entry!r}")
        where = line_of(entry) or line
        check_keys(path, entry, {"name", "languages"}, f"system {entry['name']}", ConfigError)
        ref = str(entry["name"])
        if ref.endswith(".yaml") and not os.path.isabs(ref):
            ref = os.path.join(here, ref)
        langs = as_list(entry["languages"], path, where, "languages", ConfigError) if "languages" in entry else None
        systems.append(SystemEntry(load_system(ref, systems_dir), langs))
    if not systems:
        raise ConfigError(path, line, "no systems")
    names = [s.system.name for s in systems]
    if len(set(names)) != len(names):
        raise ConfigError(path, line, f"a system is listed twice: {names}")
    return systems


def _load_train_flags(data, path, here) -> "OrderedDict[str, Optional[str]]":
    train = data.get("train") or {}
    line = line_of(data, "train")
    if not isinstance(train, dict):
        raise ConfigError(path, line, "train must map fairseq-train flags to values")
    refuse_runner_flags(train, path, "train")
    flags = flags_from_mapping(train, path, "train", line)
    if "arch" not in flags:
        raise ConfigError(path, line, "train needs an arch (e.g. xlt_tiny, xlt_xlmr_base)")
    for name in PATH_FLAGS & set(flags):
        p = os.path.expanduser(os.path.expandvars(flags[name]))
        flags[name] = p if os.path.isabs(p) else os.path.normpath(os.path.join(here, p))
    return flags


def load_experiment(path) -> Experiment:
    """Reads and checks an experiment file (and the system files it names)."""
    data = load_yaml(path, ConfigError)
    check_keys(path, data, _TOP_KEYS, "the experiment", ConfigError)
    here = os.path.dirname(os.path.abspath(path))
    d = data.get("data")
    if not isinstance(d, dict):
        raise ConfigError(path, line_of(data, "data"), "data must be a mapping (manifest:, corpora: or synthetic:)")
    check_keys(path, d, _DATA_KEYS, "data", ConfigError)
    if sum(k in d for k in ("manifest", "corpora", "synthetic")) != 1:
        raise ConfigError(path, line_of(data, "data"), "data needs exactly one of manifest:, corpora:, synthetic:")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError(
            path, line_of(data, "tasks"), "tasks must map main tasks (ner, sentiment, translation) to their languages"
        )
    scenarios = [_load_scenario(s, path, line_of(data, "scenarios")) for s in (data.get("scenarios") or ["full"])]
    if len({s.name for s in scenarios}) != len(scenarios):
        raise ConfigError(path, line_of(data, "scenarios"), "two scenarios have the same name")
    seeds = data.get("seeds", [1])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(path, line_of(data, "seeds"), "seeds must be a non-empty list of integers")
    selection = as_list(
        data.get("selection", ["target-dev"]), path, line_of(data, "selection"), "selection", ConfigError
    )
    for rule in selection:
        if rule not in SELECTION_RULES:
            raise ConfigError(
                path,
                line_of(data, "selection"),
                f"unknown selection rule {rule!r} (choose from {', '.join(SELECTION_RULES)})",
            )
    evaluate_on = data.get("evaluate_on", "test")
    if evaluate_on not in ("test", "valid"):
        raise ConfigError(path, line_of(data, "evaluate_on"), "evaluate_on must be test or valid")
    return Experiment(
        path=os.path.abspath(path),
        name=str(data.get("name") or os.path.splitext(os.path.basename(path))[0]),
        data=plain(d),
        tasks=[_load_task(name, entry, path, line_of(tasks, name)) for name, entry in tasks.items()],
        systems=_load_systems(data, path, here),
        scenarios=scenarios,
        seeds=list(seeds),
        selection=selection,
        train_flags=_load_train_flags(data, path, here),
        evaluate_on=evaluate_on,
        env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
        tsne=plain(data.get("tsne") or {}),
        eval_options=plain(data.get("evaluation") or {}),
        out=data.get("out"),
    )
