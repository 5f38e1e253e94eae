# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Generation options that cannot work, refused before a model is loaded, and
the plugin's own errors as one line in fairseq's command-line tools.

``--nbest 0``, a beam below 1, more hypotheses than the beam holds, or a maximum
length below the minimum would otherwise fail deep inside fairseq's
``SequenceGenerator`` (an assertion, or an empty output) after the model has been
loaded. :func:`check_generation_options` is called by the task's
``build_generator``, by the hub interface and ``xlt-predict`` before loading, and,
inside ``fairseq-generate``/``fairseq-interactive``, when the plugin is imported
(``--user-dir``, before fairseq loads the checkpoint).
"""

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

logger = logging.getLogger(__name__)


class GenerationOptionsError(ValueError):
    """Generation options that cannot produce a translation."""


def check_generation_options(
    beam: Optional[int] = None,
    nbest: Optional[int] = None,
    min_len: Optional[int] = None,
    max_len_a: Optional[float] = None,
    max_len_b: Optional[int] = None,
    max_len: Optional[int] = None,
    sampling: bool = False,
):
    """Raises GenerationOptionsError naming the option for settings no generation can satisfy."""
    if beam is not None and beam < 1:
        raise GenerationOptionsError(f"--beam {beam}: the beam must hold at least 1 hypothesis")
    if nbest is not None and nbest < 1:
        raise GenerationOptionsError(f"--nbest {nbest}: at least 1 hypothesis per input must be returned")
    if beam is not None and nbest is not None and nbest > beam and not sampling:
        raise GenerationOptionsError(f"--nbest {nbest} cannot exceed --beam {beam}")
    if min_len is not None and min_len < 1:
        raise GenerationOptionsError(f"--min-len {min_len}: must be at least 1")
    if max_len_a is not None and max_len_a < 0:
        raise GenerationOptionsError(f"--max-len-a {max_len_a}: must not be negative")
    if min_len is not None and max_len_b is not None:
        # the shortest source (its end-of-sentence token alone) allows max_len_a * 1 + max_len_b tokens
        if (max_len_a or 0) + max_len_b < min_len:
            raise GenerationOptionsError(
                f"--max-len-a {max_len_a or 0} and --max-len-b {max_len_b} allow fewer tokens than --min-len {min_len}"
            )
    if min_len is not None and max_len is not None and 0 < max_len < min_len:
        raise GenerationOptionsError(f"--max-len {max_len} is below --min-len {min_len}")


def check_generation_args(args):
    """:func:`check_generation_options` of a fairseq generation config or namespace."""
    get = (lambda k: args.get(k, None)) if hasattr(args, "get") else (lambda k: getattr(args, k, None))
    check_generation_options(
        beam=get("beam"),
        nbest=get("nbest"),
        min_len=get("min_len"),
        max_len_a=get("max_len_a"),
        max_len_b=get("max_len_b"),
        max_len=get("max_len"),
        sampling=bool(get("sampling")),
    )


# ---- inside fairseq's own command-line tools -----------------------------------------------------------------------------

GENERATING_TOOLS = ("fairseq-generate", "fairseq-interactive", "generate.py", "interactive.py")


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""


def check_command_line(argv: Sequence[str]):
    """The generation options of a ``fairseq-generate``/``fairseq-interactive`` command line
    (fairseq's names and defaults), checked before fairseq loads anything."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--nbest", type=int, default=1)
    parser.add_argument("--min-len", type=int, default=1)
    parser.add_argument("--max-len-a", type=float, default=0)
    parser.add_argument("--max-len-b", type=int, default=200)
    parser.add_argument("--max-len", type=int, default=0)
    parser.add_argument("--sampling", action="store_true")
    try:
        args, _ = parser.parse_known_args(list(argv))
    except SystemExit:  # a malformed value: fairseq's own parser reports it
        return
    check_generation_args(args)


def plugin_errors() -> tuple:
    from .checkpoint_io import CheckpointReadError
    from .checkpoint_safety import UnsafeCheckpointError

    return (GenerationOptionsError, CheckpointReadError, UnsafeCheckpointError)


def install_for_fairseq_cli():
    """In ``fairseq-generate``/``-interactive``/``-train``/``-validate`` (not in a library user's
    program): the plugin's own errors (a truncated or unsafe checkpoint, impossible generation
    options) end the tool with ``error: FILE: problem`` and exit status 1, not a traceback; and the
    generation options are checked now, before fairseq loads the model."""
    program = _program()
    if not (program.startswith("fairseq-") or program in GENERATING_TOOLS):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if isinstance(value, plugin_errors()):
            print(f"error: {value}", file=sys.stderr)
            return
        previous(kind, value, tb)

    sys.excepthook = hook
    if program in GENERATING_TOOLS:
        try:
            check_command_line(sys.argv[1:])
        except GenerationOptionsError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
