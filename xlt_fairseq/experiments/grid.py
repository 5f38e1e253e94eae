# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Experiment configurations and their grid: systems x scenarios x tasks x
languages x seeds, each cell a :class:`RunSpec` with its data selection and its
``fairseq-train`` flags.

Nothing here runs anything; :mod:`.runner` executes the grid. The mapping of a
system to flags is data (``examples/systems/*.yaml``), turned into flags in one
place, :meth:`RunSpec.train_flags`, through :func:`.ablations.ablation_flags`
(which tasks are on, whether the reversed gradient reaches the encoder) and the
system's own ``fairseq:`` block (fixed switches such as loss weights).

A system file::

    name: full
    title: Our Framework            # the row title in the tables
    tables: [main]                  # main (Tables 1-3) and/or ablation (Table 4)
    row: full                       # ablation row: base | adversarial | multitask | language_modelling | full
    train_languages: all            # each (one run per language) | all | high (the others evaluation-only)
    fairseq:                        # fairseq config groups -> flags (model.grl_lambda -> --grl-lambda)
      model: {grl_lambda: 0.01}
      criterion: {adversarial_weight: 1.0}

An experiment file: see ``examples/experiments/tiny.yaml`` and docs/experiments.md.
"""

import hashlib
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .ablations import ABLATION_ROWS, ROW_TITLES, ablation_flags

logger = logging.getLogger(__name__)

TIERS = ("high", "medium", "low")
DEFAULT_FRACTIONS = {"high": 1.0, "medium": 0.1, "low": 0.01}
SCENARIO_KINDS = ("full", "low-resource", "zero-shot")
SELECTION_RULES = ("english-dev", "target-dev")
TRAIN_LANGUAGES = ("each", "all", "high")
TABLES = ("main", "ablation")
LABELLED_TASKS = ("ner", "sentiment", "translation")
# the dev metric a main task is selected on (fairseq's validation log names it valid_<metric>_<corpus>)
DEFAULT_METRIC = {"ner": "ner_f1", "sentiment": "sentiment_acc", "translation": "bleu"}
# flags the runner sets itself
RUNNER_FLAGS = {
    "task",
    "criterion",
    "user-dir",
    "save-dir",
    "seed",
    "log-format",
    "best-checkpoint-metric",
    "maximize-best-checkpoint-metric",
    "ner-langs",
    "sentiment-langs",
    "mlm-langs",
    "translation-pairs",
    "tagging-tasks",
}
# ablation rows with the auxiliary supervised tasks
MULTITASK_ROWS = ("multitask", "language_modelling", "full")
# flags whose relative paths are relative to the experiment file
PATH_FLAGS = {"pretrained-encoder", "restore-file", "finetune-from-model", "tensorboard-logdir"}
# flags that would delete or never write the checkpoints model selection chooses from
FORBIDDEN_FLAGS = {
    "no-epoch-checkpoints",
    "no-save",
    "keep-interval-updates",
    "keep-last-epochs",
    "keep-best-checkpoints",
    "no-last-checkpoints",
}


class ConfigError(ValueError):
    """A problem in an experiment or system file, naming the file."""


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:10]


def _as_list(value, what, path) -> List[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"{path}: {what} must be a list or a comma-separated string, got {value!r}")


def _read_yaml(path) -> dict:
    if not os.path.exists(path):
        raise ConfigError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _check_keys(path, mapping, known, what):
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} in {what} (known: {', '.join(sorted(known))})")


def flag_value(value) -> Optional[str]:
    """A YAML value as a fairseq-train argument (None: a bare flag)."""
    if value is True:
        return None
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flags_from_mapping(mapping: Dict[str, Any], path, what) -> "OrderedDict[str, Optional[str]]":
    """``{lr: 0.003, cpu: true, best_checkpoint_metric: x}`` -> ordered {flag: value}; False drops a flag."""
    out = OrderedDict()
    for key, value in (mapping or {}).items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: {what}: flag names must be strings, got {key!r}")
        if isinstance(value, dict):
            raise ConfigError(f"{path}: {what}: the value of {key} must be a scalar or a list")
        name = key.lstrip("-").replace("_", "-")
        if value is False or value is None:
            continue
        out[name] = flag_value(value)
    return out


def flags_to_list(flags: "OrderedDict[str, Optional[str]]") -> List[str]:
    out = []
    for name, value in flags.items():
        out.append("--" + name)
        if value is not None:
            out.append(value)
    return out


def list_to_flags(args: List[str]) -> "OrderedDict[str, Optional[str]]":
    """The inverse of :func:`flags_to_list` for ``--name [value]`` lists (values never start with --)."""
    out, i = OrderedDict(), 0
    while i < len(args):
        name = args[i]
        if not name.startswith("--"):
            raise ValueError(f"expected a --flag, got {name!r}")
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[name[2:]] = args[i + 1]
            i += 2
        else:
            out[name[2:]] = None
            i += 1
    return out


# ---- systems ----------------------------------------------------------------------------------------------------


@dataclass
class System:
    """One compared system: an ablation row over a choice of training languages."""

    name: str
    title: str
    row: str
    train_languages: str
    tables: Tuple[str, ...]
    fairseq: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    description: str = ""

    @property
    def adversarial(self) -> bool:
        return self.row in ("adversarial", "full")

    def grl_lambda(self) -> float:
        return float(self.fairseq.get("model", {}).get("grl_lambda", 0.01 if self.adversarial else 0.0))

    def switch_flags(self) -> "OrderedDict[str, Optional[str]]":
        """The ``fairseq:`` block as flags (``--grl-lambda`` is left to the ablation row)."""
        out = OrderedDict()
        for group, values in self.fairseq.items():
            for name, value in flags_from_mapping(values, self.path, f"fairseq.{group}").items():
                if name != "grl-lambda":
                    out[name] = value
        return out


_SYSTEM_KEYS = {"name", "title", "tables", "row", "train_languages", "fairseq", "description"}
_FAIRSEQ_GROUPS = {"task", "model", "criterion", "optimization", "optimizer", "lr_scheduler", "dataset", "checkpoint"}


def load_system(name_or_path: str, systems_dir: str) -> System:
    """A system by file path or by name (``systems_dir/<name>.yaml``)."""
    path = name_or_path
    if not (path.endswith(".yaml") or path.endswith(".yml")):
        path = os.path.join(systems_dir, f"{name_or_path}.yaml")
    data = _read_yaml(path)
    _check_keys(path, data, _SYSTEM_KEYS, "a system")
    name = str(data.get("name") or os.path.splitext(os.path.basename(path))[0])
    row = data.get("row")
    if row not in ABLATION_ROWS:
        raise ConfigError(f"{path}: row must be one of {', '.join(ABLATION_ROWS)}, got {row!r}")
    train_languages = data.get("train_languages", "all")
    if train_languages not in TRAIN_LANGUAGES:
        raise ConfigError(
            f"{path}: train_languages must be one of {', '.join(TRAIN_LANGUAGES)}, got {train_languages!r}"
        )
    tables = tuple(_as_list(data.get("tables", ["main"]), "tables", path))
    for t in tables:
        if t not in TABLES:
            raise ConfigError(f"{path}: unknown table {t!r} (choose from {', '.join(TABLES)})")
    groups = data.get("fairseq") or {}
    if not isinstance(groups, dict):
        raise ConfigError(f"{path}: fairseq must map config groups (model, criterion, ...) to settings")
    _check_keys(path, groups, _FAIRSEQ_GROUPS, "fairseq")
    for group, values in groups.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: fairseq.{group} must be a mapping of settings")
        flags = flags_from_mapping(values, path, f"fairseq.{group}")
        taken = sorted((set(flags) & RUNNER_FLAGS) | (set(flags) & FORBIDDEN_FLAGS))
        if taken:
            raise ConfigError(f"{path}: fairseq.{group} sets {', '.join(taken)}, which the runner decides")
    system = System(
        name=name,
        title=str(data.get("title") or ROW_TITLES.get(row, name)),
        row=row,
        train_languages=train_languages,
        tables=tables,
        fairseq=groups,
        path=os.path.abspath(path),
        description=str(data.get("description") or ""),
    )
    # the row decides whether the reversed gradient reaches the encoder; the file may only give its strength
    lam = system.grl_lambda()
    if system.adversarial and lam <= 0:
        raise ConfigError(f"{path}: row {row} is adversarial but model.grl_lambda is {lam}")
    if not system.adversarial and "grl_lambda" in groups.get("model", {}) and lam != 0:
        raise ConfigError(f"{path}: row {row} has no adversarial gradient but model.grl_lambda is {lam}; set it to 0")
    return system


# ---- scenarios, tasks -----------------------------------------------------------------------------------------------


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


def _load_scenario(entry, path) -> Scenario:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{path}: a scenario is a name or a mapping with a name, got {entry!r}")
    _check_keys(path, entry, {"name", "kind", "fractions", "tier_tasks"}, f"scenario {entry.get('name')}")
    name = str(entry["name"])
    kind = entry.get("kind", name)
    if kind not in SCENARIO_KINDS:
        raise ConfigError(f"{path}: scenario {name}: kind must be one of {', '.join(SCENARIO_KINDS)}, got {kind!r}")
    fractions = dict(DEFAULT_FRACTIONS)
    for tier, frac in (entry.get("fractions") or {}).items():
        if tier not in TIERS:
            raise ConfigError(f"{path}: scenario {name}: unknown tier {tier!r}")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ConfigError(f"{path}: scenario {name}: fraction of {tier} must be in (0, 1], got {frac!r}")
        fractions[tier] = float(frac)
    tier_tasks = tuple(_as_list(entry.get("tier_tasks", list(LABELLED_TASKS)), "tier_tasks", path))
    return Scenario(name, kind, fractions, tier_tasks)


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

    def keys_in(self, *tiers) -> List[str]:
        return [k for k, t in self.tiers.items() if t in tiers]

    def dev_metric(self, key: str) -> str:
        """The validation log's name of the dev metric of corpus ``key``."""
        suffix = key.replace("-", "_") if self.name == "translation" else key
        return f"valid_{self.metric}_{suffix}"


def _load_task(name, entry, path) -> MainTask:
    if name not in LABELLED_TASKS:
        raise ConfigError(f"{path}: main task must be one of {', '.join(LABELLED_TASKS)}, got {name!r}")
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: tasks.{name} must be a mapping")
    _check_keys(path, entry, {"languages", "pivot", "metric"}, f"tasks.{name}")
    langs = entry.get("languages")
    if not isinstance(langs, dict) or not langs:
        raise ConfigError(f"{path}: tasks.{name}.languages must map tiers (high, medium, low) to languages")
    tiers = OrderedDict()
    for tier in TIERS:
        for key in _as_list(langs.get(tier, []), f"tasks.{name}.languages.{tier}", path):
            if key in tiers:
                raise ConfigError(f"{path}: tasks.{name}: {key} is listed in two tiers")
            tiers[key] = tier
    _check_keys(path, langs, TIERS, f"tasks.{name}.languages")
    if not any(t == "high" for t in tiers.values()):
        raise ConfigError(f"{path}: tasks.{name} needs at least one high-resource language")
    pivot = str(entry.get("pivot") or next(k for k, t in tiers.items() if t == "high"))
    if pivot not in tiers:
        raise ConfigError(f"{path}: tasks.{name}.pivot {pivot!r} is not one of its languages")
    return MainTask(name, tiers, pivot, str(entry.get("metric") or DEFAULT_METRIC[name]))


# ---- the experiment -------------------------------------------------------------------------------------------------


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


def load_experiment(path) -> Experiment:
    """Reads and checks an experiment file (and the system files it names)."""
    data = _read_yaml(path)
    _check_keys(path, data, _TOP_KEYS, "the experiment")
    here = os.path.dirname(os.path.abspath(path))
    d = data.get("data")
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: data must be a mapping (manifest:, corpora: or synthetic:)")
    _check_keys(path, d, _DATA_KEYS, "data")
    if sum(k in d for k in ("manifest", "corpora", "synthetic")) != 1:
        raise ConfigError(f"{path}: data needs exactly one of manifest:, corpora:, synthetic:")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError(f"{path}: tasks must map main tasks (ner, sentiment, translation) to their languages")
    systems_dir = data.get("systems_dir", "../systems")
    systems_dir = os.path.normpath(os.path.join(here, os.path.expandvars(systems_dir)))
    systems = []
    for entry in data.get("systems") or []:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"{path}: a system is a name or a mapping with a name, got {entry!r}")
        _check_keys(path, entry, {"name", "languages"}, f"system {entry['name']}")
        ref = str(entry["name"])
        if ref.endswith(".yaml") and not os.path.isabs(ref):
            ref = os.path.join(here, ref)
        langs = _as_list(entry["languages"], "languages", path) if "languages" in entry else None
        systems.append(SystemEntry(load_system(ref, systems_dir), langs))
    if not systems:
        raise ConfigError(f"{path}: no systems")
    names = [s.system.name for s in systems]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: a system is listed twice: {names}")
    scenarios = [_load_scenario(s, path) for s in (data.get("scenarios") or ["full"])]
    if len({s.name for s in scenarios}) != len(scenarios):
        raise ConfigError(f"{path}: two scenarios have the same name")
    seeds = data.get("seeds", [1])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers")
    selection = _as_list(data.get("selection", ["target-dev"]), "selection", path)
    for rule in selection:
        if rule not in SELECTION_RULES:
            raise ConfigError(f"{path}: unknown selection rule {rule!r} (choose from {', '.join(SELECTION_RULES)})")
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{path}: train must map fairseq-train flags to values")
    train_flags = flags_from_mapping(train, path, "train")
    taken = sorted(set(train_flags) & (RUNNER_FLAGS | FORBIDDEN_FLAGS))
    if taken:
        raise ConfigError(f"{path}: train sets {', '.join(taken)}, which the runner decides (see docs/experiments.md)")
    if "arch" not in train_flags:
        raise ConfigError(f"{path}: train needs an arch (e.g. xlt_tiny, xlt_xlmr_base)")
    for name in PATH_FLAGS & set(train_flags):
        p = os.path.expanduser(os.path.expandvars(train_flags[name]))
        train_flags[name] = p if os.path.isabs(p) else os.path.normpath(os.path.join(here, p))
    evaluate_on = data.get("evaluate_on", "test")
    if evaluate_on not in ("test", "valid"):
        raise ConfigError(f"{path}: evaluate_on must be test or valid")
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
    return Experiment(
        path=os.path.abspath(path),
        name=str(data.get("name") or os.path.splitext(os.path.basename(path))[0]),
        data=d,
        tasks=[_load_task(name, entry, path) for name, entry in tasks.items()],
        systems=systems,
        scenarios=scenarios,
        seeds=list(seeds),
        selection=selection,
        train_flags=train_flags,
        evaluate_on=evaluate_on,
        env=env,
        tsne=dict(data.get("tsne") or {}),
        eval_options=dict(data.get("evaluation") or {}),
        out=data.get("out"),
    )


# ---- the grid ----------------------------------------------------------------------------------------------------


@dataclass
class RunSpec:
    """One training run of the grid and the test sets it is evaluated on."""

    experiment: Experiment
    scenario: Scenario
    system: System
    task: MainTask
    seed: int
    system_index: int
    target: Optional[str] = None  # the language of a per-language (monolingual) run
    skip_reason: Optional[str] = None

    @property
    def run_id(self) -> str:
        who = f"{self.system.name}-{self.target}" if self.target else self.system.name
        return f"{self.scenario.name}/{self.task.name}/{who}/seed{self.seed}"

    @property
    def train_keys(self) -> List[str]:
        """Main-task corpora this run trains on."""
        keys = [self.target] if self.target else self.task.keys
        return [k for k in keys if self.fraction(k) > 0]

    @property
    def eval_keys(self) -> List[str]:
        """Main-task corpora this run is validated and tested on (training ones + evaluation-only ones)."""
        return [self.target] if self.target else self.task.keys

    @property
    def zero_shot_keys(self) -> List[str]:
        """Main-task corpora that lose their training split in this run's data."""
        keys = [k for k, t in self.task.tiers.items() if t != "high"]
        if self.scenario.kind == "zero-shot" or self.system.train_languages == "high":
            return keys
        return []

    def fraction(self, key: str) -> float:
        """Fraction of corpus ``key``'s main-task training data this run sees."""
        if key in self.zero_shot_keys:
            return 0.0
        return self.scenario.fraction(self.task.tiers[key])

    def subset_seed(self) -> int:
        s = self.experiment.data.get("subset_seed", 1)
        return self.seed if s == "run" else int(s)

    def data_variant(self) -> dict:
        """What the data root of this run is prepared with (the same dict, the same data root)."""
        zs = self.zero_shot_keys
        return {
            "scenario": self.scenario.name,
            "kind": self.scenario.kind,
            "fractions": self.scenario.fractions if self.scenario.kind == "low-resource" else None,
            "tier_tasks": list(self.scenario.tier_tasks) if self.scenario.kind == "low-resource" else None,
            "tiers": dict(self.task.tiers),
            "task": self.task.name,
            "zero_shot": zs,
            "subset_seed": self.subset_seed(),
        }

    def data_variant_name(self) -> str:
        v = self.data_variant()
        name = v["scenario"]
        if v["zero_shot"] and self.scenario.kind != "zero-shot":
            name += "+zs-" + "_".join(v["zero_shot"])
        if self.experiment.data.get("subset_seed", 1) == "run":
            name += f"+subset{v['subset_seed']}"
        return f"{name}-{_hash(v)}"

    def selection_metric(self, rule: str, key: str) -> Tuple[str, Optional[str]]:
        """(validation metric, note) that selects the checkpoint tested on corpus ``key``."""
        target = self.task.dev_metric(key)
        if rule == "target-dev":
            return target, None
        if self.task.pivot in self.eval_keys:
            return self.task.dev_metric(self.task.pivot), None
        return target, f"no {self.task.pivot} dev set in this run: selected on the {key} dev set"

    def train_flags(self, data_root: str, save_dir: str, user_dir: str, corpora: Dict[str, List[str]]) -> List[str]:
        """The fairseq-train command line (without the program).

        ``corpora``: the corpus keys of every task folder in the data root (an auxiliary
        tagging task such as ``pos`` under its own name). The main task
        lists :attr:`eval_keys` (corpora without a training split are validated,
        not trained on); auxiliary tasks list every corpus of theirs."""
        main = self.task.name
        selected = {t: list(keys) for t, keys in corpora.items() if t != main and keys}
        selected[main] = self.eval_keys
        flags = OrderedDict()
        flags["task"] = "xlt_multitask"
        flags["criterion"] = "xlt_multitask_adversarial"
        flags.update(self.experiment.train_flags)
        flags.update(list_to_flags(ablation_flags(self.system.row, main, selected, self.system.grl_lambda())))
        taggers = {t: keys for t, keys in selected.items() if t not in ("ner", "sentiment", "translation", "mlm")}
        if taggers and self.system.row in MULTITASK_ROWS:
            # auxiliary token-tagging tasks (e.g. POS) of the data, as the task's --tagging-tasks
            flags["tagging-tasks"] = ",".join(f"{t}:{'+'.join(keys)}" for t, keys in taggers.items())
        flags.update(self.system.switch_flags())
        if len(self._languages(flags)) < 2:
            # a discriminator over one language has nothing to learn (and the criterion refuses it)
            flags["adversarial-weight"] = "0"
        if "validate-interval-updates" in flags:
            v = flags["validate-interval-updates"]
            if flags.setdefault("save-interval-updates", v) != v:
                raise ConfigError(
                    f"{self.experiment.path}: save-interval-updates must equal validate-interval-updates, so that "
                    "every validated model is saved and can be selected"
                )
        flags["best-checkpoint-metric"] = self.selection_metric(self.experiment.selection[0], self.eval_keys[0])[0][
            len("valid_") :
        ]
        flags["maximize-best-checkpoint-metric"] = None
        flags["seed"] = str(self.seed)
        flags["log-format"] = "json"
        flags["user-dir"] = user_dir
        flags["save-dir"] = save_dir
        return [data_root] + flags_to_list(flags)

    def _languages(self, flags) -> set:
        langs = set()
        for name in ("ner-langs", "sentiment-langs", "mlm-langs"):
            langs.update(v for v in (flags.get(name) or "").split(",") if v)
        for pair in (flags.get("translation-pairs") or "").split(","):
            if pair:
                langs.add(pair.split("-")[0])
        return langs

    def discriminated_languages(self, flags: List[str]) -> int:
        return len(self._languages(list_to_flags(flags[1:])))


def expand_grid(exp: Experiment) -> List[RunSpec]:
    """Every run of the experiment, in a fixed order: scenario, task, system, target, seed.
    Runs that cannot exist (a per-language system for a language without training
    data in the scenario) are kept with a ``skip_reason``."""
    for entry in exp.systems:
        unknown = sorted(set(entry.languages or []) - {k for t in exp.tasks for k in t.keys})
        if unknown:
            raise ConfigError(f"{exp.path}: system {entry.system.name}: {unknown} are not languages of any main task")
    runs = []
    for scenario in exp.scenarios:
        for task in exp.tasks:
            for index, entry in enumerate(exp.systems):
                system = entry.system
                if system.train_languages == "each":
                    # `languages:` of a per-language system restricts it, task by task
                    targets = [k for k in task.keys if entry.languages is None or k in entry.languages]
                else:
                    targets = [None]
                for target in targets:
                    for seed in exp.seeds:
                        run = RunSpec(exp, scenario, system, task, seed, index, target)
                        if not run.train_keys:
                            run.skip_reason = (
                                f"no {task.name} training data for {target or 'any language'} in {scenario.name}"
                            )
                        runs.append(run)
    ids = [r.run_id for r in runs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{exp.path}: the grid has duplicate runs: {dup}")
    return runs
