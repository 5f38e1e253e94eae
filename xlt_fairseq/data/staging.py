# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Writing into a data root safely: a lock, staging folders, signals.

What a data root guarantees (README, "What happens when things go wrong"):

- **One dictionary.** A root's ``dict.txt`` and the checksums every corpus
  records must match the encoder directory a run uses. The check and the
  root's claim (creating it and installing ``dict.txt``) happen under an
  exclusive lock (``fcntl.flock`` on ``.<root>.xlt-lock`` next to the root), as
  does the final move of corpora into place; so of two runs racing into one
  new root with different encoders exactly one succeeds.
- **All or nothing.** A corpus is built in a staging folder ``.tmp-*`` inside
  the root and renamed into place when complete; a failure, Ctrl-C, SIGTERM or
  SIGHUP removes the staging folder (and the root and its ``dict.txt`` when
  this run created them and nothing else uses them) and exits non-zero.
- **Nothing stale.** A staging folder left by a run that was killed outright
  (SIGKILL, power loss) names its host and process id; the next run into the
  root removes it once that process is gone.
"""

import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from typing import Iterator, List, Sequence

from . import corpora
from .binarize import DICT_FILE, SPM_FILE, PieceEncoder, file_md5

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".tmp-"
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:20] or "host"
_STAGING = re.compile(r"^\.tmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)-")


class DataRootError(ValueError):
    """A data root that cannot be written (a file in the way, permissions, a full disk)."""


class Interrupted(SystemExit):
    """SIGTERM or SIGHUP during preparation, turned into an exception so that
    staging folders are removed on the way out. A SystemExit with code 128 +
    the signal number: uncaught, it ends the program as the signal would have,
    without a traceback; ``except Exception`` does not swallow it."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(128 + signum)

    def __str__(self):
        return f"interrupted by {signal.Signals(self.signum).name}"


def _os_error(path, e: OSError) -> DataRootError:
    reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}.get(e.errno)
    return DataRootError(f"{getattr(e, 'filename', None) or path}: {reason or e.strerror or e}")


@contextlib.contextmanager
def os_errors(path) -> Iterator[None]:
    """Turns OSErrors (full disk, permissions, a file where a folder should be)
    into DataRootErrors naming the file."""
    try:
        yield
    except OSError as e:
        raise _os_error(path, e) from None


# ---- signals ------------------------------------------------------------------------------------------------------------

TERMINATING = (signal.SIGTERM, signal.SIGHUP) if hasattr(signal, "SIGHUP") else (signal.SIGTERM,)


@contextlib.contextmanager
def _handlers(signals, handler) -> Iterator[None]:
    """``handler`` for ``signals`` within the block, the previous handlers after it.
    A signal the process ignores stays ignored: ``nohup`` (SIGHUP) and a shell's
    background job (SIGINT) ask for that, and a closed terminal must not stop the run."""
    old = {s: signal.signal(s, handler) for s in signals if signal.getsignal(s) != signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Within this block SIGTERM and SIGHUP raise :class:`Interrupted` (Ctrl-C
    raises KeyboardInterrupt as always), so that cleanup code runs. Only in the
    main thread (elsewhere Python cannot install handlers: a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    with _handlers(TERMINATING, handler):
        yield


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within this block (cleanup), Ctrl-C, SIGTERM and SIGHUP are held back and
    re-raised at its end: a second Ctrl-C cannot cut a cleanup short and leave
    workers or staging files behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def hold(signum, frame):
        pending.append(signum)

    try:
        with _handlers((signal.SIGINT,) + TERMINATING, hold):
            yield
    finally:
        if pending:
            if pending[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise Interrupted(pending[0])


# ---- child processes ------------------------------------------------------------------------------------------------


def _die_with_parent(parent: int):
    """``preexec_fn`` of a child: SIGTERM when the parent dies, even by SIGKILL
    (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere the parent's cleanup alone stops it)."""

    def preexec():
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + signal.SIGTERM)

    return preexec


def stop_process_group(proc, timeout: float = 10.0):
    """Ends a child started by :func:`child_process` and everything it started:
    SIGTERM to its process group, SIGKILL to what is left after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except Exception:  # subprocess.TimeoutExpired
            continue
        # the child is gone; what it started in its group gets the same signal
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        return


@contextlib.contextmanager
def child_process(cmd, **kwargs) -> Iterator:
    """``subprocess.Popen(cmd, **kwargs)`` in its own process group that never
    outlives the block: when the block ends early (an error, Ctrl-C, SIGTERM,
    SIGHUP) the whole group is stopped (:func:`stop_process_group`), and a child
    whose parent dies (SIGKILL) gets SIGTERM (Linux). Ctrl-C in a terminal reaches
    the parent only, which stops the child."""
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()), **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with signals_deferred():
                stop_process_group(proc)
        else:  # finished: what it left running in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)


# ---- the lock -----------------------------------------------------------------------------------------------------------


def lock_path(destdir) -> str:
    root = os.path.abspath(destdir)
    return os.path.join(os.path.dirname(root), f".{os.path.basename(root)}.xlt-lock")


@contextlib.contextmanager
def root_lock(destdir) -> Iterator[None]:
    """An exclusive lock on the data root ``destdir`` (which need not exist yet),
    held by a lock file next to it. The file is removed while still held: a
    waiter that locked the removed file notices and locks the new one."""
    import fcntl

    path = lock_path(destdir)
    with os_errors(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        with os_errors(path):
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


# ---- the data root --------------------------------------------------------------------------------------------------------


def check_destdir(destdir):
    """A destination that can be a data root: named, not a file, not inside a file, writable."""
    if not str(destdir).strip():
        raise DataRootError("--destdir is empty (it would write into the current folder)")
    root = os.path.abspath(destdir)
    probe = root
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise DataRootError(f"{probe}: is a file, not a folder (--destdir {destdir} must be a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataRootError(f"{probe}: permission denied (cannot write the data root {destdir} there)")


def check_data_root(destdir, encoder: PieceEncoder, replacing: Sequence[str] = ()):
    """A data root holds corpora of one vocabulary: its ``dict.txt`` and the
    checksums every corpus recorded (auxiliary tagging folders such as ``pos/``
    included) must match the encoder directory's files."""
    dst = os.path.join(destdir, DICT_FILE)
    src = os.path.join(encoder.encoder_dir, DICT_FILE)
    if os.path.exists(dst):
        with os_errors(dst):
            md5 = file_md5(dst)
        if md5 != encoder.dict_md5:
            raise ValueError(
                f"{dst}: this data root was prepared with a different dictionary than {src}; "
                "use a new --destdir or the same --encoder-dir"
            )
    replacing = {os.path.abspath(p) for p in replacing}
    for task, key in corpora.corpus_folders(destdir):
        path = corpora.corpus_dir(destdir, task, key)
        if os.path.abspath(path) in replacing:
            continue
        meta_path = os.path.join(path, corpora.META_FILE)
        meta = corpora.read_meta(path)
        for what, mine, name in (("dict_md5", encoder.dict_md5, DICT_FILE), ("spm_md5", encoder.spm_md5, SPM_FILE)):
            if meta.get(what) not in (None, mine):
                raise ValueError(
                    f"{meta_path}: corpus {task}/{key} was prepared with a different {name} than "
                    f"{os.path.join(encoder.encoder_dir, name)}; use a new --destdir or the same --encoder-dir"
                )


def install_dictionary(destdir, encoder: PieceEncoder) -> bool:
    """Copies the encoder's ``dict.txt`` into the root (atomically) unless it is
    there; returns whether it did."""
    dst = os.path.join(destdir, DICT_FILE)
    if os.path.exists(dst):
        return False
    tmp = dst + f".tmp-{os.getpid()}"
    try:
        with os_errors(dst):
            shutil.copyfile(os.path.join(encoder.encoder_dir, DICT_FILE), tmp)
            os.replace(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return True


def _makedirs(path) -> List[str]:
    """``os.makedirs`` that returns the folders it created (deepest last)."""
    created = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    for p in reversed(created):
        with os_errors(p):
            try:
                os.mkdir(p)
            except FileExistsError:  # another run made it meanwhile: not ours to remove
                created.remove(p)
    return list(reversed(created))


def _remove_created(created: List[str]):
    """Removes the folders a run created (deepest first), each only if still empty."""
    for p in reversed(created):
        if not os.path.isdir(p):
            continue
        try:
            os.rmdir(p)
        except OSError:
            break


def _replace_dir(src, final):
    """Moves folder ``src`` to ``final``, replacing what was there."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    old = None
    if os.path.exists(final):
        old = f"{final}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(src, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_OLD = re.compile(r"\.old-(?P<pid>\d+)$")


def remove_stale_staging(destdir):
    """Removes staging folders of runs on this host whose process is gone, and
    the ``<key>.old-PID`` folder a run killed while replacing a corpus left."""
    if not os.path.isdir(destdir):
        return
    stale = []
    for name in os.listdir(destdir):
        m = _STAGING.match(name)
        if m and m.group("host") == _HOST and not _pid_alive(int(m.group("pid"))):
            stale.append((os.path.join(destdir, name), m.group("pid")))
        task_dir = os.path.join(destdir, name)
        if not name.startswith(".") and os.path.isdir(task_dir):
            for key in os.listdir(task_dir):
                m = _OLD.search(key)
                if m and not _pid_alive(int(m.group("pid"))):
                    stale.append((os.path.join(task_dir, key), m.group("pid")))
    for path, pid in stale:
        logger.warning(f"{path}: removing what a killed run (pid {pid}) left")
        shutil.rmtree(path, ignore_errors=True)


def _others_use(destdir, mine) -> bool:
    """Whether the root holds anything besides ``dict.txt`` and our staging folder."""
    try:
        names = os.listdir(destdir)
    except OSError:
        return True
    return any(n not in (DICT_FILE, os.path.basename(mine)) for n in names)


class StagedRoot:
    """Context manager: claims the data root ``destdir`` for an encoder (under
    the lock: checks it, creates it and installs ``dict.txt`` when missing) and
    yields a staging folder inside it. :meth:`commit` moves finished corpus
    folders into place (under the lock, after checking the root again). Leaving
    the block without a commit, by an exception or a signal, removes the staging
    folder, and the root and its ``dict.txt`` when this run created them and
    nothing else has used them since."""

    def __init__(
        self, destdir, encoder: PieceEncoder, finals: Sequence[str], label: str = "prepare", inputs: Sequence = ()
    ):
        self.destdir, self.encoder, self.finals = destdir, encoder, list(finals)
        # what the run reads (corpus files, the encoder directory): never the root or inside it, checked
        # before the root is touched and again at the commit
        self.inputs = list(inputs) + [("--encoder-dir", encoder.encoder_dir)]
        self.label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:60]
        self.tmp = None
        self.created: List[str] = []
        self.installed = False

    def _check_inputs(self):
        from .outputs import check_outputs

        check_outputs([("--destdir", self.destdir)], self.inputs)

    def __enter__(self) -> str:
        check_destdir(self.destdir)
        self._check_inputs()
        # the root and its missing parents are made outside the lock (another run may make them
        # at the same time: only what this run made is removed again)
        self.created = _makedirs(self.destdir)
        try:
            with root_lock(self.destdir):
                try:
                    check_data_root(self.destdir, self.encoder, replacing=self.finals)
                    remove_stale_staging(self.destdir)
                    with os_errors(self.destdir):
                        self.tmp = tempfile.mkdtemp(
                            prefix=f"{STAGING_PREFIX}{_HOST}-{os.getpid()}-{self.label}-", dir=self.destdir
                        )
                    self.installed = install_dictionary(self.destdir, self.encoder)
                except BaseException:
                    with signals_deferred():
                        self._cleanup_root()
                    raise
        except BaseException:
            with signals_deferred():
                _remove_created(self.created)
            raise
        return self.tmp

    def commit(self, moves: Sequence[Sequence[str]]):
        """Moves each staged ``(src, final)`` folder into place, all under the lock."""
        with root_lock(self.destdir), signals_deferred(), os_errors(self.destdir):
            self._check_inputs()
            check_data_root(self.destdir, self.encoder, replacing=self.finals)
            install_dictionary(self.destdir, self.encoder)
            for src, final in moves:
                _replace_dir(src, final)
            self.installed = False
            self.created = []

    def _cleanup_root(self):
        """Under the lock: the staging folder, and the dictionary and root this run created if unused."""
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.installed and not _others_use(self.destdir, self.tmp or ""):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.destdir, DICT_FILE))
        root = os.path.abspath(self.destdir)
        if root in self.created:
            with contextlib.suppress(OSError):
                os.rmdir(root)

    def __exit__(self, exc_type, exc, tb):
        with signals_deferred():
            if exc_type is None:
                if self.tmp:
                    shutil.rmtree(self.tmp, ignore_errors=True)
                return False
            try:
                with root_lock(self.destdir):
                    self._cleanup_root()
            except DataRootError:
                self._cleanup_root()
            _remove_created(self.created)  # the parents, once the lock file is gone
        return False
