# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The one reader of what a fairseq training recorded: its statistics, from the
file named by ``--log-file`` (``common.log_file`` under ``fairseq-hydra-train``),
and its saved models, from the checkpoint files themselves.

Why not the console: ``fairseq-train`` prints ``... | valid | {json}`` while
``fairseq-hydra-train`` prints ``[time][valid][INFO] - {json}``, and either may
be interleaved with anything else on stdout. With ``--log-format json
--log-file F`` fairseq writes every progress record to ``F`` as a bare JSON
object, one a line, in both programs (``fairseq/logging/progress_bar.py``).

What that file holds, and how it is read:

* ``train_inner`` records (every ``--log-interval`` updates) have ``num_updates``;
  the end-of-epoch ``train`` record and each validation carry their subset as a
  key prefix (``train_num_updates``, ``valid_num_updates``): that prefix is the tag.
* Numbers are strings (``"0.5"``) as fairseq formats them; :func:`numeric` turns
  them into floats.
* fairseq adds a new file handler to the same logger for every progress bar it
  opens (each epoch, each validation) and never removes one, so later records
  are written several times in a row. Consecutive identical lines are one record.
* Other lines (the configuration, messages of ``fairseq_cli.train``) are not JSON
  records and are passed over.

Checkpoints: which update a file holds is read from the file
(``optimizer_history[-1]["num_updates"]``, memory-mapped, weights-only), not
from "Saved checkpoint" messages.
"""

import json
import logging
import os
import re
import subprocess
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

from ..data.staging import child_process

logger = logging.getLogger(__name__)

TRAIN_INNER = "train_inner"


def record_tag(record: dict) -> Optional[str]:
    """``train_inner``, ``train``, ``valid`` (or another validation subset's name); None: not a progress record."""
    for key in record:
        if key.endswith("_num_updates"):
            return key[: -len("_num_updates")]
    return TRAIN_INNER if "num_updates" in record else None


def numeric(record: dict) -> dict:
    """The record with its numbers as floats (fairseq logs them as strings)."""
    out = {}
    for k, v in record.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


class TrainingLog:
    """Reads the records of a fairseq ``--log-file`` as they are written (:meth:`poll`) or at once (:meth:`read`)."""

    def __init__(self, path: str, from_end: bool = False):
        """``from_end``: only records written after now (a resumed training appends to the same file)."""
        self.path = path
        self._offset = os.path.getsize(path) if from_end and os.path.exists(path) else 0
        self._last = None

    def poll(self) -> List[Tuple[str, dict]]:
        """(tag, record) of every complete line written since the last call."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        out = []
        for raw in data[:end].split(b"\n"):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line or line == self._last:
                continue
            self._last = line
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            tag = record_tag(record) if isinstance(record, dict) else None
            if tag is not None:
                out.append((tag, record))
        return out

    def read(self) -> Dict[str, List[dict]]:
        """Every record of the file by tag, in order (``train_inner``, ``train``, ``valid`` always present)."""
        self._offset, self._last = 0, None
        out: Dict[str, List[dict]] = {TRAIN_INNER: [], "train": [], "valid": []}
        for tag, record in self.poll():
            out.setdefault(tag, []).append(record)
        return out


def read_training_log(path: str) -> Dict[str, List[dict]]:
    """The records of the ``--log-file`` at ``path`` by tag (see :class:`TrainingLog`)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no training log (was --log-file given to fairseq?)")
    return TrainingLog(path).read()


def validations(records: Dict[str, List[dict]], subset: str = "valid") -> List[dict]:
    """The validations of ``subset`` with numbers as floats, the last one of each update, by update
    (a resumed training appends to the same file and may validate an update again)."""
    by_update: Dict[int, dict] = {}
    for rec in records.get(subset, []):
        rec = numeric(rec)
        by_update[int(rec[f"{subset}_num_updates"])] = rec
    return [by_update[u] for u in sorted(by_update)]


# ---- checkpoints ---------------------------------------------------------------------------------------------------

_EPOCH = re.compile(r"checkpoint\d+\.pt$")
_INTERVAL = re.compile(r"checkpoint_\d+_\d+\.pt$")


def checkpoint_updates(path: str) -> int:
    """The number of updates of the model saved in ``path``."""
    import torch

    from .. import checkpoint_safety  # noqa: F401 (the allowlist for fairseq's pickled objects)

    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    return int(state["optimizer_history"][-1]["num_updates"])


def checkpoint_saves(save_dir: str) -> Dict[int, str]:
    """{update: checkpoint file} of the models a training left in ``save_dir``. An update saved under several
    names is given by the one that keeps it: the epoch file, else the interval file, else
    ``checkpoint_last.pt``; ``checkpoint_best*`` files are copies of those and left out."""
    if not os.path.isdir(save_dir):
        return {}
    rank = {}
    for name in os.listdir(save_dir):
        if _EPOCH.match(name):
            rank[name] = 0
        elif _INTERVAL.match(name):
            rank[name] = 1
        elif name == "checkpoint_last.pt":
            rank[name] = 2
    saves: Dict[int, str] = {}
    for name in sorted(rank, key=lambda n: (rank[n], n)):  # the file that keeps an update first
        path = os.path.join(save_dir, name)
        try:
            updates = checkpoint_updates(path)
        except Exception as e:  # a file cut short by a crash cannot be selected anyway
            logger.warning(f"{path}: not readable as a checkpoint ({type(e).__name__}: {e}); left out")
            continue
        saves.setdefault(updates, path)
    return OrderedDict((u, saves[u]) for u in sorted(saves))


def select_checkpoint(records: List[dict], saves: Dict[int, str], metric: str) -> Optional[dict]:
    """The validation with the best ``metric`` among those with a saved checkpoint
    (ties: the later one, as fairseq's ``--best-checkpoint-metric``)."""
    best = None
    for rec in records:
        u = int(rec["valid_num_updates"])
        if u not in saves or not isinstance(rec.get(metric), float):
            continue
        if best is None or rec[metric] >= best[metric]:
            best = rec
    return best


# ---- running a training --------------------------------------------------------------------------------------------


def run_training(
    cmd: List[str],
    log_file: str,
    console_log: str,
    env: Optional[dict] = None,
    on_record: Optional[Callable[[str, dict], None]] = None,
    header: Optional[str] = None,
    poll_s: float = 0.5,
) -> int:
    """Runs a training command with its console output appended to ``console_log`` and hands every new
    record of its ``log_file`` (the command's ``--log-file``) to ``on_record(tag, record)`` while it runs.
    Returns the exit status."""
    log = TrainingLog(log_file, from_end=True)
    with open(console_log, "a", encoding="utf-8") as out:
        if header:
            out.write(header.rstrip("\n") + "\n")
            out.flush()
        # its own process group, stopped with everything it started when this process is stopped
        with child_process(cmd, stdout=out, stderr=subprocess.STDOUT, env=env) as proc:
            while True:
                try:
                    rc = proc.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    rc = None
                if on_record is not None:
                    for tag, record in log.poll():
                        on_record(tag, record)
                if rc is not None:
                    return rc


def train_in_process(argv: List[str]) -> Dict[str, List[dict]]:
    """Runs ``fairseq-train``'s ``main`` in this process through its real argument parser and returns the
    training's records by tag (:func:`read_training_log` of a temporary ``--log-file``). For tests and
    benchmarks; ``argv`` must ask for ``--log-format json``."""
    import tempfile

    from fairseq import checkpoint_utils, options
    from fairseq_cli import train

    import xlt_fairseq

    xlt_fairseq.register()  # --user-dir finds the package imported already and registers nothing itself

    # fairseq keeps the best validation score in a function attribute: runs in one process would share it
    if hasattr(checkpoint_utils.save_checkpoint, "best"):
        del checkpoint_utils.save_checkpoint.best
    fd, log_file = tempfile.mkstemp(prefix="train_log.", suffix=".jsonl")
    os.close(fd)
    # fairseq adds a handler for --log-file to these loggers and never removes it: a later run in this process
    # would write into this run's file
    loggers = [logging.getLogger("fairseq.logging.progress_bar"), logging.getLogger("fairseq_cli.train")]
    before = [list(lg.handlers) for lg in loggers]
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)  # the progress records are INFO messages
    try:
        train.main(options.parse_args_and_arch(options.get_training_parser(), [*argv, "--log-file", log_file]))
        return read_training_log(log_file)
    finally:
        for lg, old in zip(loggers, before):
            for handler in [h for h in lg.handlers if h not in old]:
                lg.removeHandler(handler)
                handler.close()
        root.setLevel(old_level)
        os.remove(log_file)


def console_tail(path: str, lines: int = 25) -> str:
    """The last ``lines`` lines of a console log (for an error message)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])
