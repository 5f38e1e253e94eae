#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""`xlt-run-experiments` from a source checkout: see xlt_fairseq/cli/run_experiments.py.

    python scripts/run_experiments.py --help
"""

import sys

from xlt_fairseq.cli.run_experiments import main  # noqa: F401  (tests and benchmarks call run_experiments.main)

if __name__ == "__main__":
    sys.exit(main())
