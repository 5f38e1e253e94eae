# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The compared systems (``examples/systems/*.yaml``): an ablation row of
:mod:`.ablations` over a choice of training languages, plus fixed fairseq
settings by config group. A system file::

    name: full
    title: Our Framework            # the row title in the tables
    tables: [main]                  # main (Tables 1-3) and/or ablation (Table 4)
    row: full                       # ablation row: base | adversarial | multitask | language_modelling | full
    train_languages: all            # each (one run per language) | all | high (the others evaluation-only)
    fairseq:                        # fairseq config groups, as Hydra overrides (model.grl_lambda=0.01)
      model: {grl_lambda: 0.01}
      criterion: {adversarial_weight: 1.0}
    recipe:                         # optional: what the runner does around the training (:class:`Recipe`)
      self_training: {teacher: multilingual, threshold: 0.9}

``train_languages: low`` trains on the languages of the lower tiers only (the
high-resource ones keep their dev and test sets): the second stage of
``two_stage``.

The ``fairseq:`` block stays a mapping (:meth:`System.settings`) until the
runner's command is handed to fairseq (:mod:`.command`).
"""

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from ..data.yaml_config import ConfigError, as_list, check_keys, line_of, load_yaml, plain
from .ablations import ABLATION_ROWS, DEFAULT_GRL_LAMBDA, ROW_TITLES, is_adversarial
from .command import flags_from_mapping

TRAIN_LANGUAGES = ("each", "all", "high", "low")
TABLES = ("main", "ablation")
# flags the runner sets itself
RUNNER_FLAGS = {
    "task",
    "criterion",
    "user-dir",
    "save-dir",
    "log-file",
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
# flags that would delete or never write the checkpoints model selection chooses from
FORBIDDEN_FLAGS = {
    "no-epoch-checkpoints",
    "no-save",
    "keep-interval-updates",
    "keep-last-epochs",
    "keep-best-checkpoints",
    "no-last-checkpoints",
}
_SYSTEM_KEYS = {"name", "title", "tables", "row", "train_languages", "fairseq", "description", "recipe"}
# the recipes (:class:`Recipe`) and their settings with defaults (None: required)
RECIPES = {
    # label the masked-LM text of each lower-tier training language with the teacher system's run of the same
    # scenario and seed (its checkpoint selected on that language's dev set), keep the confident sentences
    # (xlt_fairseq.self_training) and train on the gold data plus them
    "self_training": {"teacher": None, "threshold": 0.9, "max_sentences": 2000, "empty_ratio": 1.0},
    # evaluate the average of the last `checkpoints` validated checkpoints of the training (Schmidt et al.,
    # 2023); seeds: all averages them over the trainings of every seed of the experiment (run averaging)
    "average": {"checkpoints": 3, "seeds": "own"},
    # start from the checkpoint of the `first` system's run of the same scenario and seed (selected by the
    # `selection` rule on the pivot language's dev set) with a fresh optimizer (--finetune-from-model)
    "two_stage": {"first": None, "selection": "english-dev"},
}
_FAIRSEQ_GROUPS = {"task", "model", "criterion", "optimization", "optimizer", "lr_scheduler", "dataset", "checkpoint"}


def refuse_runner_flags(settings, path, what):
    """Refuses settings the runner decides itself (corpora, outputs, selection) or that would delete
    checkpoints, at the line of the first one."""
    for key in settings:
        name = str(key).lstrip("-").replace("_", "-")
        if name in RUNNER_FLAGS | FORBIDDEN_FLAGS:
            raise ConfigError(
                path, line_of(settings, key), f"{what} sets {name}, which the runner decides (docs/experiments.md)"
            )


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
    recipe: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def adversarial(self) -> bool:
        return is_adversarial(self.row)

    def grl_lambda(self) -> float:
        default = DEFAULT_GRL_LAMBDA if self.adversarial else 0.0
        return float(self.fairseq.get("model", {}).get("grl_lambda", default))

    def settings(self) -> "OrderedDict[str, Any]":
        """The ``fairseq:`` block as one mapping of settings (``grl_lambda`` is left to the ablation row)."""
        out = OrderedDict()
        for values in self.fairseq.values():
            out.update((k, v) for k, v in values.items() if k.lstrip("-").replace("-", "_") != "grl_lambda")
        return out


# the systems shipped with the plugin (examples/systems of the checkout the package is installed from)
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED_SYSTEMS = os.path.join(_CHECKOUT, "examples", "systems")


def load_system(name_or_path: str, systems_dir: Optional[str]) -> System:
    """A system by file path or by name: ``systems_dir/<name>.yaml`` where it exists, else the
    shipped ``examples/systems/<name>.yaml`` (found from the package, wherever the experiment is)."""
    path = name_or_path
    if not (path.endswith(".yaml") or path.endswith(".yml")):
        dirs = [d for d in (systems_dir, SHIPPED_SYSTEMS) if d]
        found = [p for p in (os.path.join(d, f"{name_or_path}.yaml") for d in dirs) if os.path.isfile(p)]
        if not found:
            where = ", ".join(dirs)
            raise ConfigError(dirs[0], None, f"no system {name_or_path!r} (looked for {name_or_path}.yaml in {where})")
        path = found[0]
    data = load_yaml(path, ConfigError)
    check_keys(path, data, _SYSTEM_KEYS, "a system", ConfigError)
    name = str(data.get("name") or os.path.splitext(os.path.basename(path))[0])
    row = data.get("row")
    if row not in ABLATION_ROWS:
        raise ConfigError(path, line_of(data, "row"), f"row must be one of {', '.join(ABLATION_ROWS)}, got {row!r}")
    train_languages = data.get("train_languages", "all")
    if train_languages not in TRAIN_LANGUAGES:
        raise ConfigError(
            path,
            line_of(data, "train_languages"),
            f"train_languages must be one of {', '.join(TRAIN_LANGUAGES)}, got {train_languages!r}",
        )
    tables = tuple(as_list(data.get("tables", ["main"]), path, line_of(data, "tables"), "tables", ConfigError))
    for t in tables:
        if t not in TABLES:
            raise ConfigError(path, line_of(data, "tables"), f"unknown table {t!r} (choose from {', '.join(TABLES)})")
    groups = data.get("fairseq") or {}
    if not isinstance(groups, dict):
        raise ConfigError(
            path, line_of(data, "fairseq"), "fairseq must map config groups (model, criterion, ...) to settings"
        )
    check_keys(path, groups, _FAIRSEQ_GROUPS, "fairseq", ConfigError)
    for group, values in groups.items():
        line = line_of(groups, group)
        if not isinstance(values, dict):
            raise ConfigError(path, line, f"fairseq.{group} must be a mapping of settings")
        flags_from_mapping(values, path, f"fairseq.{group}", line)  # refuses what is not a flag value
        refuse_runner_flags(values, path, f"fairseq.{group}")
    recipe = _load_recipe(data, path)
    system = System(
        recipe=recipe,
        name=name,
        title=str(data.get("title") or ROW_TITLES.get(row, name)),
        row=row,
        train_languages=train_languages,
        tables=tables,
        fairseq=plain(groups),
        path=os.path.abspath(path),
        description=str(data.get("description") or ""),
    )
    # the row decides whether the reversed gradient reaches the encoder; the file may only give its strength
    lam = system.grl_lambda()
    line = line_of(groups.get("model", {}), "grl_lambda") or line_of(data, "row")
    if system.adversarial and lam <= 0:
        raise ConfigError(path, line, f"row {row} is adversarial but model.grl_lambda is {lam}")
    if not system.adversarial and "grl_lambda" in groups.get("model", {}) and lam != 0:
        raise ConfigError(
            path, line, f"row {row} has no adversarial gradient but model.grl_lambda is {lam}; set it to 0"
        )
    return system


def _load_recipe(data, path) -> Dict[str, Dict[str, Any]]:
    """The ``recipe:`` block: each recipe's settings over its defaults (:data:`RECIPES`), checked."""
    block = data.get("recipe") or {}
    line = line_of(data, "recipe")
    if not isinstance(block, dict):
        raise ConfigError(path, line, f"recipe must map recipes ({', '.join(RECIPES)}) to their settings")
    check_keys(path, block, set(RECIPES), "recipe", ConfigError)
    out = {}
    for name, given in block.items():
        where = line_of(block, name) or line
        given = given or {}
        if not isinstance(given, dict):
            raise ConfigError(path, where, f"recipe.{name} must be a mapping of settings")
        check_keys(path, given, set(RECIPES[name]), f"recipe.{name}", ConfigError)
        settings = {**RECIPES[name], **plain(given)}
        missing = [k for k, v in settings.items() if v is None]
        if missing:
            raise ConfigError(path, where, f"recipe.{name} needs {', '.join(missing)}")
        _check_recipe(name, settings, path, where)
        out[name] = settings
    if "self_training" in out and "two_stage" in out:
        raise ConfigError(path, line, "recipe: self_training and two_stage cannot be combined in one system")
    return out


def _check_recipe(name, s, path, line):
    def bad(what):
        raise ConfigError(path, line, f"recipe.{name}: {what}")

    if name == "self_training":
        if isinstance(s["threshold"], bool) or not isinstance(s["threshold"], (int, float)):
            bad(f"threshold must be a number in [0, 1], got {s['threshold']!r}")
        if not 0 <= s["threshold"] <= 1:
            bad(f"threshold must be in [0, 1], got {s['threshold']}")
        if not isinstance(s["max_sentences"], int) or s["max_sentences"] < 1:
            bad(f"max_sentences must be a positive integer, got {s['max_sentences']!r}")
        if not isinstance(s["empty_ratio"], (int, float)) or s["empty_ratio"] < 0:
            bad(f"empty_ratio must be a number >= 0, got {s['empty_ratio']!r}")
    elif name == "average":
        if not isinstance(s["checkpoints"], int) or isinstance(s["checkpoints"], bool) or s["checkpoints"] < 1:
            bad(f"checkpoints must be a positive integer, got {s['checkpoints']!r}")
        if s["seeds"] not in ("own", "all"):
            bad(f"seeds must be own or all, got {s['seeds']!r}")
    elif name == "two_stage" and s["selection"] not in ("english-dev", "target-dev"):
        bad(f"selection must be english-dev or target-dev, got {s['selection']!r}")
