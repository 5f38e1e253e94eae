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
    assert "no 'translation' head" in capsys.readouterr().err
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
