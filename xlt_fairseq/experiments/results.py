# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The results file of an experiment grid: one JSON line per (run, test set,
selection rule), appended whole (one write, flushed and synced); a half-written
last line left by a crash is ignored when reading and cut off before appending.

Every line says what it was scored on (:func:`evaluation_label`): ``eval_path``
and ``eval_split``, one of ``test`` (a file given as a test split, neither the
dev file nor a half of one), ``dev`` (the dev file, which may also have selected
the checkpoint) or ``dev-half`` (one half of a dev file split by
``xlt-split-dev``, recognised by its record or by the split's signature:
:mod:`xlt_fairseq.data.dev_split`, not by its name). Lines written before these
fields existed get them when read (:func:`with_evaluation_label`)."""

import json
import logging
import os
from typing import List, Optional, Tuple

from ..data.dev_split import half_of

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"


def read_results(path) -> List[dict]:
    """The complete lines of a results file (a half-written last line is ignored)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines[:-1]):  # the part after the last newline is incomplete
        if not line.strip():
            continue
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            logger.warning(f"{path}:{i + 1}: not a JSON line; ignored")
    if lines[-1].strip():
        logger.warning(f"{path}: the last line is incomplete (an interrupted write); it will be dropped")
    return out


def repair_results(path):
    """Cuts a half-written last line off the results file."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())


def append_result(path, record: dict):
    """Appends one complete line (one write, flushed and synced to disk)."""
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def result_key(record: dict) -> Tuple[str, str, str]:
    return record["run_id"], record["test_set"], record["selection_rule"]


EVAL_SPLITS = ("test", "dev", "dev-half")


def evaluation_label(path: str, split: str = "test", fmt: Optional[str] = None, valid: Optional[str] = None) -> dict:
    """``eval_path``, ``eval_split`` and how it is known (``eval_evidence``; ``eval_half_of``: the dev file a half
    came from, when recorded) of a result scored on ``path``, the ``split`` (test or valid) of a corpus whose
    dev file is ``valid``, in format ``fmt``."""
    path = os.path.abspath(path)
    try:
        half = half_of(path, fmt) if os.path.exists(path) else None
    except ValueError as e:  # a file that no longer reads in its format
        return {"eval_path": path, "eval_split": "unknown", "eval_evidence": f"unreadable: {e}"}
    if half is not None:
        out = {"eval_split": "dev-half", "eval_evidence": half["evidence"], "eval_half": half["half"]}
        if half.get("of"):
            out["eval_half_of"] = half["of"]
    elif split == "valid" or (valid and os.path.exists(valid) and os.path.samefile(path, valid)):
        out = {"eval_split": "dev", "eval_evidence": "the corpus' dev file"}
    elif not os.path.exists(path):
        out = {"eval_split": "unknown", "eval_evidence": "the file is not there to tell"}
    else:
        out = {"eval_split": "test", "eval_evidence": "a test file: neither the dev file nor a half of a split one"}
    return {"eval_path": path, **out}


def with_evaluation_label(record: dict) -> dict:
    """The line with ``eval_path``/``eval_split`` (lines written before they existed: derived from
    ``test_split``/``test_path``/``test_format`` and the file itself, when it is still there)."""
    if record.get("eval_split") or not record.get("test_path"):
        return record
    label = evaluation_label(record["test_path"], record.get("test_split", "test"), record.get("test_format"))
    return {**record, **label}
