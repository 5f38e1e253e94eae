"""The Python API (XLTModel.from_pretrained -> tag / classify / translate / logits),
self-contained model folders (xlt-export) and xlt-predict, on a tiny model trained
on generated data. The training folders are moved away before the model folder is
used: nothing in it may point back to them."""

import contextlib
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from tests.conftest import run_train, train_args


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A tiny run (all four tasks), its model folder, and the checkpoint's outputs
    computed while its training folders were still in place; then the folders are moved."""
    from tests.utils import prepare_all
    from xlt_fairseq.export import export_model
    from xlt_fairseq.models.xlt_model import XLTModel

    tmp = str(tmp_path_factory.mktemp("hub"))
    enc, data, raw = prepare_all(os.path.join(tmp, "train"))
    ck_dir = os.path.join(tmp, "train", "ck")
    run_train(train_args(data, ck_dir, "--required-batch-size-multiple", "1", max_update=40))
    ck = os.path.join(ck_dir, "checkpoint_last.pt")
    hub = XLTModel.from_pretrained(ck_dir, "checkpoint_last.pt", device="cpu")
    texts = ["Aper1 aka ake , Aloc2 .", "bka binc Borg1 binc", "aka"]
    before = {
        "tag": hub.tag(texts),
        "classify": hub.classify(texts),
        "translate": hub.translate(texts, beam=2),
        "ner_logits": hub.logits(texts[0], "ner"),
    }
    model_dir = os.path.join(tmp, "model")
    export_model(ck, model_dir)
    half_dir = os.path.join(tmp, "model-half")
    export_model(ck, half_dir, half=True)
    moved = os.path.join(tmp, "moved")
    shutil.move(os.path.join(tmp, "train"), moved)  # data root, encoder, raw data and checkpoints
    return {
        "tmp": tmp,
        "train_root": os.path.join(tmp, "train"),
        "moved": moved,
        "checkpoint": os.path.join(moved, "ck", "checkpoint_last.pt"),
        "data": os.path.join(moved, "data-bin"),
        "raw": {k: v.replace(os.path.join(tmp, "train"), moved) for k, v in raw.items()},
        "model": model_dir,
        "half": half_dir,
        "texts": texts,
        "before": before,
    }


@pytest.fixture(scope="module")
def hub(trained_model):
    from xlt_fairseq.models.xlt_model import XLTModel

    return XLTModel.from_pretrained(trained_model["model"], device="cpu")


# ---- model folders ---------------------------------------------------------------------------------------------------


def test_model_folder_reproduces_the_checkpoint_without_its_training_folders(trained_model, hub):
    texts, before = trained_model["texts"], trained_model["before"]
    assert not os.path.exists(trained_model["train_root"])
    assert hub.tag(texts) == before["tag"]
    assert hub.classify(texts) == before["classify"]
    assert hub.translate(texts, beam=2) == before["translate"]
    assert torch.allclose(hub.logits(texts[0], "ner"), before["ner_logits"], atol=1e-6)
    assert hub.heads == ["ner", "sentiment"] and hub.languages == ["aa", "bb"]
    assert hub.labels("sentiment") == ["negative", "positive"]


def test_model_folder_holds_no_path_of_the_training_machine(trained_model):
    from xlt_fairseq import checkpoint_safety

    train_root = trained_model["train_root"]
    for folder, _, files in os.walk(trained_model["model"]):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert train_root.encode() not in f.read(), name
    state = checkpoint_safety.load(os.path.join(trained_model["model"], "model.pt"))
    assert state["last_optimizer_state"] is None and state["cfg"]["task"]["data"] == "."
    assert state["cfg"]["common"]["user_dir"] is None and state["cfg"]["model"]["pretrained_encoder"] is None
    info = json.load(open(os.path.join(trained_model["model"], "xlt_model.json")))
    assert info["labels"]["ner"][0] == "O" and info["precision"] == "fp32" and info["translation"] is True
    assert info["source"]["checkpoint"] == "checkpoint_last.pt" and info["source"]["num_updates"] == 40


def test_checkpoint_without_its_data_root_names_the_way_out(trained_model):
    from xlt_fairseq.models.hub_interface import HubError
    from xlt_fairseq.models.xlt_model import XLTModel

    with pytest.raises(HubError, match=r"checkpoint_last\.pt: its data root .* is not there .*xlt-export"):
        XLTModel.from_pretrained(trained_model["checkpoint"], device="cpu")
    # with the moved data root given, the encoder directory recorded in it is missing
    with pytest.raises(HubError, match="encoder directory .* is not there"):
        XLTModel.from_pretrained(trained_model["checkpoint"], data_name_or_path=trained_model["data"], device="cpu")
    # a data root with only its dictionary: not the preprocessing advice of training time
    bare = os.path.join(trained_model["tmp"], "bare-root")
    os.makedirs(bare, exist_ok=True)
    shutil.copy(os.path.join(trained_model["data"], "dict.txt"), bare)
    with pytest.raises(
        HubError, match=r"the data root .*bare-root lacks the corpus folders .*bare-root/ner/aa is missing.*xlt-export"
    ):
        XLTModel.from_pretrained(trained_model["checkpoint"], data_name_or_path=bare, device="cpu")
    ok = XLTModel.from_pretrained(
        trained_model["checkpoint"],
        data_name_or_path=trained_model["data"],
        encoder_dir=os.path.join(trained_model["moved"], "encoder"),
        device="cpu",
    )
    assert ok.tag(trained_model["texts"]) == trained_model["before"]["tag"]


def test_half_model_folder_is_smaller_and_close(trained_model, hub):
    from xlt_fairseq.models.xlt_model import XLTModel

    half = XLTModel.from_pretrained(trained_model["half"], device="cpu")
    size = os.path.getsize(os.path.join(trained_model["half"], "model.pt"))
    assert size < 0.6 * os.path.getsize(os.path.join(trained_model["model"], "model.pt"))
    text = trained_model["texts"][0]
    assert torch.allclose(half.logits(text, "ner"), hub.logits(text, "ner"), atol=2e-2)


def test_export_refuses_to_overwrite_and_leaves_nothing_half_written(trained_model, tmp_path):
    from xlt_fairseq.cli import export as export_cli

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert export_cli.main(["--checkpoint", trained_model["checkpoint"], "--out", str(out)]) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert export_cli.main(["--checkpoint", str(bad), "--out", str(tmp_path / "new")]) == 1
    assert sorted(os.listdir(tmp_path)) == ["bad.pt", "out"] and os.listdir(out) == ["keep.txt"]


# ---- the Python API ------------------------------------------------------------------------------------------------------


def test_tag_splits_raw_text_and_reports_probabilities(hub):
    out = hub.tag("Aper1 aka, Aloc2 (ake).", lang="aa")
    assert [w["word"] for w in out] == ["Aper1", "aka", ",", "Aloc2", "(", "ake", ")", "."]
    text = "Aper1 aka, Aloc2 (ake)."
    assert all(text[w["start"] : w["end"]] == w["word"] for w in out)
    assert all(0.0 < w["prob"] <= 1.0 and w["label"] in hub.labels("ner") for w in out)
    # the probability is the softmax of the raw logits at the word's first piece
    words = [w["word"] for w in out]
    logits = hub.logits(words, "ner")
    firsts = hub.encoder.encode_words(words)[1]
    probs = torch.softmax(logits[[f + 1 for f in firsts]], dim=-1)  # +1: <s>
    assert [hub.labels("ner")[int(i)] for i in probs.argmax(-1)] == [w["label"] for w in out]
    assert torch.allclose(probs.max(-1).values, torch.tensor([w["prob"] for w in out]), atol=1e-5)


def test_results_do_not_depend_on_batching(hub):
    texts = ["aka " * n + "Aper1" for n in range(1, 12)] + ["", "bka"]
    one = hub.tag_probs([t.split() for t in texts], batch_size=1)
    many = hub.tag_probs([t.split() for t in texts], batch_size=5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one, many))
    assert torch.allclose(hub.class_probs(texts, batch_size=1), hub.class_probs(texts, batch_size=4), atol=1e-5)
    alone, together = hub.translate(texts[:6], beam=2, batch_size=1), hub.translate(texts[:6], beam=2, batch_size=6)
    assert [t["translation"] for t in alone] == [t["translation"] for t in together]
    # the scores agree up to float noise of padded batches (summation order)
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(alone, together))


def test_long_sentences_are_tagged_in_the_windows_preprocessing_makes(hub):
    """A sentence longer than the positions: every word gets a tag, and the tags are those of
    the windows binarize.encode_tagged_chunk cuts (the same windows training data gets)."""
    from xlt_fairseq.data import binarize

    words = (["Aper1", "aka", "akainc", "Aorg2"] * 60)[:230]
    probs = hub.tag_probs([words])[0]
    assert probs.shape == (len(words), len(hub.labels("ner")))
    enc = binarize.encode_tagged_chunk(hub.encoder, [(words, [0] * len(words))], hub.max_pieces)
    labels, sizes = enc["streams"]["label"]
    assert len(sizes) > 1 and max(sizes) <= hub.max_pieces + 1
    start, pos = 0, 0
    for n in sizes:
        k = int((labels[pos : pos + n] != binarize.IGNORED).sum())
        alone = hub.tag_probs([words[start : start + k]])[0]
        assert torch.allclose(probs[start : start + k], alone, atol=1e-5)
        start, pos = start + k, pos + n
    assert start == len(words)


def test_classify_and_translate_return_scores(hub):
    out = hub.classify(["agood1 aka", "abad2 aka"])
    assert [sorted(o["probs"]) for o in out] == [["negative", "positive"]] * 2
    assert all(abs(sum(o["probs"].values()) - 1.0) < 1e-4 and o["prob"] == max(o["probs"].values()) for o in out)
    single = hub.translate("aka ake", beam=3, nbest=2)
    assert isinstance(single["translation"], str) and len(single["nbest"]) == 2
    assert single["nbest"][0]["score"] >= single["nbest"][1]["score"] and single["score"] < 0


def test_requests_the_model_cannot_serve_are_refused(hub):
    from xlt_fairseq.models.hub_interface import HubError

    with pytest.raises(HubError, match="no 'pos' head"):
        hub.tag("aka", task="pos")
    with pytest.raises(HubError, match="not a tagging head"):
        hub.tag_probs([["aka"]], task="sentiment")
    with pytest.raises(HubError, match="nbest"):
        hub.translate("aka", beam=2, nbest=3)
    with pytest.raises(HubError, match="input 1: expected a sentence"):
        hub.tag(["aka", 3])
    with pytest.raises(HubError, match="input 0: expected a text"):
        hub.classify([["aka"]])
    with pytest.raises(HubError, match="batch size"):
        hub.classify(["aka"], batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fp16_on_gpu_matches_fp32(hub, trained_model):
    from xlt_fairseq.models.xlt_model import XLTModel

    gpu = XLTModel.from_pretrained(trained_model["model"], device="cuda").half()
    text = trained_model["texts"][0]
    assert torch.allclose(gpu.logits(text, "ner").float().cpu(), hub.logits(text, "ner"), atol=2e-2)
    assert [w["word"] for w in gpu.tag(text)] == [w["word"] for w in hub.tag(text)]
    assert len(gpu.translate([text], beam=2)) == 1


# ---- xlt-predict -----------------------------------------------------------------------------------------------------------


def predict(argv, stdin=""):
    from xlt_fairseq.cli import predict as predict_cli

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = predict_cli.main(argv)
    finally:
        sys.stdin = old
    return rc, out.getvalue(), err.getvalue()


def test_predict_reads_raw_sentences_not_one_token_per_line(trained_model, hub):
    rc, out, _ = predict(["--model", trained_model["model"], "--task", "ner", "--cpu"], "Aper1 aka ake\nbka\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [len(r["words"]) for r in rows] == [3, 1]
    assert rows[0]["words"] == hub.tag("Aper1 aka ake")


def test_predict_json_lines_in_and_out(trained_model, hub):
    lines = [
        json.dumps({"id": "s1", "text": "agood1 aka"}),
        json.dumps({"id": "s2", "text": "abad1"}),
    ]
    rc, out, _ = predict(
        ["--model", trained_model["model"], "--task", "sentiment", "--format", "jsonl", "--cpu"],
        "\n".join(lines) + "\n",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["id"] for r in rows] == ["s1", "s2"]
    assert [r["label"] for r in rows] == [c["label"] for c in hub.classify(["agood1 aka", "abad1"])]
    tokens = json.dumps({"id": 3, "tokens": ["Aper1", "aka"]})
    rc, out, _ = predict(["--model", trained_model["model"], "--task", "ner", "--format", "jsonl"], tokens + "\n")
    assert rc == 0 and [w["word"] for w in json.loads(out)["words"]] == ["Aper1", "aka"]
    rc, out, _ = predict(
        ["--model", trained_model["model"], "--task", "translation", "--format", "jsonl", "--beam", "2"],
        json.dumps({"text": "aka ake"}) + "\n",
    )
    assert rc == 0 and json.loads(out)["translation"] == hub.translate("aka ake", beam=2)["translation"]


def test_predict_conll_and_tsv_outputs(trained_model, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("Aper1\naka\n\nAloc2\nake\nakainc\n")
    rc, out, _ = predict(
        ["--checkpoint", trained_model["model"], "--task", "ner", "--format", "tokens", "--input", str(tokens)]
        + ["--output-format", "conll"]
    )
    assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == [
        "Aper1",
        "aka",
        "",
        "Aloc2",
        "ake",
        "akainc",
        "",
    ]
    out_file = tmp_path / "pred.tsv"
    rc, _, _ = predict(
        ["--model", trained_model["model"], "--task", "sentiment", "--output-format", "tsv", "--output", str(out_file)],
        "agood1 aka\n",
    )
    label, prob, text = out_file.read_text().rstrip("\n").split("\t")
    assert rc == 0 and label in ("negative", "positive") and 0.5 <= float(prob) <= 1.0 and text == "agood1 aka"


def test_predict_errors_name_the_line_and_write_nothing(trained_model, tmp_path):
    out_file = tmp_path / "out.jsonl"
    rc, out, err = predict(
        ["--model", trained_model["model"], "--task", "ner", "--format", "jsonl", "--output", str(out_file)],
        '{"text": "aka"}\n{"text": \n',
    )
    assert rc == 1 and err.startswith("error: <stdin>:2: not valid JSON") and not out_file.exists()
    rc, _, err = predict(["--model", trained_model["model"], "--task", "pos"], "aka\n")
    assert rc == 1 and "no such head" in err
    rc, _, err = predict(["--model", trained_model["model"], "--task", "sentiment", "--output-format", "conll"], "a\n")
    assert rc == 1 and "conll is for tagging" in err
    rc, _, err = predict(["--model", str(tmp_path / "nowhere"), "--task", "ner"], "aka\n")
    assert rc == 1 and "checkpoint not found" in err


def test_readme_python_snippet_runs(trained_model, capsys):
    """The README's Python block, on the tiny model (so the documented calls cannot drift)."""
    from tests.conftest import REPO

    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = readme.split("<!-- readme-python-api")[1].split("```python\n")[1].split("```")[0]
    code = block.replace('"model_dir"', repr(trained_model["model"]))
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "['ner', 'sentiment']" in out and "'translation'" in out


def test_translate_equals_fairseq_interactive_on_the_model_folder(trained_model, hub, tmp_path):
    """In-process generation gives fairseq-interactive's hypotheses and scores (it prints log2),
    and fairseq-interactive reads a model folder as its data root (README)."""
    import math
    import subprocess

    from tests.conftest import REPO, USER_DIR

    texts = trained_model["texts"]
    src = tmp_path / "src.txt"
    src.write_text("".join(t + "\n" for t in texts))
    model = trained_model["model"]
    cmd = [sys.executable, "-m", "fairseq_cli.interactive", model, "--user-dir", USER_DIR, "--task", "xlt_multitask"]
    cmd += ["--source-lang", "aa", "--target-lang", "bb", "--path", os.path.join(model, "model.pt"), "--cpu"]
    cmd += ["--beam", "2", "--input", str(src), "--bpe", "sentencepiece"]
    cmd += ["--sentencepiece-model", os.path.join(model, "sentencepiece.bpe.model")]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hyps = {}
    for line in proc.stdout.splitlines():
        if line.startswith("D-"):
            head, score, text = line.split("\t")
            hyps[int(head[2:])] = (text, float(score) * math.log(2))
    ours = hub.translate(texts, beam=2)
    assert [hyps[i][0] for i in range(len(texts))] == [o["translation"] for o in ours]
    assert all(abs(hyps[i][1] - o["score"]) < 1e-4 for i, o in enumerate(ours))


def test_pooled_features_read_the_data_root_through_the_data_layer(trained_model):
    """Figure 3's sentence features (experiments.evaluation.pooled_features) equal the model's
    pooled features of each sentence on its own, for the trained and the initial model."""
    from xlt_fairseq.data import corpora
    from xlt_fairseq.experiments import evaluation

    loaded = evaluation.load_checkpoint(
        trained_model["checkpoint"], trained_model["data"], os.path.join(trained_model["moved"], "encoder"), cpu=True
    )
    feats, owners = evaluation.pooled_features(loaded, "ner", ["aa", "bb"], "valid", per_key=6, batch_size=4)
    assert feats.shape == (12, 64) and owners == ["aa"] * 6 + ["bb"] * 6
    start = evaluation.initial_model(loaded, seed=1)
    before, _ = evaluation.pooled_features(loaded, "ner", ["aa", "bb"], "valid", per_key=6, model=start)
    tokens = corpora.load_indexed(corpora.corpus_dir(trained_model["data"], "ner", "bb"), "valid", "input")
    for i in range(6):
        src = torch.cat([torch.tensor([0]), tokens[i].long()]).unsqueeze(0)
        with torch.no_grad():
            alone = loaded.model.pooled_features(src, torch.tensor([src.shape[1]]), task="ner")[0]
            alone0 = start.pooled_features(src, torch.tensor([src.shape[1]]), task="ner")[0]
        assert torch.allclose(torch.from_numpy(feats[6 + i]), alone, atol=1e-5)
        assert torch.allclose(torch.from_numpy(before[6 + i]), alone0, atol=1e-5)
    assert not np.allclose(feats, before)


def test_bf16_weights_run_every_method(trained_model, hub):
    """The half-precision path (what .half() on a GPU takes): masks, pooling, softmax and generation
    cope with 16-bit weights; probabilities come back in fp32 (bf16 here: CPUs lack fp16 kernels)."""
    from xlt_fairseq.models.xlt_model import XLTModel

    low = XLTModel.from_pretrained(trained_model["model"], device="cpu").to(torch.bfloat16)
    texts = trained_model["texts"]
    assert low.logits(texts[0], "ner").dtype == torch.bfloat16
    assert torch.allclose(low.logits(texts[0], "ner").float(), hub.logits(texts[0], "ner"), atol=0.1)
    probs = low.tag_probs([t.split() for t in texts])
    assert all(p.dtype == torch.float32 and torch.allclose(p.sum(-1), torch.ones(len(p))) for p in probs)
    assert torch.allclose(low.class_probs(texts), hub.class_probs(texts), atol=0.05)
    assert len(low.translate(texts, beam=2)) == len(texts)
