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
from xlt_fairseq.data import formats

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


# ---- round 2: silent acceptance of bad data, names and paths ---------------------------------------------------------


def sent_args(env, path, *extra):
    return ["sentiment", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST", "--train", path, *extra]


def test_csv_with_an_unclosed_quote_is_refused_where_the_record_starts(env, capsys):
    rows = [f'{"positive" if i % 2 else "negative"},"review {i}"' for i in range(50)]
    rows[2] = 'positive,"an unclosed quote swallows the rest'
    bad = write(env["tmp"], "quote.csv", "label,text\n" + "\n".join(rows) + "\n")
    fails(env, capsys, sent_args(env, bad, "--format", "csv"), f"{bad}:4", "unclosed quote?")
    # the quote is closed, at the end of a later field: the records in between are swallowed
    swallow = write(env["tmp"], "swallow.csv", 'label,text\npositive,"good\nnegative,bad one"\nnegative,bad\n')
    fails(env, capsys, sent_args(env, swallow, "--format", "csv"), f"{swallow}:2", "an unclosed quote?")
    # a legal multi-line field is fine
    ok = write(env["tmp"], "ok.csv", 'label,text\npositive,"good\nvery good"\nnegative,bad\n')
    assert len(formats.read_classification(ok, "csv")) == 2
    multi = write(env["tmp"], "multi.csv", 'label,text\n"posi\ntive",good\nnegative,bad\n')
    fails(env, capsys, sent_args(env, multi, "--format", "csv"), f"{multi}:2", "spans lines")
    rows[2] = 'positive,"closed" mid field'
    bad = write(env["tmp"], "quote2.csv", "label,text\n" + "\n".join(rows) + "\n")
    fails(env, capsys, sent_args(env, bad, "--format", "csv"), f"{bad}:4", "malformed ','-delimited record")


def test_tsv_header_row_or_id_column_is_not_read_as_labels(env, capsys):
    header = write(env["tmp"], "header.tsv", "label\ttext\npositive\tgood\nnegative\tbad\n")
    fails(env, capsys, sent_args(env, header), f"{header}:1", "a header row")
    other = write(env["tmp"], "header2.tsv", "polarity\treview_text\npositive\tgood\nnegative\tbad\n")
    fails(env, capsys, sent_args(env, other), f"{other}:1", "looks like a header row ('polarity' is no other")
    ids = write(env["tmp"], "ids.tsv", "1\tpositive\tgood\n2\tnegative\tbad\n")
    fails(env, capsys, sent_args(env, ids), f"{ids}:1", "found 3 tab-separated columns (an id column?")
    # an id column where the label should be: 60 examples, 60 "classes"
    numbered = write(env["tmp"], "numbered.tsv", "".join(f"{i}\treview number {i}\n" for i in range(1, 61)))
    fails(env, capsys, sent_args(env, numbered), numbered, "60 different labels in 60 examples")


@pytest.mark.parametrize(
    "content, line, problem",
    [
        (b"Amina\tB-PER\nLa\x00gos\tB-LOC\n", 2, "NUL byte"),
        ("Amina\tB-PER\n\nLagos\tB-LOC\n\ufeffKenya\tB-LOC\n".encode(), 4, "byte-order mark (U+FEFF) starts a line"),
        (b"Amina\tB-PER\rLagos\tB-LOC\n", 1, "carriage return inside a line"),
        ("Amina\tB-PER\n".encode("utf-16-le"), 1, "NUL byte"),
    ],
)
def test_control_bytes_are_refused_not_read_as_token_characters(env, capsys, content, line, problem):
    bad = write(env["tmp"], "ctrl.conll", content, "wb")
    fails(env, capsys, ner_args(env, bad), f"{bad}:{line}", problem)


def test_leading_bom_and_crlf_line_ends_are_fine(env, tmp_path):
    # and U+FEFF inside a token, as a zero-width no-break space (real WikiAnn pt data has it)
    text = "\ufeffAmina\tB-PER\r\nlives\tO\r\n\r\n68\u00b043\u2032W\ufeff\tO\r\nLagos\tB-LOC\r\n"
    ok = write(tmp_path, "crlf.conll", text.encode(), "wb")
    dest = str(tmp_path / "data")
    assert preprocess.main(["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", dest, "--train", ok]) == 0


def test_options_that_would_write_an_empty_corpus_are_refused(env, capsys):
    write(env["tmp"], "pairs.en", "one two three\nfour five\n")
    write(env["tmp"], "pairs.fr", "un deux trois\nquatre cinq\n")
    prefix = os.path.join(str(env["tmp"]), "pairs")
    args = ["translation", "--src-lang", "en", "--tgt-lang", "fr", "--encoder-dir", env["enc"], "--destdir", "DEST"]
    args += ["--train", prefix]
    fails(env, capsys, args + ["--max-length", "-1"], "--max-length", "must be at least 1")
    fails(env, capsys, args + ["--max-length", "1"], f"{prefix}: no train examples left", "longer than --max-length 1")
    fails(env, capsys, ner_args(env, None, "--floor", "-2"), "--floor", "at least 0")
    fails(env, capsys, ner_args(env, None, "--workers", "0"), "--workers", "at least 1")


@pytest.mark.parametrize("lang", ["..", ".", "sw/extra", "../../x", "", "en,sw", "-x"])
def test_language_codes_that_are_not_one_folder_name_are_refused(env, capsys, lang):
    args = ner_args(env, None)
    i = args.index("--lang")
    args[i : i + 2] = [f"--lang={lang}"]
    fails(env, capsys, args, f"--lang {lang!r}" if lang else "ner needs --lang", "is not a language code" if lang else "")
    assert not [n for n in os.listdir(env["data"]) if n.startswith(".tmp-")]


def test_translation_language_with_a_dash_is_refused(env, capsys):
    args = ["translation", "--src-lang", "en-x", "--tgt-lang", "fr", "--encoder-dir", env["enc"], "--destdir", "DEST"]
    fails(env, capsys, args + ["--train", os.path.join(str(env["tmp"]), "pairs")], "--src-lang 'en-x'", "language")


def test_destdir_that_is_a_file_or_read_only_is_refused(env, capsys, tmp_path):
    args = ner_args(env, None)
    args[args.index("--destdir") + 1] = ""
    assert preprocess.main(args) == 1
    assert "--destdir is empty" in capsys.readouterr().err
    a_file = write(tmp_path, "not-a-dir", "x\n")
    for dest in (a_file, os.path.join(a_file, "below")):
        args = ner_args(env, None)
        args[args.index("--destdir") + 1] = dest
        assert preprocess.main(args) == 1
        assert f"{a_file}: is a file, not a folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        args[args.index("--destdir") + 1] = str(ro / "data")
        assert preprocess.main(args) == 1
        assert f"{ro}: permission denied" in capsys.readouterr().err


def test_unreadable_input_is_refused_with_its_name(env, capsys, tmp_path, monkeypatch):
    bad = write(tmp_path, "locked.conll", ner_text("conll"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == bad else real_access(p, mode, **kw))
    fails(env, capsys, ner_args(env, bad), bad, "cannot be read (permission denied)")


def test_full_disk_while_binarising_names_the_file_and_leaves_nothing(env, capsys, monkeypatch):
    import errno

    from xlt_fairseq.data import binarize

    def full(self, flat, sizes):
        raise OSError(errno.ENOSPC, "No space left on device", self.prefix + ".bin")

    monkeypatch.setattr(binarize.IndexedWriter, "add_flat", full)
    fails(env, capsys, ner_args(env, None), "train.input.bin", "no space left on the device")


def test_damaged_meta_json_of_another_corpus_is_named(env, capsys, tmp_path):
    data = str(tmp_path / "data")
    shutil.copytree(env["data"], data)
    meta = os.path.join(data, "ner", "sw", "meta.json")
    open(meta, "w").write(open(meta).read()[:40])
    args = ["ner", "--lang", "yo", "--encoder-dir", env["enc"], "--destdir", data, "--train", env["ner"]]
    before = snapshot(data)
    assert preprocess.main(args) == 1
    assert f"{meta}:" in capsys.readouterr().err
    assert snapshot(data) == before


def test_input_from_a_pipe_is_read(env, tmp_path):
    import threading

    r, w = os.pipe()
    text = ner_text("conll").encode()
    threading.Thread(target=lambda: (os.write(w, text), os.close(w)), daemon=True).start()
    dest = str(tmp_path / "data")
    args = ["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", dest, "--train", f"/dev/fd/{r}"]
    try:
        assert preprocess.main(args) == 0
    finally:
        os.close(r)
    assert os.path.exists(os.path.join(dest, "ner", "sw", "train.input.bin"))


def test_empty_pipe_is_refused(env, capsys, tmp_path):
    r, w = os.pipe()
    os.close(w)
    try:
        dest = str(tmp_path / "data")
        args = ["ner", "--lang", "sw", "--encoder-dir", env["enc"], "--destdir", dest, "--train", f"/dev/fd/{r}"]
        assert preprocess.main(args) == 1
    finally:
        os.close(r)
    assert f"/dev/fd/{r}: file is empty" in capsys.readouterr().err
    assert not os.path.exists(dest)


def test_conllu_errors_name_the_right_line_past_ranges_and_empty_nodes(env, capsys, tmp_path):
    def row(i, form, upos):
        return f"{i}\t{form}\t_\t{upos}\t_\t_\t_\t_\t_\t_\n"

    train = write(tmp_path, "train.conllu", "# sent_id = 1\n" + row(1, "I", "PRON") + row(2, "go", "VERB") + "\n")
    text = "# sent_id = 1\n" + row(1, "I", "PRON") + "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    text += row(2, "do", "AUX") + row(3, "n't", "PART") + "3.1\tx\t_\t_\t_\t_\t_\t_\t_\t_\n" + row(4, "go", "VERB")
    valid = write(tmp_path, "valid.conllu", text + "\n")
    args = ["tagging", "--name", "pos", "--lang", "en", "--encoder-dir", env["enc"], "--destdir", "DEST"]
    args += ["--train", train, "--valid", valid]
    # AUX is line 4 (after the range line 3), PART line 5
    fails(env, capsys, args, f"{valid}:4", "tag 'AUX' does not occur in the training data")


def test_build_vocab_reads_a_pipe_and_refuses_a_file_as_out(tmp_path, capsys):
    import threading

    r, w = os.pipe()
    text = ("\n".join(TEXT * 3) + "\n").encode()
    threading.Thread(target=lambda: (os.write(w, text), os.close(w)), daemon=True).start()
    out = str(tmp_path / "enc")
    try:
        assert build_vocab.main(["--text", f"/dev/fd/{r}", "--vocab-size", "60", "--out", out]) == 0
    finally:
        os.close(r)
    assert sorted(os.listdir(out)) == ["dict.txt", "sentencepiece.bpe.model"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    a_file = write(tmp_path, "file", "x\n")
    assert build_vocab.main(["--text", a_file, "--vocab-size", "60", "--out", a_file]) == 1
    assert f"{a_file}: is a file, not a folder" in capsys.readouterr().err
