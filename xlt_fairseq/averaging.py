# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Checkpoint and run averaging (Schmidt et al., 2023, "Free Lunch: Robust
Cross-Lingual Transfer via Model Checkpoint Averaging"): the weights of several
checkpoints of one run (the last validated ones) or of several runs that
fine-tuned the same pretrained model with different seeds, averaged into one
checkpoint that ``fairseq-generate``, the evaluation scripts and ``xlt-export``
load like any other.

It follows fairseq's ``scripts/average_checkpoints.py`` (which the fairseq
package does not install): floating-point tensors are averaged in float64 and
cast back, the rest of the state (config, other tensors) is the last file's;
optimizer state is dropped (an averaged model has no meaningful one), so the
result is for evaluation and export, or ``--finetune-from-model``, not for
resuming. Files are read with the plugin's safe loader.
"""

import collections
import os
import re
from typing import List, Sequence

import torch

from . import checkpoint_safety


class AveragingError(ValueError):
    pass


def average_checkpoints(paths: Sequence[str], out: str) -> dict:
    """Averages the models of ``paths`` into ``out``; returns a summary."""
    from .data.outputs import check_outputs, staged_file

    if not paths:
        raise AveragingError("no checkpoints to average")
    check_outputs([("--out", out)], paths)  # before reading anything
    total = None
    keys = None
    state = None
    for path in paths:
        if not os.path.isfile(path):
            raise AveragingError(f"{path}: checkpoint not found")
        state = checkpoint_safety.load(path)
        model = state.get("model")
        if not isinstance(model, dict):
            raise AveragingError(f"{path}: not a fairseq checkpoint (no 'model' state)")
        if keys is None:
            keys = list(model)
            total = collections.OrderedDict()
        elif set(model) != set(keys):
            diff = sorted(set(model) ^ set(keys))[:5]
            raise AveragingError(f"{path}: its parameters differ from {paths[0]}'s ({', '.join(diff)} ...)")
        for k in keys:
            t = model[k]
            if k in total and total[k].shape != t.shape:
                raise AveragingError(f"{path}: {k} has shape {tuple(t.shape)}, not {tuple(total[k].shape)}")
            if t.is_floating_point():
                total[k] = total[k] + t.double() if k in total else t.double().clone()
            else:
                total[k] = t
    n = len(paths)
    averaged = collections.OrderedDict()
    for k in keys:
        t = total[k]
        averaged[k] = (t / n).to(state["model"][k].dtype) if t.is_floating_point() else t
    state["model"] = averaged
    state["last_optimizer_state"] = None
    state.setdefault("extra_state", {})
    state["extra_state"] = dict(state["extra_state"] or {}, averaged_from=[os.path.abspath(p) for p in paths])
    with staged_file(out, paths) as tmp:
        torch.save(state, tmp)
    return {"out": out, "n": n, "from": [os.path.abspath(p) for p in paths]}


_NUMBERED = re.compile(r"checkpoint_(\d+)_(\d+)\.pt$|checkpoint(\d+)\.pt$")


def last_checkpoints(save_dir: str, n: int) -> List[str]:
    """The ``n`` most recent numbered checkpoints of a run (``checkpoint_E_U.pt``
    by updates, else ``checkpointE.pt`` by epoch), oldest first."""
    found = []
    for name in os.listdir(save_dir):
        m = _NUMBERED.match(name)
        if m:
            order = int(m.group(2)) if m.group(2) else int(m.group(3))
            found.append((order, os.path.join(save_dir, name)))
    if len(found) < n:
        raise AveragingError(f"{save_dir}: {len(found)} numbered checkpoints, {n} wanted for averaging")
    return [p for _, p in sorted(found)[-n:]]
