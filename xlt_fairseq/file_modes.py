# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The modes of what the plugin publishes.

Outputs are staged where a failure leaves nothing half-written: a temporary
folder (``tempfile.mkdtemp``, mode 0700) or file (``tempfile.mkstemp``, 0600)
renamed into place when complete, and libraries writing into a staged folder do
the same (safetensors' files come out 0600). A rename keeps those modes, so an
export would be readable by its owner alone. Before anything is moved into
place, :func:`publish` gives it the modes a plain ``open()``/``os.makedirs()``
would have: files 0666 and folders 0777, less the process' umask (0644 and 0755
under the usual 022; a umask of 077 keeps them private).
"""

import os
import stat


def umask() -> int:
    """The process' umask, read from ``/proc/self/status`` where the system has it
    (setting and restoring it is a race with other threads), else by setting and restoring."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(path: str, mask=None) -> int:
    """What ``open()`` (0666) or ``mkdir()`` (0777) gives ``path`` under the umask; files that are
    executable keep their execute bits (0777 less the umask)."""
    mask = umask() if mask is None else mask
    mode = os.stat(path, follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode) or mode & 0o111:
        return 0o777 & ~mask
    return 0o666 & ~mask


def publish(path: str):
    """Gives ``path`` (a file, or a folder and everything in it) the modes of :func:`default_mode`."""
    mask = umask()
    if os.path.islink(path):
        return
    os.chmod(path, default_mode(path, mask))
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                p = os.path.join(root, name)
                if not os.path.islink(p):
                    os.chmod(p, default_mode(p, mask))
