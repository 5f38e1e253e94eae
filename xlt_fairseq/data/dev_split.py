# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""A development file split into a model-selection half and a reporting half
(``xlt-split-dev``), and how such a half is recognised afterwards, so that a
result scored on it is never called a test result.

Each example goes to the side given by the parity of the SHA-1 of its text
(plus an optional salt), so the split is deterministic and identical examples
land together. ``xlt-split-dev`` writes a record next to each half
(``HALF.split.json``: which half, of which file, the salt, the SHA-1 of the half's
bytes). A half without a record (written before there were records) still
carries the split's signature: every one of its examples is on the same side of
the unsalted hash, which an independent file of ``n`` examples shows with
probability ``2 ** (1 - n)``; it is trusted from :data:`MIN_SIGNATURE` examples on.
"""

import hashlib
import json
import logging
import os
from typing import Dict, List, Optional

from .formats import read_classification, read_tagged
from .textio import read_bytes

logger = logging.getLogger(__name__)

HALVES = ("select", "report")
RECORD_SUFFIX = ".split.json"
SPLIT_FORMATS = ("conll", "tsv")
MIN_SIGNATURE = 16  # all n examples on one side by chance: 2 ** (1 - n) = 3e-5 at n = 16


def side(text: str, salt: str = "") -> str:
    """``select`` or ``report``: the parity of the SHA-1 of ``salt + text``."""
    digest = hashlib.sha1((salt + text).encode("utf-8")).digest()
    return "report" if digest[-1] % 2 else "select"


def example_texts(path, fmt: str) -> List[str]:
    """The text each example of a ``conll`` or ``tsv`` file is hashed by (CoNLL: its tokens joined by spaces)."""
    if fmt == "conll":
        return [" ".join(s.tokens) for s in read_tagged(path, "conll")]
    if fmt == "tsv":
        return [x.text for x in read_classification(path, "tsv")]
    raise ValueError(f"unknown format {fmt!r} (xlt-split-dev splits {', '.join(SPLIT_FORMATS)})")


def split(path, fmt, salt="") -> Dict[str, List[str]]:
    """{half: the examples of that half, each as the lines it is written as}."""
    halves = {"select": [], "report": []}
    if fmt == "conll":
        for sent in read_tagged(path, "conll"):
            block = "".join(f"{tok}\t{tag}\n" for tok, tag in zip(sent.tokens, sent.tags)) + "\n"
            halves[side(" ".join(sent.tokens), salt)].append(block)
    elif fmt == "tsv":
        for ex in read_classification(path, "tsv"):
            halves[side(ex.text, salt)].append(f"{ex.label}\t{ex.text}\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return halves


def record_path(path) -> str:
    return str(path) + RECORD_SUFFIX


def record(half: str, source, salt: str, examples: int, content: str) -> str:
    """The JSON record of one written half (``content``: the half's text as written)."""
    return json.dumps(
        {
            "made_by": "xlt-split-dev",
            "half": half,
            "of": os.path.abspath(source),
            "salt": salt,
            "examples": examples,
            "sha1": hashlib.sha1(content.encode("utf-8")).hexdigest(),
        },
        indent=1,
    )


def half_of(path, fmt: Optional[str] = None) -> Optional[dict]:
    """``{"half", "of", "evidence"}`` when ``path`` is one half of a split dev file, else None: from its record
    (when the record's SHA-1 is the file's), else, for ``conll``/``tsv`` files, from the split's signature."""
    rec = record_path(path)
    if os.path.exists(rec):
        try:
            with open(rec, encoding="utf-8") as f:
                info = json.load(f)
            if info.get("half") not in HALVES:
                raise ValueError("no half named")
        except ValueError as e:
            logger.warning(f"{rec}: not a record of xlt-split-dev ({e}); ignored")
        else:
            if hashlib.sha1(read_bytes(path)).hexdigest() == info.get("sha1"):
                return {"half": info["half"], "of": info.get("of"), "evidence": os.path.basename(rec)}
            logger.warning(f"{rec}: {path} changed since xlt-split-dev wrote it; the record is ignored")
    if fmt not in SPLIT_FORMATS:
        return None
    texts = example_texts(path, fmt)
    sides = {side(t) for t in texts}
    n = len(texts)
    if len(sides) == 1 and n >= MIN_SIGNATURE:
        (half,) = sides
        return {
            "half": half,
            "of": None,
            "evidence": f"all {n} examples on the {half} side of xlt-split-dev's unsalted hash",
        }
    return None
