# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What the experiment runner says on stderr while a grid runs: runs done/total,
the current run's update and dev score at each validation, an ETA from the runs
finished so far, and a warning naming a run whose dev F1 is still 0 after its
third validation (a collapse to all-``O``, as the stalled Zulu run of
docs/results.md)."""

import logging
import sys
import time
from typing import Callable, Optional

logger = logging.getLogger(__name__)

ZERO_F1_AFTER = 3  # validations


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def dev_scores(record: dict) -> dict:
    """The dev scores of a validation record worth a glance: every task's overall F1 / accuracy / BLEU
    (not the per-language ones)."""
    out = {}
    for key, value in record.items():
        name = key[len("valid_") :] if key.startswith("valid_") else key
        if name.count("_") == 1 and name.split("_")[1] in ("f1", "acc") or name == "bleu":
            try:
                out[name] = float(value)
            except (TypeError, ValueError):
                pass
    return out


class GridProgress:
    """Counts runs and reads each training's records (:func:`train_records.run_training`'s ``on_record``)."""

    def __init__(self, total: int, write: Optional[Callable[[str], None]] = None, clock=time.monotonic):
        self.total = total
        self.done = 0
        self.clock = clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.seconds = []  # of the runs trained here
        self.run_id = None
        self.started = None
        self.n_valid = 0
        self.flagged = False

    def eta(self) -> str:
        if not self.seconds:
            return "ETA unknown"
        left = self.total - self.done
        elapsed = self.clock() - self.started if self.started is not None else 0.0
        mean = sum(self.seconds) / len(self.seconds)
        return f"ETA {_fmt_seconds(max(left * mean - elapsed, 0.0))}"

    def prefix(self) -> str:
        return f"[{self.done}/{self.total} runs, {self.eta()}]"

    def start(self, run_id: str):
        self.run_id, self.started, self.n_valid, self.flagged = run_id, self.clock(), 0, False
        self.write(f"{self.prefix()} {run_id}: training")

    def skipped(self):
        """A run finished before, or not applicable: counted without a time."""
        self.done += 1

    def finished(self, trained: bool = True):
        if trained and self.started is not None:
            self.seconds.append(self.clock() - self.started)
        self.done += 1
        self.started = None
        self.write(f"{self.prefix()} {self.run_id}: done")

    def on_record(self, tag: str, record: dict):
        if tag != "valid":
            return
        self.n_valid += 1
        update = record.get("valid_num_updates", "?")
        scores = dev_scores(record)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(scores.items()))
        self.write(f"{self.prefix()} {self.run_id}: update {update}, dev {shown or 'loss ' + str(record.get('valid_loss'))}")
        zero = sorted(k for k, v in scores.items() if k.endswith("_f1") and v == 0.0)
        if zero and self.n_valid >= ZERO_F1_AFTER and not self.flagged:
            self.flagged = True
            logger.warning(
                f"{self.run_id}: dev {', '.join(zero)} still 0 after {self.n_valid} validations (update {update}): "
                "the model may have collapsed to all-O; see its train.log (a lower learning rate or more updates?)"
            )
