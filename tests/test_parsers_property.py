"""Property-based tests of the input parsers: random bytes and random
well-formed-but-odd files never crash with an unexplained exception, and a
preprocessing run that fails leaves nothing in the destination."""

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlt_fairseq.data import formats
from xlt_fairseq.data.formats import DataFormatError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-ORG", "S-ORG", "B-", "I-X", "x", ""]
TOKEN = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=6)


def _write(data: bytes) -> str:
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _call(fn, *args, **kwargs):
    """The reader either returns or raises DataFormatError naming the file."""
    try:
        return fn(*args, **kwargs)
    except DataFormatError as e:
        assert e.path is not None and str(e.path) in str(e)
        return None


@SETTINGS
@given(data=st.binary(max_size=300), fmt=st.sampled_from(formats.NER_FORMATS))
def test_ner_readers_on_random_bytes(data, fmt):
    path = _write(data)
    try:
        _call(formats.read_tagged, path, fmt, lang="sw")
    finally:
        os.remove(path)


@SETTINGS
@given(
    rows=st.lists(st.lists(st.tuples(TOKEN, st.sampled_from(TAGS)), max_size=6), max_size=6),
    sep=st.sampled_from(["\t", " ", "\t\t", "  "]),
    fmt=st.sampled_from(["conll", "conll-space", "wikiann-idx", "panx"]),
)
def test_ner_readers_on_odd_but_plausible_files(rows, sep, fmt):
    text = (
        "\n\n".join(
            "\n".join(
                f"{i}{sep}{tok}{sep}{tag}" if fmt == "wikiann-idx" else f"{tok}{sep}{tag}"
                for i, (tok, tag) in enumerate(sent)
            )
            for sent in rows
        )
        + "\n"
    )
    path = _write(text.encode("utf-8", "surrogatepass"))
    try:
        out = _call(formats.read_tagged, path, fmt, lang="sw")
        if out is not None:
            assert all(len(s.tokens) == len(s.tags) > 0 for s in out)
    finally:
        os.remove(path)


@SETTINGS
@given(data=st.binary(max_size=300), fmt=st.sampled_from(["tsv", "marc-jsonl", "csv", "text"]))
def test_sentiment_readers_on_random_bytes(data, fmt):
    path = _write(data)
    options = {"text_column": "text", "label_column": "label"} if fmt == "csv" else {}
    try:
        _call(formats.read_classification, path, fmt, labelled=fmt != "text", **options)
    finally:
        os.remove(path)


@SETTINGS
@given(lines=st.lists(st.text(max_size=40), max_size=8))
def test_marc_reader_on_odd_json_lines(lines):
    path = _write(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    try:
        _call(formats.read_classification, path, "marc-jsonl")
    finally:
        os.remove(path)


@SETTINGS
@given(src=st.binary(max_size=200), tgt=st.binary(max_size=200), fmt=st.sampled_from(formats.TRANSLATION_FORMATS))
def test_translation_readers_on_random_bytes(src, tgt, fmt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mt")
    s_path, t_path = formats.translation_files(str(folder / "train"), "en", "sw", fmt)
    open(s_path, "wb").write(src)
    open(t_path, "wb").write(tgt)
    out = _call(formats.read_translation, str(folder / "train"), "en", "sw", fmt)
    if out is not None:
        assert all(isinstance(s, str) and isinstance(t, str) for s, t in out)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=200))
def test_failed_preprocessing_writes_nothing(data, tiny_data, tmp_path_factory):
    """Random bytes as NER training data: either a complete corpus or no trace."""
    from xlt_fairseq.data import prepare

    dest = str(tmp_path_factory.mktemp("dest"))
    path = _write(data)
    try:
        try:
            prepare.prepare_tagging("ner", "zz", {"train": path}, tiny_data["encoder"], dest)
            ok = True
        except (DataFormatError, ValueError):
            ok = False
        left = sorted(os.listdir(dest))
        if ok:
            assert os.path.exists(os.path.join(dest, "ner", "zz", "meta.json"))
        else:
            assert [f for f in left if f != "dict.txt"] in ([], ["ner"]) and not os.path.exists(
                os.path.join(dest, "ner", "zz")
            ), left
    finally:
        os.remove(path)
