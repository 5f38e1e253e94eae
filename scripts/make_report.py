#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""`xlt-report` from a source checkout: see xlt_fairseq/cli/make_report.py.

    python scripts/make_report.py --help
"""

import sys

from xlt_fairseq.cli.make_report import main  # noqa: F401  (tests and benchmarks call make_report.main)

if __name__ == "__main__":
    sys.exit(main())
