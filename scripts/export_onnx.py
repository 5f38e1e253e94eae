#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Thin wrapper over ``xlt_fairseq.cli.export_onnx`` (installed as ``xlt-export-onnx``); see ``--help``."""

import sys

from xlt_fairseq.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
