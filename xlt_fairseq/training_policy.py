# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What an ``xlt_multitask`` run does around each of fairseq's updates, in one
place, asked by the task through three calls:

- :meth:`TrainingPolicy.after_forward`: an update whose task or adversarial loss
  is NaN/Inf (the criterion reports which, as ``nonfinite_<term>`` counts) is
  skipped on every worker, the culprit logged, and the run stopped after
  ``--max-consecutive-nonfinite`` such updates in a row;
- :meth:`TrainingPolicy.watch_discriminator`: a discriminator whose accuracy sits
  at chance or at 100 % for ``--collapse-window`` updates is reported (from the
  criterion's ``adv_correct`` / ``adv_count``);
- :meth:`TrainingPolicy.step`: the optimizer step, which in
  ``--adversarial-mode alternating`` changes only the parameter group the model
  names for this update (:meth:`XLTModel.get_groups_for_update`, fairseq's
  mechanism of ``wav2vec_u``): with ``--optimizer composite`` through
  ``optimizer.step(groups=...)``, with any other optimizer by clearing the other
  side's gradients first, so that it skips them entirely (no moment update, no
  weight decay).
"""

import logging
from typing import Dict, List, Optional

import torch

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a NaN/Inf loss. (Not a FloatingPointError:
    fairseq's trainer catches those to re-run the batch under its NaN detector.)"""


def nonfinite_terms(logging_output: Dict) -> List[str]:
    """The loss terms a criterion reported as NaN/Inf (``nonfinite_<term>`` > 0)."""
    return [k[len("nonfinite_") :] for k, v in logging_output.items() if k.startswith("nonfinite_") and v]


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return True


def any_worker(flag: bool, device) -> bool:
    """True when any data-parallel worker raised ``flag`` (an all-reduce; free on one worker)."""
    from fairseq.distributed import utils as distributed_utils

    if distributed_utils.get_data_parallel_world_size() <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    t = distributed_utils.all_reduce(t, group=distributed_utils.get_data_parallel_group())
    return bool(t.item() > 0)


class TrainingPolicy:
    def __init__(self, max_consecutive_nonfinite: int, collapse_window: int, adversarial_classes: int):
        self.max_consecutive_nonfinite = max_consecutive_nonfinite
        self.collapse_window = collapse_window
        self.chance = 1.0 / max(adversarial_classes, 2)
        self._skip = False
        self._nonfinite_streak = 0
        self._collapse = (None, 0)

    # ---- non-finite losses ---------------------------------------------------------

    def after_forward(self, loss, logging_output: Dict, model, update_num: int):
        """Returns ``(loss, skip)``. On a non-finite loss, the update's logging
        values are zeroed (so the epoch's averages stay finite), ``nonfinite_total``
        is set when no single term is to blame, and the loss is replaced by a zero
        that still touches every trainable parameter (distributed backward hooks
        and all-reduces stay in step with the other workers)."""
        logging_output.setdefault("nonfinite_total", 0)
        culprits = nonfinite_terms(logging_output)
        if not culprits and _finite(loss):
            return loss, False
        if not culprits:
            logging_output["nonfinite_total"] = 1
            culprits = ["total"]
        logger.warning(f"update {update_num + 1}: non-finite loss in {', '.join(culprits)}; skipping the update")
        for key, value in list(logging_output.items()):
            if isinstance(value, torch.Tensor) and not _finite(value):
                logging_output[key] = torch.zeros_like(value)
            elif isinstance(value, float) and not _finite(value):
                logging_output[key] = 0.0
        self._skip = True
        loss = sum((p.sum() * 0.0) for p in model.parameters() if p.requires_grad)
        return loss, True

    # ---- discriminator health ----------------------------------------------------------

    def watch_discriminator(self, logging_output: Dict):
        window = self.collapse_window
        n = logging_output.get("adv_count", 0)
        if window <= 0 or not n:
            return
        acc = logging_output["adv_correct"] / n
        state = "saturated" if acc >= 0.999 else ("chance" if abs(acc - self.chance) <= 0.05 else None)
        previous, count = self._collapse
        self._collapse = (state, count + 1) if state is not None and state == previous else (state, 1)
        if state is not None and self._collapse[1] == window:
            what = "100 %" if state == "saturated" else f"chance ({self.chance:.2f})"
            logger.warning(
                f"the discriminator has collapsed: its accuracy has been at {what} for {window} updates "
                "(saturated: the encoder is not hiding the language, consider a larger --grl-lambda or "
                "--adversarial-weight; chance: it learns nothing, consider a smaller one)"
            )

    # ---- the optimizer step --------------------------------------------------------------

    def step(self, optimizer, model, update_num: int):
        device = next(iter(optimizer.params)).device
        skip = any_worker(self._skip, device)
        self._skip = False
        if skip:
            optimizer.zero_grad()
            self._nonfinite_streak += 1
            if self._nonfinite_streak >= self.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{self._nonfinite_streak} consecutive updates had a non-finite loss (see the warnings above "
                    "for the task); stopping. Lower the learning rate or check the data of that task."
                )
            return
        self._nonfinite_streak = 0
        group: Optional[str] = model.get_groups_for_update(update_num) if hasattr(model, "get_groups_for_update") else None
        if group is None:
            optimizer.step()
        elif getattr(optimizer, "supports_groups", False):
            optimizer.step(groups={group})
        else:
            for p in optimizer.params:
                if getattr(p, "param_group", "default") != group:
                    p.grad = None
            optimizer.step()


def check_alternating(cfg_common, ddp_backend: str, world_size: int):
    """Refuses, before any data is loaded, the set-ups in which alternating updates
    cannot leave one side's parameters untouched."""
    if world_size > 1 and ddp_backend not in ("legacy_ddp", "no_c10d"):
        raise ValueError(
            "--adversarial-mode alternating needs --ddp-backend legacy_ddp (or no_c10d): torch DDP "
            "all-reduces inside backward and would let the workers' weights drift apart"
        )
    if getattr(cfg_common, "fp16", False) and not getattr(cfg_common, "memory_efficient_fp16", False):
        raise ValueError(
            "--adversarial-mode alternating needs --memory-efficient-fp16 with --fp16: the flat fp32 "
            "master copy of --fp16 cannot leave one side's parameters untouched"
        )
