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

The ``fairseq:`` block stays a mapping (:meth:`System.settings`) until the
runner's command is handed to fairseq (:mod:`.command`).
"""

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from ..data.yaml_config import ConfigError, as_list, check_keys, line_of, load_yaml, plain
from .ablations import ABLATION_ROWS, DEFAULT_GRL_LAMBDA, ROW_TITLES, is_adversarial
from .command import flags_from_mapping

TRAIN_LANGUAGES = ("each", "all", "high")
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
_SYSTEM_KEYS = {"name", "title", "tables", "row", "train_languages", "fairseq", "description"}
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


def load_system(name_or_path: str, systems_dir: str) -> System:
    """A system by file path or by name (``systems_dir/<name>.yaml``)."""
    path = name_or_path
    if not (path.endswith(".yaml") or path.endswith(".yml")):
        path = os.path.join(systems_dir, f"{name_or_path}.yaml")
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
    system = System(
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
