# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Turns a user's files into binarised (task, language) folders of a data root
(layout in :mod:`xlt_fairseq.data.corpora`).

One corpus goes through: read and normalise (:mod:`.readers`) -> label set ->
scenario subset -> encode and binarise in chunks (:mod:`.binarize`, optionally
in worker processes, :mod:`.pool`; chunks are merged in order, so the output
does not depend on the number of workers) -> ``meta.json`` with a summary of
every split.

Nothing is half-written (:mod:`.staging`): every corpus is built in a staging
folder inside the data root and moved into place when complete, under a lock
that also guards the root's dictionary; :func:`prepare_many` builds all corpora
of an experiment in one staging folder and moves them in only when all
succeeded. A failure, Ctrl-C, SIGTERM or SIGHUP leaves the root as it was.
"""

import contextlib
import gc
import logging
import os
from collections import Counter
from typing import Dict, List, Sequence

from . import corpora
from .binarize import IndexedWriter, PieceEncoder
from .formats import DataFormatError
from .pool import executor, map_chunks, ordered, worker_encoder
from .readers import check_eval_labels, label_set, read_split, subsample
from .scenarios import DEFAULT_FLOOR  # noqa: F401  (imported from here by callers)
from .spec import SPLITS, CorpusSpec, spec_fields  # noqa: F401
from .outputs import check_outputs
from .staging import StagedRoot, check_data_root, install_dictionary, os_errors, signals_as_exceptions  # noqa: F401
from .summary import SUMMARY_JSON, SUMMARY_MD, format_summary, summary_rows, write_summary  # noqa: F401

logger = logging.getLogger(__name__)


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


# ---- one corpus ------------------------------------------------------------------------------------------------------


def _binarise(tmp, split, encoder, job, items, params, workers, vocab_sizes: Dict[str, int]) -> Counter:
    """Encodes ``items`` chunk by chunk into ``tmp/split.<stream>.{bin,idx}``; returns summed counts and sizes."""
    with os_errors(tmp):
        writers = {n: IndexedWriter(os.path.join(tmp, f"{split}.{n}"), size) for n, size in vocab_sizes.items()}
        counts = Counter()
        for result in map_chunks(encoder, job, items, params, workers):
            for name, (flat, sizes) in result["streams"].items():
                writers[name].add_flat(flat, sizes)
            counts.update(result["counts"])
        for name, w in writers.items():
            counts[f"items_{name}"] = w.finalize()
    return counts


def _read(spec: CorpusSpec):
    """Reads and checks every split: ``(parsed, stats, labels)``."""
    files = spec.files()
    if not files:
        raise ValueError(f"{spec.name}: nothing left to prepare (zero-shot target without --valid/--test)")
    parsed, stats = {}, {}
    for split, path in files.items():
        parsed[split], stats[split] = read_split(spec, split, path)
        stats[split] = {"source": os.path.abspath(path), "format": spec.split_format(split), **stats[split]}
    labels = None
    if spec.task in ("ner", "sentiment", "tagging"):
        labels = label_set(spec, parsed, files)
        check_eval_labels(spec, parsed, files, labels)
    if "train" in parsed:
        parsed["train"] = subsample(spec, parsed["train"], stats["train"])
        if spec.extra_train:
            parsed["train"] = parsed["train"] + _read_extra(spec, labels, stats["train"])
    return parsed, stats, labels


def _read_extra(spec: CorpusSpec, labels, stats: dict) -> list:
    """The examples of ``extra_train`` (after the subset, never subsampled); their labels must be the corpus'."""
    examples, extra = read_split(spec, "train", spec.extra_train)
    files = {"train": spec.train, "extra_train": spec.extra_train}
    check_eval_labels(spec, {"train": [], "extra_train": examples}, files, labels)
    stats["extra"] = {"source": os.path.abspath(spec.extra_train), **extra}
    return examples


def _write_split(spec: CorpusSpec, encoder, tmp, split, examples, labels, workers, s: dict, source: str) -> dict:
    vocab = len(encoder.dictionary)
    if spec.task in ("ner", "tagging"):
        label_index = {label: i for i, label in enumerate(labels)}
        items = [(x.tokens, x.tags) for x in examples]
        params = {"label_index": label_index, "max_pieces": spec.max_positions - 2}
        c = _binarise(tmp, split, encoder, "tagged", items, params, workers, {"input": vocab, "label": len(labels) + 1})
        s.update(sentences=len(examples), examples=c["items_input"], split_into_windows=c["split"])
        if c["split"]:
            logger.warning(f"{source}: {c['split']} sentence(s) longer than the positions split into windows")
    elif spec.task == "sentiment":
        label_index = {label: i for i, label in enumerate(labels)}
        params = {"max_pieces": spec.max_positions - 2, "split_long": False}
        c = _binarise(tmp, split, encoder, "text", [x.text for x in examples], params, workers, {"input": vocab})
        with os_errors(tmp):
            w = IndexedWriter(os.path.join(tmp, f"{split}.label"), len(labels) + 1)
            w.add_flat([label_index[x.label] + 1 for x in examples], [1] * len(examples))
            w.finalize()
        s.update(examples=c["items_input"], truncated=c["long"])
        if c["long"]:
            logger.warning(f"{source}: {c['long']} text(s) truncated to {spec.max_positions - 2} pieces")
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
        s.update(examples=c["items_src"], dropped=dropped, dropped_too_long=c["too_long"], truncated=c["truncated"])
    else:
        params = {"max_pieces": spec.tokens_per_sample - 2, "split_long": True}
        c = _binarise(tmp, split, encoder, "text", examples, params, workers, {"input": vocab})
        s.update(examples=c["items_input"], split_long_lines=c["long"])
    if not s["examples"]:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(s.get("dropped", {}).items()))
        raise DataFormatError(
            source, None, f"no {split} examples left to write" + (f" (dropped: {why})" if why else "")
        )
    return s


def build_corpus(spec: CorpusSpec, encoder: PieceEncoder, out_dir, workers: int = 1, read=None) -> dict:
    """Reads (unless ``read`` holds what :func:`_read` returned), checks, selects
    and binarises one corpus into the folder ``out_dir`` (created; the caller
    stages and moves it); returns its meta."""
    parsed, stats, labels = read or _read(spec)
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
    with os_errors(out_dir):
        os.makedirs(out_dir, exist_ok=True)
    files = spec.files()
    for split, examples in parsed.items():
        meta["splits"][split] = _write_split(
            spec, encoder, out_dir, split, examples, labels, workers, stats[split], files[split]
        )
    with os_errors(out_dir):
        corpora.write_labels(out_dir, labels or [])
        corpora.write_meta(out_dir, meta)
    logger.info(f"{spec.name}: " + ", ".join(f"{k} {v['examples']}" for k, v in meta["splits"].items()))
    return meta


def prepare_corpus(spec: CorpusSpec, encoder, destdir, workers: int = 1) -> dict:
    """Reads, checks, selects and binarises one corpus into ``destdir/<task>/<key>``;
    returns its ``meta.json`` content. ``encoder``: a PieceEncoder or an encoder directory."""
    spec.check()
    spec.check_files()
    encoder_dir = encoder.encoder_dir if isinstance(encoder, PieceEncoder) else encoder
    inputs = spec.input_paths() + [("--encoder-dir", encoder_dir)]
    check_outputs([("--destdir", destdir)], inputs)  # before any work
    if not isinstance(encoder, PieceEncoder):
        encoder = PieceEncoder(encoder)
    final = corpora.corpus_dir(destdir, spec.folder, spec.key)
    with signals_as_exceptions(), _gc_paused():
        read = _read(spec)  # bad data stops here, before the data root is touched
        staged = StagedRoot(destdir, encoder, [final], label=f"{spec.folder}-{spec.key}", inputs=inputs)
        with staged as tmp:
            out = os.path.join(tmp, "corpus")
            meta = build_corpus(spec, encoder, out, workers, read)
            staged.commit([(out, final)])
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


def _build_in_worker(job):
    spec, encoder_dir, out_dir = job
    with _gc_paused():
        return build_corpus(spec, worker_encoder(encoder_dir), out_dir, workers=1)


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
    inputs = [p for s in specs for p in s.input_paths()] + [("--encoder-dir", encoder_dir)]
    check_outputs([("--destdir", destdir)], inputs)  # before any work
    encoder = PieceEncoder(encoder_dir)
    finals = [corpora.corpus_dir(destdir, s.folder, s.key) for s in specs]
    with signals_as_exceptions():
        staged = StagedRoot(destdir, encoder, finals, label="prepare", inputs=inputs)
        with staged as staging:
            outs = [corpora.corpus_dir(staging, s.folder, s.key) for s in specs]
            metas = list(_run_all(specs, encoder, outs, workers, progress))
            staged.commit(list(zip(outs, finals)))
    # after the commit: an interruption from here on no longer means "nothing was written"
    write_summary(destdir, metas, extra_summary)
    return metas


def _run_all(specs, encoder, outs, workers, progress):
    from tqdm import tqdm

    bar = tqdm(total=len(specs), desc="preparing", unit="corpus", disable=not progress)
    try:
        if workers <= 1 or len(specs) == 1:
            for spec, out in zip(specs, outs):
                bar.set_postfix_str(spec.name)
                with _gc_paused():
                    yield build_corpus(spec, encoder, out, workers=max(1, workers))
                bar.update()
            return
        jobs = [(spec, encoder.encoder_dir, out) for spec, out in zip(specs, outs)]
        pool = executor(encoder, min(workers, len(specs)))
        for spec, meta in zip(specs, ordered(pool, _build_in_worker, jobs)):
            bar.set_postfix_str(spec.name)
            bar.update()
            yield meta
    finally:
        bar.close()


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
