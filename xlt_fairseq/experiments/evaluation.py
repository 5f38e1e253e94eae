# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Evaluating and applying a trained checkpoint on raw files.

A checkpoint is loaded with fairseq's ``checkpoint_utils`` against its data
root (for the dictionary and the label sets), raw text is encoded with the data
root's encoder directory exactly as preprocessing encodes it
(:class:`~xlt_fairseq.data.binarize.PieceEncoder`; NER labels are read off each
word's first piece), and the task head runs in eval mode. Files are read by the
data layer (:mod:`xlt_fairseq.data.formats` through the preprocessing reader, so
tag schemes and label maps apply as in preprocessing).

Metrics come from the reference libraries: entity F1 (overall and per type)
from seqeval, accuracy and macro-F1 from scikit-learn, BLEU from sacreBLEU with
its signature; translation runs through ``fairseq-interactive``. Every test
example is scored: the number of predictions is checked against the number of
examples read.
"""

import copy
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

TASKS = ("ner", "sentiment", "translation")


class EvaluationError(RuntimeError):
    pass


def user_dir() -> str:
    import xlt_fairseq

    return os.path.dirname(os.path.abspath(xlt_fairseq.__file__))


@dataclass
class LoadedModel:
    """A checkpoint's model (eval mode), its task, config and encoder."""

    path: str
    model: torch.nn.Module
    task: object
    cfg: object
    encoder: object
    data: str
    encoder_dir: str
    model_cfg_at_start: object  # the model config as saved (before loading cleared --pretrained-encoder)
    device: torch.device

    def labels(self, name: str) -> List[str]:
        import json

        sets = json.loads(getattr(self.model.cfg, "label_sets", "") or "{}")
        return sets.get(name) or self.task.labels(name)

    @property
    def max_pieces(self) -> int:
        """Pieces of one example without ``<s>`` and ``</s>``."""
        return int(self.model.cfg.max_positions) - 2


def encoder_dir_of(task) -> str:
    """The encoder directory the data root's corpora were encoded with (``meta.json``)."""
    for name, metas in task.meta.items():
        for key, meta in metas.items():
            if meta.get("encoder_dir"):
                return meta["encoder_dir"]
    raise EvaluationError("no corpus of the checkpoint's data root records its encoder_dir; pass --encoder-dir")


def load_checkpoint(
    path, data: Optional[str] = None, encoder_dir: Optional[str] = None, cpu: bool = False
) -> LoadedModel:
    """Loads ``path`` for evaluation. ``data``: the data root (default: the one it was trained on)."""
    from fairseq import checkpoint_utils

    import xlt_fairseq  # noqa: F401  (registers the plugin; allowlists what safe loading needs)

    from ..data.binarize import DICT_FILE, PieceEncoder, file_md5

    if not os.path.exists(path):
        raise EvaluationError(f"{path}: checkpoint not found")
    overrides = {"no_eval_bleu": True}
    if data:
        overrides["data"] = os.path.abspath(data)
    state = checkpoint_utils.load_checkpoint_to_cpu(path, overrides)
    model_cfg = copy.deepcopy(state["cfg"].model)
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], state=state)
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    model = models[0].to(device)
    model.eval()
    enc_dir = encoder_dir or encoder_dir_of(task)
    encoder = PieceEncoder(enc_dir)
    root_dict = os.path.join(cfg.task.data, DICT_FILE)
    if file_md5(root_dict) != encoder.dict_md5:
        raise EvaluationError(f"{enc_dir}: its {DICT_FILE} is not the data root's ({root_dict})")
    return LoadedModel(path, model, task, cfg, encoder, cfg.task.data, enc_dir, model_cfg, device)


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


# ---- batching ---------------------------------------------------------------------------------------------------


def _batches(seqs: Sequence[List[int]], batch_size: int):
    """Indices of ``seqs`` in batches of similar length."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _collate(loaded: LoadedModel, seqs: Sequence[List[int]]):
    d = loaded.task.dictionary
    n = max(len(s) for s in seqs) + 2
    tokens = torch.full((len(seqs), n), d.pad(), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s) + 2] = torch.tensor([d.bos()] + list(s) + [d.eos()], dtype=torch.long)
    lengths = torch.tensor([len(s) + 2 for s in seqs], dtype=torch.long)
    return tokens.to(loaded.device), lengths.to(loaded.device)


def _windows(loaded: LoadedModel, words: Sequence[str]) -> List[Tuple[List[int], List[int]]]:
    """A sentence as windows of at most ``max_pieces`` pieces split at word
    boundaries (as preprocessing splits long sentences): (ids, first-piece index per word)."""
    out, ids, firsts = [], [], []
    limit = loaded.max_pieces
    for word in words:
        w = loaded.encoder.encode_word(word)[:limit]
        if ids and len(ids) + len(w) > limit:
            out.append((ids, firsts))
            ids, firsts = [], []
        firsts.append(len(ids))
        ids = ids + w
    out.append((ids, firsts))
    return out


@torch.no_grad()
def predict_tags(
    loaded: LoadedModel, sentences: Sequence[Sequence[str]], batch_size: int = 32, task="ner"
) -> List[List[str]]:
    """A tag for every word of every sentence (the argmax at each word's first piece)."""
    labels = loaded.labels(task)
    loaded.encoder.cache_words(w for s in sentences for w in s)
    windows, owner = [], []
    for i, words in enumerate(sentences):
        for win in _windows(loaded, words):
            windows.append(win)
            owner.append(i)
    pred_windows: List[Optional[List[str]]] = [None] * len(windows)
    for batch in _batches([w[0] for w in windows], batch_size):
        tokens, lengths = _collate(loaded, [windows[i][0] for i in batch])
        best = loaded.model(tokens, lengths, task=task)["logits"].argmax(-1).cpu()
        for row, i in enumerate(batch):
            # +1: <s> comes first
            pred_windows[i] = [labels[int(best[row, f + 1])] for f in windows[i][1]]
    out: List[List[str]] = [[] for _ in sentences]
    for i, tags in zip(owner, pred_windows):
        out[i].extend(tags)
    for words, tags in zip(sentences, out):
        if len(words) != len(tags):
            raise EvaluationError(f"internal error: {len(tags)} tags for {len(words)} words")
    return out


@torch.no_grad()
def predict_labels(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 32, task="sentiment") -> List[str]:
    """A class label for every text (texts longer than the positions are truncated, as in preprocessing)."""
    labels = loaded.labels(task)
    ids = [x[: loaded.max_pieces] for x in loaded.encoder.encode_batch(list(texts))]
    out: List[Optional[str]] = [None] * len(ids)
    for batch in _batches(ids, batch_size):
        tokens, lengths = _collate(loaded, [ids[i] for i in batch])
        best = loaded.model(tokens, lengths, task=task)["logits"].argmax(-1).cpu()
        for row, i in enumerate(batch):
            out[i] = labels[int(best[row])]
    return out


def translate(
    checkpoint: str,
    data: str,
    src_lang: str,
    tgt_lang: str,
    sources: Sequence[str],
    encoder_dir: str,
    beam: int = 5,
    batch_size: int = 32,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    cpu: bool = False,
    log_path: Optional[str] = None,
) -> List[str]:
    """Translates ``sources`` with ``fairseq-interactive`` (single-pair mode of the
    task); returns one detokenised hypothesis per source, in order."""
    spm = os.path.join(encoder_dir, "sentencepiece.bpe.model")
    with tempfile.TemporaryDirectory(prefix="xlt-translate-") as tmp:
        src_file = os.path.join(tmp, "input.txt")
        with open(src_file, "w", encoding="utf-8") as f:
            for s in sources:
                f.write(s.replace("\n", " ") + "\n")
        cmd = [
            sys.executable,
            "-m",
            "fairseq_cli.interactive",
            data,
            "--user-dir",
            user_dir(),
            "--task",
            "xlt_multitask",
            "--source-lang",
            src_lang,
            "--target-lang",
            tgt_lang,
            "--path",
            checkpoint,
            "--input",
            src_file,
            "--buffer-size",
            str(batch_size),
            "--batch-size",
            str(batch_size),
            "--beam",
            str(beam),
            "--max-len-a",
            str(max_len_a),
            "--max-len-b",
            str(max_len_b),
            "--bpe",
            "sentencepiece",
            "--sentencepiece-model",
            spm,
        ]
        if cpu or not torch.cuda.is_available():
            cmd.append("--cpu")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise EvaluationError(f"fairseq-interactive failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    hyps: Dict[int, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("D-"):
            head, _, rest = line.partition("\t")
            hyps[int(head[2:])] = rest.partition("\t")[2]
    if sorted(hyps) != list(range(len(sources))):
        raise EvaluationError(
            f"fairseq-interactive returned {len(hyps)} translations for {len(sources)} source sentences "
            "(too long inputs are refused; see its log)"
        )
    return [hyps[i] for i in range(len(sources))]


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
            loaded.path,
            loaded.data,
            spec.src_lang,
            spec.tgt_lang,
            srcs,
            loaded.encoder_dir,
            beam=int(gen.get("beam", 5)),
            batch_size=batch_size,
            max_len_a=float(gen.get("max_len_a", 1.2)),
            max_len_b=int(gen.get("max_len_b", 10)),
            cpu=loaded.device.type == "cpu",
            log_path=log_path,
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
    from ..data import corpora

    model = model if model is not None else loaded.model
    root = loaded.data
    feats, owners = [], []
    for key in keys:
        path = corpora.corpus_dir(root, task, key)
        stream = "src" if task == "translation" else "input"
        if not corpora.has_split(path, split, stream):
            logger.warning(f"{path}: no {split} split; left out of the features")
            continue
        tokens = corpora.load_indexed(path, split, stream)
        seqs = [tokens[i].tolist()[:-1][: loaded.max_pieces] for i in range(min(per_key, len(tokens)))]  # drop </s>
        rows: List[Optional[np.ndarray]] = [None] * len(seqs)
        for batch in _batches(seqs, batch_size):
            src, lengths = _collate(loaded, [seqs[i] for i in batch])
            out = model.pooled_features(src, lengths, task=task).float().cpu().numpy()
            for r, i in enumerate(batch):
                rows[i] = out[r]
        feats.extend(rows)
        owners.extend([key] * len(rows))
    if not feats:
        raise EvaluationError(f"no {split} examples of {task} in {root} for {list(keys)}")
    return np.stack(feats), owners


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
        with open(predictions_path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "checkpoint": os.path.abspath(checkpoint),
        "task": spec.task,
        "lang" if spec.task != "translation" else "pair": spec.key,
        "test": os.path.abspath(spec.test),
        "format": spec.fmt,
        "metrics": metrics,
    }


def predict_file(
    checkpoint: str,
    task: str,
    path: str,
    fmt: Optional[str] = None,
    lang: Optional[str] = None,
    pair: Optional[str] = None,
    data=None,
    encoder_dir=None,
    batch_size=32,
    generation=None,
    cpu=False,
) -> List[str]:
    """Predictions for raw input as output lines: NER ``token<TAB>tag`` (CoNLL, a blank
    line after each sentence), sentiment ``label<TAB>text``, translation one hypothesis per line."""
    from ..data import formats

    loaded = load_checkpoint(checkpoint, data, encoder_dir, cpu)
    if task == "ner":
        fmt = fmt or "tokens"
        sentences = formats.read_tagged(path, fmt, tagged=fmt != "tokens", lang=lang)
        tags = predict_tags(loaded, [s.tokens for s in sentences], batch_size)
        out = []
        for s, t in zip(sentences, tags):
            out += [f"{w}\t{tag}" for w, tag in zip(s.tokens, t)] + [""]
        return out
    if task == "sentiment":
        fmt = fmt or "text"
        texts = [x.text for x in formats.read_classification(path, fmt, labelled=fmt != "text", language=lang)]
        return [f"{label}\t{text}" for label, text in zip(predict_labels(loaded, texts, batch_size), texts)]
    if task == "translation":
        if not pair or len(pair.split("-")) != 2:
            raise EvaluationError("translation needs --pair SRC-TGT")
        gen = dict(generation or {})
        sources = formats.read_text_lines(path)
        return translate(
            loaded.path,
            loaded.data,
            *pair.split("-"),
            sources,
            loaded.encoder_dir,
            beam=int(gen.get("beam", 5)),
            batch_size=batch_size,
            cpu=loaded.device.type == "cpu",
        )
    raise EvaluationError(f"cannot predict for task {task!r} (choose from {', '.join(TASKS)})")
