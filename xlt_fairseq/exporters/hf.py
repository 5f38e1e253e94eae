# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt model -> Hugging Face transformers folder (one task head).

The inverse of :mod:`xlt_fairseq.importers.hf`. The fairseq RoBERTa encoder
maps onto transformers' ``XLMRobertaModel`` exactly: the same post-LayerNorm
layers, the same learned positions (fairseq row ``2 + i`` holds position ``i``
in both, counting from ``padding_idx + 1``), a zero token-type embedding (a BERT
source such as multilingual-e5 had its type-0 row folded into the positions on
import), LayerNorm eps 1e-5. The plugin's feature extractor (a residual GELU
block) and the task's linear head are not expressible by the stock
``XLMRobertaFor*Classification`` heads, so the folder uses the small classes of
:mod:`.modeling_xlt` (``XLTForTokenClassification`` /
``XLTForSequenceClassification``), shipped in the folder and named in
``auto_map``:

* ``AutoModelFor*.from_pretrained(HF_DIR, trust_remote_code=True)`` loads it
  offline with torch + transformers only (the code is read from the folder);
* after ``import xlt_fairseq.exporters.modeling_xlt as m; m.register()`` no
  ``trust_remote_code`` is needed;
* without either, transformers refuses the unknown ``model_type`` with an error
  (never silently a stock head with other outputs).

The tokenizer is transformers' ``XLMRobertaTokenizer`` built from the model's
sentencepiece model (ids = fairseq dictionary ids). A tagging export also ships
``pipeline_xlt.py`` and ``words.py`` (the plugin's word splitter), named in the
config's ``custom_pipelines`` as ``xlt-token-classification``: a pipeline that
groups pieces into words exactly as the plugin does (:mod:`.pipeline_xlt`).
``README.md`` is a model card (languages, task, labels, training corpora,
metrics when given, licence note).

The export is checked before the folder is moved into place: token ids equal
the plugin's (of raw text, and of its words encoded one by one), logits equal
the plugin's within ``atol``, and the pipeline's word labels equal
``XLTModel.tag``'s. Files come out with the umask's modes (0644/0755).
"""

import json
import logging
import os
import shutil
from typing import List, Optional, Sequence

import torch

logger = logging.getLogger(__name__)

ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu", "tanh": "tanh"}
CHECK_TEXTS = (
    "Amina Mohamed alizaliwa Nairobi , Kenya .",
    "The European Union met in Brussels on Monday.",
    "Ọ̀gbẹ́ni Adé lọ sí Èkó lánàá.",
    "a",
    '"""" ▁ « Rais » wa Tanzania\u200b , alisema : "Ndiyo" .',
)


class HFExportError(ValueError):
    """A model that cannot be exported exactly (the message says why)."""


def import_transformers():
    """transformers, with torchaudio reported absent: fairseq installs torchaudio, whose
    extension does not load next to a CPU-only torch, and transformers imports it eagerly."""
    try:
        import torchaudio  # noqa: F401
    except Exception:
        import transformers.utils as tu
        import transformers.utils.import_utils as iu

        iu.is_torchaudio_available = tu.is_torchaudio_available = lambda: False
    import transformers

    return transformers


def _layers(model, task):
    encoder = model.encoder
    layers = list(encoder.sentence_encoder.layers)
    own = encoder.task_layers[task] if task in encoder.task_layers else None
    if own is not None:
        layers = layers[: encoder.shared_layers] + list(own)
    return layers


def convert_state(hub, task: str) -> dict:
    """The transformers state dict (``roberta.*``, ``feature_extractor.*``, ``classifier.*``) of ``task``."""
    model = hub.model
    se = model.encoder.sentence_encoder
    if getattr(se, "layer_norm", None) is not None:
        raise HFExportError("the encoder is pre-LayerNorm (a final layer norm): XLM-R's layers are post-LayerNorm")
    if se.layernorm_embedding is None:
        raise HFExportError("the encoder has no embedding LayerNorm; XLM-R's has one")
    if se.embed_scale not in (None, 1.0):
        raise HFExportError(f"the encoder scales its embeddings by {se.embed_scale}; XLM-R does not")
    H = model.cfg.encoder_embed_dim
    out = {
        "roberta.embeddings.word_embeddings.weight": se.embed_tokens.weight,
        "roberta.embeddings.position_embeddings.weight": se.embed_positions.weight,
        "roberta.embeddings.token_type_embeddings.weight": torch.zeros(1, H),
        "roberta.embeddings.LayerNorm.weight": se.layernorm_embedding.weight,
        "roberta.embeddings.LayerNorm.bias": se.layernorm_embedding.bias,
    }
    pairs = [
        ("attention.self.query", "self_attn.q_proj"),
        ("attention.self.key", "self_attn.k_proj"),
        ("attention.self.value", "self_attn.v_proj"),
        ("attention.output.dense", "self_attn.out_proj"),
        ("attention.output.LayerNorm", "self_attn_layer_norm"),
        ("intermediate.dense", "fc1"),
        ("output.dense", "fc2"),
        ("output.LayerNorm", "final_layer_norm"),
    ]
    for i, layer in enumerate(_layers(model, task)):
        if getattr(layer, "normalize_before", False):
            raise HFExportError(f"encoder layer {i} is pre-LayerNorm; XLM-R's layers are post-LayerNorm")
        params = dict(layer.named_parameters())
        for hf_name, fs_name in pairs:
            for p in ("weight", "bias"):
                out[f"roberta.encoder.layer.{i}.{hf_name}.{p}"] = params[f"{fs_name}.{p}"]
    fe = model.encoder.feature_extractor
    out["feature_extractor.dense.weight"] = fe.dense.weight
    out["feature_extractor.dense.bias"] = fe.dense.bias
    head = model.heads[task]
    out["classifier.weight"] = head.out_proj.weight
    out["classifier.bias"] = head.out_proj.bias
    return {k: v.detach().float().cpu().clone().contiguous() for k, v in out.items()}


def hf_config(hub, task: str, kind: str):
    from .modeling_xlt import XLTConfig

    cfg = hub.model.cfg
    if cfg.activation_fn not in ACTIVATIONS:
        raise HFExportError(f"activation {cfg.activation_fn!r} has no transformers counterpart ({sorted(ACTIVATIONS)})")
    fe = hub.model.encoder.feature_extractor
    labels = hub.labels(task)
    architecture = "XLTForTokenClassification" if kind == "tagging" else "XLTForSequenceClassification"
    head = hub.model.heads[task]
    config = XLTConfig(
        vocab_size=len(hub.task.dictionary),
        hidden_size=cfg.encoder_embed_dim,
        num_hidden_layers=len(_layers(hub.model, task)),
        num_attention_heads=cfg.encoder_attention_heads,
        intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_act=ACTIVATIONS[cfg.activation_fn],
        hidden_dropout_prob=float(cfg.dropout),
        attention_probs_dropout_prob=float(cfg.attention_dropout),
        max_position_embeddings=int(cfg.max_positions) + 2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=hub.task.dictionary.pad(),
        bos_token_id=hub.task.dictionary.bos(),
        eos_token_id=hub.task.dictionary.eos(),
        classifier_dropout=float(cfg.pooler_dropout),
        feature_extractor_dim=fe.dense.out_features,
        feature_extractor_residual=bool(fe.residual),
        feature_extractor_act=ACTIVATIONS[cfg.activation_fn],
        sentence_pooling=getattr(head, "pooling", "mean"),
        num_labels=len(labels),
        id2label={i: label for i, label in enumerate(labels)},
        label2id={label: i for i, label in enumerate(labels)},
    )
    config.architectures = [architecture]
    config.auto_map = {
        "AutoConfig": "modeling_xlt.XLTConfig",
        "AutoModelForTokenClassification": "modeling_xlt.XLTForTokenClassification",
        "AutoModelForSequenceClassification": "modeling_xlt.XLTForSequenceClassification",
    }
    return config, architecture


def _model_class(architecture: str):
    from . import modeling_xlt

    return getattr(modeling_xlt, architecture)


def export_hf(
    model: str,
    task: str,
    out_dir: str,
    force: bool = False,
    check_texts: Optional[Sequence[str]] = None,
    atol: float = 1e-4,
    card: Optional[dict] = None,
) -> dict:
    """Writes ``out_dir``: ``config.json``, ``model.safetensors``, the tokenizer files,
    ``modeling_xlt.py`` (and for tagging ``pipeline_xlt.py``, ``words.py``) and ``README.md``
    for ``task``'s head of ``model`` (a model folder or a checkpoint). ``card``: what the model
    card cannot read from the model (``data``: training data names, ``metrics``: xlt-evaluate
    results, ``license``, ``base_model``). Returns a summary with the largest logit
    difference measured on ``check_texts``."""
    from ..data.binarize import SPM_FILE
    from ..data.task_names import builtin_kind
    from ..data import outputs
    from ..models.hub_interface import load_hub

    import_transformers()
    outputs.check_outputs([("--out", out_dir)], [("--model", model)])  # before any work; again at the end
    outputs.check_folder_output(out_dir, "xlt-export-hf", force)
    hub = load_hub(model, device="cpu").float()
    if task == "translation":
        raise HFExportError(
            "translation is a sequence-to-sequence decoder: a transformers token-classification or "
            "sequence-classification folder cannot hold it; what exports is a tagging head (ner, an auxiliary "
            f"tagging task) or a classification head (sentiment): this model has {', '.join(hub.heads) or 'none'}"
        )
    if task not in hub.heads:
        raise HFExportError(
            f"{model}: the model has no {task!r} head (heads that can be exported: {', '.join(hub.heads) or 'none'})"
        )
    kind = builtin_kind(task)
    if kind not in ("tagging", "classification"):
        raise HFExportError(f"{task}: only tagging and classification heads can be exported")
    config, architecture = hf_config(hub, task, kind)
    if kind == "tagging":
        from .pipeline_xlt import CUSTOM_PIPELINES

        config.custom_pipelines = CUSTOM_PIPELINES
    hf_model = _model_class(architecture)(config)
    missing, unexpected = hf_model.load_state_dict(convert_state(hub, task), strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise HFExportError(f"internal error: weights missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf_model.eval()

    sources = [("--model", model), ("the encoder directory", hub.encoder.encoder_dir)]
    with outputs.staged_folder(out_dir, "xlt-export-hf", force, sources) as tmp:
        hf_model.save_pretrained(tmp)
        here = os.path.dirname(os.path.abspath(__file__))
        shutil.copyfile(os.path.join(here, "modeling_xlt.py"), os.path.join(tmp, "modeling_xlt.py"))
        if kind == "tagging":
            shutil.copyfile(os.path.join(here, "pipeline_xlt.py"), os.path.join(tmp, "pipeline_xlt.py"))
            shutil.copyfile(os.path.join(os.path.dirname(here), "data", "words.py"), os.path.join(tmp, "words.py"))
        _write_tokenizer(hub, tmp, os.path.join(hub.encoder.encoder_dir, SPM_FILE))
        texts = list(check_texts or CHECK_TEXTS)
        diff = check_export(hub, task, tmp, texts, atol)
        summary = {"task": task, "architecture": architecture, "max_abs_logit_diff": diff, "checked_texts": len(texts)}
        with open(os.path.join(tmp, "xlt_export.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(model_card(hub, task, kind, summary, card or {}))
    logger.info(f"wrote {out_dir} ({architecture}, {config.num_labels} labels; max logit difference {diff:.2e})")
    return {
        "out": out_dir,
        "task": task,
        "architecture": architecture,
        "labels": hub.labels(task),
        "max_abs_logit_diff": diff,
    }


def _write_tokenizer(hub, folder: str, spm_path: str):
    transformers = import_transformers()
    from ..data.binarize import SPM_FILE

    shutil.copyfile(spm_path, os.path.join(folder, SPM_FILE))
    tok = transformers.XLMRobertaTokenizer.from_pretrained(folder, model_max_length=int(hub.model.cfg.max_positions))
    if len(tok) != len(hub.task.dictionary):
        raise HFExportError(
            f"the tokenizer has {len(tok)} ids but the model's dictionary {len(hub.task.dictionary)}: "
            "the dictionary is not the sentencepiece model's (a pruned or hand-made dict.txt)"
        )
    tok.save_pretrained(folder)


def check_export(hub, task: str, folder: str, texts: List[str], atol: float) -> float:
    """Loads ``folder`` through the Auto classes and compares token ids and logits with the plugin's."""
    transformers = import_transformers()
    from . import modeling_xlt

    modeling_xlt.register()
    from ..data.task_names import builtin_kind

    tagging = builtin_kind(task) == "tagging"
    auto = transformers.AutoModelForTokenClassification if tagging else transformers.AutoModelForSequenceClassification
    model = auto.from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    worst = 0.0
    # one padded batch, as a user would run it
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    for row, text in enumerate(texts):
        ids = [int(i) for i, m in zip(batch["input_ids"][row], batch["attention_mask"][row]) if m]
        ours = hub.encode(text).tolist()
        if ids != ours:
            raise HFExportError(f"{folder}: the tokenizer gives {ids[:12]} for {text!r}, the plugin {ours[:12]}")
        theirs = logits[row, : len(ids)] if tagging else logits[row]
        mine = hub.logits(text, task).float()
        worst = max(worst, float((theirs - mine).abs().max()))
    if worst > atol:
        raise HFExportError(f"{folder}: the exported logits differ from the plugin's by {worst:.2e} (> {atol:g})")
    if tagging:
        _check_words(hub, task, folder, model, tok, texts)
    return worst


def _check_words(hub, task: str, folder: str, model, tok, texts: List[str]):
    """The words' pieces (each word encoded on its own) and the shipped pipeline's word labels
    equal the plugin's."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from ..data.words import split_words

    for text in texts:
        words = split_words(text)[0]
        if not words:
            continue
        encoded = tok(words, is_split_into_words=True, add_special_tokens=False)
        pieces = [[] for _ in words]
        for piece, w in zip(encoded["input_ids"], encoded.word_ids()):
            pieces[w].append(piece)
        for word, ids in zip(words, pieces):
            ours = hub.encoder.encode_word(word)
            if (ids or [tok.unk_token_id]) != ours:
                raise HFExportError(f"{folder}: the tokenizer gives {ids[:12]} for the word {word!r}, the plugin {ours[:12]}")
    pipeline_class = get_class_from_dynamic_module("pipeline_xlt.XLTTokenClassificationPipeline", folder)
    transformers = import_transformers()
    pipe = transformers.pipeline("token-classification", model=model, tokenizer=tok, pipeline_class=pipeline_class)
    theirs = pipe(texts, ignore_labels=[])
    for text, rows, mine in zip(texts, theirs, hub.tag(texts, task=task)):
        got = [(r["word"], r["entity"], r["start"], r["end"]) for r in rows]
        want = [(r["word"], r["label"], r["start"], r["end"]) for r in mine]
        if got != want:
            raise HFExportError(f"{folder}: the pipeline labels the words of {text!r} as {got[:6]}, the plugin {want[:6]}")


def model_card(hub, task: str, kind: str, summary: dict, card: dict) -> str:
    """README.md of the export: a Hugging Face model card (YAML metadata + what the model is)."""
    info = hub.info or {}
    corpora = (info.get("corpora") or {}).get(task) or {
        key: {"language": hub.task.corpus_language(task, key)} for key in hub.task.corpus_keys.get(task, [])
    }
    langs = sorted({c["language"] for c in corpora.values()})
    labels = hub.labels(task)
    pipeline_tag = "token-classification" if kind == "tagging" else "text-classification"
    data = list(card.get("data") or [])
    license_id = card.get("license") or "other"
    meta = ["---", "language:"] + [f"- {lang}" for lang in langs]
    meta += [f"license: {license_id}", "library_name: transformers", f"pipeline_tag: {pipeline_tag}"]
    meta += ["tags:", "- xlt_fairseq", f"- {task}", "- cross-lingual-transfer"]
    if card.get("base_model"):
        meta.append(f"base_model: {card['base_model']}")
    if card.get("metrics"):
        names = sorted({k for m in card["metrics"] for k in m.get("metrics", {}) if k in _METRIC_NAMES})
        meta += ["metrics:"] + [f"- {_METRIC_NAMES[k]}" for k in names]
    meta.append("---")
    source = info.get("source") or {}
    trained = []
    for key, c in sorted(corpora.items()):
        domain = f", domain {c['domain']}" if c.get("domain") not in (None, "general") else ""
        trained.append(f"{task}/{key} ({c['language']}{domain})")
    other = [t for t in (info.get("tasks") or []) if t != task]
    what = "token classification: one label per word, read at its first piece" if kind == "tagging" else "text classification"
    rows = [
        ("task", f"`{task}` ({what})"),
        ("languages", ", ".join(langs) or "not recorded"),
        ("labels", ", ".join(f"`{label}`" for label in labels)),
        ("training data", "; ".join(data) if data else "not named at export (pass --data-name)"),
        ("trained on the corpora", ", ".join(trained) or "not recorded"),
    ]
    if other:
        rows.append(("trained together with", ", ".join(other) + " (multi-task; only this head is exported)"))
    if source.get("num_updates"):
        rows.append(("updates", f"{source['num_updates']:,} ({source.get('checkpoint', 'checkpoint')})"))
    rows.append(("checked at export", f"logits within {summary['max_abs_logit_diff']:.1e} of xlt_fairseq's on "
                                      f"{summary['checked_texts']} texts"))
    lines = meta + [
        "",
        f"# {task} ({', '.join(langs)}), exported from xlt_fairseq",
        "",
        f"The `{task}` head of a model trained with xlt_fairseq (a fairseq plugin for "
        "cross-lingual transfer: a shared multilingual encoder, task heads and a language discriminator), "
        "exported by `xlt-export-hf`.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if card.get("metrics"):
        lines += ["", "## Metrics", "", "| language | test file | metric | value |", "|---|---|---|---|"]
        for m in card["metrics"]:
            for k, v in m.get("metrics", {}).items():
                if k in _METRIC_NAMES and isinstance(v, (int, float)):
                    lines.append(f"| {m.get('lang', '')} | {os.path.basename(str(m.get('test', '')))} | {k} | {v:.4f} |")
    lines += ["", "## Use", "", "```python"]
    if kind == "tagging":
        lines += [
            "from transformers import pipeline",
            "",
            'ner = pipeline("xlt-token-classification", model="THIS_FOLDER", trust_remote_code=True,',
            '               aggregation_strategy="first")',
            'ner("Amina Mohamed alizaliwa Nairobi, Kenya.")   # entities: entity_group, score, word, start, end',
            "```",
            "",
            "`xlt-token-classification` (`pipeline_xlt.py`, `words.py`) splits text into words as xlt_fairseq does "
            "(whitespace, punctuation split off at both ends of a token), encodes each word on its own and reads "
            "its label at its first piece, so its labels are xlt_fairseq's (`xlt-predict`). transformers' stock "
            "`token-classification` pipeline guesses words from character offsets and disagrees on some words "
            '(`""""` is one word there, four here; a bare `▁` piece becomes a word of its own). '
            '`aggregation_strategy="none"` gives one record per word; `ignore_labels=[]` keeps the `O` words.',
        ]
    else:
        lines += [
            "from transformers import pipeline",
            "",
            'clf = pipeline("text-classification", model="THIS_FOLDER", trust_remote_code=True)',
            'clf("habari njema sana")',
            "```",
        ]
    lines += [
        "",
        "The model classes are in `modeling_xlt.py` (an XLM-R body, the plugin's feature extractor, a linear "
        "head): load with `trust_remote_code=True`.",
        "",
        "## Licence",
        "",
        f"Licence given at export: `{license_id}`. The weights are derived from the pretrained encoder the model "
        "was trained from and from its training data; their licences apply to this model too (several NER and "
        "sentiment corpora, e.g. MasakhaNER and WikiAnn, are for non-commercial use only). Check them before you "
        "redistribute or deploy it.",
        "",
    ]
    return "\n".join(lines)


_METRIC_NAMES = {"f1": "f1", "precision": "precision", "recall": "recall", "acc": "accuracy", "macro_f1": "f1"}
