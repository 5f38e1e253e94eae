# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Readers of parallel text (:data:`TRANSLATION_FORMATS`): aligned plain files,
IWSLT/WIT3 ``train.tags`` files and IWSLT/WIT3 XML evaluation sets. Part of
:mod:`xlt_fairseq.data.formats` (which re-exports every name)."""

import html
import re
from collections import OrderedDict
from typing import List, Tuple

from .textio import DataFormatError, clean as _clean, open_lines as _open_lines, read_text_lines

TRANSLATION_FORMATS = ("plain", "iwslt-tags", "iwslt-xml")


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


def translation_files(prefix, src_lang, tgt_lang, fmt: str = "plain") -> Tuple[str, str]:
    """The two files a translation ``prefix`` names in format ``fmt``."""
    if fmt in ("plain", "iwslt-tags"):
        return f"{prefix}.{src_lang}", f"{prefix}.{tgt_lang}"
    if fmt == "iwslt-xml":
        return f"{prefix}.{src_lang}.xml", f"{prefix}.{tgt_lang}.xml"
    raise ValueError(f"unknown translation format {fmt!r} (choose from {', '.join(TRANSLATION_FORMATS)})")


# a line that is only a metadata element: <url>...</url>, <talkid>1</talkid>, <doc docid="1" ...>, </doc>, ...
_IWSLT_META = re.compile(r"^</?([A-Za-z][\w.:-]*)(\s[^>]*)?/?>(.*</\1>)?$")
_IWSLT_TALKID = re.compile(r"^<talkid>\s*(.*?)\s*</talkid>$")


def _read_iwslt_tags_side(path):
    """Text lines of a WIT3 ``train.tags`` file (metadata lines dropped) and its talks
    as (talkid, line, index of the talk's first segment)."""
    segments, talks = [], []
    for lineno, line in _open_lines(path):
        text = line.strip()
        if _IWSLT_META.match(text):
            m = _IWSLT_TALKID.match(text)
            if m:
                talks.append((m.group(1), lineno, len(segments)))
            continue
        if text == "":
            raise DataFormatError(path, lineno, "empty line")
        segments.append((lineno, _clean(text)))
    return segments, talks


def read_iwslt_tags(prefix, src_lang, tgt_lang) -> List[Tuple[str, str]]:
    """IWSLT/WIT3 training files ``PREFIX.SRC`` / ``PREFIX.TGT`` (e.g.
    ``train.tags.en-fr.en``): one segment per line between metadata lines
    (``<url>``, ``<talkid>``, ``<title>``, ``<description>``, ``<keywords>``,
    ``<speaker>``, ``<reviewer>``, ``<translator>``, ``<doc>``), which are dropped.
    Both sides must hold the same talks with the same number of segments."""
    src_path, tgt_path = translation_files(prefix, src_lang, tgt_lang, "iwslt-tags")
    src, src_talks = _read_iwslt_tags_side(src_path)
    tgt, tgt_talks = _read_iwslt_tags_side(tgt_path)
    for (s_id, s_line, s_start), (t_id, t_line, t_start) in zip(src_talks, tgt_talks):
        if s_id != t_id:
            raise DataFormatError(
                tgt_path, t_line, f"talks do not match: talkid {t_id} here, {s_id} at {src_path}:{s_line}"
            )
        if s_start != t_start:
            raise DataFormatError(
                tgt_path,
                t_line,
                f"misaligned before talk {t_id}: {t_start} segments here, {s_start} in {src_path} up to line {s_line}",
            )
    if len(src_talks) != len(tgt_talks):
        raise DataFormatError(
            tgt_path, None, f"{len(tgt_talks)} talks here but {len(src_talks)} in {src_path}: the files do not match"
        )
    if len(src) != len(tgt):
        line = tgt[len(src)][0] if len(tgt) > len(src) else (tgt[-1][0] if tgt else None)
        raise DataFormatError(
            tgt_path, line, f"misaligned: {len(src)} segments in {src_path}, {len(tgt)} in {tgt_path}"
        )
    return [(s, t) for (_, s), (_, t) in zip(src, tgt)]


_XML_DOC = re.compile(r"<doc\b[^>]*\bdocid\s*=\s*\"([^\"]*)\"")
_XML_SEG = re.compile(r"^<seg\s+id\s*=\s*\"?([^\">\s]+)\"?\s*>(.*)</seg>$")


def _read_iwslt_xml_side(path) -> "OrderedDict[str, Tuple[int, OrderedDict]]":
    """docid -> (line, OrderedDict seg id -> (line, text)) of a WIT3 XML file."""
    docs: "OrderedDict[str, Tuple[int, OrderedDict]]" = OrderedDict()
    current = None
    for lineno, line in _open_lines(path):
        text = line.strip()
        if text.startswith("<doc"):
            m = _XML_DOC.match(text)
            if not m:
                raise DataFormatError(path, lineno, "<doc> without a docid attribute")
            if m.group(1) in docs:
                raise DataFormatError(path, lineno, f"docid {m.group(1)} occurs twice")
            current = OrderedDict()
            docs[m.group(1)] = (lineno, current)
        elif text.startswith("</doc>"):
            current = None
        elif "<seg" in text:
            m = _XML_SEG.match(text)
            if not m:
                raise DataFormatError(path, lineno, f'malformed segment (expected <seg id="N">text</seg>): {text!r}')
            if current is None:
                raise DataFormatError(path, lineno, "<seg> outside a <doc>")
            seg_id, seg = m.group(1), _clean(html.unescape(m.group(2)))
            if seg_id in current:
                raise DataFormatError(path, lineno, f"segment id {seg_id} occurs twice in this document")
            if seg == "":
                raise DataFormatError(path, lineno, f"empty segment {seg_id}")
            current[seg_id] = (lineno, seg)
    if not any(segs for _, segs in docs.values()):
        raise DataFormatError(path, None, "no <doc> with <seg> segments found")
    return docs


def read_iwslt_xml(prefix, src_lang, tgt_lang) -> List[Tuple[str, str]]:
    """IWSLT/WIT3 evaluation sets ``PREFIX.SRC.xml`` / ``PREFIX.TGT.xml`` (e.g.
    ``IWSLT17.TED.dev2010.en-fr.en.xml``): ``<seg id=...>`` segments inside
    ``<doc docid=...>`` documents. Documents are matched by ``docid`` and
    segments by ``id``; every document and segment must have its counterpart.
    XML entities are decoded; the source side's order is kept."""
    src_path, tgt_path = translation_files(prefix, src_lang, tgt_lang, "iwslt-xml")
    src, tgt = _read_iwslt_xml_side(src_path), _read_iwslt_xml_side(tgt_path)
    for docid, (t_line, _) in tgt.items():
        if docid not in src:
            raise DataFormatError(tgt_path, t_line, f"document docid={docid} has no match in {src_path}")
    pairs = []
    for docid, (s_line, s_segs) in src.items():
        if docid not in tgt:
            raise DataFormatError(src_path, s_line, f"document docid={docid} has no match in {tgt_path}")
        t_line, t_segs = tgt[docid]
        for seg_id, (line, _) in s_segs.items():
            if seg_id not in t_segs:
                raise DataFormatError(
                    src_path, line, f"segment {seg_id} of document docid={docid} is missing from {tgt_path}:{t_line}"
                )
        for seg_id, (line, _) in t_segs.items():
            if seg_id not in s_segs:
                raise DataFormatError(
                    tgt_path, line, f"segment {seg_id} of document docid={docid} is missing from {src_path}:{s_line}"
                )
        pairs.extend((text, t_segs[seg_id][1]) for seg_id, (_, text) in s_segs.items())
    return pairs


def read_translation(prefix, src_lang, tgt_lang, fmt: str = "plain") -> List[Tuple[str, str]]:
    """Sentence pairs in one of :data:`TRANSLATION_FORMATS`."""
    if fmt == "plain":
        return read_parallel(prefix, src_lang, tgt_lang)
    if fmt == "iwslt-tags":
        return read_iwslt_tags(prefix, src_lang, tgt_lang)
    if fmt == "iwslt-xml":
        return read_iwslt_xml(prefix, src_lang, tgt_lang)
    raise ValueError(f"unknown translation format {fmt!r} (choose from {', '.join(TRANSLATION_FORMATS)})")
