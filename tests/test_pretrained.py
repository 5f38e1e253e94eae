"""--pretrained-encoder: a tiny checkpoint made by fairseq's own masked_lm
training is loaded into the xlt encoder, whose features must equal fairseq's
RobertaModel/XLMRModel features; legacy files load the same; every mismatch is
a clear error naming the file and the key."""

import argparse
import os
import shutil

import pytest
import torch

from tests.conftest import USER_DIR

TINY = ["--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64"]
TINY += ["--encoder-attention-heads", "2", "--max-positions", "64"]
TEXTS = ["aka ame Aper1 amo", "bki bmu Bloc2 bgood1 bse", "aka zzq 漢字 Ørsted ame"]


def train_fairseq_mlm(encoder_dir, text_files, out_dir, extra=()):
    """A tiny RoBERTa trained for a few updates by fairseq's own masked_lm
    task; returns a checkpoint directory laid out like an XLM-R release."""
    from fairseq import options
    from fairseq_cli import train

    from xlt_fairseq.data.binarize import PieceEncoder, write_indexed
    from xlt_fairseq.data.formats import read_text_lines

    enc = PieceEncoder(encoder_dir)
    data = os.path.join(out_dir, "mlm-bin")
    os.makedirs(data, exist_ok=True)
    shutil.copy(os.path.join(encoder_dir, "dict.txt"), data)
    lines = [line for path in text_files for line in read_text_lines(path)]
    eos = enc.dictionary.eos()
    for split, part in (("train", lines), ("valid", lines[:20])):
        write_indexed(os.path.join(data, split), [enc.encode(t) + [eos] for t in part], len(enc.dictionary))
    save = os.path.join(out_dir, "ckpt")
    args = [data, "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta", *TINY, *extra]
    args += ["--tokens-per-sample", "64", "--sample-break-mode", "complete", "--optimizer", "adam"]
    args += ["--lr", "0.003", "--batch-size", "16", "--max-update", "8", "--save-dir", save, "--cpu"]
    args += ["--num-workers", "0", "--no-epoch-checkpoints", "--seed", "1", "--disable-validation", "--no-progress-bar"]
    train.main(options.parse_args_and_arch(options.get_training_parser(), args))
    ckpt_dir = os.path.join(out_dir, "xlmr-tiny")
    os.makedirs(ckpt_dir, exist_ok=True)
    shutil.copy(os.path.join(save, "checkpoint_last.pt"), os.path.join(ckpt_dir, "model.pt"))
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        shutil.copy(os.path.join(encoder_dir, name), ckpt_dir)
    return ckpt_dir


@pytest.fixture(scope="session")
def fairseq_checkpoint(tiny_data):
    raw = tiny_data["raw"]
    texts = [raw[("mlm", lang, "train")] for lang in ("aa", "bb")]
    return train_fairseq_mlm(tiny_data["encoder"], texts, os.path.join(tiny_data["tmp"], "fairseq-mlm"))


def build_xlt_model(data, *extra):
    """Builds an xlt_model through fairseq's argument parser and the real task."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = [data, "--user-dir", USER_DIR, "--task", "xlt_multitask", "--ner-langs", "aa,bb", "--mlm-langs", "aa,bb"]
    args += ["--arch", "xlt_tiny", "--criterion", "xlt_multitask_adversarial", "--cpu", *extra]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), args))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    model.eval()
    return model, task


def xlt_features(model, tokens):
    with torch.no_grad():
        return model.encoder.hidden_states(tokens)[0]


def hub_features(hub, tokens):
    with torch.no_grad():
        return hub.model.encoder.extract_features(tokens)[0]


def encode_batch(encode, texts):
    """Right-padded batch of ``encode(text)`` tensors (pad = 1)."""
    seqs = [encode(t) for t in texts]
    out = torch.full((len(seqs), max(len(s) for s in seqs)), 1, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def test_features_equal_fairseq(tiny_data, fairseq_checkpoint):
    from fairseq.models.roberta import RobertaModel, XLMRModel

    from xlt_fairseq.data.binarize import PieceEncoder

    model, task = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", fairseq_checkpoint)
    xlmr = XLMRModel.from_pretrained(fairseq_checkpoint, checkpoint_file="model.pt").eval()
    roberta = RobertaModel.from_pretrained(fairseq_checkpoint, checkpoint_file="model.pt", bpe=None).eval()
    # fairseq's hub tokenisation is ours: <s> pieces </s> with the same ids
    enc = PieceEncoder(tiny_data["encoder"])
    for t in TEXTS:
        assert xlmr.encode(t).tolist() == [0] + enc.encode(t) + [2]
    tokens = encode_batch(xlmr.encode, TEXTS)
    ours = xlt_features(model, tokens)
    mask = tokens.ne(1)
    for ref in (hub_features(xlmr, tokens), hub_features(roberta, tokens)):
        assert (ours - ref)[mask].abs().max().item() < 1e-5
    # the masked-LM head came along: its own output layer starts as the (pretrained, tied in XLM-R) embeddings
    se, head = model.encoder, xlmr.model.encoder.lm_head
    assert torch.equal(se.lm_head.dense.weight, head.dense.weight)
    assert se.lm_head.weight is not se.sentence_encoder.embed_tokens.weight
    assert torch.equal(se.lm_head.weight, head.weight)
    with torch.no_grad():
        h = xlt_features(model, tokens)
        assert torch.allclose(se.lm_head(h), head(hub_features(xlmr, tokens)), atol=1e-4)
    # and it differs from a randomly initialised model
    fresh, _ = build_xlt_model(tiny_data["data"], *TINY)
    assert (xlt_features(fresh, tokens) - ours)[mask].abs().max().item() > 1e-2


def _legacy_copy(src_dir, dst_dir):
    """The same weights as a legacy file: ``args`` Namespace, ``decoder.*``
    names, ``emb_layer_norm``, fused ``in_proj`` attention weights."""
    import torch

    from xlt_fairseq import checkpoint_safety

    os.makedirs(dst_dir, exist_ok=True)
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        shutil.copy(os.path.join(src_dir, name), dst_dir)
    state = checkpoint_safety.load(os.path.join(src_dir, "model.pt"))
    args = argparse.Namespace(**vars(state["cfg"]["model"]))
    model = {}
    for k, v in state["model"].items():
        k = k.replace("encoder.", "decoder.", 1).replace("layernorm_embedding", "emb_layer_norm")
        model[k] = v
    for i in range(2):
        p = f"decoder.sentence_encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            parts = [model.pop(f"{p}{n}_proj.{kind}") for n in "qkv"]
            model[f"{p}in_proj_{kind}"] = torch.cat(parts, 0)
    model.pop("decoder.sentence_encoder.version")
    legacy = {"args": args, "model": model, "optimizer_history": [], "extra_state": {"epoch": 1}}
    torch.save(legacy, os.path.join(dst_dir, "model.pt"), _use_new_zipfile_serialization=False)
    return dst_dir


def test_legacy_checkpoint_loads_the_same(tiny_data, fairseq_checkpoint, tmp_path):
    legacy = _legacy_copy(fairseq_checkpoint, str(tmp_path / "legacy"))
    new, _ = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", fairseq_checkpoint)
    old, _ = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", legacy)
    tokens = torch.tensor([[0, 10, 11, 12, 2]])
    assert torch.equal(xlt_features(new, tokens), xlt_features(old, tokens))


def _error(tiny_data, ckpt, *flags):
    from xlt_fairseq.pretrained import EncoderCheckpointError

    with pytest.raises(EncoderCheckpointError) as e:
        build_xlt_model(tiny_data["data"], *flags, "--pretrained-encoder", ckpt)
    return str(e.value)


def _edited(src_dir, dst_dir, edit):
    from xlt_fairseq import checkpoint_safety

    shutil.copytree(src_dir, dst_dir)
    state = checkpoint_safety.load(os.path.join(src_dir, "model.pt"))
    edit(state["model"])
    torch.save(state, os.path.join(dst_dir, "model.pt"))
    return dst_dir


def test_architecture_mismatches_name_the_key(tiny_data, fairseq_checkpoint, tmp_path):
    model_pt = os.path.join(fairseq_checkpoint, "model.pt")
    flags = dict(zip(TINY[::2], TINY[1::2]))

    def with_(**over):
        f = dict(flags, **{"--" + k.replace("_", "-"): str(v) for k, v in over.items()})
        return [x for kv in f.items() for x in kv]

    msg = _error(tiny_data, fairseq_checkpoint, *with_(encoder_layers=1))
    assert model_pt in msg and "unexpected key 'encoder.sentence_encoder.layers.1." in msg
    assert "--encoder-layers 2" in msg
    msg = _error(tiny_data, fairseq_checkpoint, *with_(encoder_layers=3))
    assert "missing key 'encoder.sentence_encoder.layers.2." in msg
    msg = _error(tiny_data, fairseq_checkpoint, *with_(encoder_ffn_embed_dim=48))
    assert "size mismatch for 'encoder.sentence_encoder.layers.0.fc1.weight'" in msg and "(64, 32)" in msg
    msg = _error(tiny_data, fairseq_checkpoint, *with_(max_positions=32))
    assert "embed_positions.weight" in msg and "--max-positions 64" in msg
    msg = _error(tiny_data, fairseq_checkpoint, *with_(encoder_attention_heads=4))
    assert "encoder_attention_heads" in msg and "--encoder-attention-heads 2" in msg

    extra = _edited(
        fairseq_checkpoint,
        str(tmp_path / "extra"),
        lambda m: m.update({"encoder.sentence_encoder.foo": torch.zeros(1)}),
    )
    assert "unexpected key 'encoder.sentence_encoder.foo'" in _error(tiny_data, extra, *TINY)
    missing = _edited(
        fairseq_checkpoint, str(tmp_path / "missing"), lambda m: m.pop("encoder.sentence_encoder.layers.1.fc2.bias")
    )
    assert "missing key 'encoder.sentence_encoder.layers.1.fc2.bias'" in _error(tiny_data, missing, *TINY)


def test_masked_lm_head_is_optional(tiny_data, fairseq_checkpoint, tmp_path):
    def drop_head(m):
        for k in [k for k in m if k.startswith("encoder.lm_head.")]:
            del m[k]

    headless = _edited(fairseq_checkpoint, str(tmp_path / "headless"), drop_head)
    a, _ = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", headless)
    b, _ = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", fairseq_checkpoint)
    tokens = torch.tensor([[0, 10, 11, 2]])
    assert torch.equal(xlt_features(a, tokens), xlt_features(b, tokens))
    partial = _edited(fairseq_checkpoint, str(tmp_path / "partial"), lambda m: m.pop("encoder.lm_head.dense.bias"))
    assert "missing key 'encoder.lm_head.dense.bias'" in _error(tiny_data, partial, *TINY)


def test_dictionary_must_be_the_checkpoints(tiny_data, fairseq_checkpoint, tmp_path):
    other = str(tmp_path / "other")
    shutil.copytree(fairseq_checkpoint, other)
    lines = open(os.path.join(other, "dict.txt"), encoding="utf-8").read().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    with open(os.path.join(other, "dict.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    msg = _error(tiny_data, other, *TINY)
    assert os.path.join(other, "dict.txt") in msg and "first difference at id 9" in msg and "--encoder-dir" in msg
    msg = _error(tiny_data, str(tmp_path / "nowhere"), *TINY)
    assert "nowhere: no such directory" in msg
    os.remove(os.path.join(other, "model.pt"))
    assert os.path.join(other, "model.pt") + ": missing" in _error(tiny_data, other, *TINY)
