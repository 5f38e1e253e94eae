# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Tag schemes of token-tagging data, all normalised to IOB2.

* ``iob2``: ``B-X`` begins every entity, ``I-X`` continues it (CoNLL-2003 as
  usually distributed, WikiAnn, MasakhaNER).
* ``iob1``: ``I-X`` begins an entity too; ``B-X`` only marks an entity that
  directly follows another entity of the same type (the original CoNLL-2003).
* ``bioes`` (also ``bilou``): ``B``egin, ``I``nside, ``E``nd (``L``ast) and
  ``S``ingle (``U``nit) tags.

An ``I-X`` that starts an entity (after ``O`` or after an entity of another
type) is *repaired* to ``B-X`` by the IOB2 rule; in IOB1 that is the scheme's
own convention, in IOB2 and BIOES it is a repair, counted (or, with
``strict=True``, an error). Entity types can then be renamed or mapped to
``O`` (``DATE=O``); mapping after the conversion keeps entity boundaries.
"""

import logging
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

SCHEMES = ("iob2", "iob1", "bioes", "bilou")
_PREFIXES = {
    "iob2": ("B", "I"),
    "iob1": ("B", "I"),
    "bioes": ("B", "I", "E", "S"),
    "bilou": ("B", "I", "L", "U"),
}
# BIOES/BILOU prefix -> IOB2 prefix
_TO_IOB2 = {"B": "B", "I": "I", "E": "I", "S": "B", "L": "I", "U": "B"}


class TagError(ValueError):
    """A malformed tag or an invalid tag sequence at token ``index``."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.index, str(self))


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``. Raises ValueError when malformed."""
    if tag == "O":
        return "O", None
    prefix, sep, etype = tag.partition("-")
    if not sep or len(prefix) != 1 or not etype:
        raise ValueError(f"malformed tag {tag!r} (expected O or a prefix, '-' and an entity type, e.g. B-PER)")
    return prefix, etype


_SPLIT_CACHE: Dict[str, Tuple[str, Optional[str]]] = {}


def _parse(tags: Sequence[str], scheme: str) -> List[Tuple[str, Optional[str]]]:
    allowed = _PREFIXES[scheme]
    cache = _SPLIT_CACHE
    parsed = []
    for i, tag in enumerate(tags):
        split = cache.get(tag)
        if split is None:
            try:
                split = split_tag(tag)
            except ValueError as e:
                raise TagError(i, str(e)) from None
            if len(cache) < 100_000:
                cache[tag] = split
        prefix = split[0]
        if prefix != "O" and prefix not in allowed:
            hint = (
                " (use --tag-scheme bioes)" if prefix in "ES" else " (use --tag-scheme bilou)" if prefix in "LU" else ""
            )
            raise TagError(i, f"tag {tag!r} is not valid in the {scheme.upper()} scheme{hint}")
        parsed.append(split)
    return parsed


def _check_bioes(parsed, scheme: str):
    """Strict BIOES/BILOU validity: every entity is ``S`` or ``B I* E``."""
    end, single = ("E", "S") if scheme == "bioes" else ("L", "U")
    open_type = None
    for i, (prefix, etype) in enumerate(parsed):
        if prefix in ("I", end):
            if open_type != etype:
                raise TagError(i, f"invalid tag sequence: {prefix}-{etype} does not continue a B-{etype}")
            open_type = etype if prefix == "I" else None
            continue
        if open_type is not None:
            raise TagError(i, f"invalid tag sequence: the {open_type} entity before this token has no {end}- tag")
        open_type = etype if prefix == "B" else None
    if open_type is not None:
        raise TagError(len(parsed), f"invalid tag sequence: the {open_type} entity at the end has no {end}- tag")


def to_iob2(tags: Sequence[str], scheme: str = "iob2", strict: bool = False) -> Tuple[List[str], int]:
    """Converts ``tags`` from ``scheme`` to IOB2. Returns the new tags and the
    number of entities that started with ``I-`` and were repaired (always 0 for
    IOB1, where that is the convention). With ``strict``, an invalid sequence
    raises :class:`TagError` instead of being repaired."""
    if scheme not in _PREFIXES:
        raise ValueError(f"unknown tag scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    parsed = _parse(tags, scheme)
    if strict and scheme in ("bioes", "bilou"):
        _check_bioes(parsed, scheme)
    out, repaired = [], 0
    prev_type = None  # entity type of the previous token in IOB2 terms (None after O)
    for i, (prefix, etype) in enumerate(parsed):
        if prefix == "O":
            out.append("O")
            prev_type = None
            continue
        p = _TO_IOB2[prefix]
        if p == "I" and prev_type != etype:
            if scheme != "iob1":
                if strict:
                    after = "the sentence start" if i == 0 else "O" if prev_type is None else f"a {prev_type} entity"
                    raise TagError(i, f"invalid tag sequence: {tags[i]} starts an entity (after {after})")
                repaired += 1
            p = "B"
        out.append(f"{p}-{etype}")
        prev_type = etype
    return out, repaired


def map_types(tags: Sequence[str], mapping: Dict[str, str]) -> List[str]:
    """Renames entity types of IOB2 ``tags`` (``{"DATE": "O", "MISC": "O", "PERSON": "PER"}``)."""
    if not mapping:
        return list(tags)
    out = []
    for tag in tags:
        if tag == "O":
            out.append(tag)
            continue
        prefix, etype = tag[0], tag[2:]
        new = mapping.get(etype, etype)
        out.append("O" if new == "O" else f"{prefix}-{new}")
    return out


def tag_set(types: Iterable[str]) -> List[str]:
    """The IOB2 tag set of the given entity types: ``O`` first, then ``B-X``, ``I-X`` sorted by tag."""
    return ["O"] + sorted(f"{p}-{t}" for t in set(types) for p in ("B", "I"))


def entity_types(tags: Iterable[str]) -> set:
    return {t[2:] for t in tags if t != "O"}
