#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""`xlt-import-hf` from a source checkout: see xlt_fairseq/cli/import_hf.py.

    python scripts/import_hf.py --help
"""

import sys

from xlt_fairseq.cli.import_hf import main  # noqa: F401  (tests and benchmarks call import_hf.main)

if __name__ == "__main__":
    sys.exit(main())
