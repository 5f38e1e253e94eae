"""scripts/prepare.py and scripts/preprocess.py on every format, scenario and
long-input rule: what is written is checked by reading the binarised corpora
back (tags decoded, labels, counts, summary), with fixtures written here."""

import filecmp
import json
import os
import random

import build_vocab
import prepare as prepare_script
import preprocess
import pytest

from tests.test_formats import (
    BIOES,
    CSV_TEXT,
    IOB1,
    IWSLT_PAIRS,
    IWSLT_TAGS,
    MARC_RECORDS,
    SENTENCES,
    XML_EN,
    XML_FR,
    XML_PAIRS,
    iwslt_xml,
    marc_text,
    ner_text,
    write,
)
from xlt_fairseq.data import corpora
from xlt_fairseq.data.binarize import PieceEncoder
from xlt_fairseq.data.prepare import SUMMARY_JSON, SUMMARY_MD
from xlt_fairseq.data.synthetic import ner_sentence, sentiment_example, text_line, translation_pair

SW_NER = [
    (["Rais", "Samia", "alisema", "jana"], ["B-PER", "I-PER", "O", "B-DATE"]),
    (["Dar", "es", "Salaam", "leo"], ["I-LOC", "I-LOC", "I-LOC", "B-DATE"]),  # an I- start: repaired
]


def _vocab_lines(rng):
    lines = [" ".join(w for s, _ in SENTENCES for w in s), " ".join(w for s, _ in SW_NER for w in s), CSV_TEXT]
    lines += [r["review_body"] + " " + r["review_title"] for r in MARC_RECORDS]
    lines += [" ".join(p) for p in IWSLT_PAIRS + XML_PAIRS]
    for lang in ("aa", "bb"):
        lines += [text_line(rng, lang) for _ in range(40)]
        lines += [" ".join(ner_sentence(rng, lang)[0]) for _ in range(40)]
    return lines


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("enc")
    text = write(tmp, "vocab.txt", "\n".join(_vocab_lines(random.Random(0))) + "\n")
    out = os.path.join(str(tmp), "encoder")
    assert build_vocab.main(["--text", text, "--vocab-size", "300", "--out", out]) == 0
    return out


def decode_tags(corpus, split):
    labels = corpora.read_labels(corpus)
    ds = corpora.load_indexed(corpus, split, "label")
    return [[labels[i - 1] for i in ds[k].tolist() if i] for k in range(len(ds))]


def meta(root, task, key):
    return corpora.read_meta(corpora.corpus_dir(root, task, key))


def same_tree(a, b):
    """Both folders hold the same files with the same bytes."""
    files_a = sorted(os.path.relpath(os.path.join(r, f), a) for r, _, fs in os.walk(a) for f in fs)
    files_b = sorted(os.path.relpath(os.path.join(r, f), b) for r, _, fs in os.walk(b) for f in fs)
    assert files_a == files_b
    for f in files_a:
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f
    return files_a


# ---- every format through one manifest -----------------------------------------------------------------------------

MANIFEST = """
seed: 3
defaults:
  max_positions: 64
corpora:
  - task: ner
    lang: sw
    format: conll-space
    map-label: {DATE: O}
    train: raw/ner_sw_train.txt
    valid: raw/ner_sw_dev.txt
  - {task: ner, lang: en, format: wikiann-idx, train: raw/en_train.conllu, valid: raw/en_val.conllu, domain: wiki}
  - {task: ner, lang: de, format: panx, train: raw/train-de.tsv}
  - {task: ner, lang: fr, tag_scheme: iob1, train: raw/fr.iob1}
  - {task: ner, lang: it, tag_scheme: bioes, strict_tags: true, train: raw/it.bioes}
  - {task: sentiment, lang: en, format: marc-jsonl, train: raw/dataset_en_train.json, valid: raw/dataset_en_dev.json}
  - task: sentiment
    lang: de
    format: marc-jsonl
    marc_labels: stars
    include_title: true
    train: raw/dataset_de_train.json
  - task: sentiment
    lang: fr
    format: csv
    text_column: sentence
    label_column: sentiment
    map_label: ["0=negative", "1=neutral", "2=positive"]
    drop_label: neutral
    train: raw/fr.csv
  - {task: sentiment, lang: sw, train: raw/sw.tsv}
  - task: translation
    src_lang: en
    tgt_lang: fr
    train_format: iwslt-tags
    valid_format: iwslt-xml
    train: raw/train.tags.en-fr
    valid: raw/IWSLT17.TED.dev2010.en-fr
  - {task: translation, src_lang: en, tgt_lang: sw, train: raw/mt}
  - {task: mlm, lang: sw, train: raw/sw.txt}
"""


def write_raw(folder):
    raw = os.path.join(str(folder), "raw")
    os.makedirs(raw, exist_ok=True)
    sw = [(t, g) for t, g in SW_NER]
    write(raw, "ner_sw_train.txt", ner_text("conll-space", sw))
    write(raw, "ner_sw_dev.txt", ner_text("conll-space", sw[:1]))
    write(raw, "en_train.conllu", ner_text("wikiann-idx"))
    write(raw, "en_val.conllu", ner_text("wikiann-idx", SENTENCES[:2]))
    write(raw, "train-de.tsv", ner_text("panx", lang="de"))
    write(raw, "fr.iob1", ner_text("conll", tag_lists=IOB1))
    write(raw, "it.bioes", ner_text("conll", tag_lists=BIOES))
    write(raw, "dataset_en_train.json", marc_text("en"))
    write(raw, "dataset_en_dev.json", marc_text("en", MARC_RECORDS[:2]))
    write(raw, "dataset_de_train.json", marc_text("de"))
    write(raw, "fr.csv", CSV_TEXT)
    write(raw, "sw.tsv", "positive\tgood product\nnegative\tbroke after one day\n")
    for lang, text in IWSLT_TAGS.items():
        write(raw, f"train.tags.en-fr.{lang}", text)
    write(raw, "IWSLT17.TED.dev2010.en-fr.en.xml", iwslt_xml("src", XML_EN))
    write(raw, "IWSLT17.TED.dev2010.en-fr.fr.xml", iwslt_xml("tgt", XML_FR))
    write(raw, "mt.en", "good product\nbroke after one day\n")
    write(raw, "mt.sw", "Rais Samia\nalisema jana\n")
    write(raw, "sw.txt", "Rais Samia alisema jana\nDar es Salaam leo\n")
    return raw


def test_manifest_prepares_every_format(tmp_path, enc, capsys):
    write_raw(tmp_path)
    manifest = write(tmp_path, "manifest.yaml", MANIFEST)
    data = os.path.join(str(tmp_path), "data-bin")
    assert prepare_script.main([manifest, "--encoder-dir", enc, "--destdir", data, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| ner | sw | train | conll-space | 2 |" in printed

    gold = [g for _, g in SENTENCES]
    for lang in ("en", "de", "fr", "it"):
        assert decode_tags(corpora.corpus_dir(data, "ner", lang), "train") == gold, lang
    assert decode_tags(corpora.corpus_dir(data, "ner", "en"), "valid") == gold[:2]
    sw = corpora.corpus_dir(data, "ner", "sw")
    assert decode_tags(sw, "train") == [["B-PER", "I-PER", "O", "O"], ["B-LOC", "I-LOC", "I-LOC", "O"]]
    assert corpora.read_labels(sw) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]  # DATE mapped away
    assert meta(data, "ner", "sw")["splits"]["train"]["repaired_i_start"] == 1
    assert meta(data, "ner", "fr")["splits"]["train"]["repaired_i_start"] == 0  # IOB1's I- starts are no repair
    assert meta(data, "ner", "en")["domain"] == "wiki"

    en = meta(data, "sentiment", "en")
    assert en["labels"] == ["negative", "positive"]
    assert en["splits"]["train"]["read"] == 5 and en["splits"]["train"]["examples"] == 4
    assert en["splits"]["train"]["dropped"] == {"label neutral": 1}
    labels = corpora.load_indexed(corpora.corpus_dir(data, "sentiment", "en"), "train", "label")
    assert [labels[i].item() for i in range(len(labels))] == [2, 1, 2, 1]  # id + 1: pos neg pos neg
    assert meta(data, "sentiment", "de")["labels"] == ["1", "2", "3", "4", "5"]
    fr = meta(data, "sentiment", "fr")
    assert fr["labels"] == ["negative", "positive"] and fr["splits"]["train"]["examples"] == 3

    mt = meta(data, "translation", "en-fr")
    assert mt["splits"]["train"]["examples"] == len(IWSLT_PAIRS)
    assert mt["splits"]["train"]["format"] == "iwslt-tags" and mt["splits"]["valid"]["format"] == "iwslt-xml"
    encoder = PieceEncoder(enc)
    src = corpora.load_indexed(corpora.corpus_dir(data, "translation", "en-fr"), "valid", "src")
    tgt = corpora.load_indexed(corpora.corpus_dir(data, "translation", "en-fr"), "valid", "tgt")
    assert [encoder.encode(s) + [2] for s, _ in XML_PAIRS] == [src[i].tolist() for i in range(len(src))]
    assert [encoder.encode(t) + [2] for _, t in XML_PAIRS] == [tgt[i].tolist() for i in range(len(tgt))]

    summary = json.load(open(os.path.join(data, SUMMARY_JSON)))
    assert len(summary["rows"]) == 16  # corpus x split
    assert summary["manifest"] == os.path.abspath(manifest)
    assert (
        "| sentiment | en | train | marc-jsonl | 5 | 1 label neutral |" in open(os.path.join(data, SUMMARY_MD)).read()
    )
    # what the task loads
    d = corpora.Dictionary.load(os.path.join(data, "dict.txt"))
    ds = corpora.load_tagging_corpus(sw, "train", d, corpora.union_labels([corpora.read_labels(sw)]))
    assert len(ds) == 2 and ds[1]["target"].tolist()[1] == corpora.read_labels(sw).index("B-LOC")


# ---- parallelism: the output does not depend on the number of workers ---------------------------------------------


def synthetic_files(folder, n=700, seed=1):
    rng = random.Random(seed)
    files = {}
    with open(os.path.join(folder, "ner.conll"), "w") as f:
        for _ in range(n):
            words, tags = ner_sentence(rng, "aa")
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
    files["ner"] = os.path.join(folder, "ner.conll")
    with open(os.path.join(folder, "sent.tsv"), "w") as f:
        f.writelines("\t".join(sentiment_example(rng, "aa")) + "\n" for _ in range(n))
    files["sentiment"] = os.path.join(folder, "sent.tsv")
    with open(os.path.join(folder, "text.txt"), "w") as f:
        f.writelines(text_line(rng, "aa") + "\n" for _ in range(n))
    files["mlm"] = os.path.join(folder, "text.txt")
    pairs = [translation_pair(rng, "aa", "bb") for _ in range(n)]
    for i, lang in enumerate(("aa", "bb")):
        with open(os.path.join(folder, f"mt.{lang}"), "w") as f:
            f.writelines(p[i] + "\n" for p in pairs)
    files["translation"] = os.path.join(folder, "mt")
    return files


def test_workers_give_identical_output(tmp_path, enc):
    files = synthetic_files(str(tmp_path))
    roots = []
    for workers in ("1", "2"):
        root = os.path.join(str(tmp_path), f"w{workers}")
        limits = {
            "ner": ["--max-positions", "16"],
            "sentiment": ["--max-positions", "8"],
            "mlm": ["--tokens-per-sample", "8"],
        }
        for task in ("ner", "sentiment", "mlm"):
            args = [task, "--lang", "aa", "--encoder-dir", enc, "--destdir", root, "--train", files[task]]
            assert preprocess.main(args + ["--workers", workers] + limits[task]) == 0
        args = ["translation", "--src-lang", "aa", "--tgt-lang", "bb", "--encoder-dir", enc, "--destdir", root]
        assert preprocess.main(args + ["--train", files["translation"], "--workers", workers, "--max-length", "6"]) == 0
        roots.append(root)
    written = same_tree(*roots)
    assert "ner/aa/train.label.bin" in written and "translation/aa-bb/train.tgt.bin" in written
    # the long-sentence rules fired, so windows and truncation went through the chunked path too
    assert meta(roots[0], "ner", "aa")["splits"]["train"]["split_into_windows"] > 0
    assert meta(roots[0], "sentiment", "aa")["splits"]["train"]["truncated"] > 0
    assert meta(roots[0], "mlm", "aa")["splits"]["train"]["split_long_lines"] > 0
    assert meta(roots[0], "translation", "aa-bb")["splits"]["train"]["dropped"]

    # prepare.py: corpora in parallel processes
    manifest = write(
        tmp_path,
        "m.yaml",
        "corpora:\n"
        + "".join(
            f"  - {{task: {t}, lang: aa, train: {files[t]}, subsample: 0.5}}\n" for t in ("ner", "sentiment", "mlm")
        )
        + f"  - {{task: translation, src_lang: aa, tgt_lang: bb, train: {files['translation']}}}\n",
    )
    outs = []
    for workers in ("1", "2"):
        out = os.path.join(str(tmp_path), f"p{workers}")
        assert prepare_script.main([manifest, "--encoder-dir", enc, "--destdir", out, "--workers", workers]) == 0
        outs.append(out)
    same_tree(*outs)


# ---- all or nothing ------------------------------------------------------------------------------------------------


def test_failed_manifest_leaves_destination_as_it_was(tmp_path, enc, capsys):
    from tests.test_preprocess_errors import snapshot

    raw = write_raw(tmp_path)
    good = write(
        tmp_path, "good.yaml", "corpora:\n  - {task: ner, lang: en, format: wikiann-idx, train: raw/en_train.conllu}\n"
    )
    data = os.path.join(str(tmp_path), "data-bin")
    assert prepare_script.main([good, "--encoder-dir", enc, "--destdir", data, "--no-progress"]) == 0
    write(raw, "bad_dev.tsv", "positive\tgood\nneutral\tokay\n")
    bad = write(
        tmp_path,
        "bad.yaml",
        "corpora:\n"
        "  - {task: ner, lang: en, format: wikiann-idx, train: raw/en_train.conllu, valid: raw/en_val.conllu}\n"
        "  - {task: ner, lang: de, format: panx, train: raw/train-de.tsv}\n"
        "  - {task: sentiment, lang: sw, train: raw/sw.tsv, valid: raw/bad_dev.tsv}\n",
    )
    for dest in (data, os.path.join(str(tmp_path), "new", "data-bin")):
        for workers in ("1", "3"):
            before = snapshot(dest)
            assert prepare_script.main([bad, "--encoder-dir", enc, "--destdir", dest, "--workers", workers]) == 1
            err = capsys.readouterr().err
            assert f"{os.path.join(raw, 'bad_dev.tsv')}:2: label 'neutral' does not occur in the training data" in err
            assert snapshot(dest) == before
    assert not os.path.exists(os.path.join(str(tmp_path), "new"))


# ---- scenarios: tiers, floors, zero-shot, subsets ------------------------------------------------------------------


def ner_file(folder, name, n, seed):
    rng = random.Random(seed)
    sents = [ner_sentence(rng, "aa") for _ in range(n)]
    return write(folder, name, "".join("".join(f"{w}\t{t}\n" for w, t in zip(*s)) + "\n" for s in sents))


def test_low_resource_tiers_and_zero_shot(tmp_path, enc):
    for lang, n in (("en", 20), ("sw", 20), ("yo", 100), ("zu", 10)):
        ner_file(tmp_path, f"{lang}.train", n, seed=n)
        ner_file(tmp_path, f"{lang}.dev", 5, seed=n + 1)
    write(tmp_path, "sw.txt", "".join(text_line(random.Random(i), "aa") + "\n" for i in range(30)))
    write(tmp_path, "tiers.yaml", "high: [en]\nmedium: [sw]\nlow: [yo]\nfloor: 5\n")
    corpora_yaml = "".join(
        f"  - {{task: ner, lang: {lang}, train: {lang}.train, valid: {lang}.dev}}\n"
        for lang in ("en", "sw", "yo", "zu")
    )
    manifest = write(
        tmp_path,
        "m.yaml",
        "scenario:\n  name: low-resource\n  tiers: tiers.yaml\n  zero_shot: [zu]\nseed: 5\ncorpora:\n"
        + corpora_yaml
        + "  - {task: mlm, lang: sw, train: sw.txt}\n",
    )
    data = os.path.join(str(tmp_path), "data-bin")
    # zu has no tier: zero-shot targets need none
    assert prepare_script.main([manifest, "--encoder-dir", enc, "--destdir", data]) == 0
    kept = {lang: meta(data, "ner", lang)["splits"].get("train", {}).get("sentences") for lang in ("en", "sw", "yo")}
    assert kept == {"en": 20, "sw": 2, "yo": 1}
    assert meta(data, "ner", "yo")["scenario"] == {"seed": 5, "subsample": 0.01, "tier": "low"}
    assert meta(data, "ner", "yo")["splits"]["train"]["subsample"]["from"] == 100
    assert meta(data, "mlm", "sw")["splits"]["train"]["examples"] == 3  # medium applies to every task
    assert "warnings" not in meta(data, "ner", "en")["splits"]["train"]
    zu = corpora.corpus_dir(data, "ner", "zu")
    assert not corpora.has_split(zu, "train") and corpora.has_split(zu, "valid")
    assert meta(data, "ner", "zu")["scenario"]["zero_shot"] is True
    md = open(os.path.join(data, SUMMARY_MD)).read()
    assert "ner/yo: the subset keeps 1 of 100 training examples, under the floor of 5" in md
    assert "ner/sw: the subset keeps 2 of 20" in md
    assert "| ner | zu | train | conll | 0 | 0 | zero-shot: left out |" in md
    assert "| ner | yo | train | conll | 100 | 0 | 1/100 (low) | 1 |" in md
    summary = json.load(open(os.path.join(data, SUMMARY_JSON)))
    assert summary["scenario"]["name"] == "low-resource" and summary["scenario"]["zero_shot"] == ["zu"]

    # a language without a tier is an error naming the manifest line
    write(tmp_path, "tiers.yaml", "high: [en]\nmedium: [sw]\n")
    err_root = os.path.join(str(tmp_path), "other")
    assert prepare_script.main([manifest, "--encoder-dir", enc, "--destdir", err_root]) == 1
    assert not os.path.exists(err_root)


def test_subsample_is_deterministic(tmp_path, enc):
    train = ner_file(tmp_path, "train.conll", 40, seed=9)
    outs = {}
    for name, extra in (
        ("a", ["--subsample", "0.5", "--seed", "7"]),
        ("b", ["--subsample", "0.5", "--seed", "7"]),
        ("c", ["--subsample", "0.5", "--seed", "8"]),
        ("d", ["--max-examples", "5"]),
    ):
        root = os.path.join(str(tmp_path), name)
        args = ["ner", "--lang", "aa", "--encoder-dir", enc, "--destdir", root, "--train", train]
        assert preprocess.main(args + extra) == 0
        outs[name] = root
    same_tree(outs["a"], outs["b"])
    assert meta(outs["a"], "ner", "aa")["splits"]["train"]["subsample"]["kept"] == 20
    a, c = (corpora.load_indexed(corpora.corpus_dir(outs[x], "ner", "aa"), "train", "input") for x in "ac")
    assert [a[i].tolist() for i in range(len(a))] != [c[i].tolist() for i in range(len(c))]
    assert meta(outs["d"], "ner", "aa")["splits"]["train"]["sentences"] == 5


def test_tier_file_on_the_command_line(tmp_path, enc):
    train = ner_file(tmp_path, "train.conll", 40, seed=9)
    tiers = write(tmp_path, "tiers.yaml", "languages: {aa: medium}\n")
    root = os.path.join(str(tmp_path), "d")
    args = ["ner", "--lang", "aa", "--encoder-dir", enc, "--destdir", root, "--train", train, "--tier-file", tiers]
    assert preprocess.main(args) == 0
    assert meta(root, "ner", "aa")["splits"]["train"]["sentences"] == 4
    assert meta(root, "ner", "aa")["splits"]["train"]["warnings"]  # 4 < the default floor of 100


# ---- long inputs ---------------------------------------------------------------------------------------------------


def test_long_inputs_are_split_truncated_or_filtered(tmp_path, enc):
    rng = random.Random(4)
    words, tags = [], []
    while len(words) < 40:
        w, t = ner_sentence(rng, "aa")
        words, tags = words + w, tags + t
    ner = write(tmp_path, "long.conll", "".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\nshort\tO\n")
    root = os.path.join(str(tmp_path), "d")
    base = ["--encoder-dir", enc, "--destdir", root]
    assert preprocess.main(["ner", "--lang", "aa", *base, "--train", ner, "--max-positions", "12"]) == 0
    m = meta(root, "ner", "aa")["splits"]["train"]
    assert m["sentences"] == 2 and m["split_into_windows"] == 1 and m["examples"] > 3
    windows = decode_tags(corpora.corpus_dir(root, "ner", "aa"), "train")
    assert [t for w in windows[:-1] for t in w] == tags  # every label kept, in order
    inputs = corpora.load_indexed(corpora.corpus_dir(root, "ner", "aa"), "train", "input")
    assert max(inputs.sizes) <= 11  # + <s> = the 12 positions

    sent = write(tmp_path, "long.tsv", "positive\t" + " ".join(words) + "\nnegative\tbad\n")
    assert preprocess.main(["sentiment", "--lang", "aa", *base, "--train", sent, "--max-positions", "8"]) == 0
    assert meta(root, "sentiment", "aa")["splits"]["train"]["truncated"] == 1
    assert max(corpora.load_indexed(corpora.corpus_dir(root, "sentiment", "aa"), "train", "input").sizes) == 7

    mlm = write(tmp_path, "long.txt", " ".join(words) + "\nakma\n")
    assert preprocess.main(["mlm", "--lang", "aa", *base, "--train", mlm, "--tokens-per-sample", "8"]) == 0
    m = meta(root, "mlm", "aa")
    assert m["splits"]["train"]["split_long_lines"] == 1 and m["tokens_per_sample"] == 8
    items = corpora.load_indexed(corpora.corpus_dir(root, "mlm", "aa"), "train", "input")
    encoder = PieceEncoder(enc)
    assert max(items.sizes) <= 7
    assert [i for k in range(len(items) - 1) for i in items[k].tolist() if i != 2] == encoder.encode(" ".join(words))

    pairs = [("akma", "bkma"), ("akma", " ".join(words[:8])), (" ".join(words[:30]), " ".join(words[:30]))]
    for i, lang in enumerate(("aa", "bb")):
        write(tmp_path, f"mt.{lang}", "".join(p[i] + "\n" for p in pairs))
    prefix = os.path.join(str(tmp_path), "mt")
    args = ["translation", "--src-lang", "aa", "--tgt-lang", "bb", *base, "--train", prefix, "--valid", prefix]
    assert preprocess.main(args + ["--max-length", "25", "--length-ratio", "2"]) == 0
    m = meta(root, "translation", "aa-bb")["splits"]
    assert m["train"]["examples"] == 1
    assert m["train"]["dropped"] == {"longer than --max-length 25": 1, "length ratio above 2.0": 1}
    assert m["valid"]["examples"] == 3  # evaluation data is never filtered


def test_piece_encoder_fast_path_equals_piece_lookup(enc):
    encoder = PieceEncoder(enc)
    rng = random.Random(0)
    alphabet = "abcdefgklmnoprstuvwyAEIOU .,'-éèñ☃中ß\t"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    assert [encoder.encode(t) for t in texts] == [encoder.ids(encoder.pieces(t)) for t in texts]
    assert encoder.encode_batch(texts) == [encoder.encode(t) for t in texts]


def test_corpus_spec_fields_are_the_one_source_of_options_and_manifest_types(tmp_path):
    """Every command-line field of CorpusSpec is an option of xlt-preprocess for
    exactly the tasks its metadata names, typed like the field; a manifest value
    of the wrong type is refused with the field's kind."""
    import argparse
    from dataclasses import fields

    from xlt_fairseq.cli.preprocess import build_parser
    from xlt_fairseq.data.formats import DataFormatError
    from xlt_fairseq.data.spec import FIELD_KINDS, CorpusSpec, add_spec_arguments, coerce

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for task, parser in sub.choices.items():
        dests = {a.dest for a in parser._actions}
        for f in fields(CorpusSpec):
            if f.metadata.get("cli"):
                assert (f.name in dests) == (task in f.metadata["tasks"]), (task, f.name)
    assert FIELD_KINDS["max_length"] == "int" and FIELD_KINDS["length_ratio"] == "float"
    assert FIELD_KINDS["map_label"] == "map" and FIELD_KINDS["labels"] == "list" and FIELD_KINDS["strict_tags"] == "bool"
    with pytest.raises(DataFormatError, match="m.yaml:3: max_length must be an integer"):
        coerce("m.yaml", 3, "max_length", "12")
    assert coerce("m.yaml", 3, "length_ratio", 2) == 2.0
    any_task = argparse.ArgumentParser()
    add_spec_arguments(any_task, names=("tag_scheme", "text_column"))
    assert any_task.parse_args(["--tag-scheme", "bioes"]).tag_scheme == "bioes"


def test_evaluate_reads_test_files_with_the_preprocessing_options():
    """xlt-evaluate's reading options come from CorpusSpec too (same names, defaults, choices)."""
    from dataclasses import fields

    from xlt_fairseq.cli.evaluate import READING_OPTIONS, build_parser
    from xlt_fairseq.data.spec import FIELD_KINDS, CorpusSpec, parse_label_map

    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    defaults = {f.name: f for f in fields(CorpusSpec)}
    for name in READING_OPTIONS:
        f = defaults[name]
        expected = [] if FIELD_KINDS[name] in ("map", "list") else f.default
        assert actions[name].default == expected, name
        assert actions[name].choices == f.metadata.get("choices"), name
    args = parser.parse_args(
        ["--checkpoint", "c.pt", "--task", "ner", "--test", "t", "--map-label", "DATE=O", "--map-label", "MISC=O"]
    )
    assert parse_label_map(args.map_label) == {"DATE": "O", "MISC": "O"} and args.tag_scheme == "iob2"
