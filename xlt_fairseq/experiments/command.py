# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The one builder of the plugin's fairseq command lines.

A training is a :class:`TrainCommand`: the data root and an ordered mapping of
fairseq options (``{"lr": "0.003", "cpu": None, ...}``; ``None`` is a bare
switch). It stays a mapping until it is handed to fairseq, as ``fairseq-train``
arguments (:meth:`TrainCommand.argv`, :meth:`TrainCommand.cli`) or as a
``fairseq-hydra-train`` config (:meth:`TrainCommand.write_hydra_config`).
:func:`train_command` builds one from corpora and settings written the way a
YAML file or a Hydra override writes them (``lr_scheduler: inverse_sqrt``,
``cpu: true``); :func:`synthetic_command` is the tiny recipe on the generated
data of :mod:`xlt_fairseq.data.synthetic` that the smoke run, the tests and
the benchmarks share; :func:`generate_command` builds ``fairseq-generate``
arguments.
"""

import os
import shlex
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ..data.task_names import BUILTIN_TASKS
from ..data.yaml_config import ConfigError

Flags = "OrderedDict[str, Optional[str]]"

# the flag that lists the corpora of each built-in task
CORPUS_FLAGS = {
    "ner": "ner-langs",
    "sentiment": "sentiment-langs",
    "translation": "translation-pairs",
    "mlm": "mlm-langs",
}
# flags that name where a run writes: not part of what is trained
OUTPUT_FLAGS = ("save-dir", "log-file")


def user_dir() -> str:
    """The installed plugin folder, for ``--user-dir``."""
    import xlt_fairseq

    return os.path.dirname(os.path.abspath(xlt_fairseq.__file__))


def flag_value(value) -> Optional[str]:
    """A YAML value as a fairseq argument (None: a bare flag)."""
    if value is True:
        return None
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flags_from_mapping(mapping: Optional[Mapping[str, Any]], path=None, what="settings", line=None) -> Flags:
    """``{lr: 0.003, cpu: true, best_checkpoint_metric: x}`` -> ordered {flag: value}; False and None drop a flag."""
    out = OrderedDict()
    for key, value in (mapping or {}).items():
        if not isinstance(key, str):
            raise ConfigError(path, line, f"{what}: flag names must be strings, got {key!r}")
        if isinstance(value, dict):
            raise ConfigError(path, line, f"{what}: the value of {key} must be a scalar or a list")
        if value is False or value is None:
            continue
        out[key.lstrip("-").replace("_", "-")] = flag_value(value)
    return out


def flags_to_list(flags: Mapping[str, Optional[str]]) -> List[str]:
    out = []
    for name, value in flags.items():
        out.append("--" + name)
        if value is not None:
            out.append(value)
    return out


def list_to_flags(args: Iterable[str]) -> Flags:
    """The inverse of :func:`flags_to_list` for ``--name [value]`` lists (values never start with --)."""
    args = list(args)
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


def corpus_flags(corpora: Mapping[str, List[str]]) -> Flags:
    """``{"ner": ["en", "sw"], "pos": ["en"]}`` -> ``--ner-langs en,sw --tagging-tasks pos:en``: the built-in
    tasks by their own flags, any other task as an auxiliary tagging task."""
    out = OrderedDict()
    taggers = []
    for task, keys in corpora.items():
        if not keys:
            continue
        if task in BUILTIN_TASKS:
            out[CORPUS_FLAGS[task]] = ",".join(keys)
        else:
            taggers.append(f"{task}:{'+'.join(keys)}")
    if taggers:
        out["tagging-tasks"] = ",".join(taggers)
    return out


@dataclass
class TrainCommand:
    """One training: the data root and fairseq's options, in order."""

    data: str
    flags: Flags = field(default_factory=OrderedDict)

    def argv(self) -> List[str]:
        """The ``fairseq-train`` arguments (for ``options.parse_args_and_arch`` or a command line)."""
        return [self.data] + flags_to_list(self.flags)

    def cli(self, console_script: bool = True) -> List[str]:
        """The full command line: the ``fairseq-train`` next to this interpreter (else ``python -m
        fairseq_cli.train``, which is the same program)."""
        script = os.path.join(os.path.dirname(sys.executable), "fairseq-train")
        if console_script and os.path.exists(script):
            return [script, *self.argv()]
        return [sys.executable, "-m", "fairseq_cli.train", *self.argv()]

    def shell(self, env: Optional[Mapping[str, str]] = None) -> str:
        """The command as one ``sh`` line a user can paste (``fairseq-train ...``)."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
        return prefix + "fairseq-train " + " ".join(shlex.quote(a) for a in self.argv())

    @property
    def save_dir(self) -> Optional[str]:
        return self.flags.get("save-dir")

    @property
    def log_file(self) -> Optional[str]:
        """Where fairseq copies its JSON statistics (``--log-file``); read with :mod:`.train_records`."""
        return self.flags.get("log-file")

    def identity(self) -> List[str]:
        """What is trained: the arguments without the data root and the output locations (save dir, log file),
        so that the same training written elsewhere has the same identity."""
        return flags_to_list(OrderedDict((k, v) for k, v in self.flags.items() if k not in OUTPUT_FLAGS))

    def with_flags(self, **settings) -> "TrainCommand":
        """A copy with ``settings`` (YAML-style names and values) set or, with False/None, removed."""
        flags = OrderedDict(self.flags)
        for key, value in settings.items():
            name = key.replace("_", "-")
            if value is False or value is None:
                flags.pop(name, None)
            else:
                flags[name] = flag_value(value)
        return TrainCommand(self.data, flags)

    def hydra_config(self) -> dict:
        """The run as a ``fairseq-hydra-train`` config, parsed by fairseq itself from the arguments (so every
        option lands in the config group fairseq puts it in)."""
        from fairseq import options
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf
        from omegaconf import OmegaConf

        import xlt_fairseq

        xlt_fairseq.register()  # the xlt task's options (--user-dir finds the package imported already)
        with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's own config files
            warnings.simplefilter("ignore")
            args = options.parse_args_and_arch(options.get_training_parser(), self.argv())
            cfg = OmegaConf.to_container(convert_namespace_to_omegaconf(args), resolve=True, enum_to_str=True)
        return {k: v for k, v in cfg.items() if v is not None}

    def write_hydra_config(self, path: str):
        """Writes :meth:`hydra_config` to ``path``: ``fairseq-hydra-train --config-dir DIR --config-name NAME``
        repeats the training (not named config.yaml, which would lose to fairseq's own
        ``fairseq/config/config.yaml``)."""
        import yaml

        cfg = self.hydra_config()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("# the run's fairseq-train flags as a fairseq-hydra-train config\n")
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.replace(path + ".tmp", path)


def train_command(
    data: str,
    corpora: Mapping[str, List[str]],
    settings: Optional[Mapping[str, Any]] = None,
    **more,
) -> TrainCommand:
    """An ``xlt_multitask`` training of ``corpora`` (task -> languages or pairs) in ``data``.

    ``settings`` and keyword arguments are fairseq options by their YAML/Hydra names (``lr_scheduler:
    inverse_sqrt``, ``cpu: true``; False or None leaves an option out); ``user_dir`` defaults to the
    installed plugin."""
    flags = OrderedDict()
    flags["user-dir"] = user_dir()
    flags["task"] = "xlt_multitask"
    flags.update(corpus_flags(corpora))
    flags["criterion"] = "xlt_multitask_adversarial"
    flags.update(flags_from_mapping({**(settings or {}), **more}))
    return TrainCommand(data, flags)


# the tiny recipe on the generated corpora of xlt_fairseq.data.synthetic (every task, languages aa and bb)
SYNTHETIC_RECIPE: Dict[str, Any] = {
    "arch": "xlt_tiny",
    "optimizer": "adam",
    "lr": 0.003,
    "lr_scheduler": "inverse_sqrt",
    "warmup_updates": 30,
    "batch_size": 16,
    "tokens_per_sample": 32,
    "no_epoch_checkpoints": True,
    "log_format": "json",
    "seed": 1,
    "cpu": True,
    "num_workers": 0,
}


def synthetic_corpora() -> Dict[str, List[str]]:
    from ..data.synthetic import LANGS

    return {
        "ner": list(LANGS),
        "sentiment": list(LANGS),
        "mlm": list(LANGS),
        "translation": [f"{LANGS[0]}-{LANGS[1]}"],
    }


def synthetic_command(data: str, save_dir: str, max_update: int, **settings) -> TrainCommand:
    """:data:`SYNTHETIC_RECIPE` on every task of the generated data, for ``max_update`` updates; ``settings``
    override the recipe."""
    return train_command(
        data, synthetic_corpora(), {**SYNTHETIC_RECIPE, "max_update": max_update, "save_dir": save_dir, **settings}
    )


def synthetic_preprocess_args(raw, encoder_dir: str, destdir: str, mlm_tokens_per_sample=None) -> List[List[str]]:
    """``scripts/preprocess.py`` arguments for every corpus of generated data (``raw``: the paths of
    :func:`xlt_fairseq.data.synthetic.write_raw_data`, keyed (task, language or pair, split))."""
    from ..data.synthetic import LANGS

    out = []
    for lang in LANGS:
        for task in ("ner", "sentiment", "mlm"):
            args = [task, "--lang", lang, "--encoder-dir", encoder_dir, "--destdir", destdir]
            for split in ("train", "valid") + (("test",) if task != "mlm" else ()):
                args += [f"--{split}", raw[(task, lang, split)]]
            if task == "mlm" and mlm_tokens_per_sample:
                args += ["--tokens-per-sample", str(mlm_tokens_per_sample)]
            out.append(args)
    pair = f"{LANGS[0]}-{LANGS[1]}"
    args = ["translation", "--src-lang", LANGS[0], "--tgt-lang", LANGS[1], "--encoder-dir", encoder_dir]
    args += ["--destdir", destdir]
    for split in ("train", "valid", "test"):
        args += [f"--{split}", raw[("translation", pair, split)]]
    out.append(args)
    return out


def generate_command(
    data: str, checkpoint: str, source_lang: str, target_lang: str, subset: str = "test", **settings
) -> List[str]:
    """``fairseq-generate`` arguments that translate ``subset`` of the pair's corpus in ``data`` with
    ``checkpoint``; ``settings`` as in :func:`train_command` (``beam=4, remove_bpe="sentencepiece"``)."""
    flags = OrderedDict()
    flags["user-dir"] = user_dir()
    flags["task"] = "xlt_multitask"
    flags["source-lang"] = source_lang
    flags["target-lang"] = target_lang
    flags["path"] = checkpoint
    flags["gen-subset"] = subset
    flags.update(flags_from_mapping(settings))
    return [data] + flags_to_list(flags)
