# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Where a tool may write, and how (README, "What happens when things go wrong").
Every tool that writes follows these rules:

- **An output is never an input.** Before any work, an output that is an input
  (the same path after symlinks, or the same inode through a hard link), lies
  inside an input folder or contains an input is refused, naming both paths
  (:func:`check_outputs`).
- **A folder is replaced only when the tool wrote it.** A folder output is built
  in a staging folder next to it and renamed into place at the end. A non-empty
  folder already there is replaced only with ``--force``, and only when it holds
  the marker file :data:`MARKER` of the same tool and nothing the tool did not
  write. Both checks run again at the moment of the replacement: files that
  appeared while the tool ran are never deleted (:func:`staged_folder`).
- **A file is never half-written.** It is written to a temporary file next to
  it and renamed into place (:func:`staged_file`).
- **Outputs get the umask's modes.** What is renamed into place has the modes a
  plain ``open()``/``os.makedirs()`` would have given it, not the 0600/0700 of a
  temporary file or folder (:func:`xlt_fairseq.file_modes.publish`).
- **Nothing is left behind.** Temporary files and staging folders are removed
  on an error, Ctrl-C, SIGTERM and SIGHUP (the tool's ``main`` turns the last
  two into exceptions: :func:`.staging.signals_as_exceptions`); their names carry
  the host and process id, and the next run removes those of a process that is
  gone (one killed with SIGKILL).
"""

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from ..file_modes import publish
from .staging import _HOST, _pid_alive, signals_deferred

logger = logging.getLogger(__name__)

MARKER = ".xlt-output.json"

Named = Tuple[str, Optional[str]]  # (the option that names it, e.g. "--out"; the path)


class OutputError(ValueError):
    """An output that would destroy an input, or a folder the tool may not replace."""


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def _label(option: str, path: str) -> str:
    return f"{option} {path}" if option else str(path)


def _named(items: Iterable) -> List[Tuple[str, str]]:
    """``(option, path)`` pairs (a bare path has no option), without unset paths and standard streams."""
    out = []
    for item in items:
        option, path = item if isinstance(item, tuple) else ("", item)
        if path is None or str(path) in ("", "-"):
            continue
        out.append((option, str(path)))
    return out


def collision(output: str, input: str) -> Optional[str]:
    """How writing ``output`` would destroy ``input`` (or None)."""
    out, src = _real(output), _real(input)
    same = out == src
    if not same and os.path.exists(output) and os.path.exists(input):
        with contextlib.suppress(OSError):
            same = os.path.samefile(output, input)
    if same:
        return "is"
    if os.path.isdir(src) and _inside(out, src):
        return "lies inside"
    if _inside(src, out):
        return "contains"
    return None


def check_outputs(outputs: Iterable, inputs: Iterable):
    """Refuses any output that is, lies inside or contains an input. ``outputs``
    and ``inputs`` are paths or ``(option, path)`` pairs; ``None`` and ``-`` are skipped."""
    inputs = _named(inputs)
    outputs = _named(outputs)
    for option, output in outputs:
        for in_option, input in inputs:
            how = collision(output, input)
            if how is None:
                continue
            what = {"is": "is the input", "lies inside": "lies inside the input folder", "contains": "contains the input"}
            raise OutputError(
                f"{_label(option, output)}: {what[how]} {_label(in_option, input)}; writing there would destroy "
                "what the tool reads (choose another output)"
            )
    for i, (option, output) in enumerate(outputs):
        for other_option, other in outputs[i + 1 :]:
            if collision(output, other):
                raise OutputError(f"{_label(option, output)} and {_label(other_option, other)}: the same output twice")


# ---- temporary names: host and pid, so that the next run can remove a killed run's ----------------------------------


def temp_prefix(path: str, kind: str) -> str:
    return f".{os.path.basename(os.path.abspath(path))}.{kind}-{_HOST}-{os.getpid()}-"


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-")


def remove_stale_temporaries(path: str):
    """Removes the temporary files and folders next to ``path`` that a run on
    this host left when it was killed outright (its process is gone)."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _TEMP.match(name)
        if not m or m.group("name") != base or m.group("host") != _HOST or _pid_alive(int(m.group("pid"))):
            continue
        stale = os.path.join(folder, name)
        logger.warning(f"{stale}: removing what a killed run (pid {m.group('pid')}) left")
        if os.path.isdir(stale) and not os.path.islink(stale):
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(stale)


# ---- files --------------------------------------------------------------------------------------------------------------


def check_file_output(path: str, option: str = "--out"):
    if os.path.isdir(path):
        raise OutputError(f"{_label(option, path)}: is a folder, not a file")


def new_temporary(path: str) -> str:
    """An empty temporary file next to ``path`` (its folder made if needed, the stale
    temporaries of killed runs removed), to be renamed onto ``path`` when complete."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path, "tmp"), dir=folder)
    os.close(fd)
    publish(tmp)  # as open() would have made it, not mkstemp's 0600
    return tmp


@contextlib.contextmanager
def staged_file(path: str, inputs: Sequence = (), option: str = "--out") -> Iterator[str]:
    """A temporary file next to ``path``, renamed onto it when the block ends
    without an error (after checking ``inputs`` again); removed otherwise."""
    check_outputs([(option, path)], inputs)
    check_file_output(path, option)
    tmp = new_temporary(path)
    try:
        yield tmp
        check_outputs([(option, path)], inputs)  # again now: a link may have been made meanwhile
        check_file_output(path, option)
        publish(tmp)  # the umask's mode, whatever wrote the file (a library staging with mkstemp included)
        with signals_deferred():
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_text(path: str, text: str, inputs: Sequence = (), option: str = "--out"):
    """Writes ``text`` (UTF-8) to ``path`` through :func:`staged_file`."""
    with staged_file(path, inputs, option) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


# ---- folders ------------------------------------------------------------------------------------------------------------


def read_marker(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def check_folder_output(out_dir: str, tool: str, force: bool, option: str = "--out"):
    """``out_dir`` can be replaced: it is missing or empty, or (``force``) it is a
    folder ``tool`` wrote, holding nothing else."""
    if not os.path.lexists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise OutputError(f"{_label(option, out_dir)}: is a file, not a folder")
    names = sorted(os.listdir(out_dir))
    if not names:
        return
    if not force:
        raise OutputError(f"{_label(option, out_dir)}: exists and is not empty (pass --force to replace it)")
    marker = read_marker(out_dir)
    if marker is None or marker.get("tool") != tool:
        raise OutputError(
            f"{_label(option, out_dir)}: --force replaces only a folder {tool} wrote, and this one has no {MARKER} "
            f"of {tool}; remove it yourself or choose another {option}"
        )
    ours = set(marker.get("files") or []) | {MARKER}
    foreign = [n for n in names if n not in ours]
    if foreign:
        raise OutputError(
            f"{_label(option, out_dir)}: holds {os.path.join(out_dir, foreign[0])}, which {tool} did not write; "
            "--force does not delete it (move it out or choose another output)"
        )


@contextlib.contextmanager
def staged_folder(
    out_dir: str, tool: str, force: bool = False, inputs: Sequence = (), option: str = "--out"
) -> Iterator[str]:
    """A staging folder next to ``out_dir``; when the block ends without an error it
    gets :data:`MARKER` and replaces ``out_dir``, after :func:`check_outputs` and
    :func:`check_folder_output` have passed again. Removed on any error or signal."""
    check_outputs([(option, out_dir)], inputs)
    check_folder_output(out_dir, tool, force, option)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(out_dir)
    tmp = tempfile.mkdtemp(prefix=temp_prefix(out_dir, "tmp"), dir=parent)
    old = None
    try:
        yield tmp
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump({"tool": tool, "files": sorted(os.listdir(tmp))}, f, indent=1)
            f.write("\n")
        publish(tmp)  # the umask's modes, not mkdtemp's 0700 or the 0600 of files a library staged
        # again now: an input may have been moved here, files may have appeared in out_dir meanwhile
        check_outputs([(option, out_dir)], inputs)
        check_folder_output(out_dir, tool, force, option)
        with signals_deferred():
            if os.path.lexists(out_dir):
                old = tempfile.mkdtemp(prefix=temp_prefix(out_dir, "old"), dir=parent)
                os.rename(out_dir, os.path.join(old, "previous"))
            try:
                os.rename(tmp, out_dir)
            except OSError:
                if old:  # the previous output goes back where it was
                    os.rename(os.path.join(old, "previous"), out_dir)
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old:
            shutil.rmtree(old, ignore_errors=True)
