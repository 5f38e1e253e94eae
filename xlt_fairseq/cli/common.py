# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What the inference tools share: the model arguments, loading, the errors a
user can cause, standard input and outputs that are never half-written."""

import contextlib
import logging
import os
import shutil
import sys
import tempfile

logger = logging.getLogger(__name__)


def user_errors() -> tuple:
    """Exceptions that are the user's input, not a bug: reported as ``error: ...`` with exit status 1."""
    from ..checkpoint_io import CheckpointReadError
    from ..checkpoint_safety import UnsafeCheckpointError
    from ..experiments.evaluation import EvaluationError

    # the plugin's own input errors (formats, vocabularies, exports, hub requests) are ValueErrors
    return (ValueError, OSError, EvaluationError, CheckpointReadError, UnsafeCheckpointError)


def add_model_arguments(parser):
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help="a model folder written by xlt-export")
    group.add_argument("--checkpoint", help="a checkpoint of fairseq-train (or a model folder)")
    parser.add_argument("--data", help="with --checkpoint: its data root (default: the one it was trained on)")
    parser.add_argument("--encoder-dir", help="with --checkpoint: the encoder directory (default: the data root's)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument("--verbose", action="store_true", help="log the model's loading (INFO; default: warnings only)")


def model_inputs(args) -> list:
    """What ``add_model_arguments``' options read, for the output rule (:mod:`xlt_fairseq.data.outputs`)."""
    return [
        (f"--{name.replace('_', '-')}", getattr(args, name, None))
        for name in ("model", "checkpoint", "data", "encoder_dir")
    ]


def setup(args=None):
    """Threads (the cores free now; OMP_NUM_THREADS wins) and warning-level logging (INFO with
    ``--verbose``: the model's loading, fairseq's messages)."""
    from ..hardware import configure_threads

    configure_threads()
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", force=True)


def load(args, half: bool = False):
    """The hub interface of ``--model``/``--checkpoint``."""
    import torch

    from ..models.hub_interface import load_hub

    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    hub = load_hub(args.model or args.checkpoint, data=args.data, encoder_dir=args.encoder_dir, device=device)
    if half:
        if device == "cpu":
            raise ValueError("--half needs a GPU (fp16 inference on a CPU is slower than fp32)")
        hub = hub.half()
    return hub


@contextlib.contextmanager
def input_path(path: str):
    """``path``, or standard input copied to a temporary file (readers take files):
    its bytes, so that the readers' UTF-8 checks report it as they report a file."""
    if path != "-":
        yield path
        return
    tmp = tempfile.mkdtemp(prefix="xlt-stdin-")
    try:
        name = os.path.join(tmp, "stdin")
        with open(name, "wb") as f:
            if hasattr(sys.stdin, "buffer"):
                shutil.copyfileobj(sys.stdin.buffer, f)
            else:  # a text stream without bytes (a program that replaced sys.stdin)
                f.write(sys.stdin.read().encode("utf-8"))
        yield name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(error: Exception, stdin_path: str = None) -> int:
    message = str(error)
    if stdin_path:
        message = message.replace(stdin_path, "<stdin>")
    print(f"error: {message}", file=sys.stderr)
    return 1


def write_output(path: str, lines, inputs=(), option: str = "--output"):
    """Writes ``lines`` to ``path`` through a temporary file renamed when complete,
    never onto one of ``inputs`` (``-``: standard output)."""
    text = "".join(line + "\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..data.outputs import write_text

    write_text(path, text, inputs, option)


def interrupted(error: BaseException) -> int:
    """Ctrl-C, SIGTERM or SIGHUP (:class:`~xlt_fairseq.data.staging.Interrupted`): one line, 128 + the signal."""
    import signal

    signum = getattr(error, "signum", signal.SIGINT)
    what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else str(error)
    print(f"error: {what}; nothing was written", file=sys.stderr)
    return 128 + signum


def guarded(body, errors: tuple = ()) -> int:
    """``body()``'s exit status, with SIGTERM and SIGHUP cleaning up as Ctrl-C does: ``errors``
    (and :class:`~xlt_fairseq.data.outputs.OutputError`) are ``error: ...`` and exit status 1, an
    interruption ``error: interrupted ...`` and 128 + the signal number."""
    from ..data.outputs import OutputError
    from ..data.staging import Interrupted, signals_as_exceptions

    try:
        with signals_as_exceptions():
            return body()
    except (OutputError,) + tuple(errors) as e:
        return report(e)
    except (Interrupted, KeyboardInterrupt) as e:
        return interrupted(e)


def run_tool(parser, argv, work) -> int:
    """A tool's ``main``: parse, set up, run ``work(args)`` and print its result as
    JSON; a user's error is ``error: ...`` on stderr and exit status 1."""
    import json

    args = parser.parse_args(argv)
    from ..data.staging import Interrupted, signals_as_exceptions  # (after parsing: it imports fairseq)

    setup(args)
    try:
        with signals_as_exceptions():  # SIGTERM and SIGHUP clean up as Ctrl-C does
            result = work(args)
    except user_errors() as e:
        return report(e)
    except (Interrupted, KeyboardInterrupt) as e:
        return interrupted(e)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
