"""Readers of every input format, tag schemes and scenario selection, on small
fixtures written here (the same fixtures serve test_prepare_manifest.py)."""

import json
import os

import pytest

from xlt_fairseq.data import formats, scenarios, tags
from xlt_fairseq.data.formats import DataFormatError

# ---- fixtures: the same three NER sentences in every format --------------------------------------------------------

SENTENCES = [
    (["Amina", "Mohammed", "lives", "in", "Lagos", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Kenya", "Airways", "flies", "daily"], ["B-ORG", "I-ORG", "O", "O"]),
    (["Yesterday", "Nairobi"], ["O", "B-LOC"]),
]
IOB1 = [
    ["I-PER", "I-PER", "O", "O", "I-LOC", "O"],
    ["I-ORG", "I-ORG", "O", "O"],
    ["O", "I-LOC"],
]
BIOES = [
    ["B-PER", "E-PER", "O", "O", "S-LOC", "O"],
    ["B-ORG", "E-ORG", "O", "O"],
    ["O", "S-LOC"],
]


def ner_text(fmt, sentences=SENTENCES, tag_lists=None, lang="sw", tagged=True):
    """The sentences written in NER format ``fmt``."""
    out = []
    for (tokens, gold), tag_list in zip(sentences, tag_lists or [s[1] for s in sentences]):
        for i, (tok, tag) in enumerate(zip(tokens, tag_list)):
            cols = {
                "conll": [tok, tag],
                "conll-space": [tok, tag],
                "wikiann-idx": [str(i), tok, tag],
                "panx": [f"{lang}:{tok}", tag],
                "tokens": [tok],
            }[fmt]
            if not tagged and fmt != "tokens":
                cols = cols[:-1]
            out.append((" " if fmt == "conll-space" else "\t").join(cols))
        out.append("")
    return "\n".join(out) + "\n"


MARC_RECORDS = [
    {"stars": "5", "review_body": "Great product, works well.", "review_title": "Love it"},
    {"stars": 1, "review_body": "Broke after one day.\nUseless.", "review_title": "Bad"},
    {"stars": "3", "review_body": "It is fine I guess.", "review_title": "Okay"},
    {"stars": "4", "review_body": "Good value for the price.", "review_title": "Nice"},
    {"stars": "2", "review_body": "Not what I expected.", "review_title": "Meh"},
]


def marc_text(lang="en", records=MARC_RECORDS):
    lines = []
    for i, r in enumerate(records):
        rec = {"review_id": f"{lang}_{i}", "product_id": f"p{i}", "reviewer_id": f"r{i}", "language": lang}
        rec.update(r)
        rec["product_category"] = "home"
        lines.append(json.dumps(rec, ensure_ascii=False))
    return "\n".join(lines) + "\n"


CSV_TEXT = 'id,sentence,sentiment\n1,"Good, very good",2\n2,"bad\nreally bad",0\n3,meh,1\n4,lovely day,2\n'

IWSLT_TAGS = {
    "en": (
        '<doc docid="1" genre="lectures">\n<url>http://www.ted.com/talks/a</url>\n<keywords>talks, culture</keywords>\n'
        "<speaker>Ann Smith</speaker>\n<talkid>1</talkid>\n<title>Ann Smith: A talk</title>\n"
        "<description>TED Talk Subtitles and Transcript: about culture</description>\n"
        "Thank you so much.\nIt is great to be here.\n</doc>\n"
        "<url>http://www.ted.com/talks/b</url>\n<talkid>2</talkid>\n<title>B: Another</title>\n"
        '<reviewer href="http://www.ted.com/x">Rev</reviewer>\nThe second talk begins.\n'
    ),
    "fr": (
        '<doc docid="1" genre="lectures">\n<url>http://www.ted.com/talks/a</url>\n<keywords>conférences</keywords>\n'
        "<speaker>Ann Smith</speaker>\n<talkid>1</talkid>\n<title>Ann Smith : Une conférence</title>\n"
        "<description>Sous-titres : culture</description>\n"
        "Merci beaucoup.\nC'est formidable d'être ici.\n</doc>\n"
        "<url>http://www.ted.com/talks/b</url>\n<talkid>2</talkid>\n<title>B : Une autre</title>\n"
        '<translator href="http://www.ted.com/y">Tr</translator>\nLa deuxième conférence commence.\n'
    ),
}
IWSLT_PAIRS = [
    ("Thank you so much.", "Merci beaucoup."),
    ("It is great to be here.", "C'est formidable d'être ici."),
    ("The second talk begins.", "La deuxième conférence commence."),
]


def iwslt_xml(side, docs):
    """A WIT3 XML file; ``docs``: list of (docid, [(seg id, text)])."""
    head = (
        '<srcset setid="iwslt2017-dev2010" srclang="english">'
        if side == "src"
        else ('<refset setid="iwslt2017-dev2010" srclang="english" trglang="french" refid="ref">')
    )
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>", head]
    for docid, segs in docs:
        out += [f'<doc docid="{docid}" genre="lectures">', f"<url>http://www.ted.com/talks/{docid}</url>"]
        out += [f"<talkid>{docid}</talkid>", f"<title>Talk {docid}</title>"]
        out += [f'<seg id="{i}"> {text} </seg>' for i, text in segs]
        out.append("</doc>")
    out += ["</srcset>" if side == "src" else "</refset>", "</mteval>"]
    return "\n".join(out) + "\n"


XML_EN = [("535", [(1, "Thank you &amp; welcome."), (2, "It is  great.")]), ("536", [(1, "Second talk.")])]
# the French side lists the documents in another order: documents are matched by docid
XML_FR = [("536", [(1, "Deuxième conférence.")]), ("535", [(1, "Merci &amp; bienvenue."), (2, "C'est super.")])]
XML_PAIRS = [
    ("Thank you & welcome.", "Merci & bienvenue."),
    ("It is great.", "C'est super."),
    ("Second talk.", "Deuxième conférence."),
]


def write(folder, name, text, mode="w"):
    path = os.path.join(str(folder), name)
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(text)
    return path


# ---- NER readers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["conll", "conll-space", "wikiann-idx", "panx"])
def test_ner_formats_read_the_same_sentences(tmp_path, fmt):
    path = write(tmp_path, f"x.{fmt}", ner_text(fmt))
    sents = formats.read_tagged(path, fmt, lang="sw")
    assert [(s.tokens, s.tags) for s in sents] == SENTENCES
    assert [s.line for s in sents] == [1, 8, 13]


def test_ner_untagged_and_tokens_format(tmp_path):
    panx = write(tmp_path, "test.panx", ner_text("panx", tagged=False))
    toks = write(tmp_path, "in.txt", ner_text("tokens"))
    for sents in (formats.read_tagged(panx, "panx", tagged=False), formats.read_tagged(toks, "tokens")):
        assert [s.tokens for s in sents] == [s[0] for s in SENTENCES]
        assert all(s.tags is None for s in sents)


def test_conll_docstart_crlf_bom_and_comments(tmp_path):
    text = "\ufeff-DOCSTART-\tO\r\n\r\n" + ner_text("conll").replace("\n", "\r\n")
    sents = formats.read_tagged(write(tmp_path, "a.conll", text), "conll")
    assert [(s.tokens, s.tags) for s in sents] == SENTENCES
    idx = "# sent_id = 1\n" + ner_text("wikiann-idx")
    assert len(formats.read_tagged(write(tmp_path, "b.conllu", idx), "wikiann-idx")) == 3
    # the original read_conll entry point is the conll format
    assert [s.tokens for s in formats.read_conll(write(tmp_path, "c.conll", ner_text("conll")))][0][0] == "Amina"


def test_ner_reader_errors_name_file_and_line(tmp_path):
    bad_cols = write(tmp_path, "a.conll", "Amina\tB-PER\nMohammed\tI-PER\textra\n")
    with pytest.raises(DataFormatError, match=r"a\.conll:2: expected 2 column"):
        formats.read_tagged(bad_cols, "conll")
    wrong_lang = write(tmp_path, "b.tsv", ner_text("panx", lang="en"))
    with pytest.raises(DataFormatError, match=r"b\.tsv:1: token prefix 'en' does not match the language 'sw'"):
        formats.read_tagged(wrong_lang, "panx", lang="sw")
    no_idx = write(tmp_path, "c.conllu", "x\tAmina\tB-PER\n")
    with pytest.raises(DataFormatError, match=r"c\.conllu:1: first column must be a token index"):
        formats.read_tagged(no_idx, "wikiann-idx")
    blank = write(tmp_path, "d.conll", "\n\n  \n")
    with pytest.raises(DataFormatError, match=r"d\.conll: no sentences found"):
        formats.read_tagged(blank, "conll")


# ---- tag schemes ---------------------------------------------------------------------------------------------------


def test_iob1_and_bioes_convert_to_iob2():
    for (tokens, gold), iob1, bioes in zip(SENTENCES, IOB1, BIOES):
        assert tags.to_iob2(iob1, "iob1") == (gold, 0)
        assert tags.to_iob2(bioes, "bioes") == (gold, 0)
        assert tags.to_iob2(bioes, "bioes", strict=True) == (gold, 0)
        assert tags.to_iob2(gold, "iob2", strict=True) == (gold, 0)
    # IOB1 marks an entity right after one of the same type with B-
    assert tags.to_iob2(["I-PER", "B-PER", "I-PER", "O"], "iob1") == (["B-PER", "B-PER", "I-PER", "O"], 0)
    assert tags.to_iob2(["U-LOC", "B-PER", "L-PER"], "bilou") == (["B-LOC", "B-PER", "I-PER"], 0)


def test_iob2_repair_counts_and_strict_mode():
    fixed, n = tags.to_iob2(["I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-PER"], "iob2")
    assert fixed == ["B-PER", "O", "B-LOC", "I-LOC", "B-ORG", "B-PER"]
    assert n == 3
    with pytest.raises(tags.TagError, match="I-LOC starts an entity") as e:
        tags.to_iob2(["O", "I-LOC"], "iob2", strict=True)
    assert e.value.index == 1
    with pytest.raises(tags.TagError, match="has no E- tag"):
        tags.to_iob2(["B-PER", "O"], "bioes", strict=True)
    with pytest.raises(tags.TagError, match="does not continue"):
        tags.to_iob2(["O", "E-PER"], "bioes", strict=True)
    # without strict, BIOES errors are repaired the IOB2 way
    assert tags.to_iob2(["O", "E-PER"], "bioes") == (["O", "B-PER"], 1)


def test_malformed_tags():
    with pytest.raises(tags.TagError, match="malformed tag 'PER'"):
        tags.to_iob2(["O", "PER"], "iob2")
    with pytest.raises(tags.TagError, match=r"'S-LOC' is not valid in the IOB2 scheme \(use --tag-scheme bioes\)"):
        tags.to_iob2(["S-LOC"], "iob2")


def test_map_types_and_tag_set():
    mapped = tags.map_types(["B-DATE", "I-DATE", "B-PER", "B-MISC", "O"], {"DATE": "O", "MISC": "O", "PER": "PERSON"})
    assert mapped == ["O", "O", "B-PERSON", "O", "O"]
    assert tags.tag_set({"PER", "LOC"}) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


# ---- sentiment readers ---------------------------------------------------------------------------------------------


def test_marc_jsonl(tmp_path):
    path = write(tmp_path, "dataset_en_train.json", marc_text())
    got = formats.read_marc(path, language="en")
    assert [x.label for x in got] == ["positive", "negative", "neutral", "positive", "negative"]
    assert got[1].text == "Broke after one day. Useless."  # whitespace (and the newline) collapsed
    assert [x.label for x in formats.read_marc(path, labels="stars")] == ["5", "1", "3", "4", "2"]
    assert formats.read_marc(path, include_title=True)[0].text == "Love it Great product, works well."
    with pytest.raises(DataFormatError, match=r"dataset_en_train\.json:1: review language 'en' does not match"):
        formats.read_marc(path, language="de")
    bad = write(tmp_path, "bad.json", marc_text() + '{"stars": 9, "review_body": "x", "language": "en"}\n')
    with pytest.raises(DataFormatError, match=r"bad\.json:6: stars must be 1 to 5"):
        formats.read_marc(bad)
    broken = write(tmp_path, "broken.json", marc_text() + "{not json\n")
    with pytest.raises(DataFormatError, match=r"broken\.json:6: invalid JSON"):
        formats.read_marc(broken)
    missing = write(tmp_path, "missing.json", '{"stars": 1, "language": "en"}\n')
    with pytest.raises(DataFormatError, match=r"missing\.json:1: record lacks the field\(s\) review_body"):
        formats.read_marc(missing)


def test_delimited_with_named_columns(tmp_path):
    path = write(tmp_path, "x.csv", CSV_TEXT)
    got = formats.read_delimited(path, "sentence", "sentiment")
    assert [(x.label, x.text, x.line) for x in got] == [
        ("2", "Good, very good", 2),
        ("0", "bad really bad", 3),
        ("1", "meh", 5),
        ("2", "lovely day", 6),
    ]
    tsv = write(tmp_path, "x.tsv", "label\ttext\tid\npositive\tgood stuff\t1\n")
    assert formats.read_delimited(tsv, delimiter="tab")[0].label == "positive"
    with pytest.raises(DataFormatError, match=r"x\.csv:1: --text-column 'text' is not a column of the header"):
        formats.read_delimited(path, "text", "sentiment")
    short = write(tmp_path, "short.csv", "sentence,sentiment\nok,1\nonly one field\n")
    with pytest.raises(DataFormatError, match=r"short\.csv:3: expected 2 fields as in the header, found 1"):
        formats.read_delimited(short, "sentence", "sentiment")


def test_labelled_and_unlabelled_text(tmp_path):
    tsv = write(tmp_path, "a.tsv", "positive\tgood\nnegative\tbad\n")
    assert [(x.label, x.text) for x in formats.read_classification(tsv, "tsv")] == [
        ("positive", "good"),
        ("negative", "bad"),
    ]
    txt = write(tmp_path, "b.txt", "good\nbad\n")
    assert [x.label for x in formats.read_classification(txt, "text")] == [None, None]


# ---- translation readers -------------------------------------------------------------------------------------------


def test_iwslt_tags_drop_metadata(tmp_path):
    for lang, text in IWSLT_TAGS.items():
        write(tmp_path, f"train.tags.en-fr.{lang}", text)
    prefix = os.path.join(str(tmp_path), "train.tags.en-fr")
    assert formats.read_translation(prefix, "en", "fr", "iwslt-tags") == IWSLT_PAIRS
    # a talk with a missing segment on one side
    write(tmp_path, "bad.en", IWSLT_TAGS["en"])
    write(tmp_path, "bad.fr", IWSLT_TAGS["fr"].replace("Merci beaucoup.\n", ""))
    with pytest.raises(DataFormatError, match=r"bad\.fr:.*misaligned"):
        formats.read_iwslt_tags(os.path.join(str(tmp_path), "bad"), "en", "fr")


def test_iwslt_xml_matches_documents_by_docid(tmp_path):
    write(tmp_path, "IWSLT17.TED.dev2010.en-fr.en.xml", iwslt_xml("src", XML_EN))
    write(tmp_path, "IWSLT17.TED.dev2010.en-fr.fr.xml", iwslt_xml("tgt", XML_FR))
    prefix = os.path.join(str(tmp_path), "IWSLT17.TED.dev2010.en-fr")
    assert formats.read_translation(prefix, "en", "fr", "iwslt-xml") == XML_PAIRS
    write(tmp_path, "d.fr.xml", iwslt_xml("tgt", [("999", [(1, "x")])] + XML_FR))
    write(tmp_path, "d.en.xml", iwslt_xml("src", XML_EN))
    with pytest.raises(DataFormatError, match=r"d\.fr\.xml:4: document docid=999 has no match"):
        formats.read_iwslt_xml(os.path.join(str(tmp_path), "d"), "en", "fr")
    write(tmp_path, "s.en.xml", iwslt_xml("src", XML_EN))
    write(tmp_path, "s.fr.xml", iwslt_xml("tgt", [XML_FR[0], ("535", [(1, "Merci.")])]))
    with pytest.raises(DataFormatError, match=r"s\.en\.xml:\d+: segment 2 of document docid=535 is missing"):
        formats.read_iwslt_xml(os.path.join(str(tmp_path), "s"), "en", "fr")


def test_plain_parallel_and_invalid_utf8(tmp_path):
    write(tmp_path, "p.en", "a\nb\n")
    write(tmp_path, "p.fr", "x\ny\nz\n")
    with pytest.raises(DataFormatError, match=r"p\.fr:3: parallel files are misaligned"):
        formats.read_translation(os.path.join(str(tmp_path), "p"), "en", "fr")
    bad = write(tmp_path, "bad.txt", b"fine\nbro\xffken\n", "wb")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: invalid UTF-8 \(invalid start byte at byte 3\)"):
        formats.read_text_lines(bad)


# ---- scenarios -----------------------------------------------------------------------------------------------------


def test_subsets_are_deterministic_and_nested():
    # fixed expectation: the same on every machine and Python version (sha256 of "seed:index")
    assert scenarios.select_subset(20, 0.25, seed=1) == scenarios.select_subset(20, 0.25, seed=1)
    assert scenarios.select_subset(20, 0.25, seed=1) == [4, 7, 8, 11, 17]
    assert scenarios.select_subset(20, 0.25, seed=2) != scenarios.select_subset(20, 0.25, seed=1)
    one, ten = set(scenarios.select_subset(1000, 0.01)), set(scenarios.select_subset(1000, 0.1))
    assert len(one) == 10 and len(ten) == 100 and one <= ten
    assert scenarios.subset_size(100, 0.01) == 1  # WikiAnn Yoruba: 1 % of 100 sentences
    assert scenarios.subset_size(50, 0.01) == 1  # never empty
    assert scenarios.subset_size(1000, 0.5, max_examples=20) == 20
    assert scenarios.select_subset(5, max_examples=10) == [0, 1, 2, 3, 4]


def test_tier_plan():
    plan = scenarios.TierPlan({"en": "high", "sw": "medium", "yo": "low"})
    assert plan.tier_for("ner", "en", ["en"]) == ("high", 1.0)
    assert plan.tier_for("translation", "en-yo", ["en", "yo"]) == ("low", 0.01)
    with pytest.raises(ValueError, match="language 'zu'"):
        plan.tier_for("ner", "zu", ["zu"])
    assert scenarios.TierPlan({"en": "high"}, default="low").tier_for("ner", "zu", ["zu"]) == ("low", 0.01)
    assert scenarios.TierPlan({"en": "high"}, tasks=("ner",)).tier_for("mlm", "en", ["en"]) is None
    with pytest.raises(ValueError, match="tier 'tiny'"):
        scenarios.TierPlan({"en": "tiny"})
