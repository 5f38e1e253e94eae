# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Command-line entry points (``xlt-preprocess``, ``xlt-prepare``, ...): each
module has ``main(argv=None) -> int``; ``scripts/<name>.py`` are thin wrappers."""
