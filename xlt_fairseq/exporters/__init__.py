# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Exporters: trained xlt models -> other ecosystems (:mod:`.hf`: Hugging Face
transformers folders). The inverse of :mod:`xlt_fairseq.importers`."""
