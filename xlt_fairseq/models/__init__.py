# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The model (``xlt_model``) and its Python API: ``from xlt_fairseq.models import XLTModel``
(as ``from fairseq.models.roberta import RobertaModel``); importing it registers the whole plugin."""

from . import xlt_model  # noqa: F401
from .xlt_model import XLTModel  # noqa: F401
from .. import register as _register

_register()
