# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The grid of an experiment (:mod:`.experiment`): systems x scenarios x tasks x
languages x seeds, each cell a :class:`RunSpec` with its data selection and its
training command.

Nothing here runs anything; :mod:`.runner` executes the grid. The mapping of a
system to fairseq settings is data (``examples/systems/*.yaml``, :mod:`.systems`),
turned into one :class:`~.command.TrainCommand` in one place,
:meth:`RunSpec.train_command`: the experiment's shared settings, the tasks of the
system's ablation row (:func:`.ablations.row_corpora`), whether the reversed
gradient reaches the encoder (:func:`.ablations.is_adversarial`), the system's
own ``fairseq:`` settings, then what the runner decides (selection metric, seed,
outputs).
"""

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..data.yaml_config import ConfigError
from .ablations import is_adversarial, row_corpora
from .command import TrainCommand, corpus_flags, flags_from_mapping, list_to_flags, user_dir
from .experiment import Experiment, MainTask, Scenario, SystemEntry, load_experiment
from .systems import System, load_system

# the names scripts and tests import from here
__all__ = [
    "ConfigError",
    "Experiment",
    "MainTask",
    "RunSpec",
    "Scenario",
    "System",
    "SystemEntry",
    "expand_grid",
    "list_to_flags",
    "load_experiment",
    "load_system",
]

logger = logging.getLogger(__name__)


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:10]


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
        if self.system.train_languages == "low":
            return [k for k, t in self.task.tiers.items() if t == "high"]
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

    def train_command(
        self,
        data_root: str,
        save_dir: str,
        corpora: Dict[str, List[str]],
        log_file: Optional[str] = None,
        plugin_dir: Optional[str] = None,
    ) -> TrainCommand:
        """The run's training.

        ``corpora``: the corpus keys of every task folder in the data root (an auxiliary
        tagging task such as ``pos`` under its own name). The main task lists
        :attr:`eval_keys` (corpora without a training split are validated, not trained
        on); auxiliary tasks list every corpus of theirs. ``log_file``: fairseq's
        ``--log-file``, where the runner reads the validations from. A run over one language
        needs no rule here: the task turns its adversarial branch off (with a warning)."""
        main = self.task.name
        selected = {t: list(keys) for t, keys in corpora.items() if t != main and keys}
        selected[main] = self.eval_keys
        tasks = corpus_flags(row_corpora(self.system.row, main, selected))
        tagging = tasks.pop("tagging-tasks", None)
        flags = OrderedDict()
        flags["task"] = "xlt_multitask"
        flags["criterion"] = "xlt_multitask_adversarial"
        flags.update(self.experiment.train_flags)
        flags.update(tasks)
        flags["grl-lambda"] = str(self.system.grl_lambda() if is_adversarial(self.system.row) else 0.0)
        flags["adversarial-weight"] = "1"
        if tagging:
            flags["tagging-tasks"] = tagging
        flags.update(flags_from_mapping(self.system.settings(), self.system.path, "fairseq"))
        if "validate-interval-updates" in flags:
            v = flags["validate-interval-updates"]
            if flags.setdefault("save-interval-updates", v) != v:
                raise ConfigError(
                    self.experiment.path,
                    None,
                    "save-interval-updates must equal validate-interval-updates, so that every validated model "
                    "is saved and can be selected",
                )
        metric = self.selection_metric(self.experiment.selection[0], self.eval_keys[0])[0]
        if self.task.name == "ner" and len(self.eval_keys) > 1:
            # fairseq's checkpoint_best and --patience follow the languages' mean, not the first language's score
            # (the runner selects per test set from the records, whatever this flag says)
            metric = "valid_ner_f1_mean"
        flags["best-checkpoint-metric"] = metric[len("valid_") :]
        flags["maximize-best-checkpoint-metric"] = None
        flags["seed"] = str(self.seed)
        flags["log-format"] = "json"
        flags["user-dir"] = plugin_dir or user_dir()
        flags["save-dir"] = save_dir
        if log_file:
            flags["log-file"] = log_file
        return TrainCommand(data_root, flags)


def expand_grid(exp: Experiment) -> List[RunSpec]:
    """Every run of the experiment, in a fixed order: scenario, task, system, target, seed.
    Runs that cannot exist (a per-language system for a language without training
    data in the scenario) are kept with a ``skip_reason``."""
    for entry in exp.systems:
        unknown = sorted(set(entry.languages or []) - {k for t in exp.tasks for k in t.keys})
        if unknown:
            raise ConfigError(
                exp.path, None, f"system {entry.system.name}: {unknown} are not languages of any main task"
            )
    _check_recipes(exp)
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
        raise ConfigError(exp.path, None, f"the grid has duplicate runs: {dup}")
    return runs


def _check_recipes(exp: Experiment):
    """A recipe builds on a system of the same experiment that trains one model over the languages."""
    by_name = {e.system.name: e.system for e in exp.systems}
    for entry in exp.systems:
        system = entry.system
        for name, settings in system.recipe.items():
            if system.train_languages == "each":
                raise ConfigError(system.path, None, f"recipe {name} needs one run over the languages, not each")
            other = settings.get("teacher") or settings.get("first")
            if other is None:
                continue
            if other not in by_name:
                raise ConfigError(
                    exp.path, None, f"system {system.name}: recipe {name} builds on {other}, not a system of the grid"
                )
            if by_name[other].train_languages == "each" or by_name[other].recipe:
                raise ConfigError(
                    exp.path,
                    None,
                    f"system {system.name}: recipe {name} builds on {other}, which must be one run over the languages "
                    "without a recipe of its own",
                )
