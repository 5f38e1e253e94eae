# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What to prepare: :class:`CorpusSpec`, the one description of a corpus.

Its dataclass fields are the single source of the command-line options of
``xlt-preprocess`` (:func:`add_spec_arguments`) and of the keys and value types
of a manifest entry (:func:`coerce`): a field's metadata says which tasks it
applies to, its help text and its choices; its type says how a value is read.
"""

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Sequence, Tuple

from .formats import DEFAULT_FORMATS, FORMATS, MARC_LABELS, UNLABELLED_FORMATS, DataFormatError, check_exists, input_files
from .scenarios import DEFAULT_FLOOR
from .tags import SCHEMES
from .task_names import BUILTIN_TASKS, CLASSIFICATION, RESERVED_NAMES, TAGGING, builtin_kind, is_valid_auxiliary_name

SPLITS = ("train", "valid", "test")
ALL = BUILTIN_TASKS + ("tagging",)  # the preprocessing commands: the built-in tasks and auxiliary tagging
LABELLED = tuple(t for t in ALL if builtin_kind(t) in (TAGGING, CLASSIFICATION))
# a language code becomes a folder name of the data root: one plain path component
_LANG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _opt(help: str, tasks=ALL, cli=True, **extra) -> dict:
    return {"help": help, "tasks": tasks, "cli": cli, **extra}


@dataclass
class CorpusSpec:
    """Everything that defines one corpus: the command line of
    ``xlt-preprocess`` and one entry of a manifest map onto these fields."""

    task: str = field(metadata=_opt("ner, sentiment, translation, mlm or tagging", cli=False))
    lang: Optional[str] = field(
        default=None, metadata=_opt("language code of the corpus", ("ner", "sentiment", "mlm", "tagging"), cli=False)
    )
    # task "tagging": the auxiliary task's name (its folder in the data root, e.g. pos)
    tagging_name: Optional[str] = field(default=None, metadata=_opt("auxiliary task name, e.g. pos", (), cli=False))
    conllu_column: str = field(
        default="upos", metadata=_opt("conllu: upos, xpos or deprel", ("tagging",), choices=("upos", "xpos", "deprel"))
    )
    src_lang: Optional[str] = field(default=None, metadata=_opt("source language", ("translation",), cli=False))
    tgt_lang: Optional[str] = field(default=None, metadata=_opt("target language", ("translation",), cli=False))
    train: Optional[str] = field(default=None, metadata=_opt("training file", cli=False))
    valid: Optional[str] = field(default=None, metadata=_opt("validation file", cli=False))
    test: Optional[str] = field(default=None, metadata=_opt("test file", cli=False))
    # examples added to the training split after the scenario's subset (never subsampled), in the training
    # split's format: e.g. the pseudo-labelled text of self-training (xlt_fairseq.self_training)
    extra_train: Optional[str] = field(
        default=None, metadata=_opt("more training examples, added after the subset", LABELLED, cli=False)
    )
    format: Optional[str] = field(default=None, metadata=_opt("input format", cli=False))
    # per-split formats (e.g. IWSLT: train.tags for train, XML for valid/test); default: ``format``
    train_format: Optional[str] = field(default=None, metadata=_opt("format of --train (default --format)", cli=False))
    valid_format: Optional[str] = field(default=None, metadata=_opt("format of --valid (default --format)", cli=False))
    test_format: Optional[str] = field(default=None, metadata=_opt("format of --test (default --format)", cli=False))
    domain: str = field(default="general", metadata=_opt("domain label for --adversarial-target domain"))
    max_positions: int = field(
        default=512, metadata=_opt("the encoder's positions", ("ner", "sentiment", "translation", "tagging"))
    )
    # NER
    tag_scheme: str = field(default="iob2", metadata=_opt("converted to IOB2", ("ner",), choices=SCHEMES))
    strict_tags: bool = field(
        default=False, metadata=_opt("invalid tag sequences are errors, not repaired", ("ner",))
    )
    # NER: entity type -> type or O; sentiment: label -> label
    map_label: Dict[str, str] = field(
        default_factory=dict, metadata=_opt("repeatable FROM=TO; NER maps entity types (DATE=O)", LABELLED)
    )
    drop_label: List[str] = field(
        default_factory=list, metadata=_opt("drop examples with this label (repeatable)", ("sentiment",))
    )
    labels: Optional[List[str]] = field(
        default=None, metadata=_opt("closed label set, comma-separated (NER: entity types)", LABELLED)
    )
    # sentiment
    text_column: str = field(default="text", metadata=_opt("csv: column of the text", ("sentiment",)))
    label_column: str = field(default="label", metadata=_opt("csv: column of the label", ("sentiment",)))
    delimiter: str = field(default=",", metadata=_opt("csv: field delimiter (tab for TSV)", ("sentiment",)))
    marc_labels: str = field(
        default="binary", metadata=_opt("marc-jsonl: 2 or 5 classes", ("sentiment",), choices=MARC_LABELS)
    )
    include_title: bool = field(
        default=False, metadata=_opt("marc-jsonl: title before the review body", ("sentiment",))
    )
    # masked LM
    tokens_per_sample: int = field(default=512, metadata=_opt("longer lines are split to fit", ("mlm",)))
    # translation (training pairs only)
    max_length: Optional[int] = field(
        default=None, metadata=_opt("drop training pairs with a side longer than this (pieces)", ("translation",))
    )
    length_ratio: Optional[float] = field(
        default=None, metadata=_opt("drop training pairs with a larger length ratio", ("translation",))
    )
    # scenario (training split only)
    subsample: Optional[float] = field(
        default=None, metadata=_opt("keep this fraction of the training data", metavar="FRACTION")
    )
    max_examples: Optional[int] = field(default=None, metadata=_opt("keep at most this many training examples"))
    seed: int = field(default=1, metadata=_opt("subset seed"))
    floor: int = field(default=DEFAULT_FLOOR, metadata=_opt("warn when a subset is smaller"))
    tier: Optional[str] = field(default=None, metadata=_opt("set by a tier file", cli=False))
    zero_shot: bool = field(default=False, metadata=_opt("set by the scenario", cli=False))

    @property
    def fmt(self) -> str:
        return self.format or DEFAULT_FORMATS.get(self.task, "")

    def split_format(self, split: str) -> str:
        return getattr(self, f"{split}_format", None) or self.fmt

    @property
    def key(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}" if self.task == "translation" else str(self.lang)

    @property
    def langs(self) -> List[str]:
        return [self.src_lang, self.tgt_lang] if self.task == "translation" else [self.lang]

    @property
    def folder(self) -> str:
        """The corpus' task folder in the data root."""
        return self.tagging_name if self.task == "tagging" else self.task

    @property
    def name(self) -> str:
        return f"{self.folder}/{self.key}"

    def files(self) -> Dict[str, str]:
        """The splits to read (the training split of a zero-shot target is left out)."""
        out = {s: getattr(self, s) for s in SPLITS if getattr(self, s)}
        if self.zero_shot:
            out.pop("train", None)
        return out

    def check(self):
        """Raises ValueError for an inconsistent specification (before any file is read)."""
        if self.task not in FORMATS:
            raise ValueError(f"unknown task {self.task!r} (choose from {', '.join(FORMATS)})")
        self._check_names()
        for split in SPLITS:
            fmt = self.split_format(split)
            opt = f"--{split}-format" if getattr(self, f"{split}_format") else "--format"
            if fmt not in FORMATS[self.task]:
                raise ValueError(f"{self.name}: unknown {opt} {fmt!r} (choose from {', '.join(FORMATS[self.task])})")
            if (self.task, fmt) in UNLABELLED_FORMATS and getattr(self, split):
                raise ValueError(
                    f"{self.name}: {opt} {fmt} has no labels; it is prediction input, not training or evaluation "
                    "data (give the labelled file in its own format)"
                )
        if not any(getattr(self, s) for s in SPLITS):
            raise ValueError(f"{self.name}: no input files given (--train, --valid, --test)")
        if self.task == "mlm" and not self.train:
            raise ValueError(f"{self.name}: --train is required")
        if self.task == "ner":
            for name, value in list(self.map_label.items()) + [(label, label) for label in self.labels or []]:
                for x in (name, value):
                    if x != "O" and len(x) > 2 and x[1] == "-" and x[0] in "BIESLU":
                        raise ValueError(
                            f"{self.name}: NER --map-label and --labels name entity types, e.g. DATE=O or PER, not {x!r}"
                        )
        if self.extra_train and not self.train:
            raise ValueError(f"{self.name}: extra_train needs a training file (it is added to the training split)")
        if self.labels is not None and not self.labels:
            raise ValueError(f"{self.name}: --labels is empty")
        self._check_numbers()

    def _check_names(self):
        if self.task == "tagging":
            if not self.tagging_name or not is_valid_auxiliary_name(self.tagging_name) or self.tagging_name == "tagging":
                raise ValueError(
                    f"tagging needs --name, an identifier other than {', '.join(RESERVED_NAMES + ('tagging',))} "
                    f"(e.g. pos), got {self.tagging_name!r}"
                )
        if self.task == "translation":
            if not (self.src_lang and self.tgt_lang):
                raise ValueError("translation needs --src-lang and --tgt-lang")
            langs = (("--src-lang", self.src_lang), ("--tgt-lang", self.tgt_lang))
            if self.src_lang == self.tgt_lang:
                raise ValueError(f"--src-lang and --tgt-lang are both {self.src_lang!r}")
        elif not self.lang:
            raise ValueError(f"{self.task} needs --lang")
        else:
            langs = (("--lang", self.lang),)
        for opt, value in langs:
            # a folder name of the data root; in a translation pair '-' separates the two languages
            if not _LANG.match(value) or (opt != "--lang" and "-" in value):
                raise ValueError(
                    f"{opt} {value!r} is not a language code: it becomes a folder name of the data root, so it must "
                    "start with a letter or digit and hold only letters, digits, '_', '.', '@'"
                    + ("" if opt != "--lang" else ", '-'")
                    + " (e.g. sw, pt_BR, sr@latin)"
                )

    def _check_numbers(self):
        if self.tag_scheme not in SCHEMES:
            raise ValueError(f"unknown --tag-scheme {self.tag_scheme!r} (choose from {', '.join(SCHEMES)})")
        if self.max_positions < 3 or self.tokens_per_sample < 3:
            raise ValueError("--max-positions and --tokens-per-sample must be at least 3")
        if self.subsample is not None and not 0 < self.subsample <= 1:
            raise ValueError(f"--subsample must be in (0, 1], got {self.subsample}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"--max-examples must be at least 1, got {self.max_examples}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"--max-length must be at least 1 (pieces), got {self.max_length}")
        if self.length_ratio is not None and not self.length_ratio >= 1:
            raise ValueError(f"--length-ratio must be at least 1, got {self.length_ratio}")
        if self.floor < 0:
            raise ValueError(f"--floor must be at least 0, got {self.floor}")

    def _input_files(self):
        files = list(self.files().items())
        if self.extra_train and "train" in self.files():
            files.append(("train", self.extra_train))
        for split, path in files:
            for p in input_files(self.task, path, self.split_format(split), self.src_lang, self.tgt_lang):
                yield split, p

    def check_files(self):
        """Raises DataFormatError for a missing, unreadable or empty input file."""
        for _, p in self._input_files():
            check_exists(p)

    def input_paths(self) -> List[Tuple[str, str]]:
        """``(--split, file)`` for every file this corpus reads (translation: both sides), for the
        output rule (:func:`xlt_fairseq.data.outputs.check_outputs`)."""
        return [(f"--{split}", p) for split, p in self._input_files()]


def spec_fields() -> List[str]:
    return [f.name for f in fields(CorpusSpec)]


# ---- one source for the command line and the manifest ------------------------------------------------------------------


def _kind(f: dataclasses.Field) -> str:
    """``bool``, ``int``, ``float``, ``str``, ``list`` or ``map``: how a value of field ``f`` is read."""
    tp = f.type if not isinstance(f.type, str) else typing.get_type_hints(CorpusSpec)[f.name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        tp = args[0]
    origin = typing.get_origin(tp)
    if origin in (list, List):
        return "list"
    if origin in (dict, Dict):
        return "map"
    return {bool: "bool", int: "int", float: "float"}.get(tp, "str")


FIELD_KINDS: Dict[str, str] = {f.name: _kind(f) for f in fields(CorpusSpec)}


def _comma_list(text: str) -> List[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_spec_arguments(parser, task: Optional[str] = None, names: Optional[Sequence[str]] = None):
    """Adds an option for every CorpusSpec field that applies to ``task`` (any
    task when None, for tools that take ``--task``) and is set on the command
    line (the metadata's ``cli``), typed by the field; ``names`` restricts the
    fields (evaluation and prediction take the reading options only)."""
    for f in fields(CorpusSpec):
        meta = f.metadata
        if not meta.get("cli") or (task is not None and task not in meta.get("tasks", ())):
            continue
        if names is not None and f.name not in names:
            continue
        kind = FIELD_KINDS[f.name]
        flag = "--" + f.name.replace("_", "-")
        kwargs = {"help": meta["help"]}
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if kind == "bool":
            parser.add_argument(flag, action="store_true", **kwargs)
        elif kind == "map":
            parser.add_argument(flag, action="append", default=[], metavar="FROM=TO", **kwargs)
        elif kind == "list" and f.default is None:  # a closed set: one comma-separated value
            parser.add_argument(flag, type=_comma_list, **kwargs)
        elif kind == "list":
            parser.add_argument(flag, action="append", default=[], **kwargs)
        else:
            default = None if f.default is dataclasses.MISSING else f.default
            typ = {"int": int, "float": float, "str": str}[kind]
            if default is not None:
                kwargs["help"] += f" (default {default})"
            parser.add_argument(flag, type=typ, default=default, **kwargs)


def parse_label_map(items, path=None, line=None) -> Dict[str, str]:
    """``{"DATE": "O"}`` or ``["DATE=O", ...]`` (the command line's ``--map-label`` form) -> a dict."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items if isinstance(items, list) else [items]:
        src, eq, dst = str(item).partition("=")
        if not eq or not src.strip() or not dst.strip():
            message = f"label mapping {item!r} is not of the form FROM=TO (e.g. DATE=O)"
            raise DataFormatError(path, line, message) if path else ValueError(f"--map-label: {message}")
        out[src.strip()] = dst.strip()
    return out


def as_list(value, path, line, what) -> List[str]:
    if isinstance(value, str):
        return _comma_list(value)
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise DataFormatError(path, line, f"{what} must be a list or a comma-separated string, got {value!r}")


def coerce(path, line, name, value):
    """A manifest value checked and converted to the type of CorpusSpec field ``name``."""
    kind = FIELD_KINDS[name]
    if kind == "map":
        return parse_label_map(value, path, line)
    if kind == "list":
        return as_list(value, path, line, name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise DataFormatError(path, line, f"{name} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataFormatError(path, line, f"{name} must be an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataFormatError(path, line, f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataFormatError(path, line, f"{name} must be a string, got {value!r}")
    return str(value)


def resolve(path: str, base: str) -> str:
    """A manifest path relative to the manifest's folder."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
