# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Evaluating a trained model on raw files.

Everything runs through the model's Python API
(:class:`~xlt_fairseq.models.hub_interface.XLTHubInterface`): text is encoded
as preprocessing encodes it (:mod:`xlt_fairseq.data.binarize`, long sentences
split into the same windows), batches come from the data layer's datasets and
translation runs the task's ``SequenceGenerator`` in-process. Files are read by
the data layer (:mod:`xlt_fairseq.data.formats` through the preprocessing
reader, so tag schemes and label maps apply as in preprocessing).

Metrics come from the reference libraries: entity F1 (overall and per type)
from seqeval, accuracy and macro-F1 from scikit-learn, BLEU from sacreBLEU with
its signature. Every test example is scored: the number of predictions is
checked against the number of examples read.
"""

import copy
import logging
import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.task_names import LABELLED_TASKS

logger = logging.getLogger(__name__)

TASKS = LABELLED_TASKS


class EvaluationError(RuntimeError):
    pass


def user_dir() -> str:
    import xlt_fairseq

    return os.path.dirname(os.path.abspath(xlt_fairseq.__file__))


class LoadedModel:
    """A loaded model (eval mode) for evaluation: the hub interface plus the
    names the experiment runner reads (``model``, ``task``, ``data``, ``device``, ...)."""

    def __init__(self, hub):
        self.hub = hub

    path = property(lambda self: self.hub.path)
    model = property(lambda self: self.hub.model)
    task = property(lambda self: self.hub.task)
    cfg = property(lambda self: self.hub.cfg)
    encoder = property(lambda self: self.hub.encoder)
    data = property(lambda self: self.hub.cfg.task.data)
    encoder_dir = property(lambda self: self.hub.encoder.encoder_dir)
    # the model config as saved (before loading cleared --pretrained-encoder)
    model_cfg_at_start = property(lambda self: self.hub.cfg_at_start)
    device = property(lambda self: self.hub.device)
    max_pieces = property(lambda self: self.hub.max_pieces)

    def labels(self, name: str) -> List[str]:
        return self.hub.labels(name)


def load_checkpoint(
    path, data: Optional[str] = None, encoder_dir: Optional[str] = None, cpu: bool = False
) -> LoadedModel:
    """Loads a training checkpoint (against ``data``: default, the data root it was
    trained on) or a model folder written by ``xlt-export``, for evaluation."""
    from ..models.hub_interface import HubError, load_hub

    if not os.path.exists(path):
        raise EvaluationError(f"{path}: checkpoint not found")
    device = "cpu" if cpu or not torch.cuda.is_available() else "cuda"
    try:
        return LoadedModel(load_hub(path, data=data, encoder_dir=encoder_dir, device=device))
    except HubError as e:
        raise EvaluationError(str(e)) from None


def initial_model(loaded: LoadedModel, seed: int):
    """The model as it was before training: the same architecture and data built
    afresh with the run's seed (the encoder from ``--pretrained-encoder`` when the run had one)."""
    from fairseq import utils

    cfg = copy.deepcopy(loaded.model_cfg_at_start)
    pretrained = getattr(cfg, "pretrained_encoder", None)
    if pretrained and not os.path.isdir(pretrained):
        raise EvaluationError(
            f"{pretrained}: the run's pretrained encoder is not there; cannot rebuild the start model"
        )
    utils.set_torch_seed(seed)
    model = loaded.task.build_model(cfg)
    return model.to(loaded.device).eval()


# ---- predictions ------------------------------------------------------------------------------------------------


def predict_tags(
    loaded: LoadedModel, sentences: Sequence[Sequence[str]], batch_size: int = 32, task="ner"
) -> List[List[str]]:
    """A tag for every word of every sentence (the argmax at each word's first piece)."""
    labels = loaded.labels(task)
    probs = loaded.hub.tag_probs(sentences, task, batch_size)
    return [[labels[int(i)] for i in p.argmax(dim=-1)] if len(p) else [] for p in probs]


def predict_labels(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 32, task="sentiment") -> List[str]:
    """A class label for every text (texts longer than the positions are truncated, as in preprocessing)."""
    labels = loaded.labels(task)
    return [labels[int(i)] for i in loaded.hub.class_probs(texts, task, batch_size).argmax(dim=-1)]


def translate(
    loaded: LoadedModel,
    sources: Sequence[str],
    beam: int = 5,
    batch_size: int = 32,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
) -> List[str]:
    """One detokenised hypothesis per source, in order (the task's generator, in-process)."""
    hyps = loaded.hub.translate(
        list(sources), beam=beam, max_len_a=max_len_a, max_len_b=max_len_b, batch_size=batch_size
    )
    if len(hyps) != len(sources):
        raise EvaluationError(f"{len(hyps)} translations for {len(sources)} source sentences")
    return [h["translation"] for h in hyps]


# ---- reading test files -------------------------------------------------------------------------------------------


def read_examples(spec, split: str = "test"):
    """The examples of one split of a corpus specification
    (:class:`~xlt_fairseq.data.prepare.CorpusSpec`), normalised as preprocessing
    normalises them (tag scheme to IOB2, label maps, dropped labels)."""
    from ..data import prepare

    path = getattr(spec, split)
    if not path:
        raise EvaluationError(f"{spec.name}: no {split} file")
    spec.check()
    examples, _ = prepare.read_split(spec, split, path)
    return examples


# ---- metrics --------------------------------------------------------------------------------------------------------


def ner_metrics(gold: List[List[str]], pred: List[List[str]]) -> dict:
    """seqeval's entity precision/recall/F1 (default mode), overall and per type."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    from .. import metrics as xlt_metrics

    counts = xlt_metrics.entity_counts(gold, pred)
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {
        t: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for t, v in sorted(report.items())
        if not t.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "per_type_f1": {t: v["f1"] for t, v in per_type.items()},
        "per_type": per_type,
        "entities_gold": counts["gold"],
        "entities_pred": counts["pred"],
        "entities_correct": counts["correct"],
        "examples": len(gold),
        "tokens": sum(len(g) for g in gold),
    }


def classification_metrics(gold: List[str], pred: List[str]) -> dict:
    """scikit-learn's accuracy and macro-F1 (over the labels in gold or prediction), and per-class scores."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_class = {
        c: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for c, v in sorted(report.items())
        if isinstance(v, dict) and not c.endswith(" avg")
    }
    return {
        "acc": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "per_class": per_class,
        "examples": len(gold),
    }


def bleu_metrics(hyps: List[str], refs: List[str]) -> dict:
    """sacreBLEU's corpus BLEU (13a tokenisation, as in validation) with its signature."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    score = bleu.corpus_score(hyps, [refs])
    return {
        "bleu": round(float(score.score), 2),
        "signature": str(bleu.get_signature()),
        "bp": round(float(score.bp), 4),
        "sys_len": int(score.sys_len),
        "ref_len": int(score.ref_len),
        "examples": len(hyps),
    }


# ---- one test file ------------------------------------------------------------------------------------------------------


def evaluate_spec(
    loaded: LoadedModel,
    spec,
    split: str = "test",
    batch_size: int = 32,
    generation: Optional[dict] = None,
    log_path=None,
) -> Tuple[dict, List[dict]]:
    """Evaluates a checkpoint on one split of a corpus specification.
    Returns (metrics, predictions: one dict per example)."""
    examples = read_examples(spec, split)
    if spec.task == "ner":
        pred = predict_tags(loaded, [x.tokens for x in examples], batch_size)
        gold = [x.tags for x in examples]
        metrics = ner_metrics(gold, pred)
        rows = [{"tokens": x.tokens, "gold": x.tags, "pred": p} for x, p in zip(examples, pred)]
    elif spec.task == "sentiment":
        pred = predict_labels(loaded, [x.text for x in examples], batch_size)
        gold = [x.label for x in examples]
        metrics = classification_metrics(gold, pred)
        rows = [{"text": x.text, "gold": x.label, "pred": p} for x, p in zip(examples, pred)]
    elif spec.task == "translation":
        gen = dict(generation or {})
        srcs, refs = [s for s, _ in examples], [t for _, t in examples]
        hyps = translate(
            loaded,
            srcs,
            beam=int(gen.get("beam", 5)),
            batch_size=batch_size,
            max_len_a=float(gen.get("max_len_a", 1.2)),
            max_len_b=int(gen.get("max_len_b", 10)),
        )
        metrics = bleu_metrics(hyps, refs)
        rows = [{"source": s, "gold": r, "pred": h} for s, r, h in zip(srcs, refs, hyps)]
    else:
        raise EvaluationError(f"cannot evaluate task {spec.task!r} (choose from {', '.join(TASKS)})")
    if metrics["examples"] != len(examples) or len(rows) != len(examples):
        raise EvaluationError(f"{spec.name}: {len(rows)} predictions for {len(examples)} test examples")
    return metrics, rows


# ---- sentence representations (Figure 3) -------------------------------------------------------------------------------


@torch.no_grad()
def pooled_features(
    loaded: LoadedModel,
    task: str,
    keys: Sequence[str],
    split: str = "valid",
    per_key: int = 200,
    model=None,
    batch_size=64,
) -> Tuple[np.ndarray, List[str]]:
    """Mean-pooled feature-extractor outputs (``model.pooled_features``) of the
    first ``per_key`` examples of ``split`` of each corpus; returns (features, corpus key per row)."""
    model = model if model is not None else loaded.model
    feats, owners = [], []
    for key, items in feature_inputs(loaded, task, keys, split, per_key).items():
        dataset, sizes = loaded.hub.source_dataset(items)
        rows: List[Optional[np.ndarray]] = [None] * len(items)
        for sample in loaded.hub.batches(dataset, sizes, batch_size):
            out = model.pooled_features(**sample["net_input"], task=task).float().cpu().numpy()
            for r, i in enumerate(sample["id"].tolist()):
                rows[i] = out[r]
        feats.extend(rows)
        owners.extend([key] * len(rows))
    if not feats:
        raise EvaluationError(f"no {split} examples of {task} in {loaded.data} for {list(keys)}")
    return np.stack(feats), owners


def feature_inputs(loaded: LoadedModel, task: str, keys: Sequence[str], split: str = "valid", per_key: int = 200):
    """{corpus key: piece-id tensors} of the sentences :func:`pooled_features` reads, as the model reads them
    (cut to the positions, ``</s>`` kept)."""
    from ..data import corpora

    out = OrderedDict()
    for key in keys:
        path = corpora.corpus_dir(loaded.data, task, key)
        stream = "src" if task == "translation" else "input"
        if not corpora.has_split(path, split, stream):
            logger.warning(f"{path}: no {split} split; left out of the features")
            continue
        tokens = corpora.load_indexed(path, split, stream)
        items = [tokens[i].long() for i in range(min(per_key, len(tokens)))]
        out[key] = [torch.cat([t[:-1][: loaded.max_pieces], t[-1:]]) for t in items]
    return out


# ---- the command-line tools' entry points ------------------------------------------------------------------------------


def make_spec(
    task: str,
    path: str,
    lang: Optional[str] = None,
    pair: Optional[str] = None,
    fmt: Optional[str] = None,
    split: str = "test",
    **options,
):
    """A :class:`~xlt_fairseq.data.prepare.CorpusSpec` for one raw evaluation file;
    ``options`` are CorpusSpec fields (tag_scheme, map_label, text_column, ...)."""
    from ..data.prepare import CorpusSpec

    if task == "translation":
        if not pair or len(pair.split("-")) != 2:
            raise EvaluationError("translation needs --pair SRC-TGT")
        src, tgt = pair.split("-")
        spec = CorpusSpec(task, src_lang=src, tgt_lang=tgt, format=fmt, **{split: path}, **options)
    else:
        if not lang:
            raise EvaluationError(f"{task} needs --lang")
        spec = CorpusSpec(task, lang=lang, format=fmt, **{split: path}, **options)
    spec.check()
    spec.check_files()
    return spec


def evaluate_file(
    checkpoint: str,
    spec,
    data=None,
    encoder_dir=None,
    batch_size=32,
    generation=None,
    cpu=False,
    predictions_path: Optional[str] = None,
) -> dict:
    """Loads ``checkpoint`` and evaluates it on the test file of ``spec``; optionally
    writes the predictions (JSON Lines). Returns a JSON-ready dict."""
    import json

    loaded = load_checkpoint(checkpoint, data, encoder_dir, cpu)
    metrics, rows = evaluate_spec(loaded, spec, "test", batch_size, generation)
    if predictions_path:
        from ..data.outputs import write_text

        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_text(predictions_path, text, [checkpoint, data, encoder_dir] + [p for _, p in spec.input_paths()])
    return {
        "checkpoint": os.path.abspath(checkpoint),
        "task": spec.task,
        "lang" if spec.task != "translation" else "pair": spec.key,
        "test": os.path.abspath(spec.test),
        "format": spec.fmt,
        "metrics": metrics,
    }
