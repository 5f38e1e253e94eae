# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Crash-safe checkpoint files for the plugin's own runs.

fairseq writes a checkpoint to ``FILE.tmp`` and renames it into place, but it
makes ``checkpoint_last.pt`` and ``checkpoint_best.pt`` by *copying* that file,
and a crash or a full disk during a copy leaves a truncated checkpoint where
the previous good one was. :func:`protect` (called with ``--save-dir`` by the
``xlt_multitask`` task's ``build_criterion``, i.e. when it trains) makes copies *into that folder*
atomic (copy to a temporary file in the same folder, fsync, rename) and removes
the partial ``.tmp`` file of a failed save there; saves of other tasks and other
folders in the same process go through fairseq's functions unchanged. Importing
the plugin changes nothing here.

:func:`explain_corrupt` turns a truncated or corrupt checkpoint into a
:class:`CheckpointReadError` that names the file; the plugin's one wrapper of
fairseq's loader (:mod:`xlt_fairseq.checkpoint_safety`) applies it to every load.
"""

import contextlib
import errno
import functools
import logging
import os
import shutil
import tempfile
import zipfile
from typing import Set

from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

logger = logging.getLogger(__name__)


class CheckpointReadError(RuntimeError):
    """A checkpoint file that is truncated, corrupt or not a checkpoint."""


def _is_local(path) -> bool:
    return "://" not in str(path)


def atomic_copy(src_path, dst_path, overwrite=False):
    """Copies ``src_path`` over ``dst_path`` so that ``dst_path`` is at every
    moment either its old content or the complete new one."""
    if not overwrite and os.path.exists(dst_path):
        return False
    from .file_modes import publish

    folder = os.path.dirname(os.path.abspath(dst_path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dst_path) + ".", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(src_path, "rb") as inp:
            shutil.copyfileobj(inp, out, length=16 << 20)
            out.flush()
            os.fsync(out.fileno())
        publish(tmp)  # the umask's mode, not mkstemp's 0600
        os.replace(tmp, dst_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return True


_CORRUPT_MARKERS = (
    "PytorchStreamReader",
    "failed finding central directory",
    "invalid header",
    "unexpected EOF",
    "Ran out of input",
    "could not find MARK",
    "truncated",
    "file not found in archive",
)


def _looks_corrupt(error: BaseException) -> bool:
    if isinstance(error, (EOFError, zipfile.BadZipFile)):
        return True
    # torch's zip reader seeks back from the end of a file cut to a few kilobytes, before its start:
    # a bare "[Errno 22] Invalid argument" that names no file
    if isinstance(error, OSError) and error.errno == errno.EINVAL and not error.filename:
        return True
    return any(marker in str(error) for marker in _CORRUPT_MARKERS)


@contextlib.contextmanager
def explain_corrupt(path):
    try:
        yield
    except Exception as e:
        if _looks_corrupt(e):
            raise CheckpointReadError(
                f"{path}: cannot be read as a checkpoint (truncated or corrupt: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}). If a run was interrupted while saving, "
                "resume from another checkpoint in the same folder (e.g. checkpoint_N_M.pt)."
            ) from e
        raise


_protected: Set[str] = set()


def is_protected(path) -> bool:
    if not isinstance(path, str) or not _is_local(path):
        return False
    folder = os.path.dirname(os.path.abspath(path))
    return any(folder == d or folder.startswith(d + os.sep) for d in _protected)


def protect(save_dir: str):
    """Makes checkpoint copies into ``save_dir`` atomic and cleans up a failed
    save's partial file there (see the module's docstring)."""
    _install()
    _protected.add(os.path.abspath(save_dir))


def _install():
    if getattr(checkpoint_utils, "_xlt_checkpoint_io", False):
        return
    checkpoint_utils._xlt_checkpoint_io = True

    original_copy = PathManager.copy

    def copy(src_path, dst_path, overwrite=False):
        if is_protected(dst_path) and _is_local(src_path):
            return atomic_copy(src_path, dst_path, overwrite=overwrite)
        return original_copy(src_path, dst_path, overwrite=overwrite)

    PathManager.copy = staticmethod(copy)

    original_save = checkpoint_utils.torch_persistent_save

    @functools.wraps(original_save)
    def torch_persistent_save(obj, filename, *args, **kwargs):
        try:
            return original_save(obj, filename, *args, **kwargs)
        except BaseException:
            partial = f"{filename}.tmp"
            if is_protected(filename) and os.path.exists(partial):
                os.remove(partial)
                logger.error(f"saving {filename} failed; removed the partial {partial}, the previous file is intact")
            raise

    checkpoint_utils.torch_persistent_save = torch_persistent_save

    original_save_checkpoint = checkpoint_utils.save_checkpoint

    @functools.wraps(original_save_checkpoint)
    def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
        result = original_save_checkpoint(cfg, trainer, epoch_itr, val_loss)
        keep_interval_checkpoint(cfg, trainer, epoch_itr)
        return result

    checkpoint_utils.save_checkpoint = save_checkpoint


def keep_interval_checkpoint(cfg, trainer, epoch_itr):
    """fairseq writes ``checkpoint_E_U.pt`` every ``--save-interval-updates`` updates *except* when that update
    ends an epoch (then it writes the epoch's checkpoint only if the epoch is a ``--save-interval`` one): with
    small corpora (5-update epochs) most validations were never on disk, and selecting among them was impossible.
    In a protected save folder, such an update's ``checkpoint_last.pt`` (just written) is copied to
    ``checkpoint_E_U.pt``."""
    updates = trainer.get_num_updates()
    epoch = epoch_itr.epoch
    if (
        cfg.no_save
        or cfg.no_last_checkpoints
        or not trainer.should_save_checkpoint_on_current_rank
        or cfg.save_interval_updates <= 0
        or updates <= 0
        or updates % cfg.save_interval_updates != 0
        or not epoch_itr.end_of_epoch()
        or (not cfg.no_epoch_checkpoints and epoch % cfg.save_interval == 0)  # fairseq saved it as checkpointE.pt
    ):
        return
    suffix = cfg.checkpoint_suffix
    last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
    numbered = os.path.join(cfg.save_dir, f"checkpoint_{epoch}_{updates}{suffix}.pt")
    if is_protected(numbered) and os.path.exists(last) and not os.path.exists(numbered):
        atomic_copy(last, numbered)
        logger.info(f"copied {last} to {numbered} (update {updates} ends epoch {epoch})")
