#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Thin wrapper around :mod:`xlt_fairseq.cli.preprocess` (installed as ``xlt-preprocess``)."""

import sys

from xlt_fairseq.cli.preprocess import build_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
