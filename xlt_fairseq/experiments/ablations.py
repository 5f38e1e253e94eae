# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The rows of the paper's ablation (Table 4) as fairseq-train flag sets.

Each row is the same model, task and criterion with different switches. Rows
without the adversarial component keep the discriminator as a *probe*
(``--grl-lambda 0``): it still learns to recognise the language, so its
accuracy measures how language-specific the features are, but no reversed
gradient reaches the encoder.

=====================  ======================================================
row                    what is on
=====================  ======================================================
``base``               the main task only
``adversarial``        main task + gradient reversal (lambda 0.01)
``multitask``          main task + the auxiliary supervised tasks
``language_modelling`` main task + auxiliary tasks + masked LM
``full``               main task + auxiliary tasks + masked LM + reversal
=====================  ======================================================
"""

from collections import OrderedDict
from typing import Dict, List, Optional

from ..data.task_names import LABELLED_TASKS
from .command import corpus_flags, flags_to_list

ABLATION_ROWS = ("base", "adversarial", "multitask", "language_modelling", "full")

ROW_TITLES = {
    "base": "Base model",
    "adversarial": "+ Adversarial Training",
    "multitask": "+ Multi-task Learning",
    "language_modelling": "+ Language Modeling",
    "full": "Full Framework",
}

# what each row switches on: the one place that decides it (systems, the grid and the report ask here)
ADVERSARIAL_ROWS = ("adversarial", "full")
MULTITASK_ROWS = ("multitask", "language_modelling", "full")
LANGUAGE_MODELLING_ROWS = ("language_modelling", "full")
DEFAULT_GRL_LAMBDA = 0.01


def check_row(row: str):
    if row not in ABLATION_ROWS:
        raise ValueError(f"unknown ablation row {row!r}; choose from {', '.join(ABLATION_ROWS)}")


def is_adversarial(row: str) -> bool:
    """Whether the reversed gradient of the language discriminator reaches the encoder in ``row``."""
    check_row(row)
    return row in ADVERSARIAL_ROWS


def row_corpora(
    row: str,
    main_task: str,
    corpora: Dict[str, List[str]],
    auxiliary: Optional[List[str]] = None,
) -> "OrderedDict[str, List[str]]":
    """The tasks (and their corpora) trained in ``row``: the main task; the auxiliary supervised tasks in the
    multi-task rows (default: every labelled task of ``corpora`` but the main one, then every auxiliary tagging
    task, e.g. ``pos``); the masked LM in the language-modelling rows."""
    check_row(row)
    if main_task not in corpora or not corpora[main_task]:
        raise ValueError(f"no corpora for the main task {main_task!r}")
    if auxiliary is None:
        auxiliary = [t for t in LABELLED_TASKS if t != main_task and corpora.get(t)]
        auxiliary += [t for t in corpora if t not in LABELLED_TASKS and t != "mlm" and corpora[t]]
    tasks = OrderedDict([(main_task, list(corpora[main_task]))])
    if row in MULTITASK_ROWS:
        tasks.update((t, list(corpora[t])) for t in auxiliary)
    if row in LANGUAGE_MODELLING_ROWS:
        if not corpora.get("mlm"):
            raise ValueError(f"ablation row {row!r} needs unlabelled text (corpora['mlm'])")
        tasks["mlm"] = list(corpora["mlm"])
    return tasks


def ablation_flags(
    row: str,
    main_task: str,
    corpora: Dict[str, List[str]],
    grl_lambda: float = DEFAULT_GRL_LAMBDA,
    auxiliary: Optional[List[str]] = None,
) -> List[str]:
    """fairseq-train flags (task, model and criterion switches) for one row.

    Args:
        row: one of :data:`ABLATION_ROWS`.
        main_task: ``ner`` or ``sentiment`` (or ``translation``).
        corpora: languages (or pairs) per task, e.g. ``{"ner": ["en", "sw"], "mlm": ["sw"]}``.
        grl_lambda: reversal strength of the adversarial rows.
        auxiliary: the supervised auxiliary tasks of the multi-task rows (see :func:`row_corpora`).
    """
    flags = corpus_flags(row_corpora(row, main_task, corpora, auxiliary))
    flags["grl-lambda"] = str(grl_lambda if is_adversarial(row) else 0.0)
    flags["adversarial-weight"] = "1"
    return flags_to_list(flags)
