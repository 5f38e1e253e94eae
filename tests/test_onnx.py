"""ONNX export (xlt-export-onnx) and the onnxruntime engine (xlt-predict --engine onnx,
XLTHubInterface.use_onnx) on the tiny trained model: the graph has the documented
inputs, outputs, opset and dynamic axes, reproduces the torch logits on padded batches
when run by onnxruntime alone, the int8 model agrees on most labels, the engine writes
the torch engine's records, and what cannot work is refused with the reason."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from tests.test_hub import hub, trained_model  # noqa: F401  (module fixtures)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ner_export(trained_model):  # noqa: F811
    """The NER head exported into the model folder (MODEL/onnx/ner), fp32 and int8, checked on a dev file."""
    from xlt_fairseq.cli import export_onnx as cli

    args = ["--model", trained_model["model"], "--task", "ner", "--quantize", "int8"]
    args += ["--check-dev", trained_model["raw"][("ner", "bb", "valid")], "--lang", "bb"]
    assert cli.main(args) == 0
    folder = os.path.join(trained_model["model"], "onnx", "ner")
    return {"folder": folder, "info": json.load(open(os.path.join(folder, "xlt_onnx.json")))}


def _sentences(run, lang="bb", split="test"):
    from xlt_fairseq.data import formats

    return [" ".join(s.tokens) for s in formats.read_tagged(run["raw"][("ner", lang, split)])]


def test_graph_has_the_documented_interface_and_checks(ner_export, hub):  # noqa: F811
    folder, info = ner_export["folder"], ner_export["info"]
    assert sorted(os.listdir(folder)) == [".xlt-output.json", "model.int8.onnx", "model.onnx", "xlt_onnx.json"]
    graph = onnx.load(os.path.join(folder, "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == info["opset"] == 17
    (inp,) = graph.graph.input
    (out,) = graph.graph.output
    assert inp.name == "input_ids" and inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert out.name == "logits" and [d.dim_param for d in out.type.tensor_type.shape.dim][:2] == ["batch", "sequence"]
    assert out.type.tensor_type.shape.dim[2].dim_value == len(hub.labels("ner"))
    assert info["labels"] == hub.labels("ner") and info["checks"]["fp32"]["max_abs_logit_diff"] <= 1e-4
    dev = info["checks"]["dev"]
    assert dev["metric"] == "entity_f1" and dev["examples"] > 10
    assert abs(dev["torch"] - dev["int8"]) <= 0.005 and abs(dev["torch"] - dev["fp32"]) <= 1e-6
    assert info["checks"]["int8"]["argmax_agreement"] >= 0.9


def test_onnxruntime_alone_reproduces_the_torch_logits_on_padded_batches(ner_export, trained_model, hub):  # noqa: F811
    """The graph run by onnxruntime directly (no plugin code), on batches padded on the right and on the
    left and on an unpadded one, against the torch model's logits of each sentence on its own."""
    from fairseq.data import data_utils

    from xlt_fairseq.data.words import split_words

    texts = _sentences(trained_model)[:12] + ['"""" « Aper1 » , ake .', "aka"]
    items = [hub.encode(split_words(t)[0]) for t in texts]
    session = ort.InferenceSession(os.path.join(ner_export["folder"], "model.onnx"), providers=["CPUExecutionProvider"])
    pad = hub.task.dictionary.pad()
    for left_pad in (False, True):
        batch = data_utils.collate_tokens(items, pad_idx=pad, left_pad=left_pad)
        logits = torch.from_numpy(session.run(["logits"], {"input_ids": batch.numpy()})[0])
        for row, ids in enumerate(items):
            keep = batch[row].ne(pad)
            assert torch.allclose(logits[row][keep], hub.logits(split_words(texts[row])[0], "ner"), atol=1e-4)
    single = session.run(["logits"], {"input_ids": items[0].unsqueeze(0).numpy()})[0][0]
    assert np.allclose(single, hub.logits(split_words(texts[0])[0], "ner").numpy(), atol=1e-4)


def _predict(model, task, engine, args, capsys):
    from xlt_fairseq.cli import predict

    assert predict.main(["--model", model, "--task", task, "--engine", engine] + args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _same_records(a, b, atol=1e-5):
    """Equal records, the probabilities within ``atol``."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_records(a[k], b[k], atol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_records(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= atol
    return a == b


def test_predict_engine_onnx_writes_the_torch_engines_records(ner_export, trained_model, tmp_path, capsys):  # noqa: F811
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(_sentences(trained_model) + ['"""" « Aper1 » , ake .', "", "Bper3 bke ▁ bmu"]) + "\n")
    args = ["--input", str(raw), "--lang", "bb", "--batch-size", "4"]
    torch_rows = _predict(trained_model["model"], "ner", "torch", args, capsys)
    onnx_rows = _predict(trained_model["model"], "ner", "onnx", args, capsys)
    assert len(torch_rows) == len(_sentences(trained_model)) + 3
    assert _same_records(torch_rows, onnx_rows)
    int8_rows = _predict(trained_model["model"], "ner", "onnx-int8", args, capsys)
    labels = [(w["word"], w["label"]) for r in torch_rows for w in r["words"]]
    int8 = [(w["word"], w["label"]) for r in int8_rows for w in r["words"]]
    assert len(labels) == len(int8) and [a[0] for a in labels] == [b[0] for b in int8]
    assert sum(a == b for a, b in zip(labels, int8)) >= 0.9 * len(labels)
    # the engine really ran: int8 weights move the probabilities
    assert not _same_records(torch_rows, int8_rows, atol=1e-4)


def test_sentiment_head_through_the_python_api(trained_model, hub, tmp_path):  # noqa: F811
    from xlt_fairseq.exporters.onnx import export_onnx
    from xlt_fairseq.models.xlt_model import XLTModel

    out = str(tmp_path / "sentiment-onnx")
    info = export_onnx(trained_model["model"], "sentiment", out, check_dev=trained_model["raw"][("sentiment", "aa", "valid")])
    assert info["kind"] == "classification" and info["checks"]["dev"]["metric"] == "accuracy"
    texts = [x for x in open(trained_model["raw"][("mlm", "aa", "test")], encoding="utf-8").read().splitlines() if x][:20]
    onnx_hub = XLTModel.from_pretrained(trained_model["model"], device="cpu").use_onnx("sentiment", out)
    assert _same_records(onnx_hub.classify(texts, batch_size=3), hub.classify(texts, batch_size=3))
    assert torch.allclose(onnx_hub.logits(texts[0], "sentiment"), hub.logits(texts[0], "sentiment"), atol=1e-4)
    assert onnx_hub.tag(texts[:2]) == hub.tag(texts[:2])  # other heads still run in torch


def test_what_cannot_be_exported_or_run_is_refused(trained_model, ner_export, tmp_path, capsys, monkeypatch):  # noqa: F811
    from xlt_fairseq.cli import export_onnx as cli
    from xlt_fairseq.cli import predict

    model = trained_model["model"]
    assert cli.main(["--model", model, "--task", "translation", "--out", str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err
    assert "translation is a sequence-to-sequence decoder and is not exported to ONNX" in err and "sentiment" in err
    assert cli.main(["--model", model, "--task", "pos", "--out", str(tmp_path / "p")]) == 1
    assert "no 'pos' head (heads that can be exported: ner, sentiment)" in capsys.readouterr().err
    assert cli.main(["--model", model, "--task", "ner"]) == 1  # the folder exists: never overwritten silently
    assert "pass --force" in capsys.readouterr().err
    # a head without an export, a precision that was not exported, an export of other weights
    raw = tmp_path / "in.txt"
    raw.write_text("aka ake\n")
    assert predict.main(["--model", model, "--task", "sentiment", "--engine", "onnx", "--input", str(raw)]) == 1
    assert "onnx/sentiment/xlt_onnx.json: not found; write the export with xlt-export-onnx" in capsys.readouterr().err
    fp32_only = tmp_path / "fp32-only"
    shutil.copytree(ner_export["folder"], fp32_only)
    info = json.load(open(fp32_only / "xlt_onnx.json"))
    del info["files"]["int8"]
    info["source"]["model_md5"] = "0" * 32
    (fp32_only / "xlt_onnx.json").write_text(json.dumps(info))
    args = ["--model", model, "--task", "ner", "--onnx-dir", str(fp32_only), "--input", str(raw)]
    assert predict.main(args + ["--engine", "onnx-int8"]) == 1
    assert "has no int8 model (export it with --quantize int8)" in capsys.readouterr().err
    assert predict.main(args + ["--engine", "onnx"]) == 1
    assert "exported from other weights than" in capsys.readouterr().err
    assert predict.main(["--model", model, "--task", "translation", "--engine", "onnx", "--input", str(raw)]) == 1
    assert "only tagging and classification heads run in ONNX" in capsys.readouterr().err
    # onnxruntime missing: the extra to install, for the export and the engine alike
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert predict.main(["--model", model, "--task", "ner", "--engine", "onnx", "--input", str(raw)]) == 1
    assert "onnxruntime is not installed" in capsys.readouterr().err
    assert cli.main(["--model", model, "--task", "ner", "--out", str(tmp_path / "x")]) == 1
    assert "pip install 'xlt_fairseq[onnx]'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "t")


def test_an_int8_model_that_loses_f1_is_refused_and_nothing_is_written(trained_model, tmp_path, monkeypatch):  # noqa: F811
    """A quantised model worse than --max-drop on the dev file (here its classifier negated) is not written."""
    from xlt_fairseq.exporters import onnx as onnx_export

    quantize = onnx_export.quantize_int8

    def damaged(src, dst):
        kept = quantize(src, dst)
        graph = onnx.load(dst)
        n_labels = len(json.load(open(os.path.join(trained_model["model"], "xlt_model.json")))["labels"]["ner"])
        for init in graph.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT and list(init.dims) == [n_labels]:  # the classifier's bias
                bias = onnx.numpy_helper.to_array(init).copy()
                bias[0] += 50.0  # "O" far more often
                init.CopyFrom(onnx.numpy_helper.from_array(bias, init.name))
        onnx.save(graph, dst)
        return kept

    monkeypatch.setattr(onnx_export, "quantize_int8", damaged)
    out = tmp_path / "out"
    dev = trained_model["raw"][("ner", "bb", "valid")]
    refused = r"entity_f1 of the int8 ONNX model is 0\.\d+, 0\.\d+ below the torch model.s .* nothing written"
    with pytest.raises(onnx_export.OnnxExportError, match=refused):
        onnx_export.export_onnx(trained_model["model"], "ner", str(out), quantize="int8", check_dev=dev, lang="bb")
    assert os.listdir(tmp_path) == []


def test_smoothing_keeps_the_function_and_rescales_the_fc2_inputs(hub):  # noqa: F811
    """smooth_fc2 divides each feed-forward output projection's input channel by its scale and multiplies the
    weight's column by it: the logits stay the torch model's."""
    import copy

    from fairseq.data import data_utils

    from xlt_fairseq.exporters.onnx import _Smoothed, smooth_fc2

    items = [hub.encode(t.split()) for t in ["Aper1 aka ake , Aloc2 .", "bka binc Borg1 binc", "aka ake ama"]]
    batch = data_utils.collate_tokens(items, pad_idx=hub.task.dictionary.pad())
    model = copy.deepcopy(hub.model).float().eval()
    assert smooth_fc2(model, "ner", [batch], alpha=0.8) == len(hub.model.encoder.sentence_encoder.layers)
    smoothed = [m.fc2 for m in model.modules() if isinstance(getattr(m, "fc2", None), _Smoothed)]
    assert smoothed and all(not torch.allclose(f.inv_scale, torch.ones_like(f.inv_scale)) for f in smoothed)
    with torch.no_grad():
        before = hub.model(batch, None, task="ner")["logits"]
        after = model(batch, None, task="ner")["logits"]
    assert torch.allclose(before, after, atol=1e-4)
