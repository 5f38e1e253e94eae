# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Safe checkpoint loading on torch >= 2.6.

torch loads with ``weights_only=True`` by default, which refuses fairseq's
checkpoints because they pickle an ``argparse.Namespace`` (legacy ``args``, and
``cfg.model`` of argparse-style models such as RoBERTa). Rather than turning
safe loading off (which would let a checkpoint execute arbitrary code), we
allowlist exactly the globals that fairseq checkpoints contain:

- ``argparse.Namespace``;
- numpy arrays and scalars (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``
  and the dtype classes), which checkpoints written by older fairseq versions
  (published RoBERTa/XLM-R files among them) carry in their training state;
  they are registered under both numpy 1 (``numpy.core``) and numpy 2
  (``numpy._core``) names.

Importing this module installs the allowlist and wraps
``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (which every fairseq load
goes through: training resume, ``--restore-file``, ``--finetune-from-model``,
``fairseq-generate``, ``from_pretrained``) so that a refused file raises
:class:`UnsafeCheckpointError` naming the file and the offending globals.

It also wraps ``checkpoint_utils.load_checkpoint`` (where ``fairseq-train``
resumes) so that the task can refuse a checkpoint trained on other corpora or
languages (see :func:`_wrap_fairseq_resume`).

Opt-in for a trusted legacy file that needs more: list it (absolute or
relative path; several separated by ``os.pathsep``) in the environment variable
``XLT_TRUST_CHECKPOINTS``, or load it inside ``with trust_checkpoints(path):``.
Only the listed files are then loaded with ``weights_only=False``; there is no
switch that turns safe loading off for every file.

torch's own environment switch ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (a common
workaround for fairseq on torch >= 2.6) would turn safe loading off for every
``torch.load`` that does not pass ``weights_only`` (fairseq's calls among them).
Every load this module guards (fairseq's checkpoint loader, its EMA loader, the
multi-worker broadcast of a resumed state, :func:`load`) therefore runs with the
switch removed from the environment for the duration of the call: safe loading
holds whatever the environment says, and only ``XLT_TRUST_CHECKPOINTS`` opts out.
"""

import argparse
import contextlib
import contextvars
import functools
import logging
import os
import pickle
import re
from typing import Iterator, List, Set

import torch

logger = logging.getLogger(__name__)

TRUST_ENV = "XLT_TRUST_CHECKPOINTS"
# torch's environment switches (torch.serialization.load reads them on every call)
_FORCE_UNSAFE_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_FORCE_SAFE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"

_trusted_in_context: List[str] = []


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that torch's safe loading refused; nothing in it was run."""


def _numpy_globals():
    """numpy's array/scalar reconstructors with their numpy 1 and numpy 2 names."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    out = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        out.append(fn)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            name = f"{module}.{fn.__name__}"
            if name != f"{fn.__module__}.{fn.__name__}":
                out.append((fn, name))
    # numpy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...)
    for t in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        cls = type(np.dtype(t))
        if cls is not np.dtype:
            out.append(cls)
    return out


def fairseq_checkpoint_globals() -> list:
    """The globals a fairseq checkpoint may reference beyond torch's own
    tensors, dicts, lists and ``OrderedDict``: entries for
    :func:`torch.serialization.add_safe_globals`."""
    return [argparse.Namespace] + _numpy_globals()


def _allowed_names() -> Set[str]:
    names = set()
    for g in fairseq_checkpoint_globals():
        if isinstance(g, tuple):
            names.add(g[1])
        else:
            names.add(f"{g.__module__}.{g.__qualname__}")
    return names


def _norm(path) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def trusted_paths() -> Set[str]:
    """Files the user marked as trusted (``XLT_TRUST_CHECKPOINTS`` and
    :func:`trust_checkpoints`), as real paths."""
    listed = [p for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p.strip()]
    return {_norm(p) for p in listed + _trusted_in_context}


def is_trusted(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and _norm(path) in trusted_paths()


@contextlib.contextmanager
def trust_checkpoints(*paths) -> Iterator[None]:
    """Within this block, the given files (and only those) load with
    ``weights_only=False``, i.e. their pickles may run code. Use it only for
    files from a source you trust."""
    added = [os.fspath(p) for p in paths]
    _trusted_in_context.extend(added)
    try:
        yield
    finally:
        for p in added:
            _trusted_in_context.remove(p)


def _offending_globals(path, error: Exception) -> List[str]:
    allowed = _allowed_names()
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) files: take the name from torch's message
        found = re.findall(r"GLOBAL ([\w.]+)", str(error))
    return sorted({g for g in found if g not in allowed})


def _torch_reason(error: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line
    return lines[0] if lines else type(error).__name__


def _refusal(path, error: Exception) -> UnsafeCheckpointError:
    names = _offending_globals(path, error) if isinstance(path, (str, os.PathLike)) else []
    what = ", ".join(names) if names else "globals outside the allowlist"
    return UnsafeCheckpointError(
        f"{path}: refused by torch's safe loading (weights_only=True); nothing in the file was run. "
        f"It references {what}, which a fairseq checkpoint does not need (xlt_fairseq allows "
        "argparse.Namespace and numpy arrays/scalars). If the file comes from a source you trust and "
        f"needs more (e.g. an old fairseq checkpoint), load it with {TRUST_ENV}={_norm(path)} "
        f"(see docs/pretrained.md, 'Safe loading'). torch said: {_torch_reason(error)}"
    )


@contextlib.contextmanager
def _explained(path) -> Iterator[None]:
    try:
        yield
    except UnsafeCheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from None


@contextlib.contextmanager
def _torch_load_env(weights_only: bool) -> Iterator[None]:
    """Sets torch's load switches for one call and restores them after: with
    ``weights_only`` the switch that turns safe loading off is removed (so a
    ``torch.load`` without the argument stays safe whatever the user's
    environment); without, safe loading is turned off (trusted files only)."""
    saved = {k: os.environ.get(k) for k in (_FORCE_UNSAFE_ENV, _FORCE_SAFE_ENV)}
    if weights_only:
        os.environ.pop(_FORCE_UNSAFE_ENV, None)
    else:
        os.environ.pop(_FORCE_SAFE_ENV, None)
        os.environ[_FORCE_UNSAFE_ENV] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _warn_ignored_switch():
    if os.environ.get(_FORCE_UNSAFE_ENV, "0").lower() in ("1", "y", "yes", "true"):
        logger.warning(
            f"{_FORCE_UNSAFE_ENV} is set: xlt_fairseq ignores it and loads checkpoints safely "
            f"(name a trusted file in {TRUST_ENV} instead)"
        )


@contextlib.contextmanager
def _trusted_load(path) -> Iterator[None]:
    """For a trusted file, torch.load without weights_only (fairseq's call does
    not pass the argument, so torch's documented environment override applies)."""
    logger.warning(f"{path}: trusted by {TRUST_ENV}: loading with weights_only=False (its pickle may run code)")
    with _torch_load_env(weights_only=False):
        yield


@contextlib.contextmanager
def _guarded(path) -> Iterator[None]:
    """The context of one guarded load: trusted files without weights_only,
    every other file with it (whatever the environment says) and a clear error."""
    if is_trusted(path):
        with _trusted_load(path):
            yield
        return
    _warn_ignored_switch()
    with _torch_load_env(weights_only=True), _explained(path):
        yield


def load(path, map_location="cpu"):
    """``torch.load`` for xlt_fairseq's own readers (pretrained encoders,
    importers): safe loading with the allowlist, a clear error when refused,
    and ``weights_only=False`` only for files the user trusts; a truncated or
    corrupt file is a :class:`~xlt_fairseq.checkpoint_io.CheckpointReadError` naming it."""
    from .checkpoint_io import explain_corrupt  # (not at the top: checkpoint_io imports fairseq)

    if is_trusted(path):
        logger.warning(f"{path}: trusted by {TRUST_ENV}: loading with weights_only=False")
        with explain_corrupt(path):
            return torch.load(path, map_location=map_location, weights_only=False)
    with explain_corrupt(path), _torch_load_env(weights_only=True), _explained(path):
        return torch.load(path, map_location=map_location, weights_only=True)


def _wrap_fairseq_loader():
    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(original, "_xlt_safe", False):
        return

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        from .checkpoint_io import explain_corrupt  # (not at the top: checkpoint_io imports fairseq)

        with explain_corrupt(path), _guarded(path):
            state = original(path, *args, **kwargs)
        _check_resumed_state(path, state)
        return state

    load_checkpoint_to_cpu._xlt_safe = True
    # checkpoint_utils' own callers (load_model_ensemble_and_task, hence
    # fairseq-generate and from_pretrained) look the name up in the module, the
    # trainer through the module attribute: both see the wrapper.
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu

    original_ema = checkpoint_utils.load_ema_from_checkpoint
    if not getattr(original_ema, "_xlt_safe", False):

        @functools.wraps(original_ema)
        def load_ema_from_checkpoint(fpath):
            with _guarded(fpath):
                return original_ema(fpath)

        load_ema_from_checkpoint._xlt_safe = True
        checkpoint_utils.load_ema_from_checkpoint = load_ema_from_checkpoint


# ---- resuming: the checkpoint's data must be this run's data ----------------------------------------------------------

# set while fairseq's checkpoint_utils.load_checkpoint resumes a training run:
# (the task's check_resumed_cfg, the finetuning source to exempt or None, this run's model cfg)
_resuming: contextvars.ContextVar = contextvars.ContextVar("xlt_resuming", default=None)


def _check_resumed_state(path, state):
    """When a training run resumes (not fine-tunes) from ``path``, lets the task
    compare the checkpoint's saved task configuration with its own, before any
    weight is loaded into the model."""
    armed = _resuming.get()
    if armed is None or not isinstance(state, dict):
        return
    check, exempt, model_cfg = armed
    if exempt is not None and isinstance(path, (str, os.PathLike)) and _norm(path) == exempt:
        return
    saved = state.get("cfg")
    if saved is not None and hasattr(saved, "get") and saved.get("task") is not None:
        check(saved, path, model_cfg)


def _wrap_fairseq_resume():
    """fairseq's ``checkpoint_utils.load_checkpoint(cfg, trainer)`` is where a
    training run resumes. A task that defines ``check_resumed_cfg(saved_cfg,
    path, model_cfg)`` gets to refuse a checkpoint trained on other data; fine-tuning
    (``--finetune-from-model``, or ``--restore-file`` with ``--reset-optimizer``
    and ``--reset-dataloader``) starts a new run and is not checked."""
    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint
    if getattr(original, "_xlt_safe", False):
        return

    @functools.wraps(original)
    def load_checkpoint(cfg, trainer, **kwargs):
        check = getattr(getattr(trainer, "task", None), "check_resumed_cfg", None)
        new_run = getattr(cfg, "reset_optimizer", False) and getattr(cfg, "reset_dataloader", False)
        if check is None or new_run:
            return original(cfg, trainer, **kwargs)
        finetune = getattr(cfg, "finetune_from_model", None)
        model_cfg = getattr(getattr(trainer, "cfg", None), "model", None)
        token = _resuming.set((check, _norm(finetune) if finetune else None, model_cfg))
        try:
            return original(cfg, trainer, **kwargs)
        finally:
            _resuming.reset(token)

    load_checkpoint._xlt_safe = True
    checkpoint_utils.load_checkpoint = load_checkpoint


def _broadcast_globals() -> list:
    """What rank 0 sends the other ranks when a multi-worker run resumes: the
    checkpoint state it loaded (safely), whose ``cfg`` is an OmegaConf DictConfig
    by then, with its tensors replaced by placeholders."""
    import collections
    import typing

    from fairseq.distributed.utils import _TensorPlaceholder
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        AnyNode,
        typing.Any,
        dict,
        int,
        list,
        collections.defaultdict,
        _TensorPlaceholder,
    ]


def _wrap_fairseq_broadcast():
    """fairseq's trainer loads a checkpoint on rank 0 and broadcasts the state; the
    other ranks unpickle it with ``torch.load``, which refuses the DictConfig. Allow
    exactly those types for that one load (still ``weights_only``)."""
    from fairseq.distributed import utils as distributed_utils

    original = distributed_utils._broadcast_object_slow
    if getattr(original, "_xlt_safe", False) or not hasattr(torch.serialization, "safe_globals"):
        return

    @functools.wraps(original)
    def _broadcast_object_slow(*args, **kwargs):
        with _torch_load_env(weights_only=True), torch.serialization.safe_globals(_broadcast_globals()):
            return original(*args, **kwargs)

    _broadcast_object_slow._xlt_safe = True
    distributed_utils._broadcast_object_slow = _broadcast_object_slow


def install():
    """Adds the allowlist to torch's safe globals and wraps fairseq's loader."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(fairseq_checkpoint_globals())
    _wrap_fairseq_loader()
    _wrap_fairseq_broadcast()
    _wrap_fairseq_resume()


install()
