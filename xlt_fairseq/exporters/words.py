# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The word splitter of the exported pipeline (``pipeline_xlt.py`` imports ``.words``): an exported
transformers folder holds a copy of :mod:`xlt_fairseq.data.words` as ``words.py``; inside the plugin
this module is that one, so both split words with the same code."""

from ..data.words import split_words  # noqa: F401
