# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Reading one split of a corpus as preprocessing and evaluation read it: the
format's reader (:mod:`.formats`), tag schemes and label maps (:mod:`.tags`),
dropped labels, the corpus' label set (train's, checked against valid/test)
and the training subset of a scenario (:mod:`.scenarios`)."""

import logging
from collections import Counter
from typing import List

from . import corpora
from .formats import DataFormatError, read_classification, read_conllu, read_tagged, read_text_lines, read_translation
from .scenarios import floor_warning, select_subset
from .spec import CorpusSpec
from .tags import TagError, entity_types, map_types, tag_set, to_iob2

logger = logging.getLogger(__name__)

# fewer examples than this never make the "every example has its own label" check fire
_ID_COLUMN_MIN = 10


def _read_tagging(spec: CorpusSpec, path, fmt):
    sentences = read_tagged(path, fmt, tagged=True, lang=spec.lang if fmt == "panx" else None)
    allowed = set(spec.labels) - {"O"} if spec.labels is not None else None
    repaired = 0
    for s in sentences:
        try:
            tags, n = to_iob2(s.tags, spec.tag_scheme, spec.strict_tags)
        except TagError as e:
            raise DataFormatError(path, s.token_line(e.index), str(e)) from None
        repaired += n
        s.tags = map_types(tags, spec.map_label)
        if allowed is not None:
            for i, t in enumerate(s.tags):
                if t != "O" and t[2:] not in allowed:
                    raise DataFormatError(
                        path,
                        s.token_line(i),
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


def label_set(spec: CorpusSpec, parsed: dict, files: dict) -> List[str]:
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
    labels = corpora.union_labels([[x.label for examples in source for x in examples]])
    n = sum(len(examples) for examples in source)
    if n >= _ID_COLUMN_MIN and len(labels) > max(20, n // 2):
        path = files["train"] if "train" in parsed else next(iter(files.values()))
        raise DataFormatError(
            path,
            None,
            f"{len(labels)} different labels in {n} examples (e.g. {', '.join(labels[:3])}): is the label column "
            "an id or a text? Check the columns (--format csv with --label-column for files with a header or an "
            "id column); if these really are the classes, list them with --labels",
        )
    return labels


def check_eval_labels(spec: CorpusSpec, parsed: dict, files: dict, labels: List[str]):
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
                        x.token_line(i) if spec.task in ("ner", "tagging") else x.line,
                        f"{'tag' if spec.task in ('ner', 'tagging') else 'label'} {label!r} does not occur in the "
                        f"training data {files['train']} (its labels: {', '.join(labels)})",
                    )


def subsample(spec: CorpusSpec, examples: list, stats: dict) -> list:
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
