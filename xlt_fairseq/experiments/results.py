# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The results file of an experiment grid: one JSON line per (run, test set,
selection rule), appended whole (one write, flushed and synced); a half-written
last line left by a crash is ignored when reading and cut off before appending."""

import json
import logging
import os
from typing import List, Tuple

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
