# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The token-classification pipeline of a transformers folder written by
``xlt-export-hf`` (copied into it as ``pipeline_xlt.py``, next to ``words.py``,
and named in its config's ``custom_pipelines``; it needs only torch and
transformers)::

    from transformers import pipeline
    ner = pipeline("xlt-token-classification", model=HF_DIR, trust_remote_code=True, aggregation_strategy="first")
    ner("Amina Mohamed alizaliwa Nairobi, Kenya.")

It groups pieces into words exactly as xlt_fairseq does (``xlt-predict``,
``XLTModel.tag``): raw text is split into words by the plugin's own word
splitter (``words.py``: whitespace, punctuation split off at both ends of a
token), each word is encoded on its own (``is_split_into_words``) and labelled
at its first piece, and a sentence longer than the model's positions is split
into windows at word boundaries as the plugin splits it. transformers' stock
``token-classification`` pipeline guesses words from character offsets instead:
it keeps a run of four double quotes as one word where the plugin has four
words, and counts a bare
``▁`` piece as a word.

Records (``start``/``end``: character offsets into the input; ``word``: the
input's text there, spaces included):

* ``aggregation_strategy="none"`` (default): one record per word, ``entity``,
  ``score``, ``index`` (the word's position), ``word``, ``start``, ``end``;
* ``"first"`` / ``"simple"``: the words' labels grouped into entities
  (``entity_group``, ``score`` = the mean of the words' scores, ...), as
  transformers groups them; ``"average"`` / ``"max"``: a word's label from the
  average / the most confident of its pieces' scores (transformers' meaning),
  then grouped.

``ignore_labels`` (default ``["O"]``) drops records, as in transformers; pass
``ignore_labels=[]`` for every word. A list of words with
``is_split_into_words=True`` is labelled as given (offsets into the words
joined by ``delimiter``, default a space).
"""

import numpy as np
import torch
from transformers import TokenClassificationPipeline
from transformers.pipelines.token_classification import AggregationStrategy

from .words import split_words  # the exported folder's copy of xlt_fairseq/data/words.py


class XLTTokenClassificationPipeline(TokenClassificationPipeline):
    def preprocess(self, sentence, offset_mapping=None, **params):
        if params.get("is_split_into_words"):
            if not isinstance(sentence, list) or not all(isinstance(w, str) for w in sentence):
                raise ValueError("with is_split_into_words=True, each input must be a list of words (str)")
            delimiter = params.get("delimiter") or " "
            words, spans, at = list(sentence), [], 0
            for w in words:
                spans.append((at, at + len(w)))
                at += len(w) + len(delimiter)
            text = delimiter.join(words)
        else:
            if not isinstance(sentence, str):
                raise ValueError(f"expected a text (str), not {type(sentence).__name__}")
            text = sentence
            words, spans = split_words(text)
        windows = self._windows(words)
        for i, (first, pieces) in enumerate(windows):
            ids = [self.tokenizer.cls_token_id] + [p for _, p in pieces] + [self.tokenizer.sep_token_id]
            yield {
                "input_ids": torch.tensor([ids], dtype=torch.long),
                "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                "word_ids": [None] + [first + w for w, _ in pieces] + [None],
                "text": text,
                "spans": spans,
                "is_last": i == len(windows) - 1,
            }

    def _windows(self, words):
        """``(index of the window's first word, [(word in window, piece id), ...])`` per window: as
        xlt_fairseq's preprocessing, a window is filled word by word up to the model's positions
        (a word longer than a window keeps its first pieces)."""
        max_pieces = self.tokenizer.model_max_length - 2
        if not words:
            return [(0, [])]
        encoded = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        per_word = [[] for _ in words]
        for piece, w in zip(encoded["input_ids"], encoded.word_ids()):
            per_word[w].append(piece)
        windows, first, cur = [], 0, []
        for i, pieces in enumerate(per_word):
            # a word the normaliser empties (a bare "▁", a zero-width space) is <unk>, as in the plugin
            pieces = pieces[:max_pieces] or [self.tokenizer.unk_token_id]
            if cur and len(cur) + len(pieces) > max_pieces:
                windows.append((first, cur))
                first, cur = i, []
            cur.extend((i - first, p) for p in pieces)
        windows.append((first, cur))
        return windows

    def _forward(self, model_inputs):
        meta = {k: model_inputs.pop(k) for k in ("word_ids", "text", "spans", "is_last")}
        output = self.model(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"])
        logits = output["logits"] if isinstance(output, dict) else output[0]
        return {"logits": logits, **meta}

    def postprocess(self, all_outputs, aggregation_strategy=AggregationStrategy.NONE, ignore_labels=None):
        if ignore_labels is None:
            ignore_labels = ["O"]
        id2label = self.model.config.id2label
        text, spans = all_outputs[0]["text"], all_outputs[0]["spans"]
        words = []
        for out in all_outputs:
            logits = out["logits"][0].float().numpy()
            scores = np.exp(logits - logits.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            pieces = {}
            for pos, w in enumerate(out["word_ids"]):
                if w is not None:
                    pieces.setdefault(w, []).append(scores[pos])
            for w in sorted(pieces):
                words.append((w, self._word_scores(pieces[w], aggregation_strategy)))
        entities = []
        for w, scores in words:
            label = int(scores.argmax())
            start, end = spans[w]
            entities.append(
                {
                    "entity": id2label[label],
                    "score": float(scores[label]),
                    "index": w,
                    "word": text[start:end],
                    "start": start,
                    "end": end,
                }
            )
        if aggregation_strategy != AggregationStrategy.NONE:
            entities = self.group_entities(entities)
            for e in entities:
                e["word"] = text[e["start"] : e["end"]]
                e["score"] = float(e["score"])
        return [e for e in entities if e.get("entity", e.get("entity_group")) not in ignore_labels]

    @staticmethod
    def _word_scores(pieces, aggregation_strategy):
        if aggregation_strategy == AggregationStrategy.AVERAGE:
            return np.nanmean(np.stack(pieces), axis=0)
        if aggregation_strategy == AggregationStrategy.MAX:
            return max(pieces, key=lambda s: s.max())
        return pieces[0]  # the word's first piece, as the plugin reads it


PIPELINE_TASK = "xlt-token-classification"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_xlt.XLTTokenClassificationPipeline",
        "pt": ["AutoModelForTokenClassification"],
        "tf": [],
        "type": "text",
    }
}
