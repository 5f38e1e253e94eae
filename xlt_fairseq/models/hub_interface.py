# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The Python API of a trained xlt model, in the style of fairseq's hub
interfaces (``fairseq/models/roberta/hub_interface.py``)::

    from xlt_fairseq.models.xlt_model import XLTModel

    xlt = XLTModel.from_pretrained("model_dir")          # written by xlt-export
    xlt.tag(["Amina anaishi Nairobi."], lang="sw")      # per word: label and probability
    xlt.classify(["habari njema sana"])                 # label and class probabilities
    xlt.translate(["hello world"], beam=5)              # in-process generation, with scores
    xlt.logits("Amina anaishi Nairobi.", "ner")         # raw per-piece logits (<s> ... </s>)
    xlt.use_onnx("ner", precision="int8")               # the head in onnxruntime (xlt-export-onnx)

It is the one inference engine of the plugin: ``xlt-predict``, ``xlt-evaluate``
(and the experiment runner) and the exporters all run through it. Text is
encoded as preprocessing encodes it (:mod:`xlt_fairseq.data.binarize`: sentences
are split into windows at word boundaries exactly as training data is), batches
are built by the data layer's own datasets (:mod:`xlt_fairseq.data.corpora`,
fairseq's ``LanguagePairDataset`` for translation) and translation runs the
task's ``SequenceGenerator`` in-process.

The object is an ``nn.Module``: ``.cuda()``, ``.half()``, ``.to(device)`` move
and cast the model; inputs follow the model's device.
"""

import collections
import copy
import json
import logging
import os
from argparse import Namespace
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from ..data.words import split_words

logger = logging.getLogger(__name__)

Words = Sequence[str]
TextOrWords = Union[str, Words]


class HubError(ValueError):
    """A model that cannot be loaded or a request it cannot serve (the message names the file or the head)."""


# ---- loading ----------------------------------------------------------------------------------------------------


def _checkpoint_path(path: str, checkpoint_file: Optional[str]) -> str:
    if os.path.isdir(path):
        return os.path.join(path, checkpoint_file or "checkpoint_best.pt")
    return path


def load_hub(
    path: str,
    checkpoint_file: Optional[str] = None,
    data: Optional[str] = None,
    encoder_dir: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    overrides: Optional[dict] = None,
) -> "XLTHubInterface":
    """Loads a model folder written by ``xlt-export`` (``path`` holds ``xlt_model.json``),
    or a training checkpoint (a ``.pt`` file, or a folder and ``checkpoint_file``) against
    its data root (``data``; default: the one it was trained on) and encoder directory
    (``encoder_dir``; default: the one the data root was encoded with)."""
    from fairseq import checkpoint_utils

    import xlt_fairseq

    xlt_fairseq.register()  # the task, model and criterion; the safe-loading allowlist

    from ..data.binarize import DICT_FILE, EncoderVocabularyError, PieceEncoder, file_md5
    from ..export import MODEL_FILE, check_model_dir, is_model_dir, looks_like_model_dir, read_info

    info = None
    if is_model_dir(path):
        info = read_info(path)
        check_model_dir(path, info)
        ck = os.path.join(path, checkpoint_file or MODEL_FILE)
        data = os.path.abspath(path)
        encoder_dir = encoder_dir or data
    else:
        if checkpoint_file in (None, MODEL_FILE) and looks_like_model_dir(path):
            check_model_dir(path)  # xlt_model.json missing: not "checkpoint_best.pt not found"
        ck = _checkpoint_path(path, checkpoint_file)
    if not os.path.isfile(ck):
        raise HubError(f"{ck}: checkpoint not found")
    arg_overrides = {"no_eval_bleu": True, **(overrides or {})}
    if data:
        arg_overrides["data"] = os.path.abspath(data)
    state = checkpoint_utils.load_checkpoint_to_cpu(ck, arg_overrides)
    if state.get("cfg") is None or state["cfg"].task.get("_name") != "xlt_multitask":
        raise HubError(f"{ck}: not a checkpoint of the xlt_multitask task")
    root = state["cfg"].task.data
    if not os.path.exists(os.path.join(root, DICT_FILE)):
        raise HubError(
            f"{ck}: its data root {root} is not there (no {DICT_FILE}); pass the data root (--data, "
            "data_name_or_path=...) or load a model folder written by xlt-export, which needs no training folders"
        )
    cfg_at_start = copy.deepcopy(state["cfg"].model)
    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([ck], state=state)
    except FileNotFoundError as e:
        # e.g. a data root holding only dict.txt: the corpora's label sets and languages are missing
        missing = str(e).split(": ")[0]
        raise HubError(
            f"{ck}: the data root {root} lacks the corpus folders (labels, languages) the model was trained with "
            f"({missing} is missing); export the checkpoint where its data root is complete (xlt-export) and "
            "load the model folder instead"
        ) from None
    if encoder_dir is None:
        encoder_dir = _encoder_dir_of(task, ck)
    try:
        encoder = PieceEncoder(encoder_dir)
    except EncoderVocabularyError as e:
        raise HubError(f"{e} (pass --encoder-dir / encoder_dir=...)") from None
    root_dict = os.path.join(cfg.task.data, DICT_FILE)
    if file_md5(root_dict) != encoder.dict_md5:
        raise HubError(f"{encoder_dir}: its {DICT_FILE} is not the one of the model ({root_dict})")
    hub = XLTHubInterface(cfg, task, models[0], encoder, info=info, path=ck, cfg_at_start=cfg_at_start)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return hub.to(device)


def _encoder_dir_of(task, ck: str) -> str:
    for metas in task.meta.values():
        for meta in metas.values():
            if meta.get("encoder_dir"):
                if not os.path.isdir(meta["encoder_dir"]):
                    raise HubError(
                        f"{ck}: its encoder directory {meta['encoder_dir']} is not there; pass --encoder-dir "
                        "(encoder_dir=...) or load a model folder written by xlt-export"
                    )
                return meta["encoder_dir"]
    raise HubError(f"{ck}: no corpus of its data root records its encoder directory; pass --encoder-dir")


def from_pretrained(model_name_or_path: str, checkpoint_file: str = "model.pt", data_name_or_path: str = ".", **kwargs):
    """``XLTModel.from_pretrained``: a model folder, or (as fairseq's ``from_pretrained``) a
    checkpoint folder + ``checkpoint_file`` + ``data_name_or_path`` (``"."``: the data root the
    checkpoint recorded). Keyword arguments: ``encoder_dir``, ``device``, and config overrides."""
    from ..export import is_model_dir

    encoder_dir = kwargs.pop("encoder_dir", None)
    device = kwargs.pop("device", None)
    if is_model_dir(model_name_or_path):
        return load_hub(model_name_or_path, checkpoint_file, encoder_dir=encoder_dir, device=device, overrides=kwargs)
    data = None
    if data_name_or_path and data_name_or_path != ".":
        data = data_name_or_path
    return load_hub(model_name_or_path, checkpoint_file, data, encoder_dir, device, kwargs)


def entity_spans(item: TextOrWords, words: List[dict], get_entities) -> List[dict]:
    """The entities of one tagged input (``words``: :meth:`XLTHubInterface.tag`'s records)."""
    if isinstance(item, str):
        text, offsets = item, [(w["start"], w["end"]) for w in words]
    else:
        text, offsets, pos = " ".join(item), [], 0
        for w in item:
            offsets.append((pos, pos + len(w)))
            pos += len(w) + 1
    spans = []
    for label, first, last in get_entities([w["label"] for w in words]):
        start, end = offsets[first][0], offsets[last][1]
        probs = [w["prob"] for w in words[first : last + 1]]
        spans.append(
            {"text": text[start:end], "label": label, "start": start, "end": end, "score": round(sum(probs) / len(probs), 6)}
        )
    return spans


# ---- the interface ------------------------------------------------------------------------------------------------


class XLTHubInterface(nn.Module):
    """A trained xlt model with its dictionary, sentencepiece model and label sets.

    Every method takes a batch (a list) or a single input (a string) and returns
    a list or a single result accordingly. Inputs are processed in batches of
    ``batch_size`` examples of similar length; results come back in input order.
    """

    def __init__(self, cfg, task, model, encoder, info=None, path=None, cfg_at_start=None):
        super().__init__()
        self.cfg = cfg
        self.task = task
        self.model = model
        self.encoder = encoder
        self.info = info or {}
        self.path = path
        self.cfg_at_start = cfg_at_start
        self.model.eval()
        self._warned_langs = set()
        # inputs longer than the model's positions so far: "truncated" (classification, translation: cut as
        # preprocessing cuts them) and "windowed" (tagging: split into windows, every word tagged)
        self.counts = collections.Counter()
        # task -> a callable (src_tokens -> logits) that runs the head instead of the torch model: an
        # ONNX export (use_onnx); tokenisation, batching and the records stay the plugin's
        self.engines = {}

    def use_onnx(self, task: str = "ner", folder: Optional[str] = None, precision: str = "fp32", threads=None):
        """Runs ``task``'s head with its ONNX export (``xlt-export-onnx``; default folder: the model
        folder's ``onnx/TASK``), ``precision`` ``fp32`` or ``int8``; returns ``self``."""
        from ..exporters.onnx import attach

        return attach(self, task, folder, precision, threads)

    def _head_logits(self, net_input: dict, task: str) -> torch.Tensor:
        engine = self.engines.get(task)
        if engine is not None:
            return engine(net_input["src_tokens"])
        return self.model(**net_input, task=task)["logits"]

    # ---- what the model holds -----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.model.label_signature.device

    @property
    def heads(self) -> List[str]:
        return list(self.model.heads.keys())

    @property
    def languages(self) -> List[str]:
        return list(self.task.languages)

    @property
    def max_pieces(self) -> int:
        """Pieces of one example without ``<s>`` and ``</s>``."""
        return int(self.model.cfg.max_positions) - 2

    def labels(self, task: str) -> List[str]:
        sets = json.loads(getattr(self.model.cfg, "label_sets", "") or "{}")
        if task in sets:
            return list(sets[task])
        if task in self.model.heads:
            return self.task.labels(task)
        raise HubError(f"this model has no {task!r} head (heads: {', '.join(self.heads) or 'none'})")

    def _kind(self, task: str) -> str:
        from ..data.task_names import builtin_kind

        if task not in self.model.heads:
            raise HubError(f"this model has no {task!r} head (heads: {', '.join(self.heads) or 'none'})")
        return builtin_kind(task)

    @staticmethod
    def _texts(texts) -> List[str]:
        items = [texts] if isinstance(texts, str) else list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise HubError(f"input {i}: expected a text (str), not {type(t).__name__}")
        return items

    def task_languages(self, task: str) -> List[str]:
        """The languages ``task`` was trained on (a translation pair counts its source language)."""
        keys = self.task.corpus_keys.get(task, [])
        return sorted({self.task.corpus_language(task, key) for key in keys})

    def check_language(self, lang: Optional[str], task: Optional[str] = None):
        """Warns (once per language and task) when ``lang`` is not among the languages ``task``
        was trained on (or, without a task, any of the model's): the prediction is zero-shot."""
        if not lang or (lang, task) in self._warned_langs:
            return
        trained = (self.task_languages(task) if task else []) or self.languages
        if lang not in trained:
            self._warned_langs.add((lang, task))
            what = f"the {task} head's training languages" if task else "the model's training languages"
            logger.warning(f"{lang!r} is not among {what} ({', '.join(trained)}): zero-shot")

    # ---- encoding -----------------------------------------------------------------------------------------------

    def encode(self, text: TextOrWords) -> torch.LongTensor:
        """``<s> pieces </s>`` of a text (sentencepiece over the whole string) or of a list of words
        (each word on its own, as NER corpora are encoded), cut to the model's positions."""
        d = self.task.dictionary
        if isinstance(text, str):
            ids = self.encoder.encode(text)
        else:
            ids = self.encoder.encode_words(list(text))[0]
        return torch.tensor([d.bos()] + ids[: self.max_pieces] + [d.eos()], dtype=torch.long)

    def decode(self, tokens: torch.LongTensor) -> str:
        return self.task.dictionary.string(tokens.int().cpu(), "sentencepiece")

    def _to_device(self, sample):
        from fairseq import utils

        device = self.device
        return utils.apply_to_sample(lambda t: t.to(device), sample)

    def batches(self, dataset, sizes: Sequence[int], batch_size: int):
        """Collated batches of ``dataset`` (every item once, similar lengths together)."""
        if batch_size < 1:
            raise HubError(f"batch size must be >= 1, not {batch_size}")
        order = np.argsort(np.asarray(sizes), kind="stable")
        for start in range(0, len(order), batch_size):
            yield self._to_device(dataset.collater([dataset[int(i)] for i in order[start : start + batch_size]]))

    def source_dataset(self, tokens: Sequence[torch.Tensor]):
        """Encoded sentences (``... </s>``) as the data layer's classification dataset (labels unused),
        and their sizes."""
        from fairseq.data import ListDataset

        from ..data import corpora

        sizes = np.array([len(t) for t in tokens], dtype=np.int64)
        dummy = ListDataset([torch.ones(1, dtype=torch.long)] * len(tokens), np.ones(len(tokens), dtype=np.int64))
        dataset = corpora.classification_dataset(
            ListDataset(list(tokens), sizes), dummy, self.task.dictionary, torch.zeros(1, dtype=torch.long)
        )
        return dataset, sizes

    @staticmethod
    def _items(stream) -> List[torch.Tensor]:
        flat, sizes = stream
        ends = np.cumsum(sizes)
        return [torch.from_numpy(flat[e - n : e].copy()) for e, n in zip(ends, sizes)]

    # ---- tagging ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def tag_probs(self, sentences: Sequence[Words], task: str = "ner", batch_size: int = 32) -> List[torch.Tensor]:
        """Label probabilities (words x labels, fp32 on the CPU) of pre-split sentences, read at each
        word's first piece. A sentence longer than the model's positions is split into windows at word
        boundaries (``binarize.encode_tagged_chunk``, as preprocessing splits training data)."""
        from fairseq.data import ListDataset

        from ..data import binarize, corpora

        if self._kind(task) != "tagging":
            raise HubError(f"{task!r} is not a tagging head")
        sentences = [list(s) for s in sentences]
        if not sentences:
            return []
        enc = binarize.encode_tagged_chunk(self.encoder, [(s, [0] * len(s)) for s in sentences], self.max_pieces)
        self.counts["windowed"] += enc["counts"]["split"]
        tokens = self._items(enc["streams"]["input"])
        labels = self._items(enc["streams"]["label"])
        sizes = enc["streams"]["input"][1]
        # the windows of each sentence, in order (an empty sentence is one window without words)
        owner, w = [], 0
        for i, s in enumerate(sentences):
            covered = 0
            while True:
                covered += int((labels[w] != binarize.IGNORED).sum())
                owner.append(i)
                w += 1
                if covered >= len(s):
                    break
        if w != len(tokens):
            raise HubError(f"internal error: {len(tokens)} windows for {w} expected")
        dataset = corpora.tagging_dataset(
            ListDataset(tokens, sizes),
            ListDataset(labels, sizes),
            self.task.dictionary,
            torch.zeros(1, dtype=torch.long),
        )
        per_window: List[Optional[torch.Tensor]] = [None] * len(tokens)
        for sample in self.batches(dataset, sizes, batch_size):
            logits = self._head_logits(sample["net_input"], task)
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            first = (sample["target"] != corpora.IGNORE_INDEX).cpu()
            for row, idx in enumerate(sample["id"].tolist()):
                per_window[idx] = probs[row][first[row]]
        out: List[List[torch.Tensor]] = [[] for _ in sentences]
        for i, p in zip(owner, per_window):
            out[i].append(p)
        n_labels = len(self.labels(task))
        result = [torch.cat(parts) if parts else torch.zeros(0, n_labels) for parts in out]
        for s, p in zip(sentences, result):
            if p.shape[0] != len(s):
                raise HubError(f"internal error: {p.shape[0]} predictions for {len(s)} words")
        return result

    def tag(
        self,
        texts: Union[TextOrWords, Sequence[TextOrWords]],
        lang: Optional[str] = None,
        task: str = "ner",
        batch_size: int = 32,
    ):
        """Tags raw sentences (split into words by :func:`split_words`) or pre-split ones
        (lists of words). Returns per sentence a list of ``{"word", "label", "prob"}``
        (``prob``: the label's probability), with ``"start"``/``"end"`` character offsets
        for raw text. ``lang`` is checked against the training languages (the model itself
        has no language input)."""
        self.check_language(lang, task)
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        words, spans = [], []
        for i, t in enumerate(items):
            if isinstance(t, str):
                w, s = split_words(t)
            elif isinstance(t, (list, tuple)) and all(isinstance(x, str) for x in t):
                w, s = list(t), None
            else:
                raise HubError(f"input {i}: expected a sentence (str) or a list of words (str), not {type(t).__name__}")
            words.append(w)
            spans.append(s)
        labels = self.labels(task)
        out = []
        for w, s, p in zip(words, spans, self.tag_probs(words, task, batch_size)):
            best, idx = p.max(dim=-1) if len(w) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
            rows = []
            for j, word in enumerate(w):
                row = {"word": word, "label": labels[int(idx[j])], "prob": round(float(best[j]), 6)}
                if s is not None:
                    row["start"], row["end"] = s[j]
                rows.append(row)
            out.append(rows)
        return out[0] if single else out

    def entities(
        self,
        texts: Union[TextOrWords, Sequence[TextOrWords]],
        lang: Optional[str] = None,
        task: str = "ner",
        batch_size: int = 32,
    ):
        """Entity spans of raw sentences (or pre-split ones): per sentence a list of
        ``{"text", "label", "start", "end", "score"}``, one record per entity. Words are
        :meth:`tag`'s; entities are read from their IOB2 labels by seqeval's ``get_entities``
        (as entity F1 counts them). ``start``/``end`` are character offsets into the input
        string (``text == input[start:end]``; for a list of words, into the words joined by
        single spaces); ``score`` is the mean of the entity's word probabilities."""
        from seqeval.metrics.sequence_labeling import get_entities

        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        out = [entity_spans(x, words, get_entities) for x, words in zip(items, self.tag(items, lang, task, batch_size))]
        return out[0] if single else out

    # ---- classification -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def class_probs(self, texts: Sequence[str], task: str = "sentiment", batch_size: int = 32) -> torch.Tensor:
        """Class probabilities (texts x classes, fp32 on the CPU); a text longer than the model's
        positions is truncated, as preprocessing truncates it."""
        from ..data import binarize

        if self._kind(task) != "classification":
            raise HubError(f"{task!r} is not a classification head")
        texts = self._texts(texts)
        n_classes = len(self.labels(task))
        if not texts:
            return torch.zeros(0, n_classes)
        enc = binarize.encode_text_chunk(self.encoder, texts, self.max_pieces, split_long=False)
        self.counts["truncated"] += enc["counts"]["long"]
        dataset, sizes = self.source_dataset(self._items(enc["streams"]["input"]))
        out = torch.zeros(len(texts), n_classes)
        for sample in self.batches(dataset, sizes, batch_size):
            logits = self._head_logits(sample["net_input"], task)
            out[sample["id"].cpu()] = torch.softmax(logits.float(), dim=-1).cpu()
        return out

    def classify(
        self, texts: Union[str, Sequence[str]], task: str = "sentiment", lang: Optional[str] = None, batch_size=32
    ):
        """Classifies texts: per text ``{"label", "prob", "probs": {label: probability}}``."""
        self.check_language(lang, task)
        single = isinstance(texts, str)
        items = self._texts(texts)
        labels = self.labels(task)
        out = []
        for p in self.class_probs(items, task, batch_size):
            i = int(p.argmax())
            out.append(
                {
                    "label": labels[i],
                    "prob": round(float(p[i]), 6),
                    "probs": {label: round(float(v), 6) for label, v in zip(labels, p)},
                }
            )
        return out[0] if single else out

    # ---- translation ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def translate(
        self,
        texts: Union[str, Sequence[str]],
        beam: int = 5,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        nbest: int = 1,
        batch_size: int = 32,
        **generation,
    ):
        """Translates with the task's ``SequenceGenerator`` in-process. Per text
        ``{"translation", "score"}`` (``score``: fairseq's length-normalised natural-log probability
        of the hypothesis); with ``nbest`` > 1 also ``"nbest"``, the ``nbest`` best hypotheses.
        Further keyword arguments are fairseq generation options (``lenpen``, ``sampling``, ...)."""
        from ..data import binarize
        from ..generation import GenerationOptionsError, check_generation_options

        if self.model.decoder is None:
            raise HubError("this model has no translation decoder (it was trained without translation data)")
        get = generation.get
        try:
            check_generation_options(beam, nbest, get("min_len"), max_len_a, max_len_b, get("max_len"), bool(get("sampling")))
        except GenerationOptionsError as e:
            raise HubError(str(e)) from None
        single = isinstance(texts, str)
        items = self._texts(texts)
        if not items:
            return []
        enc = binarize.encode_text_chunk(self.encoder, items, self.max_pieces, split_long=False)
        self.counts["truncated"] += enc["counts"]["long"]
        tokens = self._items(enc["streams"]["input"])
        sizes = enc["streams"]["input"][1]
        dataset = self.task.build_dataset_for_inference(tokens, [int(n) for n in sizes])
        gen_args = Namespace(beam=beam, max_len_a=max_len_a, max_len_b=max_len_b, nbest=nbest, **generation)
        generator = self.task.build_generator([self.model], gen_args)
        out: List[Optional[dict]] = [None] * len(items)
        for sample in self.batches(dataset, sizes, batch_size):
            hypos = self.task.inference_step(generator, [self.model], sample)
            for row, idx in enumerate(sample["id"].tolist()):
                best = [
                    {"translation": self.decode(h["tokens"]), "score": round(float(h["score"]), 6)}
                    for h in hypos[row][:nbest]
                ]
                out[idx] = dict(best[0], nbest=best) if nbest > 1 else best[0]
        return out[0] if single else out

    # ---- raw outputs ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def logits(self, text: TextOrWords, task: str) -> torch.Tensor:
        """The raw logits of one input (:meth:`encode`): tagging heads and ``mlm`` per piece
        (pieces x labels, ``<s>`` and ``</s>`` included), a classification head per text (classes)."""
        tokens = self.encode(text).unsqueeze(0).to(self.device)
        lengths = torch.tensor([tokens.shape[1]], device=self.device)
        if task == "translation":
            raise HubError("translation has no per-piece logits here; use translate()")
        if task == "mlm":
            return self.model(tokens, lengths, task=task)["logits"][0]
        self._kind(task)  # refuses a head the model does not have
        return self._head_logits({"src_tokens": tokens, "src_lengths": lengths}, task)[0]

    def extract_features(self, text: TextOrWords, task: Optional[str] = None) -> torch.Tensor:
        """The feature extractor's output per piece (pieces x dim) that the heads read."""
        tokens = self.encode(text).unsqueeze(0).to(self.device)
        with torch.no_grad():
            hidden, _ = self.model.encoder.hidden_states(tokens, None, task)
            return self.model.encoder.feature_extractor(hidden)[0]
