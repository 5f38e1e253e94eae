"""scripts/prune_vocab.py: the pruned encoder directory has fewer rows and
gives identical features (and masked-LM logits) on the corpora it was pruned for."""

import os

import torch

from tests.test_pretrained import TINY, build_xlt_model, fairseq_checkpoint, xlt_features  # noqa: F401
from tests.utils import LANGS


def _preprocess_like(raw, encoder_dir, destdir):
    """The tiny data root again, binarised with another encoder directory."""
    import preprocess

    for lang in LANGS:
        for task in ("ner", "sentiment", "mlm"):
            args = [task, "--lang", lang, "--encoder-dir", encoder_dir, "--destdir", destdir]
            for split in ("train", "valid") + (("test",) if task != "mlm" else ()):
                args += [f"--{split}", raw[(task, lang, split)]]
            assert preprocess.main(args) == 0
    args = ["translation", "--src-lang", "aa", "--tgt-lang", "bb", "--encoder-dir", encoder_dir, "--destdir", destdir]
    for split in ("train", "valid", "test"):
        args += [f"--{split}", raw[("translation", "aa-bb", split)]]
    assert preprocess.main(args) == 0
    return destdir


def _streams(root):
    from fairseq.data import indexed_dataset

    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            parts = name.split(".")
            if len(parts) == 3 and parts[1] in ("input", "src", "tgt") and parts[2] == "bin":
                ds = indexed_dataset.MMapIndexedDataset(os.path.join(dirpath, name[:-4]))
                out[os.path.relpath(os.path.join(dirpath, name), root)] = [ds[i].tolist() for i in range(len(ds))]
    return out


def test_pruned_encoder_gives_identical_features(tiny_data, fairseq_checkpoint, tmp_path):  # noqa: F811
    import json

    import prune_vocab

    pruned = str(tmp_path / "pruned")
    assert (
        prune_vocab.main(["--encoder-dir", fairseq_checkpoint, "--data-bin", tiny_data["data"], "--out", pruned]) == 0
    )
    info = json.load(open(os.path.join(pruned, "xlt_encoder.json")))
    n_before, n_after = info["pruned"]["symbols"]
    assert n_after < n_before
    keep = torch.load(os.path.join(pruned, "model.pt"), weights_only=True)["extra_state"]["xlt_pruned_from"]["kept_ids"]
    assert len(keep) == n_after

    # the same text, binarised with the pruned directory, is the same pieces
    data2 = _preprocess_like(tiny_data["raw"], pruned, str(tmp_path / "data-pruned"))
    old, new = _streams(tiny_data["data"]), _streams(data2)
    assert old.keys() == new.keys() and len(old) >= 10
    remap = {old_id: new_id for new_id, old_id in enumerate(keep)}
    for name in old:
        assert [[remap[i] for i in seq] for seq in old[name]] == new[name], name

    full, _ = build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", fairseq_checkpoint)
    small, _ = build_xlt_model(data2, *TINY, "--pretrained-encoder", pruned)
    n_full = sum(p.numel() for p in full.encoder.parameters())
    n_small = sum(p.numel() for p in small.encoder.parameters())
    assert n_full - n_small == (n_before - n_after) * (32 + 1)  # embedding rows + masked-LM biases

    seqs = old["mlm/aa/valid.input.bin"][:8]
    width = max(len(s) for s in seqs) + 1
    a = torch.ones(len(seqs), width, dtype=torch.long)
    b = torch.ones(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        a[i, : len(s) + 1] = torch.tensor([0] + s)
        b[i, : len(s) + 1] = torch.tensor([0] + [remap[t] for t in s])
    mask = a.ne(1)
    fa, fb = xlt_features(full, a), xlt_features(small, b)
    assert (fa - fb)[mask].abs().max().item() < 1e-6
    with torch.no_grad():
        la, lb = full.encoder.lm_head(fa), small.encoder.lm_head(fb)
    assert (la[..., keep] - lb)[mask].abs().max().item() < 1e-5


def test_pieces_of_raw_files_are_those_of_the_binarised_data(tiny_data, tmp_path):
    """--tagged (CoNLL), --labelled (label<TAB>text) and --text find exactly the pieces
    preprocessing writes for the same files, so pruning needs no binarised data root."""
    import numpy as np

    from xlt_fairseq.data.binarize import PieceEncoder
    from xlt_fairseq.importers.prune import ids_in_data_root, ids_in_files, ids_in_text

    raw, enc = tiny_data["raw"], tiny_data["encoder"]
    splits = ("train", "valid", "test")
    tagged = [raw[("ner", lang, s)] for lang in LANGS for s in splits]
    labelled = [raw[("sentiment", lang, s)] for lang in LANGS for s in splits]
    text = [raw[("mlm", lang, s)] for lang in LANGS for s in ("train", "valid")]
    text += [raw[("translation", "aa-bb", s)] + f".{side}" for s in splits for side in ("aa", "bb")]
    pieces = PieceEncoder(enc)
    got = np.union1d(ids_in_files(pieces, tagged, labelled), ids_in_text(pieces, text))
    want = ids_in_data_root(tiny_data["data"], enc)
    assert np.array_equal(got[got >= 4], want[want >= 4]) and len(want) > 50
    # each option on its own: exactly the pieces of that task's binarised streams
    streams = _streams(tiny_data["data"])
    for task, ids in (("ner", ids_in_files(pieces, tagged)), ("sentiment", ids_in_files(pieces, labelled=labelled))):
        binarised = {i for name, seqs in streams.items() if name.startswith(task + "/") for s in seqs for i in s}
        assert set(ids.tolist()) == {i for i in binarised if i >= 4}, task


def test_prune_vocab_cli_reads_tagged_and_labelled_files(tiny_data, fairseq_checkpoint, tmp_path):  # noqa: F811
    import json

    import prune_vocab

    raw = tiny_data["raw"]
    out = str(tmp_path / "pruned-raw")
    args = ["--encoder-dir", fairseq_checkpoint, "--out", out, "--tagged"]
    args += [raw[("ner", lang, "train")] for lang in LANGS] + ["--labelled"]
    args += [raw[("sentiment", lang, "train")] for lang in LANGS]
    assert prune_vocab.main(args) == 0
    n_before, n_after = json.load(open(os.path.join(out, "xlt_encoder.json")))["pruned"]["symbols"]
    assert 4 < n_after < n_before

    bad = tmp_path / "bad.conll"
    bad.write_text("tok\tB-PER\nonlyonecolumn_and no tab\n\n", encoding="utf-8")
    assert prune_vocab.main(["--encoder-dir", fairseq_checkpoint, "--out", str(tmp_path / "x"), "--tagged", str(bad)]) == 1
    assert not os.path.exists(tmp_path / "x")
