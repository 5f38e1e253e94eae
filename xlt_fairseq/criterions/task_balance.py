# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Multi-task balance on the shared encoder (``--task-balance main``).

Measured on the synthetic multi-task case (``benchmarks/bench_multitask_balance.py``):
the tasks' gradients on the shared encoder are nearly orthogonal (cosines within
+-0.05), so they do not conflict, but their norms differ by 25x (masked LM and
translation about twice NER, sentiment a tenth of it) and Adam's shared second
moments shrink the main task's step: the update NER's gradient gets is 0.59 of
what it gets alone, while the other tasks move the same parameters by more than
NER does. The balance therefore works on norms, not directions: each auxiliary
task's gradient on the shared parameters is rescaled to ``alpha_t * ratio`` times
the main task's gradient norm of the same update, and the main task's gradient is
left as it is. Task heads, the decoder and the discriminator keep their own
gradients (only the shared encoder is rebalanced).

The per-task gradients come from one backward pass per task over that task's own
part of the graph (the tasks' forward passes are separate, and each task's share
of the adversarial loss goes with it), so the work is that of one backward over
the summed loss plus a norm and an add per auxiliary task over the shared
parameters; no gradient copy is made."""

import math
from typing import Dict, List, Optional

import torch


def _scaled(optimizer, loss):
    """The loss as ``optimizer.backward`` would scale it (fp16 / AMP loss scaling)."""
    scaler = getattr(optimizer, "scaler", None)
    if scaler is not None and hasattr(scaler, "scale"):
        return scaler.scale(loss)
    return loss


def _norm(grads: List[Optional[torch.Tensor]]) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads if g is not None]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms))


def _dot(a: List[Optional[torch.Tensor]], b: List[Optional[torch.Tensor]]) -> torch.Tensor:
    dots = [(x.float() * y.float()).sum() for x, y in zip(a, b) if x is not None and y is not None]
    return torch.stack(dots).sum() if dots else torch.zeros(())


class TaskBalance:
    """Backward of a multi-task loss with every auxiliary task's gradient on the
    shared parameters rescaled to ``weight * ratio * ||g_main||``.

    Args:
        main (str): the main task
        ratio (float): an auxiliary task's gradient norm on the shared
            parameters, as a fraction of the main task's
        weights (dict): the tasks' alphas (an auxiliary task's alpha multiplies
            its ratio; the normalisation would otherwise cancel it)
    """

    def __init__(self, main: str, ratio: float, weights: Dict[str, float]):
        self.main = main
        self.ratio = ratio
        self.weights = weights

    def applies(self, terms: Dict[str, torch.Tensor]) -> bool:
        """Balancing needs the main task and at least one other task in the batch."""
        return self.main in terms and len(terms) > 1

    def backward(self, optimizer, terms: Dict[str, torch.Tensor], shared: List[torch.nn.Parameter]) -> Dict[str, float]:
        """Runs the backward of ``sum(terms.values())`` with the auxiliary tasks'
        shared gradients rescaled; returns per-task statistics for logging:
        ``gnorm_<task>`` (the task's own gradient norm on the shared parameters)
        and ``gcos_<task>`` (its cosine with the main task's gradient)."""
        order = [self.main] + [name for name in terms if name != self.main]
        # gradients accumulated before this step (--update-freq > 1) are set aside and added back at the end
        before = [p.grad for p in shared]
        for p in shared:
            p.grad = None
        stats: Dict[str, float] = {}
        main_grads: List[Optional[torch.Tensor]] = []
        aux_sum: List[Optional[torch.Tensor]] = [None] * len(shared)
        main_norm = None
        for i, name in enumerate(order):
            if i == len(order) - 1:
                optimizer.backward(terms[name])
            else:
                # the tasks share the discriminator's part of the graph
                torch.autograd.backward(_scaled(optimizer, terms[name]), retain_graph=True)
            grads = [p.grad for p in shared]
            for p in shared:
                p.grad = None
            norm = _norm(grads)
            stats[f"gnorm_{name}"] = float(norm)
            if name == self.main:
                main_grads, main_norm = grads, norm
                continue
            cos = _dot(grads, main_grads) / (norm * main_norm).clamp_min(1e-12)
            stats[f"gcos_{name}"] = float(cos)
            scale = self.weights.get(name, 1.0) * self.ratio * float(main_norm) / max(float(norm), 1e-12)
            if not math.isfinite(scale):
                scale = 0.0  # a non-finite gradient: the training policy skips the update
            for j, g in enumerate(grads):
                if g is None:
                    continue
                if aux_sum[j] is None:
                    aux_sum[j] = g.mul_(scale)
                else:
                    aux_sum[j].add_(g, alpha=scale)
        for p, b, m, a in zip(shared, before, main_grads or [None] * len(shared), aux_sum):
            total = b
            for g in (m, a):
                if g is not None:
                    total = g if total is None else total.add_(g)
            p.grad = total
        return stats
