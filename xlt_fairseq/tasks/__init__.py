# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.

from . import xlt_multitask  # noqa: F401
from .. import register as _register

_register()  # the model and criterion too: fairseq-train needs all three
