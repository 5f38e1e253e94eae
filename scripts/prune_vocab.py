#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""`xlt-prune-vocab` from a source checkout: see xlt_fairseq/cli/prune_vocab.py.

    python scripts/prune_vocab.py --help
"""

import sys

from xlt_fairseq.cli.prune_vocab import main  # noqa: F401  (tests and benchmarks call prune_vocab.main)

if __name__ == "__main__":
    sys.exit(main())
