# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Turns a user's files into binarised (task, language) folders of a data root
(layout in :mod:`xlt_fairseq.data.corpora`).

One corpus goes through: read (:mod:`.formats`) -> normalise (tag schemes and
label mapping, :mod:`.tags`; dropped labels) -> label set (train's, checked
against valid/test) -> scenario (:mod:`.scenarios`: subset of train, zero-shot)
-> encode and binarise in chunks (:mod:`.binarize`, optionally in worker
processes; chunks are merged in order, so the output does not depend on the
number of workers) -> ``meta.json`` with a summary of every split.

Nothing is half-written: every corpus is built in a temporary folder inside the
data root and moved into place when complete; :func:`prepare_many` builds all
corpora of an experiment in one staging folder and moves them in only when all
succeeded.
"""

import contextlib
import gc
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Sequence

from . import corpora
from .binarize import (
    DICT_FILE,
    SPM_FILE,
    IndexedWriter,
    PieceEncoder,
    encode_pair_chunk,
    encode_tagged_chunk,
    encode_text_chunk,
    file_md5,
)
from .formats import (
    DEFAULT_FORMATS,
    FORMATS,
    UNLABELLED_FORMATS,
    DataFormatError,
    check_exists,
    input_files,
    read_classification,
    read_conllu,
    read_tagged,
    read_text_lines,
    read_translation,
)
from .scenarios import DEFAULT_FLOOR, floor_warning, select_subset
from .tags import SCHEMES, TagError, entity_types, map_types, tag_set, to_iob2

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SUMMARY_MD = "prepare_summary.md"
SUMMARY_JSON = "prepare_summary.json"


# ---- what to prepare ----------------------------------------------------------------------------------------------


@dataclass
class CorpusSpec:
    """Everything that defines one corpus: the command line of
    ``scripts/preprocess.py`` and one entry of a manifest map onto these fields."""

    task: str
    lang: Optional[str] = None
    # task "tagging": the auxiliary task's name (its folder in the data root, e.g. pos)
    tagging_name: Optional[str] = None
    conllu_column: str = "upos"
    src_lang: Optional[str] = None
    tgt_lang: Optional[str] = None
    train: Optional[str] = None
    valid: Optional[str] = None
    test: Optional[str] = None
    format: Optional[str] = None
    # per-split formats (e.g. IWSLT: train.tags for train, XML for valid/test); default: ``format``
    train_format: Optional[str] = None
    valid_format: Optional[str] = None
    test_format: Optional[str] = None
    domain: str = "general"
    max_positions: int = 512
    # NER
    tag_scheme: str = "iob2"
    strict_tags: bool = False
    # NER: entity type -> type or O; sentiment: label -> label
    map_label: Dict[str, str] = field(default_factory=dict)
    drop_label: List[str] = field(default_factory=list)
    labels: Optional[List[str]] = None  # the closed label set (NER: entity types)
    # sentiment
    text_column: str = "text"
    label_column: str = "label"
    delimiter: str = ","
    marc_labels: str = "binary"
    include_title: bool = False
    # masked LM
    tokens_per_sample: int = 512
    # translation (training pairs only)
    max_length: Optional[int] = None
    length_ratio: Optional[float] = None
    # scenario (training split only)
    subsample: Optional[float] = None
    max_examples: Optional[int] = None
    seed: int = 1
    floor: int = DEFAULT_FLOOR
    tier: Optional[str] = None
    zero_shot: bool = False

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
        if self.task == "tagging":
            reserved = ("ner", "sentiment", "translation", "mlm", "adv", "tagging")
            if not self.tagging_name or not self.tagging_name.isidentifier() or self.tagging_name in reserved:
                raise ValueError(f"tagging needs --name, an identifier other than {', '.join(reserved)} (e.g. pos)")
        if self.task == "translation":
            if not (self.src_lang and self.tgt_lang):
                raise ValueError("translation needs --src-lang and --tgt-lang")
        elif not self.lang:
            raise ValueError(f"{self.task} needs --lang")
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
        if self.tag_scheme not in SCHEMES:
            raise ValueError(f"unknown --tag-scheme {self.tag_scheme!r} (choose from {', '.join(SCHEMES)})")
        if self.max_positions < 3 or self.tokens_per_sample < 3:
            raise ValueError("--max-positions and --tokens-per-sample must be at least 3")
        if self.subsample is not None and not 0 < self.subsample <= 1:
            raise ValueError(f"--subsample must be in (0, 1], got {self.subsample}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"--max-examples must be at least 1, got {self.max_examples}")
        if self.length_ratio is not None and self.length_ratio < 1:
            raise ValueError(f"--length-ratio must be at least 1, got {self.length_ratio}")

    def check_files(self):
        """Raises DataFormatError for a missing or empty input file."""
        for split, path in self.files().items():
            for p in input_files(self.task, path, self.split_format(split), self.src_lang, self.tgt_lang):
                check_exists(p)


# ---- data root: dictionary, checks, atomic corpus folders -----------------------------------------------------------


def check_data_root(destdir, encoder: PieceEncoder, replacing: Sequence[str] = ()):
    """A data root holds corpora of one vocabulary: its ``dict.txt`` and the
    checksums every corpus recorded must match the encoder directory's files."""
    dst = os.path.join(destdir, DICT_FILE)
    src = os.path.join(encoder.encoder_dir, DICT_FILE)
    if os.path.exists(dst) and file_md5(dst) != encoder.dict_md5:
        raise ValueError(
            f"{dst}: this data root was prepared with a different dictionary than {src}; "
            "use a new --destdir or the same --encoder-dir"
        )
    replacing = {os.path.abspath(p) for p in replacing}
    for task in corpora.TASKS:
        task_dir = os.path.join(destdir, task)
        if not os.path.isdir(task_dir):
            continue
        for key in sorted(os.listdir(task_dir)):
            path = os.path.join(task_dir, key)
            meta_path = os.path.join(path, corpora.META_FILE)
            if os.path.abspath(path) in replacing or not os.path.exists(meta_path):
                continue
            meta = corpora.read_meta(path)
            for what, mine, name in (("dict_md5", encoder.dict_md5, DICT_FILE), ("spm_md5", encoder.spm_md5, SPM_FILE)):
                if meta.get(what) not in (None, mine):
                    raise ValueError(
                        f"{meta_path}: corpus {task}/{key} was prepared with a different {name} than "
                        f"{os.path.join(encoder.encoder_dir, name)}; use a new --destdir or the same --encoder-dir"
                    )


def install_dictionary(destdir, encoder: PieceEncoder):
    dst = os.path.join(destdir, DICT_FILE)
    if not os.path.exists(dst):
        tmp = dst + f".tmp-{os.getpid()}"
        shutil.copyfile(os.path.join(encoder.encoder_dir, DICT_FILE), tmp)
        os.replace(tmp, dst)


def _makedirs(path) -> List[str]:
    """``os.makedirs`` that returns the folders it created (deepest last)."""
    created = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    for p in reversed(created):
        os.makedirs(p, exist_ok=True)
    return list(reversed(created))


def _remove_created(created: List[str]):
    for p in reversed(created):
        try:
            os.rmdir(p)  # only if still empty
        except OSError:
            break


def _replace_dir(src, final):
    """Moves folder ``src`` to ``final``, replacing what was there."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    old = None
    if os.path.exists(final):
        old = f"{final}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(src, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class _CorpusWriter:
    """Context manager: a temporary folder inside the data root that replaces
    ``DATA_BIN/<task>/<key>`` on success and disappears on failure (together with
    the data root itself if this call created it)."""

    def __init__(self, destdir, task, key, encoder: PieceEncoder):
        self.destdir, self.task, self.key, self.encoder = destdir, task, key, encoder
        self.final = corpora.corpus_dir(destdir, task, key)

    def __enter__(self):
        if os.path.isdir(self.destdir):
            check_data_root(self.destdir, self.encoder, replacing=[self.final])
        self.created = _makedirs(self.destdir)
        self.tmp = tempfile.mkdtemp(prefix=f".tmp-{self.task}-{self.key}-", dir=self.destdir)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            _remove_created(self.created)
            return False
        install_dictionary(self.destdir, self.encoder)
        _replace_dir(self.tmp, self.final)
        return False


# ---- worker processes ------------------------------------------------------------------------------------------------

_WORKER_ENCODER: Optional[PieceEncoder] = None


def _worker_init(encoder_dir):
    global _WORKER_ENCODER
    if _WORKER_ENCODER is None or _WORKER_ENCODER.encoder_dir != encoder_dir:
        _WORKER_ENCODER = PieceEncoder(encoder_dir)


def _tagged_job(encoder, chunk, label_index, max_pieces):
    return encode_tagged_chunk(
        encoder, [(tokens, [label_index[t] for t in tags]) for tokens, tags in chunk], max_pieces
    )


_JOBS = {
    "tagged": _tagged_job,
    "text": encode_text_chunk,
    "pairs": encode_pair_chunk,
}


def _worker_run(job):
    name, chunk, params = job
    return _JOBS[name](_WORKER_ENCODER, chunk, **params)


def _executor(workers: int):
    """A process pool; fork shares the parent's loaded encoder, elsewhere each worker loads its own.
    (concurrent.futures reports a worker that dies instead of waiting for it forever.)"""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(_WORKER_ENCODER.encoder_dir,)
    )


def _ordered(executor, fn, jobs):
    """``executor.map`` that cancels what is left when the caller stops (an error, a
    KeyboardInterrupt) and waits for running jobs, so no worker outlives the call."""
    try:
        yield from executor.map(fn, jobs)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _map_chunks(encoder: PieceEncoder, job: str, items: list, params: dict, workers: int):
    """Runs a chunk encoder over ``items`` and yields the chunk results in order."""
    if not items:
        return
    chunk_size = max(64, min(4000, math.ceil(len(items) / max(1, 4 * workers))))
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) == 1:
        for chunk in chunks:
            yield _JOBS[job](encoder, chunk, **params)
        return
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder
    yield from _ordered(_executor(min(workers, len(chunks))), _worker_run, ((job, chunk, params) for chunk in chunks))


def _binarise(tmp, split, encoder, job, items, params, workers, vocab_sizes: Dict[str, int]) -> Counter:
    """Encodes ``items`` chunk by chunk into ``tmp/split.<stream>.{bin,idx}``; returns summed counts and sizes."""
    writers = {name: IndexedWriter(os.path.join(tmp, f"{split}.{name}"), size) for name, size in vocab_sizes.items()}
    counts = Counter()
    for result in _map_chunks(encoder, job, items, params, workers):
        for name, (flat, sizes) in result["streams"].items():
            writers[name].add_flat(flat, sizes)
        counts.update(result["counts"])
    for name, w in writers.items():
        counts[f"items_{name}"] = w.finalize()
    return counts


# ---- reading and normalising ---------------------------------------------------------------------------------------


def _read_tagging(spec: CorpusSpec, path, fmt):
    sentences = read_tagged(path, fmt, tagged=True, lang=spec.lang if fmt == "panx" else None)
    allowed = set(spec.labels) - {"O"} if spec.labels is not None else None
    repaired = 0
    for s in sentences:
        try:
            tags, n = to_iob2(s.tags, spec.tag_scheme, spec.strict_tags)
        except TagError as e:
            raise DataFormatError(path, s.line + min(e.index, len(s.tokens) - 1), str(e)) from None
        repaired += n
        s.tags = map_types(tags, spec.map_label)
        if allowed is not None:
            for i, t in enumerate(s.tags):
                if t != "O" and t[2:] not in allowed:
                    raise DataFormatError(
                        path,
                        s.line + i,
                        f"tag {t!r} (after --map-label) is not in the label set ({', '.join(sorted(allowed))}); "
                        f"map it, e.g. --map-label {t[2:]}=O, or add {t[2:]} to --labels",
                    )
    return sentences, {"read": len(sentences), "repaired_i_start": repaired}


def _read_classification(spec: CorpusSpec, path, fmt):
    examples = read_classification(
        path,
        fmt,
        text_column=spec.text_column,
        label_column=spec.label_column,
        delimiter=spec.delimiter,
        marc_labels=spec.marc_labels,
        include_title=spec.include_title,
        language=spec.lang,
    )
    drop = set(spec.drop_label)
    if fmt == "marc-jsonl" and spec.marc_labels == "binary":
        drop.add("neutral")
    allowed = set(spec.labels) if spec.labels is not None else None
    kept, dropped = [], Counter()
    for x in examples:
        original = x.label
        x.label = spec.map_label.get(x.label, x.label)
        if x.label in drop or original in drop:
            dropped[f"label {x.label}"] += 1
            continue
        if allowed is not None and x.label not in allowed:
            raise DataFormatError(
                path, x.line, f"label {x.label!r} is not in the label set ({', '.join(sorted(allowed))})"
            )
        kept.append(x)
    if not kept:
        raise DataFormatError(path, None, f"no examples left after dropping the labels {', '.join(sorted(drop))}")
    return kept, {"read": len(examples), "dropped": dict(dropped)}


def _read_aux_tagging(spec: CorpusSpec, path, fmt):
    if fmt == "conllu":
        sentences = read_conllu(path, spec.conllu_column)
    else:
        sentences = read_tagged(path, fmt, tagged=True)
    for s in sentences:
        s.tags = [spec.map_label.get(t, t) for t in s.tags]
    return sentences, {"read": len(sentences)}


def _read_split(spec: CorpusSpec, split, path):
    fmt = spec.split_format(split)
    if spec.task == "ner":
        return _read_tagging(spec, path, fmt)
    if spec.task == "tagging":
        return _read_aux_tagging(spec, path, fmt)
    if spec.task == "sentiment":
        return _read_classification(spec, path, fmt)
    if spec.task == "translation":
        pairs = read_translation(path, spec.src_lang, spec.tgt_lang, fmt)
        return pairs, {"read": len(pairs)}
    lines = read_text_lines(path)
    return lines, {"read": len(lines)}


def read_split(spec: CorpusSpec, split: str, path: str):
    """One split of a corpus, read and normalised exactly as preprocessing reads it
    (tag schemes, label maps): ``(examples, stats)``. Evaluation uses it too."""
    return _read_split(spec, split, path)


def _label_set(spec: CorpusSpec, parsed: dict) -> List[str]:
    """The corpus' labels: ``--labels`` when given, else those of the training
    split (all splits for an evaluation-only corpus)."""
    source = [parsed["train"]] if "train" in parsed else list(parsed.values())
    if spec.task == "ner":
        if spec.labels is not None:
            return tag_set(set(spec.labels) - {"O"})
        return tag_set(entity_types(t for examples in source for s in examples for t in s.tags))
    if spec.labels is not None:
        return corpora.union_labels([list(spec.labels)])
    if spec.task == "tagging":
        return corpora.union_labels([[t for examples in source for x in examples for t in x.tags]])
    return corpora.union_labels([[x.label for examples in source for x in examples]])


def _check_eval_labels(spec: CorpusSpec, parsed: dict, files: dict, labels: List[str]):
    if "train" not in parsed:
        return
    known = set(labels)
    for split, examples in parsed.items():
        if split == "train":
            continue
        for x in examples:
            for i, label in enumerate(x.tags if spec.task in ("ner", "tagging") else [x.label]):
                if label not in known:
                    raise DataFormatError(
                        files[split],
                        x.line + i,
                        f"{'tag' if spec.task in ('ner', 'tagging') else 'label'} {label!r} does not occur in the "
                        f"training data {files['train']} (its labels: {', '.join(labels)})",
                    )


def _subsample(spec: CorpusSpec, examples: list, stats: dict) -> list:
    if spec.subsample is None and spec.max_examples is None:
        return examples
    keep = select_subset(len(examples), spec.subsample, spec.max_examples, spec.seed)
    stats["subsample"] = {
        "fraction": spec.subsample,
        "max_examples": spec.max_examples,
        "seed": spec.seed,
        "tier": spec.tier,
        "from": len(examples),
        "kept": len(keep),
    }
    warning = floor_warning(len(keep), len(examples), spec.floor, spec.name)
    if warning:
        logger.warning(warning)
        stats.setdefault("warnings", []).append(warning)
    return [examples[i] for i in keep]


# ---- one corpus ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused():
    # parsing creates millions of small lists and strings and no reference cycles; the
    # cyclic collector would traverse them all again and again (half the parsing time)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def prepare_corpus(spec: CorpusSpec, encoder, destdir, workers: int = 1) -> dict:
    """Reads, checks, selects and binarises one corpus into ``destdir/<task>/<key>``;
    returns its ``meta.json`` content. ``encoder``: a PieceEncoder or an encoder directory."""
    with _gc_paused():
        return _prepare_corpus(spec, encoder, destdir, workers)


def _prepare_corpus(spec: CorpusSpec, encoder, destdir, workers: int) -> dict:
    spec.check()
    spec.check_files()
    if not isinstance(encoder, PieceEncoder):
        encoder = PieceEncoder(encoder)
    files = spec.files()
    if not files:
        raise ValueError(f"{spec.name}: nothing left to prepare (zero-shot target without --valid/--test)")

    parsed, stats = {}, {}
    for split, path in files.items():
        parsed[split], stats[split] = _read_split(spec, split, path)
        stats[split] = {"source": os.path.abspath(path), "format": spec.split_format(split), **stats[split]}

    labels = None
    if spec.task in ("ner", "sentiment", "tagging"):
        labels = _label_set(spec, parsed)
        _check_eval_labels(spec, parsed, files, labels)
    if "train" in parsed:
        parsed["train"] = _subsample(spec, parsed["train"], stats["train"])

    meta_extra = {"format": spec.fmt, "scenario": _scenario_meta(spec)}
    if spec.task == "translation":
        meta_extra.update(src_lang=spec.src_lang, tgt_lang=spec.tgt_lang)
    else:
        meta_extra["lang"] = spec.lang
    if labels is not None:
        meta_extra["labels"] = labels
    if spec.task == "mlm":
        meta_extra["tokens_per_sample"] = spec.tokens_per_sample
    if spec.task == "tagging":
        meta_extra["kind"] = "tagging"
    meta = _base_meta(spec.folder, spec.key, encoder, spec.domain, meta_extra)
    vocab = len(encoder.dictionary)
    with _CorpusWriter(destdir, spec.folder, spec.key, encoder) as tmp:
        for split, examples in parsed.items():
            s = stats[split]
            if spec.task in ("ner", "tagging"):
                label_index = {label: i for i, label in enumerate(labels)}
                items = [(x.tokens, x.tags) for x in examples]
                params = {"label_index": label_index, "max_pieces": spec.max_positions - 2}
                c = _binarise(
                    tmp, split, encoder, "tagged", items, params, workers, {"input": vocab, "label": len(labels) + 1}
                )
                s.update(sentences=len(examples), examples=c["items_input"], split_into_windows=c["split"])
                if c["split"]:
                    logger.warning(
                        f"{files[split]}: {c['split']} sentence(s) longer than the positions split into windows"
                    )
            elif spec.task == "sentiment":
                label_index = {label: i for i, label in enumerate(labels)}
                params = {"max_pieces": spec.max_positions - 2, "split_long": False}
                c = _binarise(
                    tmp, split, encoder, "text", [x.text for x in examples], params, workers, {"input": vocab}
                )
                w = IndexedWriter(os.path.join(tmp, f"{split}.label"), len(labels) + 1)
                w.add_flat([label_index[x.label] + 1 for x in examples], [1] * len(examples))
                w.finalize()
                s.update(examples=c["items_input"], truncated=c["long"])
                if c["long"]:
                    logger.warning(f"{files[split]}: {c['long']} text(s) truncated to {spec.max_positions - 2} pieces")
            elif spec.task == "translation":
                params = {
                    "max_source": spec.max_positions - 2,
                    "max_target": spec.max_positions - 1,
                    "filtering": split == "train",
                    "max_length": spec.max_length or 0,
                    "length_ratio": spec.length_ratio or 0.0,
                }
                c = _binarise(tmp, split, encoder, "pairs", examples, params, workers, {"src": vocab, "tgt": vocab})
                dropped = {
                    reason: c[k]
                    for k, reason in (
                        ("too_long", "longer than the positions"),
                        ("max_length", f"longer than --max-length {spec.max_length}"),
                        ("length_ratio", f"length ratio above {spec.length_ratio}"),
                    )
                    if c[k]
                }
                s.update(
                    examples=c["items_src"], dropped=dropped, dropped_too_long=c["too_long"], truncated=c["truncated"]
                )
            else:
                params = {"max_pieces": spec.tokens_per_sample - 2, "split_long": True}
                c = _binarise(tmp, split, encoder, "text", examples, params, workers, {"input": vocab})
                s.update(examples=c["items_input"], split_long_lines=c["long"])
            meta["splits"][split] = s
        corpora.write_labels(tmp, labels or [])
        corpora.write_meta(tmp, meta)
    logger.info(f"{spec.name}: " + ", ".join(f"{k} {v['examples']}" for k, v in meta["splits"].items()))
    return meta


def _scenario_meta(spec: CorpusSpec) -> dict:
    out = {"seed": spec.seed}
    for name in ("subsample", "max_examples", "tier"):
        if getattr(spec, name) is not None:
            out[name] = getattr(spec, name)
    if spec.zero_shot:
        out["zero_shot"] = True
        if spec.train:
            out["train_left_out"] = os.path.abspath(spec.train)
    return out


def _base_meta(task, key, encoder, domain, extra=None):
    meta = {
        "task": task,
        "key": key,
        "domain": domain,
        "encoder_dir": os.path.abspath(encoder.encoder_dir),
        "dict_md5": encoder.dict_md5,
        "spm_md5": encoder.spm_md5,
        "splits": {},
    }
    meta.update(extra or {})
    return meta


# ---- many corpora: one experiment ------------------------------------------------------------------------------------


def _prepare_in_worker(job):
    spec, encoder_dir, staging = job
    _worker_init(encoder_dir)
    return prepare_corpus(spec, _WORKER_ENCODER, staging, workers=1)


def prepare_many(
    specs: Sequence[CorpusSpec], encoder_dir, destdir, workers: int = 1, progress: bool = False, extra_summary=None
) -> List[dict]:
    """Prepares every corpus of an experiment, all or nothing: corpora are built
    in a staging folder and moved into ``destdir`` only when every one succeeded
    (a failure leaves ``destdir`` as it was). With ``workers > 1`` corpora are
    prepared in parallel processes. Writes the summary table
    (``prepare_summary.md`` and ``.json``) next to the data."""
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"corpus listed twice: {', '.join(dup)}")
    for spec in specs:
        spec.check()
        spec.check_files()
    encoder = PieceEncoder(encoder_dir)
    finals = [corpora.corpus_dir(destdir, s.task, s.key) for s in specs]
    if os.path.isdir(destdir):
        check_data_root(destdir, encoder, replacing=finals)
    created = _makedirs(destdir)
    staging = tempfile.mkdtemp(prefix=".tmp-prepare-", dir=destdir)
    try:
        install_dictionary(staging, encoder)
        metas = list(_run_all(specs, encoder, staging, workers, progress))
        install_dictionary(destdir, encoder)
        for spec, final in zip(specs, finals):
            _replace_dir(corpora.corpus_dir(staging, spec.task, spec.key), final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_created(created)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    write_summary(destdir, metas, extra_summary)
    return metas


def _run_all(specs, encoder, staging, workers, progress):
    from tqdm import tqdm

    bar = tqdm(total=len(specs), desc="preparing", unit="corpus", disable=not progress)
    try:
        if workers <= 1 or len(specs) == 1:
            for spec in specs:
                bar.set_postfix_str(spec.name)
                yield prepare_corpus(spec, encoder, staging, workers=max(1, workers))
                bar.update()
            return
        global _WORKER_ENCODER
        _WORKER_ENCODER = encoder
        jobs = [(spec, encoder.encoder_dir, staging) for spec in specs]
        for spec, meta in zip(specs, _ordered(_executor(min(workers, len(specs))), _prepare_in_worker, jobs)):
            bar.set_postfix_str(spec.name)
            bar.update()
            yield meta
    finally:
        bar.close()


# ---- summary ---------------------------------------------------------------------------------------------------------


def summary_rows(metas: Sequence[dict]) -> List[dict]:
    """One row per corpus and split: examples read, dropped (and why), kept, written."""
    rows = []
    for meta in metas:
        for split, s in meta["splits"].items():
            sub = s.get("subsample")
            rows.append(
                {
                    "task": meta["task"],
                    "corpus": meta["key"],
                    "split": split,
                    "format": s.get("format", meta.get("format")),
                    "read": s.get("read"),
                    "dropped": dict(s.get("dropped") or {}),
                    "subset": f"{sub['kept']}/{sub['from']}" if sub else "",
                    "tier": (sub or {}).get("tier") or "",
                    "kept": s.get("sentences", s["examples"]) if meta["task"] == "ner" else s["examples"],
                    "examples": s["examples"],
                    "windows": s.get("split_into_windows", 0) + s.get("split_long_lines", 0),
                    "truncated": s.get("truncated", 0),
                    "repaired_i_start": s.get("repaired_i_start", 0),
                    "warnings": list(s.get("warnings", [])),
                }
            )
        if meta.get("scenario", {}).get("zero_shot"):
            rows.append(
                {
                    "task": meta["task"],
                    "corpus": meta["key"],
                    "split": "train",
                    "format": meta.get("format"),
                    "read": 0,
                    "dropped": {},
                    "subset": "zero-shot: left out",
                    "tier": "",
                    "kept": 0,
                    "examples": 0,
                    "windows": 0,
                    "truncated": 0,
                    "repaired_i_start": 0,
                    "warnings": [],
                }
            )
    return rows


def format_summary(rows: Sequence[dict]) -> str:
    """The summary as a markdown table."""
    head = [
        "task",
        "corpus",
        "split",
        "format",
        "read",
        "dropped (why)",
        "subset",
        "kept",
        "examples",
        "windows",
        "truncated",
        "repaired I-",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(r["dropped"].items())) or "0"
        subset = " ".join(x for x in (r["subset"], f"({r['tier']})" if r["tier"] else "") if x)
        cells = [
            r["task"],
            r["corpus"],
            r["split"],
            str(r["format"]),
            str(r["read"]),
            dropped,
            subset,
            str(r["kept"]),
            str(r["examples"]),
            str(r["windows"]),
            str(r["truncated"]),
            str(r["repaired_i_start"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    warnings = [w for r in rows for w in r["warnings"]]
    if warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def write_summary(destdir, metas: Sequence[dict], extra: Optional[dict] = None):
    rows = summary_rows(metas)
    with open(os.path.join(destdir, SUMMARY_JSON), "w", encoding="utf-8") as f:
        json.dump({**(extra or {}), "rows": rows}, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(destdir, SUMMARY_MD), "w", encoding="utf-8") as f:
        f.write(format_summary(rows))


def spec_fields() -> List[str]:
    return [f.name for f in fields(CorpusSpec)]


def spec_to_dict(spec: CorpusSpec) -> dict:
    return asdict(spec)


# ---- the original per-task entry points (kept for callers of the first release) -----------------------------------


def prepare_tagging(task, lang, files: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512):
    """Token tagging: NER (``task="ner"``) or an auxiliary tagging task named
    ``task`` (e.g. ``pos``), from ``token<TAB>tag`` files."""
    if task == "ner":
        spec = CorpusSpec(task, lang=lang, domain=domain, max_positions=max_positions, **files)
    else:
        spec = CorpusSpec(
            "tagging", tagging_name=task, format="conll", lang=lang, domain=domain, max_positions=max_positions, **files
        )
    return prepare_corpus(spec, encoder_dir, destdir)


def prepare_classification(
    task, lang, files: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512
):
    """Sentence classification (sentiment): ``label<TAB>text`` files."""
    return prepare_corpus(
        CorpusSpec(task, lang=lang, domain=domain, max_positions=max_positions, **files), encoder_dir, destdir
    )


def prepare_mlm(lang, files: Dict[str, str], encoder_dir, destdir, domain="general") -> dict:
    """Unlabelled text, one text per line."""
    return prepare_corpus(CorpusSpec("mlm", lang=lang, domain=domain, **files), encoder_dir, destdir)


def prepare_translation(
    src_lang, tgt_lang, prefixes: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512
):
    """Parallel text ``PREFIX.SRC`` / ``PREFIX.TGT``."""
    spec = CorpusSpec(
        "translation", src_lang=src_lang, tgt_lang=tgt_lang, domain=domain, max_positions=max_positions, **prefixes
    )
    return prepare_corpus(spec, encoder_dir, destdir)
