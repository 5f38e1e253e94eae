# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Safe checkpoint loading on torch >= 2.6.

torch loads with ``weights_only=True`` by default, which refuses fairseq's
checkpoints because they pickle an ``argparse.Namespace`` (legacy ``args``) and
a few other plain Python types. Rather than turning safe loading off (which
would execute arbitrary pickled code), we allowlist exactly the globals that
fairseq checkpoints contain. Importing this package installs the allowlist.
"""

import argparse
import collections
import logging

import torch

logger = logging.getLogger(__name__)


def fairseq_checkpoint_globals():
    """The classes and functions that fairseq checkpoints (ours, and published
    RoBERTa/XLM-R files) are allowed to reference."""
    allowed = [argparse.Namespace, collections.OrderedDict, collections.defaultdict]
    try:  # published XLM-R files pickle numpy scalars in their training state
        import numpy as np

        allowed += [np.dtype, np.ndarray]
        try:
            from numpy.core.multiarray import _reconstruct, scalar
        except ImportError:  # numpy >= 2 moved it
            from numpy._core.multiarray import _reconstruct, scalar
        allowed += [_reconstruct, scalar]
        allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    except ImportError:  # pragma: no cover
        pass
    return allowed


def install():
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(fairseq_checkpoint_globals())


install()
