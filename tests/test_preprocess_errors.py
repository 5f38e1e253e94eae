"""Every bad input stops scripts/preprocess.py (and scripts/prepare.py) with a
message naming the file, the line and the problem, a non-zero exit code, and
the destination exactly as it was. Each case writes its own small file."""

import hashlib
import os
import shutil

import build_vocab
import prepare as prepare_script
import preprocess
import pytest

from tests.test_formats import IWSLT_TAGS, XML_EN, XML_FR, iwslt_xml, ner_text, write

TEXT = [
    "Amina Mohammed lives in Lagos . Kenya Airways flies daily Yesterday Nairobi",
    "good bad great product broke after one day okay fine",
    "Thank you so much . It is great to be here . Merci beaucoup",
]


def make_encoder(folder, lines=TEXT, vocab_size=80):
    text = write(folder, "vocab.txt", "\n".join(lines * 3) + "\n")
    out = os.path.join(str(folder), "encoder")
    assert build_vocab.main(["--text", text, "--vocab-size", str(vocab_size), "--out", out]) == 0
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An encoder, good NER/sentiment files, and a data root that already holds a corpus."""
    tmp = tmp_path_factory.mktemp("errors")
    enc = make_encoder(tmp)
    good_ner = write(tmp, "good.conll", ner_text("conll"))
    good_sent = write(tmp, "good.tsv", "positive\tgood product\nnegative\tbroke after one day\n")
    data = os.path.join(str(tmp), "data-bin")
    assert preprocess.main(["ner", "--lang", "sw", "--encoder-dir", enc, "--destdir", data, "--train", good_ner]) == 0
    return {"tmp": tmp, "enc": enc, "ner": good_ner, "sent": good_sent, "data": data}


def snapshot(folder):
    """Every file under ``folder`` with its checksum (None when the folder does not exist)."""
    if not os.path.exists(folder):
        return None
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, folder)] = (
                hashlib.md5(open(p, "rb").read()).hexdigest() if os.path.isfile(p) else "dir"
            )
    return out


def fails(env, capsys, args, where, problem, script=preprocess):
    """Runs the script on both the existing data root and a new one; both must stay as they were."""
    for dest in (env["data"], os.path.join(str(env["tmp"]), "new-root")):
        before = snapshot(dest)
        full = [a.replace("DEST", dest) for a in args]
        assert script.main(full) == 1, full
        err = capsys.readouterr().err
        assert where in err and problem in err, err
        assert snapshot(dest) == before
    return err


def ner_args(env, path, *extra):
    return (
        ["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", env["ner"]]
        + (["--valid", path] if path else [])
        + list(extra)
    )


def test_wrong_number_of_columns(env, capsys):
    bad = write(env["tmp"], "cols.conll", "Amina\tB-PER\nlives\tO\tX\n")
    fails(env, capsys, ner_args(env, bad), f"{bad}:2", "expected 2 column(s) (token<TAB>tag)")
    spaced = write(env["tmp"], "cols.txt", "Amina B-PER\nlives\n")
    fails(env, capsys, ner_args(env, spaced, "--format", "conll-space"), f"{spaced}:2", "found 1")


def test_unknown_tag_after_mapping(env, capsys):
    bad = write(env["tmp"], "date.txt", "Amina B-PER\njana B-DATE\n\nLagos B-LOC\nleo B-MISC\n")
    args = ["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", bad]
    args += ["--format", "conll-space", "--labels", "PER,ORG,LOC", "--map-label", "DATE=O"]
    fails(env, capsys, args, f"{bad}:5", "tag 'B-MISC' (after --map-label) is not in the label set (LOC, ORG, PER)")


def test_invalid_tag_sequence_in_strict_mode(env, capsys):
    bad = write(env["tmp"], "seq.conll", "Amina\tB-PER\n\nin\tO\nLagos\tI-LOC\n")
    fails(env, capsys, ner_args(env, bad, "--strict-tags"), f"{bad}:4", "I-LOC starts an entity (after O)")
    bioes = write(env["tmp"], "seq.bioes", "Amina\tB-PER\nlives\tO\n")
    args = ner_args(env, bioes, "--strict-tags", "--tag-scheme", "bioes")
    args[args.index("--train") + 1] = write(env["tmp"], "ok.bioes", "Amina\tS-PER\n")
    fails(env, capsys, args, f"{bioes}:2", "has no E- tag")


def test_empty_sentence_or_text(env, capsys):
    blank = write(env["tmp"], "blank.conll", "\n\n")
    fails(env, capsys, ner_args(env, blank), blank, "no sentences found")
    empty_text = write(env["tmp"], "empty.tsv", "positive\tgood\nnegative\t   \n")
    args = ["sentiment", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", empty_text]
    fails(env, capsys, args, f"{empty_text}:2", "empty text")
    mlm = write(env["tmp"], "text.txt", "good product\n\nbad\n")
    args = ["mlm", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", mlm]
    fails(env, capsys, args, f"{mlm}:2", "empty line")


def test_invalid_utf8(env, capsys):
    bad = write(env["tmp"], "latin1.conll", "Amina\tB-PER\nLag\xf3s\tB-LOC\n".encode("latin-1"), "wb")
    fails(env, capsys, ner_args(env, bad), f"{bad}:2", "invalid UTF-8")


def test_label_outside_the_label_set(env, capsys):
    bad = write(env["tmp"], "neutral.tsv", "positive\tgood\nneutral\tokay\n")
    args = ["sentiment", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", bad]
    fails(env, capsys, args + ["--labels", "negative,positive"], f"{bad}:2", "label 'neutral' is not in the label set")


def test_eval_label_that_train_lacks(env, capsys):
    valid = write(env["tmp"], "valid.tsv", "positive\tgood\nneutral\tokay\n")
    args = ["sentiment", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST"]
    args += ["--train", env["sent"], "--valid", valid]
    fails(env, capsys, args, f"{valid}:2", "label 'neutral' does not occur in the training data")
    misc = write(env["tmp"], "misc.conll", "Amina\tB-PER\nUN\tB-MISC\n")
    fails(env, capsys, ner_args(env, misc), f"{misc}:2", "tag 'B-MISC' does not occur in the training data")


def test_misaligned_parallel_files(env, capsys):
    write(env["tmp"], "mis.en", "one\ntwo\n")
    write(env["tmp"], "mis.fr", "un\n")
    prefix = os.path.join(str(env["tmp"]), "mis")
    args = ["translation", "--src-lang", "en", "--tgt-lang", "fr", "--encoder-dir", env["enc"], "--destdir", "DEST"]
    fails(env, capsys, args + ["--train", prefix], f"{prefix}.fr:2", "parallel files are misaligned")
    # IWSLT train.tags with a talk missing on one side
    write(env["tmp"], "tags.en", IWSLT_TAGS["en"])
    write(env["tmp"], "tags.fr", IWSLT_TAGS["fr"].replace("<talkid>2</talkid>", "<talkid>3</talkid>"))
    prefix = os.path.join(str(env["tmp"]), "tags")
    fails(env, capsys, args + ["--train", prefix, "--format", "iwslt-tags"], f"{prefix}.fr:12", "talks do not match")
    # XML documents that do not match
    write(env["tmp"], "x.en.xml", iwslt_xml("src", XML_EN))
    write(env["tmp"], "x.fr.xml", iwslt_xml("tgt", XML_FR[:1]))
    prefix = os.path.join(str(env["tmp"]), "x")
    err = fails(env, capsys, args + ["--train", prefix, "--format", "iwslt-xml"], f"{prefix}.en.xml:4", "docid=535")
    assert "has no match" in err


def test_empty_or_missing_file(env, capsys):
    empty = write(env["tmp"], "empty.conll", "")
    fails(env, capsys, ner_args(env, empty), empty, "file is empty")
    missing = os.path.join(str(env["tmp"]), "nope.conll")
    fails(env, capsys, ner_args(env, missing), missing, "file not found")


def test_untagged_input_is_not_training_data(env, capsys):
    toks = write(env["tmp"], "in.txt", ner_text("tokens"))
    args = ["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", toks]
    fails(env, capsys, args + ["--format", "tokens"], "ner/sw", "--format tokens has no labels; it is prediction input")


def test_marc_bad_record(env, capsys):
    bad = write(env["tmp"], "marc.json", '{"stars": "5", "review_body": "", "review_title": "x", "language": "en"}\n')
    args = ["sentiment", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", bad]
    fails(env, capsys, args + ["--format", "marc-jsonl"], f"{bad}:1", "empty review_body")


def test_vocabulary_that_does_not_match(env, capsys):
    # a dictionary that belongs to another sentencepiece model
    os.makedirs(os.path.join(str(env["tmp"]), "other"), exist_ok=True)
    other = make_encoder(os.path.join(str(env["tmp"]), "other"), ["zzz qqq"])
    mixed = os.path.join(str(env["tmp"]), "mixed")
    os.makedirs(mixed, exist_ok=True)
    shutil.copy(os.path.join(env["enc"], "sentencepiece.bpe.model"), mixed)
    with open(os.path.join(mixed, "dict.txt"), "w") as f:
        f.write("zzzz 1\nqqqq 1\n")
    args = ner_args(env, None)
    args[args.index("--encoder-dir") + 1] = mixed
    fails(env, capsys, args, os.path.join(mixed, "dict.txt") + ":1", "do not belong together")
    # a data root prepared with another encoder directory
    args[args.index("--encoder-dir") + 1] = other
    before = snapshot(env["data"])
    assert preprocess.main([a.replace("DEST", env["data"]) for a in args]) == 1
    assert "prepared with a different dictionary" in capsys.readouterr().err
    assert snapshot(env["data"]) == before
    # the same dictionary but another sentencepiece model
    respun = os.path.join(str(env["tmp"]), "respun")
    os.makedirs(respun, exist_ok=True)
    shutil.copy(os.path.join(env["enc"], "dict.txt"), respun)
    sentencepiece_model_pb2 = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")  # needs protobuf
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(open(os.path.join(env["enc"], "sentencepiece.bpe.model"), "rb").read())
    model.pieces[5].score -= 1.0  # the same pieces, other scores: it segments differently
    with open(os.path.join(respun, "sentencepiece.bpe.model"), "wb") as f:
        f.write(model.SerializeToString())
    args = ["ner", "--lang", "yo", "--encoder-dir", respun, "--destdir", env["data"], "--train", env["ner"]]
    before = snapshot(env["data"])
    assert preprocess.main(args) == 1
    err = capsys.readouterr().err
    assert "ner/sw/meta.json" in err and "different sentencepiece.bpe.model" in err
    assert snapshot(env["data"]) == before


def test_manifest_missing_file_unknown_format_and_key(env, capsys):
    def manifest(name, body):
        return write(env["tmp"], name, "corpora:\n" + body)

    missing = manifest("m1.yaml", f"  - task: ner\n    lang: sw\n    train: {env['ner']}\n    valid: no/such.conll\n")
    args = [missing, "--encoder-dir", env["enc"], "--destdir", "DEST", "--no-progress"]
    fails(env, capsys, args, f"{missing}:5", "valid: ", script=prepare_script)
    unknown = manifest("m2.yaml", f"  - task: ner\n    lang: sw\n    format: conll-tabs\n    train: {env['ner']}\n")
    args[0] = unknown
    fails(env, capsys, args, f"{unknown}:4", "unknown format 'conll-tabs' for ner", script=prepare_script)
    key = manifest("m3.yaml", f"  - task: ner\n    lang: sw\n    trian: {env['ner']}\n")
    args[0] = key
    fails(env, capsys, args, f"{key}:4", "unknown key 'trian' in corpus entry 1", script=prepare_script)


def test_bad_label_mapping_options(env, capsys):
    fails(env, capsys, ner_args(env, None, "--map-label", "DATE"), "--map-label", "is not of the form FROM=TO")
    fails(env, capsys, ner_args(env, None, "--map-label", "B-DATE=O"), "ner/sw", "name entity types, e.g. DATE=O")
