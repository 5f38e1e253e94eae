# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Turns parsed corpora into binarised (task, language) folders of a data root
(layout in :mod:`xlt_fairseq.data.corpora`). Every corpus is written to a
temporary folder and moved into place only when it is complete."""

import logging
import os
import shutil
import tempfile
from typing import Dict

from . import corpora
from .binarize import DICT_FILE, PieceEncoder, align_tags, file_md5, write_indexed
from .formats import DataFormatError, read_conll, read_labelled_text, read_parallel, read_text_lines

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


class _CorpusWriter:
    """Context manager: a temporary folder inside the data root that replaces
    ``DATA_BIN/<task>/<key>`` on success and disappears on failure."""

    def __init__(self, destdir, task, key, encoder: PieceEncoder):
        self.destdir, self.task, self.key, self.encoder = destdir, task, key, encoder
        self.final = corpora.corpus_dir(destdir, task, key)

    def __enter__(self):
        os.makedirs(self.destdir, exist_ok=True)
        _check_or_install_dictionary(self.destdir, self.encoder)
        self.tmp = tempfile.mkdtemp(prefix=f".tmp-{self.task}-{self.key}-", dir=self.destdir)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        os.makedirs(os.path.dirname(self.final), exist_ok=True)
        old = None
        if os.path.exists(self.final):
            old = self.final + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.final, old)
        os.rename(self.tmp, self.final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return False


def _check_or_install_dictionary(destdir, encoder: PieceEncoder):
    """All corpora of a data root share the encoder's dictionary."""
    src = os.path.join(encoder.encoder_dir, DICT_FILE)
    dst = os.path.join(destdir, DICT_FILE)
    if os.path.exists(dst):
        if file_md5(dst) != encoder.dict_md5:
            raise ValueError(
                f"{dst}: this data root was prepared with a different dictionary than {src}; "
                "use a new --destdir or the same --encoder-dir"
            )
        return
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


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


def _label_order(labels):
    return corpora.union_labels([list(labels)])


def _check_labels(path, items, known, what="label"):
    for line, label in items:
        if label not in known:
            raise DataFormatError(
                path, line, f"{what} {label!r} does not occur in the training data (known: {', '.join(sorted(known))})"
            )


def prepare_tagging(
    task, lang, files: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512
) -> dict:
    """Token tagging (NER, POS): ``token<TAB>tag`` files. Labels attach to each
    word's first piece; a sentence longer than the encoder's positions is split
    into windows at word boundaries, never truncated."""
    encoder = PieceEncoder(encoder_dir)
    parsed = {split: read_conll(path) for split, path in files.items() if path}
    if not parsed:
        raise ValueError(f"{task}/{lang}: no input files given")
    label_source = "train" if "train" in parsed else next(iter(parsed))
    labels = _label_order({t for s in parsed[label_source] for t in s.tags})
    if "train" not in parsed:  # zero-shot corpus: its own evaluation labels
        labels = _label_order({t for sents in parsed.values() for s in sents for t in s.tags})
    label_index = {l: i for i, l in enumerate(labels)}
    max_pieces = max_positions - 2  # <s> and </s>
    meta = _base_meta(task, lang, encoder, domain, {"lang": lang, "labels": labels})
    with _CorpusWriter(destdir, task, lang, encoder) as tmp:
        for split, sentences in parsed.items():
            path = files[split]
            _check_labels(path, [(s.line + i, t) for s in sentences for i, t in enumerate(s.tags)], label_index, "tag")
            inputs, targets = [], []
            n_split = 0
            for s in sentences:
                windows = _windows(s, encoder, max_pieces)
                n_split += len(windows) > 1
                for ids, firsts, tags in windows:
                    inputs.append(ids + [encoder.dictionary.eos()])
                    targets.append(align_tags(len(ids), firsts, [label_index[t] for t in tags]) + [0])
            write_indexed(os.path.join(tmp, f"{split}.input"), inputs, len(encoder.dictionary))
            write_indexed(os.path.join(tmp, f"{split}.label"), targets, len(labels) + 1)
            meta["splits"][split] = {
                "source": os.path.abspath(path),
                "sentences": len(sentences),
                "examples": len(inputs),
                "split_into_windows": n_split,
            }
            if n_split:
                logger.warning(f"{path}: {n_split} sentence(s) longer than {max_pieces} pieces split into windows")
        corpora.write_labels(tmp, labels)
        corpora.write_meta(tmp, meta)
    return meta


def _word_ids(sentence, encoder, max_pieces):
    # a single word longer than a window keeps its first pieces (its label sits on the first)
    return [encoder.encode_word(w)[:max_pieces] for w in sentence.tokens]


def _windows(sentence, encoder, max_pieces):
    """Splits a sentence at word boundaries into windows of at most
    ``max_pieces`` pieces; yields (ids, first-piece positions, tags)."""
    windows = []
    ids, firsts, tags = [], [], []
    for w_ids, tag in zip(_word_ids(sentence, encoder, max_pieces), sentence.tags):
        if ids and len(ids) + len(w_ids) > max_pieces:
            windows.append((ids, firsts, tags))
            ids, firsts, tags = [], [], []
        firsts.append(len(ids))
        ids = ids + w_ids
        tags.append(tag)
    windows.append((ids, firsts, tags))
    return windows


def prepare_classification(
    task, lang, files: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512
) -> dict:
    """Sentence classification (sentiment): ``label<TAB>text`` files. Texts
    longer than the encoder's positions are truncated and counted."""
    encoder = PieceEncoder(encoder_dir)
    parsed = {split: read_labelled_text(path) for split, path in files.items() if path}
    if not parsed:
        raise ValueError(f"{task}/{lang}: no input files given")
    source = parsed["train"] if "train" in parsed else [x for v in parsed.values() for x in v]
    labels = _label_order({x.label for x in source})
    label_index = {l: i for i, l in enumerate(labels)}
    max_pieces = max_positions - 2
    meta = _base_meta(task, lang, encoder, domain, {"lang": lang, "labels": labels})
    with _CorpusWriter(destdir, task, lang, encoder) as tmp:
        for split, examples in parsed.items():
            path = files[split]
            _check_labels(path, [(x.line, x.label) for x in examples], label_index)
            inputs, truncated = [], 0
            for x in examples:
                ids = encoder.encode(x.text)
                if len(ids) > max_pieces:
                    ids, truncated = ids[:max_pieces], truncated + 1
                inputs.append(ids + [encoder.dictionary.eos()])
            write_indexed(os.path.join(tmp, f"{split}.input"), inputs, len(encoder.dictionary))
            write_indexed(
                os.path.join(tmp, f"{split}.label"), ([label_index[x.label] + 1] for x in examples), len(labels) + 1
            )
            meta["splits"][split] = {"source": os.path.abspath(path), "examples": len(inputs), "truncated": truncated}
            if truncated:
                logger.warning(f"{path}: {truncated} text(s) truncated to {max_pieces} pieces")
        corpora.write_labels(tmp, labels)
        corpora.write_meta(tmp, meta)
    return meta


def prepare_mlm(lang, files: Dict[str, str], encoder_dir, destdir, domain="general") -> dict:
    """Unlabelled text, one text per line (blocked into samples at load time)."""
    encoder = PieceEncoder(encoder_dir)
    parsed = {split: read_text_lines(path) for split, path in files.items() if path}
    if "train" not in parsed:
        raise ValueError(f"mlm/{lang}: --train is required")
    meta = _base_meta("mlm", lang, encoder, domain, {"lang": lang})
    with _CorpusWriter(destdir, "mlm", lang, encoder) as tmp:
        for split, lines in parsed.items():
            eos = encoder.dictionary.eos()
            n = write_indexed(
                os.path.join(tmp, f"{split}.input"), (encoder.encode(t) + [eos] for t in lines), len(encoder.dictionary)
            )
            meta["splits"][split] = {"source": os.path.abspath(files[split]), "examples": n}
        corpora.write_labels(tmp, [])
        corpora.write_meta(tmp, meta)
    return meta


def prepare_translation(
    src_lang, tgt_lang, prefixes: Dict[str, str], encoder_dir, destdir, domain="general", max_positions=512
) -> dict:
    """Parallel text ``PREFIX.SRC`` / ``PREFIX.TGT``. Training pairs longer than
    the model's positions are dropped and counted; evaluation pairs are kept."""
    encoder = PieceEncoder(encoder_dir)
    key = f"{src_lang}-{tgt_lang}"
    parsed = {split: read_parallel(prefix, src_lang, tgt_lang) for split, prefix in prefixes.items() if prefix}
    if not parsed:
        raise ValueError(f"translation/{key}: no input files given")
    eos = encoder.dictionary.eos()
    meta = _base_meta("translation", key, encoder, domain, {"src_lang": src_lang, "tgt_lang": tgt_lang})
    with _CorpusWriter(destdir, "translation", key, encoder) as tmp:
        for split, pairs in parsed.items():
            src, tgt, dropped, truncated = [], [], 0, 0
            for s, t in pairs:
                s_ids, t_ids = encoder.encode(s), encoder.encode(t)
                if len(s_ids) > max_positions - 2 or len(t_ids) > max_positions - 1:
                    if split == "train":
                        dropped += 1
                        continue
                    s_ids, t_ids = s_ids[: max_positions - 2], t_ids[: max_positions - 1]
                    truncated += 1
                src.append(s_ids + [eos])
                tgt.append(t_ids + [eos])
            write_indexed(os.path.join(tmp, f"{split}.src"), src, len(encoder.dictionary))
            write_indexed(os.path.join(tmp, f"{split}.tgt"), tgt, len(encoder.dictionary))
            meta["splits"][split] = {
                "source": os.path.abspath(prefixes[split]),
                "examples": len(src),
                "dropped_too_long": dropped,
                "truncated": truncated,
            }
        corpora.write_labels(tmp, [])
        corpora.write_meta(tmp, meta)
    return meta
