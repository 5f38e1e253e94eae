#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Thin wrapper around :mod:`xlt_fairseq.cli.split_dev` (installed as ``xlt-split-dev``)."""

import sys

from xlt_fairseq.cli.split_dev import build_parser, side, split, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
