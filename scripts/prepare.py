#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Thin wrapper around :mod:`xlt_fairseq.cli.prepare` (installed as ``xlt-prepare``)."""

import sys

from xlt_fairseq.cli.prepare import build_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
