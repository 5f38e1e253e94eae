# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Readers for every input format.

This is the one place where a data format is parsed; preprocessing, evaluation
and prediction all read their files through these functions. The parallel-text
readers live in :mod:`.formats_translation` and the shared text handling (UTF-8,
NUL bytes, stray BOMs, pipes) in :mod:`.textio`; every name is importable from here. Every reader
raises :class:`DataFormatError` naming the file, the line and the problem
(missing and empty files, invalid UTF-8, wrong column counts, empty texts,
misaligned parallel files).

========  =================  ==================================================
task      ``--format``       one example
========  =================  ==================================================
ner       ``conll``          ``token<TAB>tag`` per line, blank line between sentences
ner       ``conll-space``    ``token tag`` (MasakhaNER)
ner       ``wikiann-idx``    ``idx<TAB>token<TAB>tag`` (Babelscape WikiAnn copy)
ner       ``panx``           ``en:token<TAB>tag`` (XTREME PAN-X)
ner       ``tokens``         ``token`` (no tags: prediction input)
sentiment ``tsv``            ``label<TAB>text``
sentiment ``marc-jsonl``     Multilingual Amazon Reviews Corpus JSON Lines
sentiment ``csv``            delimited file with a header naming the columns
sentiment ``text``           one text per line (no labels: prediction input)
transl.   ``plain``          aligned ``PREFIX.SRC`` / ``PREFIX.TGT``
transl.   ``iwslt-tags``     IWSLT/WIT3 ``train.tags.S-T.S`` / ``.T``
transl.   ``iwslt-xml``      IWSLT/WIT3 ``IWSLT17.TED.SET.S-T.S.xml`` / ``.T.xml``
mlm       ``text``           one text per line
========  =================  ==================================================
"""

import csv
import json
import logging
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

from .formats_translation import (  # noqa: F401  (re-exported: every format is read through this module)
    TRANSLATION_FORMATS,
    read_iwslt_tags,
    read_iwslt_xml,
    read_parallel,
    read_translation,
    translation_files,
)
from .textio import (  # noqa: F401  (re-exported)
    DataFormatError,
    check_exists,
    clean,
    decode_text,
    iter_lines,
    open_lines,
    read_bytes,
    read_lines,
    read_text_lines,
)

logger = logging.getLogger(__name__)

NER_FORMATS = ("conll", "conll-space", "wikiann-idx", "panx", "tokens")
SENTIMENT_FORMATS = ("tsv", "marc-jsonl", "csv", "text")
MLM_FORMATS = ("text",)
# auxiliary token-tagging tasks (POS, chunking, ...): CoNLL-U or the NER layouts
TAGGING_FORMATS = ("conllu", "conll", "conll-space", "tokens")
CONLLU_COLUMNS = {"upos": 3, "xpos": 4, "deprel": 7}
FORMATS = {
    "ner": NER_FORMATS,
    "sentiment": SENTIMENT_FORMATS,
    "translation": TRANSLATION_FORMATS,
    "mlm": MLM_FORMATS,
    "tagging": TAGGING_FORMATS,
}
DEFAULT_FORMATS = {"ner": "conll", "sentiment": "tsv", "translation": "plain", "mlm": "text", "tagging": "conllu"}
# formats without labels: input for prediction, not for training or evaluation
UNLABELLED_FORMATS = {("ner", "tokens"), ("sentiment", "text"), ("tagging", "tokens")}


@dataclass
class TaggedSentence:
    tokens: List[str]
    tags: Optional[List[str]]
    line: int  # line number of the sentence's first token (1-based)
    extra: dict = field(default_factory=dict)
    # line number of every token, where they are not consecutive (CoNLL-U ranges and empty nodes, comments)
    lines: Optional[List[int]] = None

    def token_line(self, i: int) -> int:
        """The line of token ``i`` (clamped to the sentence)."""
        i = max(0, min(i, len(self.tokens) - 1))
        return self.lines[i] if self.lines else self.line + i


@dataclass
class LabelledText:
    label: Optional[str]
    text: str
    line: int


# format -> (column separator (None: any whitespace), columns of a tagged line)
_NER_COLUMNS = {
    "conll": ("\t", ("token", "tag")),
    "conll-space": (None, ("token", "tag")),
    "wikiann-idx": ("\t", ("idx", "token", "tag")),
    "panx": ("\t", ("lang:token", "tag")),
    "tokens": ("\t", ("token",)),
}


def _sentence(tokens, tags, lines) -> TaggedSentence:
    """A sentence; its token lines are kept only where they are not consecutive."""
    consecutive = lines[-1] - lines[0] == len(lines) - 1
    return TaggedSentence(tokens, tags, lines[0], lines=None if consecutive else lines)


def read_conll(path, tagged: bool = True) -> List[TaggedSentence]:
    """NER/tagging data: one ``token<TAB>tag`` per line, a blank line between
    sentences. With ``tagged=False`` each line holds just a token."""
    return read_tagged(path, "conll", tagged=tagged)


def read_tagged(path, fmt: str = "conll", tagged: bool = True, lang: Optional[str] = None) -> List[TaggedSentence]:
    """Token-tagging data in one of :data:`NER_FORMATS`: one token per line, a
    blank line (or a CoNLL ``-DOCSTART-`` line) between sentences.

    ``tagged=False`` reads files without the tag column (XTREME's unlabelled
    test files, prediction input); format ``tokens`` never has tags. For
    ``panx`` the ``lang:`` prefix of each token is removed and, when ``lang``
    is given, checked. Tags are returned as written; see
    :mod:`xlt_fairseq.data.tags` for schemes and mapping."""
    if fmt not in _NER_COLUMNS:
        raise ValueError(f"unknown NER format {fmt!r} (choose from {', '.join(NER_FORMATS)})")
    sep, columns = _NER_COLUMNS[fmt]
    tagged = tagged and fmt != "tokens"
    if not tagged and columns[-1] == "tag":
        columns = columns[:-1]
    layout = "<TAB>".join(columns) if sep else " ".join(columns)
    token_col = len(columns) - 1 if columns[-1] != "tag" else len(columns) - 2
    ncols, is_idx, is_panx = len(columns), fmt == "wikiann-idx", fmt == "panx"
    sentences = []
    tokens, tags, start, lines = [], [], None, []
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line or line.isspace() or line.startswith("-DOCSTART-"):
            if tokens:
                sentences.append(_sentence(tokens, tags if tagged else None, lines))
                tokens, tags, start, lines = [], [], None, []
            continue
        if is_idx and line.startswith("# "):  # CoNLL-U style comment
            continue
        cols = line.split(sep)
        if len(cols) != ncols:
            raise DataFormatError(
                path, lineno, f"expected {ncols} column(s) ({layout}) for --format {fmt}, found {len(cols)}: {line!r}"
            )
        token = cols[token_col].strip()
        if is_idx and not cols[0].strip().isdigit():
            raise DataFormatError(path, lineno, f"first column must be a token index, found {cols[0]!r}")
        if is_panx:
            prefix, colon, token = token.partition(":")
            if not colon or not prefix:
                raise DataFormatError(path, lineno, f"PAN-X token {cols[token_col]!r} lacks its 'lang:' prefix")
            if lang is not None and prefix != lang:
                raise DataFormatError(path, lineno, f"token prefix {prefix!r} does not match the language {lang!r}")
        if not token:
            raise DataFormatError(path, lineno, "empty token")
        if start is None:
            start = lineno
        tokens.append(token)
        lines.append(lineno)
        if tagged:
            tag = cols[-1].strip()
            if not tag:
                raise DataFormatError(path, lineno, "empty tag")
            tags.append(tag)
    if tokens:
        sentences.append(_sentence(tokens, tags if tagged else None, lines))
    if not sentences:
        raise DataFormatError(path, None, "no sentences found")
    return sentences


# first-row cells that name a column rather than hold a label or a text
_HEADER_WORDS = {
    "label", "labels", "sentiment", "class", "category", "polarity", "target", "y", "gold", "tag",
    "text", "texts", "sentence", "review", "content", "tweet", "document", "input", "body", "id", "idx", "index",
}  # fmt: skip


def read_labelled_text(path) -> List[LabelledText]:
    """Sentiment data: ``label<TAB>text``, one example per line. A header row
    (``label<TAB>text``) and a leading id column (``id<TAB>label<TAB>text``) are
    refused rather than read as labels: give such files as ``--format csv
    --delimiter tab`` with the column names."""
    out = []
    fix = "give the file as --format csv --delimiter tab --label-column NAME --text-column NAME"
    for lineno, line in open_lines(path):
        if line.strip() == "":
            raise DataFormatError(path, lineno, "empty line (expected label<TAB>text)")
        cols = line.split("\t")
        if len(cols) < 2:
            raise DataFormatError(path, lineno, f"expected label<TAB>text, found no tab: {line!r}")
        if len(cols) > 2:
            raise DataFormatError(
                path,
                lineno,
                f"expected label<TAB>text, found {len(cols)} tab-separated columns (an id column? a tab inside "
                f"the text?): {line[:80]!r}; {fix}",
            )
        label, text = cols[0].strip(), cols[1].strip()
        if label == "":
            raise DataFormatError(path, lineno, "empty label")
        if text == "":
            raise DataFormatError(path, lineno, "empty text")
        if lineno == 1 and label.lower() in _HEADER_WORDS and text.lower() in _HEADER_WORDS:
            raise DataFormatError(path, lineno, f"a header row ({line!r}), not an example; {fix}")
        out.append(LabelledText(label, text, lineno))
    # a first row whose "label" names a column and occurs nowhere else (e.g. polarity<TAB>review_text)
    if len(out) > 1 and out[0].label.lower() in _HEADER_WORDS and all(x.label != out[0].label for x in out[1:]):
        raise DataFormatError(path, 1, f"looks like a header row ({out[0].label!r} is no other example's label); {fix}")
    return out


# ---- sentiment --------------------------------------------------------------------------------------------------


def read_unlabelled_text(path) -> List[LabelledText]:
    """One text per line without a label (prediction input for classification)."""
    out = []
    for lineno, line in open_lines(path):
        text = line.strip()
        if text == "":
            raise DataFormatError(path, lineno, "empty line (expected a text)")
        out.append(LabelledText(None, text, lineno))
    return out


MARC_LABELS = ("binary", "stars")


def _marc_label(stars: int, labels: str) -> str:
    if labels == "stars":
        return str(stars)
    return "negative" if stars <= 2 else "neutral" if stars == 3 else "positive"


def read_marc(
    path, labels: str = "binary", include_title: bool = False, language: Optional[str] = None
) -> List[LabelledText]:
    """The Multilingual Amazon Reviews Corpus (Keung et al., 2020) in its
    original JSON Lines form: one object per line with at least
    ``review_body``, ``review_title``, ``stars`` (1-5, number or string) and
    ``language``.

    ``labels="binary"``: stars 1-2 -> ``negative``, 4-5 -> ``positive``, 3 ->
    ``neutral`` (dropped by preprocessing); ``labels="stars"``: the five
    classes ``"1"`` ... ``"5"``. ``include_title`` puts the title before the
    body. When ``language`` is given, every record's ``language`` must equal it."""
    if labels not in MARC_LABELS:
        raise ValueError(f"unknown MARC label mode {labels!r} (choose from {', '.join(MARC_LABELS)})")
    out = []
    for lineno, line in open_lines(path):
        if line.strip() == "":
            raise DataFormatError(path, lineno, "empty line (expected a JSON object)")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, lineno, "expected a JSON object")
        missing = [
            k
            for k in ("review_body", "stars", "language") + (("review_title",) if include_title else ())
            if k not in record
        ]
        if missing:
            raise DataFormatError(path, lineno, f"record lacks the field(s) {', '.join(missing)}")
        stars = record["stars"]
        if isinstance(stars, str) and stars.strip().isdigit():
            stars = int(stars)
        if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
            raise DataFormatError(path, lineno, f"stars must be 1 to 5, found {record['stars']!r}")
        if language is not None and record["language"] != language:
            raise DataFormatError(
                path, lineno, f"review language {record['language']!r} does not match the corpus language {language!r}"
            )
        body = clean(str(record["review_body"] or ""))
        title = clean(str(record.get("review_title") or "")) if include_title else ""
        text = f"{title} {body}".strip() if title else body
        if text == "":
            raise DataFormatError(path, lineno, "empty review_body")
        out.append(LabelledText(_marc_label(stars, labels), text, lineno))
    return out


def _delimiter(delimiter: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
    delimiter = named.get(delimiter, delimiter)
    if len(delimiter) != 1:
        raise ValueError(f"--delimiter must be one character (or tab, comma, semicolon), got {delimiter!r}")
    return delimiter


def read_delimited(
    path, text_column: str = "text", label_column: Optional[str] = "label", delimiter: str = ","
) -> List[LabelledText]:
    """CSV/TSV with a header row naming the columns; ``text_column`` and
    ``label_column`` pick the fields (quoted fields may span lines; the line
    number is where the record starts). ``label_column=None`` reads texts only."""
    delimiter = _delimiter(delimiter)
    state = {"line": 0}

    def lines():
        for lineno, line in open_lines(path):
            state["line"] = lineno
            yield line + "\n"

    # strict: a quote that is never closed (or closed mid-field) is an error instead of a
    # field that silently swallows the following records
    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    out, header, where = [], None, {}
    record_start = 1
    multiline = []  # (line, raw fields) of records that span lines
    try:
        for row in reader:
            lineno = record_start
            record_start = state["line"] + 1
            if header is None:
                header = [c.strip() for c in row]
                for name, col in (("--text-column", text_column), ("--label-column", label_column)):
                    if col is not None and col not in header:
                        raise DataFormatError(
                            path, lineno, f"{name} {col!r} is not a column of the header ({', '.join(header)})"
                        )
                    if col is not None:
                        where[name] = header.index(col)
                continue
            if not row or all(c.strip() == "" for c in row):
                raise DataFormatError(path, lineno, "empty line")
            if len(row) != len(header):
                raise DataFormatError(path, lineno, f"expected {len(header)} fields as in the header, found {len(row)}")
            text = clean(row[where["--text-column"]])
            if text == "":
                raise DataFormatError(path, lineno, f"empty text in column {text_column!r}")
            label = None
            if label_column is not None:
                label = row[where["--label-column"]].strip()
                if label == "":
                    raise DataFormatError(path, lineno, f"empty label in column {label_column!r}")
                if any(c in label for c in "\r\n\t"):
                    raise DataFormatError(path, lineno, f"label {label!r} in column {label_column!r} spans lines")
            out.append(LabelledText(label, text, lineno))
            if record_start - lineno > 1:
                multiline.append((lineno, row))
    except csv.Error as e:
        start, end = record_start, state["line"]
        span = f" (the record starting here runs to line {end}: an unclosed quote?)" if end > start else ""
        raise DataFormatError(path, start, f"malformed {delimiter!r}-delimited record ({e}){span}") from None
    if header is None or not out:
        raise DataFormatError(path, None, "no records after the header")
    if label_column is not None:
        _check_swallowed(path, multiline, header, where["--label-column"], {x.label for x in out}, delimiter)
    return out


def _check_swallowed(path, multiline, header, label_col: int, labels: set, delimiter: str):
    """A quoted field that spans lines is legal, but when one of its inner lines
    reads as a complete record of this file (as many fields as the header, a
    label the file uses) the quote was most likely left open and closed much
    later, swallowing those records."""
    for lineno, row in multiline:
        for field_ in row:
            for k, inner in enumerate(field_.split("\n")[1:], start=1):
                try:
                    cells = next(csv.reader([inner], delimiter=delimiter))
                except (csv.Error, StopIteration):
                    continue
                if len(cells) == len(header) and cells[label_col].strip() in labels:
                    raise DataFormatError(
                        path,
                        lineno,
                        f"a quoted field runs over several lines and holds what reads as a record of its own "
                        f"({inner[:60]!r}): an unclosed quote? (quote the field properly, or escape the quote as \"\")",
                    )


def read_classification(path, fmt: str = "tsv", labelled: bool = True, **options) -> List[LabelledText]:
    """Sentence-classification data in one of :data:`SENTIMENT_FORMATS`.
    ``options``: ``text_column``, ``label_column``, ``delimiter`` (csv);
    ``marc_labels``, ``include_title``, ``language`` (marc-jsonl)."""
    if fmt == "tsv":
        return read_labelled_text(path) if labelled else read_unlabelled_text(path)
    if fmt == "text":
        return read_unlabelled_text(path)
    if fmt == "marc-jsonl":
        return read_marc(
            path, options.get("marc_labels", "binary"), options.get("include_title", False), options.get("language")
        )
    if fmt == "csv":
        return read_delimited(
            path,
            options.get("text_column", "text"),
            options.get("label_column", "label") if labelled else None,
            options.get("delimiter", ","),
        )
    raise ValueError(f"unknown sentiment format {fmt!r} (choose from {', '.join(SENTIMENT_FORMATS)})")


def read_conllu(path, column: str = "upos") -> List[TaggedSentence]:
    """CoNLL-U (Universal Dependencies): ten tab-separated columns per word,
    ``#`` comment lines, a blank line after each sentence. Multi-word token
    ranges (``1-2``) and empty nodes (``1.1``) are skipped; the tag is taken from
    ``column`` (``upos``, ``xpos`` or ``deprel``)."""
    if column not in CONLLU_COLUMNS:
        raise ValueError(f"unknown CoNLL-U column {column!r} (choose from {', '.join(CONLLU_COLUMNS)})")
    col = CONLLU_COLUMNS[column]
    sentences, tokens, tags, lines = [], [], [], []
    for lineno, line in open_lines(path):
        if line.strip() == "":
            if tokens:
                sentences.append(_sentence(tokens, tags, lines))
            tokens, tags, lines = [], [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(
                path, lineno, f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}: {line!r}"
            )
        if "-" in cols[0] or "." in cols[0]:
            continue
        if not cols[0].isdigit():
            raise DataFormatError(path, lineno, f"CoNLL-U word id {cols[0]!r} is not a number")
        token, tag = cols[1].strip(), cols[col].strip()
        if token == "" or tag in ("", "_"):
            raise DataFormatError(path, lineno, f"empty form or {column.upper()} ({tag!r})")
        tokens.append(token)
        tags.append(tag)
        lines.append(lineno)
    if tokens:
        sentences.append(_sentence(tokens, tags, lines))
    if not sentences:
        raise DataFormatError(path, None, "no sentences found")
    return sentences


def input_files(task, path_or_prefix, fmt, src_lang=None, tgt_lang=None) -> List[str]:
    """The files one split of a corpus reads."""
    if task == "translation":
        return list(translation_files(path_or_prefix, src_lang, tgt_lang, fmt))
    return [path_or_prefix]


# ---- prediction input -----------------------------------------------------------------------------------------------


def read_json_lines(path, text_field: str = "text", tokens_field: Optional[str] = "tokens") -> List[dict]:
    """Prediction input as JSON Lines: one object per line with a string under
    ``text_field``, or (tagging) a list of strings under ``tokens_field``; the
    object's other keys are kept for the output. Returns the objects with
    ``"_line"`` added."""
    return list(iter_json_lines(path, text_field, tokens_field))


def json_objects(path, numbered_lines) -> Iterator[Tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSON Lines file, each line one JSON object."""
    for lineno, line in numbered_lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DataFormatError(path, lineno, f"not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, lineno, "expected a JSON object")
        yield lineno, obj


def iter_json_lines(path, text_field: str = "text", tokens_field: Optional[str] = "tokens") -> Iterator[dict]:
    """:func:`read_json_lines` one object at a time, as the file is read."""
    for lineno, obj in json_objects(path, iter_lines(path)):
        if isinstance(obj.get(text_field), str):
            pass
        elif tokens_field and tokens_field in obj:
            tokens = obj[tokens_field]
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
                raise DataFormatError(path, lineno, f"{tokens_field!r} must be a list of non-empty strings")
        else:
            wanted = f"{text_field!r} (a string)" + (f" or {tokens_field!r} (a list of words)" if tokens_field else "")
            raise DataFormatError(path, lineno, f"no {wanted}")
        obj["_line"] = lineno
        yield obj
