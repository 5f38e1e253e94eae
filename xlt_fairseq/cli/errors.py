# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""How the data tools end: every expected failure is one line ``error: FILE:LINE:
problem`` (or ``FILE: problem``) on stderr and a non-zero exit code, never a
traceback; an interrupted run says so and exits 128 + the signal number."""

import contextlib
import os
import signal
import sys
from typing import Callable


def expected_errors() -> tuple:
    """The failures a user causes (imported when a tool runs, not when it parses its arguments)."""
    from ..data.binarize import EncoderVocabularyError
    from ..data.corpora import CorpusError
    from ..data.formats import DataFormatError

    return (DataFormatError, EncoderVocabularyError, CorpusError, ValueError)


def run(body: Callable[[], int]) -> int:
    """Runs ``body`` and turns expected failures and interruptions into exit codes."""
    from ..data.staging import Interrupted

    EXPECTED = expected_errors()
    try:
        return body()
    except EXPECTED as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `xlt-prepare ... | head`: the work is done, only the report was cut short
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return 128 + signal.SIGPIPE
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"error: {e}; nothing was written", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT
