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

from typing import Dict, List, Optional

ABLATION_ROWS = ("base", "adversarial", "multitask", "language_modelling", "full")

ROW_TITLES = {
    "base": "Base model",
    "adversarial": "+ Adversarial Training",
    "multitask": "+ Multi-task Learning",
    "language_modelling": "+ Language Modeling",
    "full": "Full Framework",
}

TASK_FLAGS = {
    "ner": "--ner-langs",
    "sentiment": "--sentiment-langs",
    "translation": "--translation-pairs",
    "mlm": "--mlm-langs",
}


def ablation_flags(
    row: str,
    main_task: str,
    corpora: Dict[str, List[str]],
    grl_lambda: float = 0.01,
    auxiliary: Optional[List[str]] = None,
) -> List[str]:
    """fairseq-train flags (task, model and criterion switches) for one row.

    Args:
        row: one of :data:`ABLATION_ROWS`.
        main_task: ``ner`` or ``sentiment`` (or ``translation``).
        corpora: languages (or pairs) per task, e.g. ``{"ner": ["en", "sw"], "mlm": ["sw"]}``.
        grl_lambda: reversal strength of the adversarial rows.
        auxiliary: the supervised auxiliary tasks of the multi-task rows
            (default: every supervised task in ``corpora`` but the main one).
    """
    if row not in ABLATION_ROWS:
        raise ValueError(f"unknown ablation row {row!r}; choose from {', '.join(ABLATION_ROWS)}")
    if main_task not in corpora or not corpora[main_task]:
        raise ValueError(f"no corpora for the main task {main_task!r}")
    if auxiliary is None:
        auxiliary = [t for t in ("ner", "sentiment", "translation") if t != main_task and corpora.get(t)]
    tasks = [main_task]
    if row in ("multitask", "language_modelling", "full"):
        tasks += auxiliary
    if row in ("language_modelling", "full"):
        if not corpora.get("mlm"):
            raise ValueError(f"ablation row {row!r} needs unlabelled text (corpora['mlm'])")
        tasks.append("mlm")
    flags = []
    for t in tasks:
        flags += [TASK_FLAGS[t], ",".join(corpora[t])]
    adversarial = row in ("adversarial", "full")
    flags += ["--grl-lambda", str(grl_lambda if adversarial else 0.0), "--adversarial-weight", "1"]
    return flags
