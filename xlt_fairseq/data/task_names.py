# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The one vocabulary of task names and kinds, imported by every module that
needs it (data layout, task, model, criterion, experiments, evaluation).

A *task* is what a corpus folder of a data root is named after (``ner/sw``,
``sentiment/yo``, ``translation/en-sw``, ``mlm/sw``, ``pos/en``); its *kind*
says how it is stored, batched, modelled and scored. The four built-in tasks
have fixed kinds; every other folder holds an auxiliary tagging task
(``--tagging-tasks pos``), stored and modelled like NER.
"""

from collections import OrderedDict
from typing import Tuple

TAGGING = "tagging"
CLASSIFICATION = "classification"
TRANSLATION = "translation"
MLM = "mlm"
KINDS = (TAGGING, CLASSIFICATION, TRANSLATION, MLM)

# the built-in tasks, in the order the criterion logs them
BUILTIN = OrderedDict([("ner", TAGGING), ("sentiment", CLASSIFICATION), ("translation", TRANSLATION), ("mlm", MLM)])
BUILTIN_TASKS: Tuple[str, ...] = tuple(BUILTIN)
# tasks with labelled dev/test data and a score (the experiment grid's main tasks)
LABELLED_TASKS: Tuple[str, ...] = ("ner", "sentiment", "translation")
# the validation metric each labelled task logs (the key of --best-checkpoint-metric)
DEFAULT_METRIC = {"ner": "ner_f1", "sentiment": "sentiment_acc", "translation": "bleu"}
# names an auxiliary task may not take ("adv" is the discriminator's loss prefix)
RESERVED_NAMES: Tuple[str, ...] = BUILTIN_TASKS + ("adv",)


def builtin_kind(name: str) -> str:
    """The kind of a built-in task; any other name is an auxiliary tagging task."""
    return BUILTIN.get(name, TAGGING)


def is_valid_auxiliary_name(name: str) -> bool:
    return name.isidentifier() and name not in RESERVED_NAMES
