# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt_fairseq: a fairseq plugin for cross-lingual transfer learning in
low-resource NLP (multi-task learning with an adversarial language/domain
discriminator over a pretrained XLM-R encoder).

Use it with ``--user-dir`` pointing at this package's folder::

    fairseq-train DATA_BIN --user-dir $(python -c 'import xlt_fairseq, os; print(os.path.dirname(xlt_fairseq.__file__))') \
        --task xlt_multitask --arch xlt_xlmr_base --criterion xlt_multitask_adversarial ...

``import xlt_fairseq`` alone imports neither fairseq nor torch (the console scripts
answer ``--help`` at once). The task, model and criterion are registered with
fairseq, and the safe-loading allowlist installed, by :func:`register`: when
fairseq imports the package (``--user-dir``, fairseq is already loaded then), when
any of ``xlt_fairseq.models``/``tasks``/``criterions`` is imported (``from
xlt_fairseq.models import XLTModel``), and by every tool of the plugin that loads or
trains a model. Code that runs fairseq's own functions in-process after a bare
``import xlt_fairseq`` calls ``xlt_fairseq.register()`` first.
"""

import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"


class _NoSpeechExtras(logging.Filter):
    """fairseq's speech tasks log "Please install tensorboardX" when fairseq is imported; text
    tasks never use it, so the plugin's tools do not print it."""

    def filter(self, record):
        return "tensorboardX" not in record.getMessage()


logging.getLogger("fairseq.tasks.text_to_speech").addFilter(_NoSpeechExtras())


def register():
    """Registers the plugin's task, model and criterion with fairseq and installs the
    safe-loading allowlist (:mod:`xlt_fairseq.checkpoint_safety`); idempotent."""
    from . import checkpoint_safety  # noqa: F401  (the allowlist and the one wrapper of fairseq's loader)
    from . import criterions, models, tasks  # noqa: F401


class _SafeLoadingWhenFairseqLoads(importlib.abc.MetaPathFinder):
    """Installs the safe loading (:mod:`xlt_fairseq.checkpoint_safety`) the moment fairseq is
    imported after a bare ``import xlt_fairseq``: fairseq's own loaders then refuse code in a
    checkpoint (even with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` set) as they did when the package
    imported fairseq itself. Registration is left to :func:`register` (it imports the plugin's
    modules, which may be the very import that is loading fairseq)."""

    def find_spec(self, name, path=None, target=None):
        if name != "fairseq":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_secure(module):
            exec_module(module)
            from . import checkpoint_safety

            checkpoint_safety.install()  # idempotent; a no-op while checkpoint_safety itself is importing

        spec.loader.exec_module = exec_then_secure
        return spec


if "fairseq" in sys.modules:  # imported by fairseq (--user-dir), or after it
    from .generation import install_for_fairseq_cli  # light: neither fairseq nor torch

    install_for_fairseq_cli()  # inside fairseq-generate & co.: one-line errors, generation options checked now
    register()
elif not any(isinstance(f, _SafeLoadingWhenFairseqLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _SafeLoadingWhenFairseqLoads())
