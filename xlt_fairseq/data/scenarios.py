# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The paper's experimental scenarios as data selections (Adimulam et al.,
section "Experimental Scenarios"): full resource (all data), low resource (high-
resource languages 100 %, medium 10 %, low 1 % of their training data) and
zero-shot (target languages get evaluation data only).

Subsets are chosen by a hash of ``(seed, example index)``: the same seed gives
the same subset on every machine and Python version, and for one seed a smaller
fraction is always a subset of a larger one (1 % within 10 % within 100 %).
Only training splits are ever subsampled; evaluation data stays complete.
"""

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .task_names import BUILTIN_TASKS

logger = logging.getLogger(__name__)

ALL_TASKS = BUILTIN_TASKS
DEFAULT_TIERS = {"high": 1.0, "medium": 0.1, "low": 0.01}
# fewer training examples than this in a subset gets a warning in the log and the summary
DEFAULT_FLOOR = 100


def subset_size(n: int, fraction: Optional[float] = None, max_examples: Optional[int] = None) -> int:
    """How many of ``n`` examples a fraction and/or a cap keep: ``round(fraction * n)``
    (half up), at least 1 when ``n > 0``, at most ``max_examples``."""
    k = n
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"subsample fraction must be in (0, 1], got {fraction}")
        k = min(n, max(1, int(fraction * n + 0.5))) if n else 0
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max examples must be at least 1, got {max_examples}")
        k = min(k, max_examples)
    return k


def _rank_key(seed: int, index: int) -> bytes:
    return hashlib.sha256(f"{seed}:{index}".encode("ascii")).digest()


def select_subset(
    n: int, fraction: Optional[float] = None, max_examples: Optional[int] = None, seed: int = 1
) -> List[int]:
    """Indices (ascending, so the file order is kept) of a deterministic subset of ``n`` examples."""
    k = subset_size(n, fraction, max_examples)
    if k >= n:
        return list(range(n))
    chosen = sorted(range(n), key=lambda i: _rank_key(seed, i))[:k]
    return sorted(chosen)


@dataclass
class TierPlan:
    """Resource tiers of the low-resource scenario: a fraction of the training
    data per tier and a tier per language (or per corpus key such as ``en-sw``).
    A translation pair without its own entry takes the smaller fraction of its
    two languages. ``default`` is the tier of unlisted languages (none: an error)."""

    languages: Dict[str, str]
    fractions: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    default: Optional[str] = None
    floor: int = DEFAULT_FLOOR
    tasks: Tuple[str, ...] = ALL_TASKS
    source: str = "tier file"

    def __post_init__(self):
        for name, frac in self.fractions.items():
            if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac <= 1:
                raise ValueError(f"{self.source}: tier {name!r} has fraction {frac!r}; use a number in (0, 1]")
        for key, tier in list(self.languages.items()) + [("default", self.default)]:
            if tier is not None and tier not in self.fractions:
                raise ValueError(
                    f"{self.source}: {key!r} is in tier {tier!r}, which is not one of {', '.join(self.fractions)}"
                )
        for task in self.tasks:
            if task not in ALL_TASKS:
                raise ValueError(f"{self.source}: unknown task {task!r} (choose from {', '.join(ALL_TASKS)})")

    def tier_for(self, task: str, key: str, langs: Sequence[str]) -> Optional[Tuple[str, float]]:
        """(tier name, fraction) for a corpus, or None when the plan does not cover ``task``."""
        if task not in self.tasks:
            return None
        if key in self.languages:
            name = self.languages[key]
            return name, self.fractions[name]
        names = []
        for lang in langs:
            name = self.languages.get(lang, self.default)
            if name is None:
                raise ValueError(
                    f"{self.source}: language {lang!r} ({task}/{key}) has no tier; "
                    "list it under 'languages:' or set 'default:'"
                )
            names.append(name)
        name = min(names, key=lambda t: self.fractions[t])
        return name, self.fractions[name]


@dataclass
class ZeroShot:
    """Zero-shot targets: corpora of these languages keep their evaluation splits
    and lose their training split (a translation pair when either side is a target)."""

    languages: List[str]
    tasks: Tuple[str, ...] = ALL_TASKS

    def applies(self, task: str, langs: Sequence[str]) -> bool:
        return task in self.tasks and any(lang in self.languages for lang in langs)


def floor_warning(kept: int, total: int, floor: int, what: str) -> Optional[str]:
    """A warning when a subset keeps fewer than ``floor`` training examples."""
    if kept < total and kept < floor:
        return f"{what}: the subset keeps {kept} of {total} training examples, under the floor of {floor}"
    return None
