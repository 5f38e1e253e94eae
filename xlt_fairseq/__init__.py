# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt_fairseq: a fairseq plugin for cross-lingual transfer learning in
low-resource NLP (multi-task learning with an adversarial language/domain
discriminator over a pretrained XLM-R encoder).

Use it with ``--user-dir`` pointing at this package's folder::

    fairseq-train DATA_BIN --user-dir $(python -c 'import xlt_fairseq, os; print(os.path.dirname(xlt_fairseq.__file__))') \
        --task xlt_multitask --arch xlt_xlmr_base --criterion xlt_multitask_adversarial ...
"""

__version__ = "0.1.0"

from . import checkpoint_safety  # noqa: F401  (the safe-loading allowlist and the one wrapper of fairseq's loader)
from . import criterions, models, tasks  # noqa: F401
from .generation import install_for_fairseq_cli

install_for_fairseq_cli()  # one-line errors and early option checks inside fairseq-generate & co.
