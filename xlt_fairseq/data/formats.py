# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Readers for every input format.

This is the one place where a data format is parsed; preprocessing, evaluation
and prediction all read their files through these functions. Every reader
raises :class:`DataFormatError` naming the file, the line and the problem.
"""

import os
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple


class DataFormatError(ValueError):
    """A problem in an input file, located by file name and line number."""

    def __init__(self, path, line, message):
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class TaggedSentence:
    tokens: List[str]
    tags: Optional[List[str]]
    line: int  # line number of the sentence's first token (1-based)
    extra: dict = field(default_factory=dict)


@dataclass
class LabelledText:
    label: Optional[str]
    text: str
    line: int


def _open_lines(path) -> Iterator[Tuple[int, str]]:
    """Yields (1-based line number, line without its newline) and turns missing,
    empty and non-UTF-8 files into DataFormatErrors."""
    if not os.path.exists(path):
        raise DataFormatError(path, None, "file not found")
    if os.path.getsize(path) == 0:
        raise DataFormatError(path, None, "file is empty")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(path, lineno, f"invalid UTF-8 ({e.reason} at byte {e.start})") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line.rstrip("\r\n")


def read_conll(path, tagged: bool = True) -> List[TaggedSentence]:
    """NER/tagging data: one ``token<TAB>tag`` per line, a blank line between
    sentences. With ``tagged=False`` each line holds just a token."""
    sentences = []
    tokens, tags, start = [], [], None
    expected = 2 if tagged else 1
    for lineno, line in _open_lines(path):
        if line.strip() == "":
            if tokens:
                sentences.append(TaggedSentence(tokens, tags if tagged else None, start))
            tokens, tags, start = [], [], None
            continue
        cols = line.split("\t")
        if len(cols) != expected:
            raise DataFormatError(
                path,
                lineno,
                f"expected {expected} tab-separated column(s) (token{'<TAB>tag' if tagged else ''}), "
                f"found {len(cols)}: {line!r}",
            )
        token = cols[0].strip()
        if token == "":
            raise DataFormatError(path, lineno, "empty token")
        if start is None:
            start = lineno
        tokens.append(token)
        if tagged:
            tag = cols[1].strip()
            if tag == "":
                raise DataFormatError(path, lineno, "empty tag")
            tags.append(tag)
    if tokens:
        sentences.append(TaggedSentence(tokens, tags if tagged else None, start))
    if not sentences:
        raise DataFormatError(path, None, "no sentences found")
    return sentences


def read_labelled_text(path) -> List[LabelledText]:
    """Sentiment data: ``label<TAB>text``, one example per line."""
    out = []
    for lineno, line in _open_lines(path):
        if line.strip() == "":
            raise DataFormatError(path, lineno, "empty line (expected label<TAB>text)")
        cols = line.split("\t", 1)
        if len(cols) != 2:
            raise DataFormatError(path, lineno, f"expected label<TAB>text, found no tab: {line!r}")
        label, text = cols[0].strip(), cols[1].strip()
        if label == "":
            raise DataFormatError(path, lineno, "empty label")
        if text == "":
            raise DataFormatError(path, lineno, "empty text")
        out.append(LabelledText(label, text, lineno))
    return out


def read_text_lines(path, allow_empty_lines: bool = False) -> List[str]:
    """Plain text, one sentence or document per line."""
    out = []
    for lineno, line in _open_lines(path):
        text = line.strip()
        if text == "" and not allow_empty_lines:
            raise DataFormatError(path, lineno, "empty line")
        out.append(text)
    return out


def read_parallel(prefix, src_lang, tgt_lang) -> List[Tuple[str, str]]:
    """Aligned plain-text files ``PREFIX.SRC`` / ``PREFIX.TGT`` (fairseq-preprocess's
    convention): line i of one is the translation of line i of the other."""
    src_path, tgt_path = f"{prefix}.{src_lang}", f"{prefix}.{tgt_lang}"
    src = read_text_lines(src_path)
    tgt = read_text_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataFormatError(
            tgt_path,
            min(len(src), len(tgt)) + 1,
            f"parallel files are misaligned: {src_path} has {len(src)} lines, {tgt_path} has {len(tgt)}",
        )
    return list(zip(src, tgt))
