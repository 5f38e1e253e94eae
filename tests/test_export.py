"""Export to Hugging Face transformers (xlt-export-hf): the folder loads offline
with transformers' Auto classes in a fresh interpreter that never imports the
plugin, the tokenizer gives the plugin's ids, and the logits equal the plugin's
within 1e-4 on the tiny run's real test sentences (padded batches included)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.test_hub import hub, trained_model  # noqa: F401  (module fixtures)

LOADER = r"""
import json, sys
import numpy as np
import transformers.utils as tu, transformers.utils.import_utils as iu
iu.is_torchaudio_available = tu.is_torchaudio_available = lambda: False  # fairseq's torchaudio vs CPU torch
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer
folder, kind, texts_path, out_path = sys.argv[1:]
auto = AutoModelForTokenClassification if kind == "tagging" else AutoModelForSequenceClassification
try:
    auto.from_pretrained(folder)
    refused = False
except ValueError:
    refused = True
model = auto.from_pretrained(folder, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
texts = json.load(open(texts_path))
batch = tok(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**batch).logits
np.save(out_path, logits.numpy())
if kind == "tagging":  # the README's pipeline
    from transformers import pipeline
    entities = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="first")(texts[0])
    assert isinstance(entities, list), entities
json.dump({"refused": refused, "plugin_imported": "xlt_fairseq" in sys.modules, "id2label": model.config.id2label,
           "ids": batch["input_ids"].tolist(), "mask": batch["attention_mask"].tolist(),
           "class": type(model).__name__}, open(out_path + ".json", "w"))
"""


def _test_sentences(run, task, n=12):
    from xlt_fairseq.data import formats

    if task == "ner":
        return [" ".join(s.tokens) for s in formats.read_tagged(run["raw"][("ner", "bb", "test")])[:n]]
    return [x.text for x in formats.read_classification(run["raw"][("sentiment", "aa", "test")])[:n]]


@pytest.mark.parametrize("task,kind", [("ner", "tagging"), ("sentiment", "classification")])
def test_transformers_folder_reproduces_the_plugin(trained_model, hub, task, kind, tmp_path):  # noqa: F811
    from xlt_fairseq.cli import export_hf as export_hf_cli

    out = str(tmp_path / f"hf-{task}")
    assert export_hf_cli.main(["--model", trained_model["model"], "--task", task, "--out", out]) == 0
    assert {"config.json", "model.safetensors", "modeling_xlt.py", "tokenizer.json", "sentencepiece.bpe.model"} <= set(
        os.listdir(out)
    )
    texts = _test_sentences(trained_model, task)
    texts_path = tmp_path / "texts.json"
    texts_path.write_text(json.dumps(texts))
    result = str(tmp_path / "logits.npy")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    env["PYTHONPATH"] = ""  # the plugin is not importable by its checkout path: transformers alone
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, out, kind, str(texts_path), result],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.load(open(result + ".json"))
    logits = torch.from_numpy(np.load(result))
    assert meta["refused"] and not meta["plugin_imported"]  # no silent fallback to a stock head
    assert list(meta["id2label"].values()) == hub.labels(task)
    for row, text in enumerate(texts):
        ids = [i for i, m in zip(meta["ids"][row], meta["mask"][row]) if m]
        assert ids == hub.encode(text).tolist()
        theirs = logits[row, : len(ids)] if kind == "tagging" else logits[row]
        assert torch.allclose(theirs, hub.logits(text, task), atol=1e-4), (
            text,
            (theirs - hub.logits(text, task)).abs().max(),
        )


def test_heads_that_cannot_be_exported_are_refused(trained_model, tmp_path, capsys):  # noqa: F811
    from xlt_fairseq.cli import export_hf as export_hf_cli

    assert (
        export_hf_cli.main(["--model", trained_model["model"], "--task", "translation", "--out", str(tmp_path / "x")])
        == 1
    )
    err = capsys.readouterr().err
    assert "translation is a sequence-to-sequence decoder: a transformers token-classification or" in err
    assert "this model has ner, sentiment" in err and "no 'translation' head" not in err
    assert export_hf_cli.main(["--model", trained_model["model"], "--task", "pos", "--out", str(tmp_path / "y")]) == 1
    assert os.listdir(tmp_path) == []


def test_a_wrong_mapping_is_caught_before_anything_is_written(trained_model, tmp_path, monkeypatch):  # noqa: F811
    """The export checks itself: a corrupted weight (here the feature extractor's bias) fails it."""
    from xlt_fairseq.exporters import hf

    original = hf.convert_state

    def broken(model, task):
        state = original(model, task)
        state["feature_extractor.dense.bias"] = state["feature_extractor.dense.bias"] + 0.1
        return state

    monkeypatch.setattr(hf, "convert_state", broken)
    with pytest.raises(hf.HFExportError, match="logits differ"):
        hf.export_hf(trained_model["model"], "ner", str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


NARROW = ["--feature-extractor-dim", "48", "--sentence-pooling", "first"]
SOFT = ["--sharing", "soft", "--freeze-layers", "1"]


@pytest.mark.parametrize("variant", [NARROW, SOFT], ids=["narrow-first", "soft-sharing"])
def test_other_head_layouts_export_exactly(tmp_path, variant):
    """A feature extractor narrower than the encoder (a plain projection, no residual) with
    sentence classification from <s> (--sentence-pooling first), and soft parameter sharing
    (sentiment has its own upper layers): the export checks its own logits against the
    plugin's (1e-4) in a padded batch."""
    from tests.conftest import USER_DIR, run_train
    from tests.utils import prepare_all
    from xlt_fairseq.export import export_model
    from xlt_fairseq.exporters import hf

    enc, data, raw = prepare_all(str(tmp_path / "train"))
    ck = str(tmp_path / "ck")
    args = [data, "--user-dir", USER_DIR, "--task", "xlt_multitask", "--ner-langs", "aa", "--sentiment-langs", "aa"]
    args += ["--arch", "xlt_tiny", "--criterion", "xlt_multitask_adversarial", "--optimizer", "adam", "--lr", "0.003"]
    args += ["--batch-size", "8", "--max-update", "8", "--save-dir", ck, "--cpu", "--num-workers", "0"]
    args += variant + ["--disable-validation"]
    args += ["--adversarial-weight", "0", "--no-epoch-checkpoints"]
    run_train(args)
    model = str(tmp_path / "model")
    export_model(os.path.join(ck, "checkpoint_last.pt"), model)
    weights = {}
    for task, architecture in (("ner", "XLTForTokenClassification"), ("sentiment", "XLTForSequenceClassification")):
        out = hf.export_hf(model, task, str(tmp_path / f"hf-{task}"))
        assert out["architecture"] == architecture and out["max_abs_logit_diff"] <= 1e-4
        config = json.load(open(tmp_path / f"hf-{task}" / "config.json"))
        if variant == SOFT:
            from safetensors.torch import load_file

            key = "roberta.encoder.layer.1.attention.self.query.weight"  # above the frozen layer: per task
            weights[task] = load_file(str(tmp_path / f"hf-{task}" / "model.safetensors"))
            if task == "sentiment":
                assert not torch.equal(weights["ner"][key], weights["sentiment"][key])
                layer0 = key.replace("layer.1", "layer.0")
                assert torch.equal(weights["ner"][layer0], weights["sentiment"][layer0])
        if variant == NARROW:
            assert config["feature_extractor_dim"] == 48 and config["feature_extractor_residual"] is False
            assert task == "ner" or config["sentence_pooling"] == "first"


# ---- issue 30: the pipeline groups pieces into words as the plugin does; model card; file modes ----------------------

QUOTES = [
    '"""" Aper1 « ake » ▁ Bper3 bke .',
    "Borg2  binc bta , \u200b Aloc2 .",  # two spaces inside an entity, a zero-width word
    '" Aper1 " ‘ Borg1 ’ ▁▁ binc',
]


@pytest.fixture(scope="module")
def hf_ner(trained_model, tmp_path_factory):  # noqa: F811
    from xlt_fairseq.cli import export_hf as export_hf_cli

    out = str(tmp_path_factory.mktemp("hf") / "hf-ner")
    metrics = tmp_path_factory.mktemp("metrics") / "eval.json"
    metrics.write_text(json.dumps({"task": "ner", "lang": "bb", "test": "/x/ner.bb.test.conll", "metrics": {"f1": 0.8125}}))
    args = ["--model", trained_model["model"], "--task", "ner", "--out", out, "--data-name", "synthetic NER (aa, bb)"]
    args += ["--metrics", str(metrics), "--license", "mit", "--base-model", "xlt_tiny"]
    assert export_hf_cli.main(args) == 0
    return out


def _pipeline(folder, **kwargs):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from xlt_fairseq.exporters.hf import import_transformers

    transformers = import_transformers()
    return transformers.pipeline(
        "token-classification",
        model=transformers.AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True),
        tokenizer=transformers.AutoTokenizer.from_pretrained(folder),
        pipeline_class=get_class_from_dynamic_module("pipeline_xlt.XLTTokenClassificationPipeline", folder),
        **kwargs,
    )


def test_pipeline_labels_every_word_as_the_plugin(hf_ner, trained_model, hub):  # noqa: F811
    """Real test sentences, quotes, bare ▁ pieces, zero-width words and a sentence longer than the
    model's positions (windows at word boundaries): the same words, offsets and labels as XLTModel.tag."""
    texts = _test_sentences(trained_model, "ner", 40) + QUOTES
    texts.append(" ".join(_test_sentences(trained_model, "ner", 80)))  # > 2 x 128 positions: three windows
    from xlt_fairseq.data.words import split_words

    assert len(hub.encoder.encode_words(split_words(texts[-1])[0])[0]) > 2 * hub.max_pieces
    pipe = _pipeline(hf_ner)
    for batch_size in (1, 8):
        rows = pipe(texts, ignore_labels=[], batch_size=batch_size)
        for text, got, want in zip(texts, rows, hub.tag(texts)):
            assert [(r["word"], r["entity"], r["start"], r["end"]) for r in got] == [
                (w["word"], w["label"], w["start"], w["end"]) for w in want
            ], text
            assert all(abs(r["score"] - w["prob"]) <= 1e-4 for r, w in zip(got, want))
    words = [r["word"] for r in pipe(QUOTES[0], ignore_labels=[])]
    assert words[:4] == ['"'] * 4 and "▁" in words  # four words, and the bare ▁ one word
    # entities keep the input's text (spaces included) and offsets into it
    entities = [(t, e) for t in texts for e in pipe(t, aggregation_strategy="first")]
    for text, e in entities:
        assert e["word"] == text[e["start"] : e["end"]] and e["entity_group"] in ("PER", "ORG", "LOC")
    assert any(" " in e["word"] for _, e in entities)  # several words: their spaces are kept
    if [w["label"] for w in hub.tag(QUOTES[1])[:2]] == ["B-ORG", "I-ORG"]:
        assert pipe(QUOTES[1], aggregation_strategy="first")[0]["word"] == "Borg2  binc"


def test_stock_pipeline_task_name_finds_the_shipped_pipeline(hf_ner, tmp_path):
    """pipeline(model=FOLDER, trust_remote_code=True) in a fresh interpreter without the plugin."""
    code = LOADER.split("folder, kind")[0] + (
        "from transformers import pipeline\n"
        "import sys, json\n"
        "p = pipeline(model=sys.argv[1], trust_remote_code=True)\n"
        "print(json.dumps([type(p).__name__, [r['word'] for r in p(sys.argv[2], ignore_labels=[])],"
        " 'xlt_fairseq' in sys.modules]))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    env["PYTHONPATH"] = ""
    argv = [sys.executable, "-c", code, hf_ner, QUOTES[0]]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, words, plugin = json.loads(proc.stdout.strip().splitlines()[-1])
    assert name == "XLTTokenClassificationPipeline" and not plugin
    assert words == ['"', '"', '"', '"', "Aper1", "«", "ake", "»", "▁", "Bper3", "bke", "."]


def test_model_card(hf_ner, hub):  # noqa: F811
    card = open(os.path.join(hf_ner, "README.md"), encoding="utf-8").read()
    meta = card.split("---")[1]
    assert "language:\n- aa\n- bb" in meta and "license: mit" in meta and "pipeline_tag: token-classification" in meta
    assert "base_model: xlt_tiny" in meta and "- f1" in meta
    assert "| labels | " + ", ".join(f"`{label}`" for label in hub.labels("ner")) + " |" in card
    assert "| training data | synthetic NER (aa, bb) |" in card and "ner/aa (aa), ner/bb (bb)" in card
    assert "| bb | ner.bb.test.conll | f1 | 0.8125 |" in card and "| updates | 40 (checkpoint_last.pt) |" in card
    assert "xlt-token-classification" in card and "## Licence" in card and "non-commercial" in card
    config = json.load(open(os.path.join(hf_ner, "config.json")))
    assert config["custom_pipelines"]["xlt-token-classification"]["impl"] == "pipeline_xlt.XLTTokenClassificationPipeline"
    from xlt_fairseq.data import words

    assert open(os.path.join(hf_ner, "words.py")).read() == open(words.__file__).read()


def test_bad_metrics_file_is_refused(trained_model, tmp_path, capsys):  # noqa: F811
    from xlt_fairseq.cli import export_hf as export_hf_cli

    bad = tmp_path / "m.json"
    bad.write_text('{"f1": 0.5}')
    out = str(tmp_path / "out")
    assert export_hf_cli.main(["--model", trained_model["model"], "--task", "ner", "--out", out, "--metrics", str(bad)]) == 1
    assert "m.json: not the JSON xlt-evaluate prints" in capsys.readouterr().err and not os.path.exists(out)


def _modes(folder):
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, folder)] = os.stat(p).st_mode & 0o777
    out["."] = os.stat(folder).st_mode & 0o777
    return out


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_exports_respect_the_umask(trained_model, tmp_path, mask):  # noqa: F811
    """Model folders, transformers and ONNX exports and xlt-predict's --output: files 0666 and folders 0777
    less the umask (0644/0755 under 022), not the 0600/0700 of the temporary files they are staged in."""
    from xlt_fairseq.cli import predict
    from xlt_fairseq.export import export_model
    from xlt_fairseq.exporters.hf import export_hf

    old = os.umask(mask)
    try:
        folders = [str(tmp_path / "model"), str(tmp_path / "hf")]
        export_model(trained_model["checkpoint"], folders[0], data=trained_model["data"],
                     encoder_dir=os.path.join(trained_model["moved"], "encoder"))
        export_hf(trained_model["model"], "ner", folders[1])
        try:
            from xlt_fairseq.exporters.onnx import export_onnx

            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401

            folders.append(str(tmp_path / "onnx"))
            export_onnx(trained_model["model"], "sentiment", folders[2], quantize="int8")
        except ImportError:
            pass
        raw = tmp_path / "in.txt"
        raw.write_text("aka ake\n")
        args = ["--model", folders[0], "--task", "ner", "--input", str(raw), "--output", str(tmp_path / "o.jsonl")]
        assert predict.main(args) == 0
    finally:
        os.umask(old)
    for folder in folders:
        modes = _modes(folder)
        assert modes and all(
            m == ((0o777 if os.path.isdir(os.path.join(folder, p)) else 0o666) & ~mask) for p, m in modes.items()
        ), (folder, {p: oct(m) for p, m in modes.items()})
    assert os.stat(tmp_path / "o.jsonl").st_mode & 0o777 == 0o666 & ~mask
