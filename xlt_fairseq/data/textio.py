# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Reading input text safely, shared by every format reader: the whole file
(regular files, pipes and process substitutions alike), UTF-8 with the checks
every format needs, lines with their numbers, and :class:`DataFormatError`,
which names the file and line of every problem; and writing a text file so that
it is never seen half-written."""

import contextlib
import os
import re
import stat
from typing import Iterator, List, Tuple


class DataFormatError(ValueError):
    """A problem in an input file, located by file name and line number."""

    def __init__(self, path, line, message):
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # picklable, so that worker processes can report it
        return type(self), (self.path, self.line, self.message)


def read_bytes(path) -> bytes:
    """The whole content of an input file. Regular files, pipes and process
    substitutions (``<(zcat x.gz)``) are read alike; a missing, unreadable,
    empty or directory path is a DataFormatError naming it."""
    check_exists(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataFormatError(path, None, f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise DataFormatError(path, None, "file is empty")
    return data


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def decode_text(path, data: bytes) -> str:
    """UTF-8 text with the checks every reader needs: invalid UTF-8, NUL bytes
    (binary data, UTF-16), a byte-order mark at the start of a later line
    (concatenated files) and lone carriage returns (old Mac line ends) are DataFormatErrors
    with the line; a leading BOM and CRLF line ends are accepted."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        raise DataFormatError(
            path, data.count(b"\n", 0, e.start) + 1, f"invalid UTF-8 ({e.reason} at byte {e.start - line_start})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    i = text.find("\x00")
    if i >= 0:
        raise DataFormatError(path, _line_of(text, i), "NUL byte in the text (a binary or UTF-16 file?)")
    # a BOM that starts a later line comes from concatenated files; inside a line U+FEFF is a
    # zero-width no-break space, which real text (Wikipedia, tweets) does contain
    i = text.find("\n\ufeff")
    if i >= 0:
        raise DataFormatError(
            path, _line_of(text, i) + 1, "byte-order mark (U+FEFF) starts a line inside the file (files concatenated?)"
        )
    m = re.search("\r(?!\n)", text)
    if m:
        raise DataFormatError(
            path, _line_of(text, m.start()), "carriage return inside a line (old Mac line ends? convert them)"
        )
    return text


def read_lines(path) -> List[str]:
    """The lines of a UTF-8 text file without their line ends (one decode of the
    whole file); see :func:`read_bytes` and :func:`decode_text` for what is refused."""
    text = decode_text(path, read_bytes(path))
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def open_lines(path) -> Iterator[Tuple[int, str]]:
    """Yields (1-based line number, line without its newline); see :func:`read_lines`."""
    yield from enumerate(read_lines(path), start=1)


def iter_lines(path) -> Iterator[Tuple[int, str]]:
    """Yields (1-based line number, line without its line end) as the file is read, in
    memory bounded by the longest line (for inputs of any size: xlt-predict); the same
    checks as :func:`decode_text`, each raised when its line is reached."""
    check_exists(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataFormatError(path, None, f"cannot be read ({e.strerror or e})") from None
    with f:
        lineno = 0
        for raw in f:
            lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(path, lineno, f"invalid UTF-8 ({e.reason} at byte {e.start})") from None
            if line.endswith("\n"):
                line = line[:-1]
            if line.endswith("\r"):
                line = line[:-1]
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            elif line.startswith("\ufeff"):
                raise DataFormatError(
                    path, lineno, "byte-order mark (U+FEFF) starts a line inside the file (files concatenated?)"
                )
            if "\x00" in line:
                raise DataFormatError(path, lineno, "NUL byte in the text (a binary or UTF-16 file?)")
            if "\r" in line:
                raise DataFormatError(path, lineno, "carriage return inside a line (old Mac line ends? convert them)")
            yield lineno, line
        if lineno == 0:
            raise DataFormatError(path, None, "file is empty")


def read_text_lines(path, allow_empty_lines: bool = False) -> List[str]:
    """Plain text, one sentence or document per line."""
    out = []
    for lineno, line in open_lines(path):
        text = line.strip()
        if text == "" and not allow_empty_lines:
            raise DataFormatError(path, lineno, "empty line")
        out.append(text)
    return out


def clean(text: str) -> str:
    """Whitespace runs (newlines and tabs included) to one space, stripped."""
    return " ".join(text.split())


def check_exists(path):
    """A missing, unreadable or empty input file as a DataFormatError (before any
    work is done). Pipes and process substitutions (``<(zcat x.gz)``) have no
    size to check: they pass, and an empty stream is found when it is read."""
    if not os.path.exists(path):
        raise DataFormatError(path, None, "file not found")
    if os.path.isdir(path):
        raise DataFormatError(path, None, "is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise DataFormatError(path, None, "cannot be read (permission denied)")
    if stat.S_ISREG(os.stat(path).st_mode) and os.path.getsize(path) == 0:
        raise DataFormatError(path, None, "file is empty")


def write_text_atomic(path, text: str, inputs=(), option: str = ""):
    """Writes ``text`` (UTF-8) to ``path`` through a temporary file in the same
    folder, renamed into place when complete: ``path`` is at every moment either
    its old content or the whole new one, and never one of ``inputs``
    (:func:`xlt_fairseq.data.outputs.write_text`)."""
    from .outputs import write_text

    write_text(path, text, inputs, option)


@contextlib.contextmanager
def atomic_output(path, inputs=(), option: str = ""):
    """A text file (UTF-8) to write ``path`` piece by piece: a temporary file in the same
    folder, renamed into place when the block ends without an error, after ``inputs`` have
    been checked again (:func:`xlt_fairseq.data.outputs.staged_file`), and removed when it
    raises or a signal stops the tool (``path`` keeps its old content, or stays absent)."""
    from .outputs import staged_file

    with staged_file(path, inputs, option) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
