# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The one criterion of the xlt framework: weighted task losses plus the
adversarial discriminator loss, every term computed and logged here."""

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from .. import metrics as xlt_metrics
from ..data.corpora import IGNORE_INDEX
from ..data.task_names import BUILTIN_TASKS, CLASSIFICATION, TAGGING
from .task_balance import TaskBalance

logger = logging.getLogger(__name__)

TASK_WEIGHTING_CHOICES = ChoiceEnum(["fixed", "uncertainty"])
TASK_BALANCE_CHOICES = ChoiceEnum(["main", "none"])
ADVERSARIAL_LOSS_CHOICES = ChoiceEnum(["reverse", "confusion"])


@dataclass
class XLTMultitaskAdversarialConfig(FairseqDataclass):
    ner_weight: float = field(default=1.0, metadata={"help": "alpha of the NER loss"})
    sentiment_weight: float = field(default=1.0, metadata={"help": "alpha of the sentiment loss"})
    translation_weight: float = field(default=1.0, metadata={"help": "alpha of the translation loss"})
    mlm_weight: float = field(default=1.0, metadata={"help": "alpha of the masked-LM loss"})
    tagging_weights: str = field(
        default="", metadata={"help": "alphas of auxiliary tagging tasks, NAME=W,... (default 1 each)"}
    )
    adversarial_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of the discriminator loss (0 turns the adversarial branch off; "
            "the reversed gradient reaching the encoder is scaled by this times --grl-lambda)"
        },
    )
    adversarial_loss: ADVERSARIAL_LOSS_CHOICES = field(
        default="reverse",
        metadata={
            "help": "what the encoder does to the discriminator (in a joint update, and in an encoder update "
            "of --adversarial-mode alternating). reverse: the gradient "
            "reversal layer (Ganin & Lempitsky, 2015): it maximises the discriminator's cross-entropy, which "
            "a wrong but confident discriminator also satisfies; confusion: it minimises the cross-entropy "
            "between the discriminator's prediction and the uniform distribution (Tzeng et al., 2015), with the "
            "discriminator trained on detached features; both scaled by --grl-lambda"
        },
    )
    task_weighting: TASK_WEIGHTING_CHOICES = field(
        default="fixed",
        metadata={
            "help": "fixed: the alphas above; uncertainty: alpha_t * exp(-s_t) * L_t + s_t with learned "
            "log-variances s_t (Kendall et al., 2018)"
        },
    )
    task_balance: TASK_BALANCE_CHOICES = field(
        default="none",
        metadata={
            "help": "main: rescale each auxiliary task's gradient on the shared encoder to alpha_t * "
            "--aux-grad-ratio times the main task's (README, Task weights); none: plain summed losses"
        },
    )
    aux_grad_ratio: float = field(
        default=0.3, metadata={"help": "an auxiliary task's shared-encoder gradient norm / the main task's"}
    )
    main_task: str = field(
        default="", metadata={"help": "the main task of --task-balance main (default: ner if active, else the first)"}
    )
    soft_sharing_weight: float = field(
        default=0.01,
        metadata={"help": "weight of the L2 penalty between the tasks' encoder copies (--sharing soft)"},
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the translation loss"})


def _parse_weights(value: str):
    out = {}
    for item in (value or "").split(","):
        if item.strip():
            name, _, w = item.partition("=")
            try:
                out[name.strip()] = float(w)
            except ValueError:
                raise ValueError(f"--tagging-weights: {item!r} is not NAME=WEIGHT") from None
    return out


def _mean_ner_f1(m) -> float:
    """The mean over languages of the NER F1 (``ner_f1_mean``), from the aggregated per-language counts."""
    scores = []
    for key in list(m.keys()):
        if key.startswith("_ner_correct") and key != "_ner_correct":  # _ner_correct:<language>
            suffix = key[len("_ner_correct") :]
            correct, pred, gold = (float(m[f"_ner_{stat}{suffix}"].sum) for stat in ("correct", "pred", "gold"))
            scores.append(xlt_metrics.f1_from_counts(correct, pred, gold))
    return round(sum(scores) / len(scores), 4) if scores else 0.0


@register_criterion("xlt_multitask_adversarial", dataclass=XLTMultitaskAdversarialConfig)
class XLTMultitaskAdversarialCriterion(FairseqCriterion):
    """``L_total = sum_t alpha_t * L_t + w_adv * L_adv`` (paper, "Multi-task
    Learning Setup" and "Adversarial Training Module").

    Normalisation: each task loss ``L_t`` is the mean over that task's own units
    in the batch (tagged tokens for NER and other taggers, sentences for
    sentiment, target tokens for translation, masked tokens for the masked LM),
    and ``L_adv`` is the mean cross-entropy of the discriminator over every
    example of every task in the batch. The returned ``sample_size`` is 1, so
    fairseq averages these means over gradient-accumulation steps and workers.
    Task weights therefore mean exactly what they say, whatever the batch
    composition.

    Variants: ``--task-weighting uncertainty`` learns the task weights
    (Kendall et al., 2018); with the model's ``--sharing soft`` the L2 penalty
    between the tasks' encoder copies is added with ``--soft-sharing-weight``;
    with the model's ``--adversarial-mode alternating`` a critic update trains
    only the discriminator on detached features and an encoder update minimises
    ``sum_t alpha_t L_t - lambda * w_adv * L_adv`` with the discriminator fixed
    (with ``--adversarial-loss confusion``, ``+ lambda * w_adv * CE(D(f), uniform)``).
    """

    def __init__(self, cfg: XLTMultitaskAdversarialConfig, task):
        super().__init__(task)
        if not hasattr(task, "corpus_keys"):
            raise ValueError(
                f"--criterion xlt_multitask_adversarial needs --task xlt_multitask (its multi-task batches), "
                f"not {type(task).__name__}"
            )
        self.cfg = cfg
        self.active = list(task.task_names)
        self.kinds = {name: task.task_kind(name) for name in self.active}
        self.weights = {
            "ner": cfg.ner_weight,
            "sentiment": cfg.sentiment_weight,
            "translation": cfg.translation_weight,
            "mlm": cfg.mlm_weight,
        }
        for name in BUILTIN_TASKS:
            w = getattr(cfg, f"{name}_weight")
            if name not in self.active and w > 0 and w != 1.0:
                flag = "--translation-pairs" if name == "translation" else f"--{name}-langs"
                raise ValueError(f"--{name}-weight {w} is set but the {name} task has no corpora ({flag} is empty)")
        aux = _parse_weights(cfg.tagging_weights)
        unknown = set(aux) - set(self.active)
        if unknown:
            raise ValueError(f"--tagging-weights names tasks that are not active: {sorted(unknown)}")
        for name in self.active:
            if name not in self.weights:
                self.weights[name] = aux.get(name, 1.0)
        for name in self.active:
            if self.weights[name] < 0:
                raise ValueError(f"--{name}-weight must be >= 0")
        self.corpus_keys = {name: list(task.corpus_keys[name]) for name in self.active}
        self.labels = {
            name: task.labels(name) for name in self.active if self.kinds[name] in (TAGGING, CLASSIFICATION)
        }
        self.log_vars = None
        if cfg.task_weighting == "uncertainty":
            self.log_vars = nn.ParameterDict({name: nn.Parameter(torch.zeros(1)) for name in self.active})
        self.balance = self._build_balance(cfg)
        self._balance_terms = None
        classes = getattr(task, "adversarial_classes", None)
        if cfg.adversarial_weight > 0 and classes is not None and classes < 2:
            logger.warning(
                "one language (or domain) across all corpora: the adversarial branch is off "
                "(as with --adversarial-weight 0)"
            )

    def _build_balance(self, cfg):
        if cfg.task_balance != "main" or len(self.active) < 2:
            return None
        if cfg.task_weighting == "uncertainty":
            raise ValueError(
                "--task-weighting uncertainty learns the task weights that --task-balance main normalises away: "
                "add --task-balance none to use it"
            )
        if not cfg.aux_grad_ratio > 0:
            raise ValueError(f"--aux-grad-ratio must be > 0, not {cfg.aux_grad_ratio}")
        main = cfg.main_task or ("ner" if "ner" in self.active else self.active[0])
        if main not in self.active:
            raise ValueError(f"--main-task {main} is not an active task (active: {', '.join(self.active)})")
        return TaskBalance(main, cfg.aux_grad_ratio, self.weights)

    def take_balance_terms(self):
        """The last training forward's per-task terms for :class:`TaskBalance` (each task's weighted loss
        plus its examples' share of the adversarial loss; they sum to the returned loss), or None."""
        terms, self._balance_terms = self._balance_terms, None
        return terms

    # ---- losses ----------------------------------------------------------------

    def _task_loss(self, model, name, sub):
        """Returns (net output, summed loss, summed nll or None, units)."""
        net_input = sub["net_input"]
        target = sub["target"]
        if name == "mlm":
            masked = target.ne(self.padding_idx)
            out = model(**net_input, task=name, masked_tokens=masked)
            target = target[masked]
            lprobs = F.log_softmax(out["logits"], dim=-1, dtype=torch.float32)
            loss = F.nll_loss(lprobs, target, reduction="sum")
            return out, loss, None, int(masked.sum())
        if name == "translation":
            out = model(**net_input, task=name)
            lprobs = model.get_normalized_probs((out["logits"], out["decoder_extra"]), log_probs=True)
            loss, nll = label_smoothed_nll_loss(
                lprobs.view(-1, lprobs.size(-1)),
                target.view(-1),
                self.cfg.label_smoothing,
                ignore_index=self.padding_idx,
                reduce=True,
            )
            return out, loss, nll, int(target.ne(self.padding_idx).sum())
        out = model(**net_input, task=name)
        logits = out["logits"]
        lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
        loss = F.nll_loss(lprobs.view(-1, lprobs.size(-1)), target.view(-1), ignore_index=IGNORE_INDEX, reduction="sum")
        units = int(target.ne(IGNORE_INDEX).sum()) if self.kinds[name] == TAGGING else target.numel()
        return out, loss, None, units

    def _weighted(self, name, mean_loss, logging_output):
        if self.log_vars is None:
            return self.weights[name] * mean_loss
        s = self.log_vars[name].squeeze(0)
        logging_output[f"_weight_{name}"] = float(torch.exp(-s))
        return self.weights[name] * torch.exp(-s) * mean_loss + s

    def forward(self, model, sample, reduce=True):
        """Computes the loss of a multi-task batch ``{task: sub_batch}``.

        Returns a tuple with three elements:
        1) the total loss
        2) the sample size (1: every term is already a mean)
        3) logging outputs: flat scalars, the same keys in every step
        """
        if "net_input" in sample:
            raise ValueError(
                "xlt_multitask_adversarial expects multi-task batches; "
                "--source-lang/--target-lang are for fairseq-generate only"
            )
        # Every value has the same type on every worker and in every step
        # (tensors for losses, ints for counts): fairseq's fast stat sync splits
        # values by type before its all-reduce.
        zero = torch.zeros((), device=next(model.parameters()).device)
        logging_output = {"ntokens": 0, "nsentences": 0, "sample_size": 1, "_n_outputs": 1}
        for name in self.active:
            logging_output[f"{name}_loss"] = zero
            logging_output[f"{name}_count"] = 0
            logging_output[f"nonfinite_{name}"] = 0
            if self.log_vars is not None:
                logging_output[f"_weight_{name}"] = float(torch.exp(-self.log_vars[name].detach()))
        logging_output["nonfinite_adv"] = 0
        terms = {}
        if "translation" in self.active:
            logging_output["translation_nll_loss"] = zero
        evaluating = not model.training
        if evaluating:
            self._init_metric_keys(logging_output)

        phase = model.adversarial_phase() if hasattr(model, "adversarial_phase") else "joint"
        total = None
        pooled, adv_targets, segments = [], [], []
        balancing = self.balance is not None and model.training and phase != "critic"
        task_terms = {}
        adv_key = "lang_id" if self._adversarial_target(model) == "language" else "domain_id"
        for name, sub in sample.items():
            if not sub:
                continue
            if phase == "critic":
                # only the discriminator learns: features are computed without a graph
                with torch.no_grad():
                    rows, sentence = model.adversarial_features(**sub["net_input"], task=name)
            else:
                out, loss_sum, nll_sum, units = self._task_loss(model, name, sub)
                term = self._weighted(name, loss_sum / max(units, 1), logging_output)
                total = term if total is None else total + term
                terms[name] = term.detach()
                task_terms[name] = term
                logging_output[f"{name}_loss"] = loss_sum.data
                logging_output[f"{name}_count"] = units
                if nll_sum is not None:
                    logging_output["translation_nll_loss"] = nll_sum.data
                rows, sentence = out["adversarial"] or (None, None)  # None: no discriminator
                if evaluating:
                    self._add_metric_counts(logging_output, name, out, sub)
            logging_output["ntokens"] += sub["ntokens"]
            logging_output["nsentences"] += sub["nsentences"]
            # sentence features, or token features each labelled with its sentence's class
            pooled.append(rows)
            adv_targets.append(sub[adv_key] if sentence is None else sub[adv_key][sentence])
            segments.append((name, adv_targets[-1].numel()))

        penalty = model.soft_sharing_penalty() if hasattr(model, "soft_sharing_penalty") else None
        if penalty is not None:
            logging_output["soft_sharing_penalty"] = penalty.data
            if phase != "critic":
                total = total + self.cfg.soft_sharing_weight * penalty

        # the model builds no discriminator for a single language or domain
        discriminator = getattr(model, "discriminator", None)
        if discriminator is not None and pooled:
            features = torch.cat(pooled, dim=0)
            targets = torch.cat(adv_targets, dim=0)
            confusion = None
            if phase == "joint" and self.cfg.adversarial_loss == "confusion":
                # the discriminator learns on detached features; the encoder pushes the
                # (fixed) discriminator's prediction towards uniform
                logits = discriminator(features.detach(), reverse=False)
                frozen = F.log_softmax(discriminator.forward_frozen(features), dim=-1, dtype=torch.float32)
                confusion = -frozen.mean(dim=-1) / frozen.size(0)  # per row; sums to the mean
            elif phase == "joint":
                logits = discriminator(features)
            elif phase == "critic":
                logits = discriminator(features, reverse=False)
            else:
                logits = discriminator.forward_frozen(features)
            lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
            nll_rows = -lprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
            adv_sum = nll_rows.sum()
            n_rows = targets.numel()
            lam, w = discriminator.grl_lambda, self.cfg.adversarial_weight
            # the adversarial term as a sum over rows, so that each task's examples carry their share
            if phase == "encoder" and self.cfg.adversarial_loss == "confusion":
                # the encoder pulls the (fixed) discriminator's prediction towards uniform: bounded
                # below by log K, where maximising its loss is not (a confidently wrong one scores best)
                row_terms = lam * w * -lprobs.mean(dim=-1) / n_rows
            elif phase == "encoder":
                # the encoder maximises the (fixed) discriminator's loss
                row_terms = -lam * w * nll_rows / n_rows
            else:
                # with weight 0 the discriminator still runs (for adv_acc) and stays in
                # the graph, so distributed training sees no unused parameters
                row_terms = w * nll_rows / n_rows
                if confusion is not None:
                    row_terms = row_terms + lam * w * confusion
            term = row_terms.sum()
            if balancing:
                for (name, n), share in zip(segments, row_terms.split([n for _, n in segments])):
                    if name in task_terms:
                        task_terms[name] = task_terms[name] + share.sum()
            total = term if total is None else total + term
            terms["adv"] = term.detach()
            logging_output["adv_loss"] = adv_sum.data
            logging_output["adv_count"] = targets.numel()
            logging_output["adv_correct"] = int((lprobs.argmax(-1) == targets).sum())
            logging_output["_grl_lambda"] = float(discriminator.grl_lambda)
            logging_output["_grl_n"] = 1
        else:
            logging_output.update(adv_loss=zero, adv_count=0, adv_correct=0, _grl_lambda=0.0, _grl_n=0)
        if total is None:
            raise ValueError("empty multi-task batch")
        if terms:
            # which terms are NaN/Inf, read by the task's training policy (one device sync for all)
            finite = torch.stack([torch.isfinite(t).all() for t in terms.values()]).tolist()
            for name, ok in zip(terms, finite):
                logging_output[f"nonfinite_{name}"] = int(not ok)
        if balancing and self.balance.applies(task_terms):
            self._balance_terms = task_terms
            for name in task_terms:
                logging_output[f"_gnorm_{name}"] = 0.0
                if name != self.balance.main:
                    logging_output[f"_gcos_{name}"] = 0.0
        logging_output["loss"] = total.data
        return total, 1, logging_output

    def _adversarial_target(self, model):
        cfg = getattr(model, "cfg", None)
        return getattr(cfg, "adversarial_target", "language") if cfg is not None else "language"

    # ---- evaluation counts ----------------------------------------------------

    def _init_metric_keys(self, log):
        for name in self.active:
            suffixes = [""] + [":" + k for k in self.corpus_keys[name]]
            if name == "ner":
                for suffix in suffixes:
                    for stat in ("correct", "pred", "gold"):
                        log[f"_ner_{stat}{suffix}"] = 0
            elif self.kinds[name] == TAGGING:
                for suffix in suffixes:
                    log[f"_tag_{name}_correct{suffix}"] = 0
                    log[f"_tag_{name}_total{suffix}"] = 0
            elif name == "sentiment":
                for suffix in suffixes:
                    log[f"_sentiment_total{suffix}"] = 0
                    log[f"_sentiment_correct{suffix}"] = 0
                    for c in range(len(self.labels["sentiment"])):
                        for stat in ("tp", "fp", "fn"):
                            log[f"_sentiment_{stat}:{c}{suffix}"] = 0

    def _add_metric_counts(self, log, name, out, sub):
        keys = self.corpus_keys[name]
        if self.kinds[name] == TAGGING:
            pred = out["logits"].argmax(dim=-1).cpu()
            target = sub["target"].cpu()
            corpus = sub["corpus_id"].cpu().tolist()
            labels = self.labels[name]
            for i in range(target.size(0)):
                keep = target[i].ne(IGNORE_INDEX)
                gold_ids, pred_ids = target[i][keep], pred[i][keep]
                for suffix in ("", ":" + keys[corpus[i]]):
                    if name == "ner":
                        c = xlt_metrics.entity_counts(
                            [[labels[t] for t in gold_ids.tolist()]], [[labels[p] for p in pred_ids.tolist()]]
                        )
                        log[f"_ner_correct{suffix}"] += c["correct"]
                        log[f"_ner_pred{suffix}"] += c["pred"]
                        log[f"_ner_gold{suffix}"] += c["gold"]
                    else:
                        log[f"_tag_{name}_correct{suffix}"] += int(gold_ids.eq(pred_ids).sum())
                        log[f"_tag_{name}_total{suffix}"] += gold_ids.numel()
        elif name == "sentiment":
            pred = out["logits"].argmax(dim=-1).cpu()
            target = sub["target"].cpu()
            corpus = sub["corpus_id"].cpu()
            k = len(self.labels["sentiment"])
            groups = [("", None)] + [(":" + key, corpus.eq(cid)) for cid, key in enumerate(keys)]
            for suffix, sel in groups:
                g = target if sel is None else target[sel]
                p = pred if sel is None else pred[sel]
                if g.numel() == 0:
                    continue
                log[f"_sentiment_total{suffix}"] += g.numel()
                log[f"_sentiment_correct{suffix}"] += int(g.eq(p).sum())
                counts = xlt_metrics.confusion_counts(g.numpy(), p.numpy(), k)
                for c in range(k):
                    for j, stat in enumerate(("tp", "fp", "fn")):
                        log[f"_sentiment_{stat}:{c}{suffix}"] += int(counts[c, j])

    # ---- reduction -------------------------------------------------------------

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregates logging outputs from data parallel training."""

        def total(key):
            return float(sum(utils.item(log.get(key, 0)) for log in logging_outputs))

        keys = set()
        for log in logging_outputs:
            keys.update(log.keys())

        sample_size = total("sample_size")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
        task_names = sorted(k[: -len("_count")] for k in keys if k.endswith("_count") and k != "adv_count")
        for name in task_names:
            count = total(f"{name}_count")
            if count > 0:
                metrics.log_scalar(f"{name}_loss", total(f"{name}_loss") / count / math.log(2), count, round=3)
        if "translation_nll_loss" in keys and total("translation_count") > 0:
            count = total("translation_count")
            metrics.log_scalar(
                "translation_nll_loss", total("translation_nll_loss") / count / math.log(2), count, round=3
            )
            metrics.log_derived("translation_ppl", lambda m: utils.get_perplexity(m["translation_nll_loss"].avg))
        adv_count = total("adv_count")
        if adv_count > 0:
            metrics.log_scalar("adv_loss", total("adv_loss") / adv_count / math.log(2), adv_count, round=3)
            metrics.log_scalar("_adv_correct", total("adv_correct"))
            metrics.log_scalar("_adv_count", adv_count)
            metrics.log_derived(
                "adv_acc", lambda m: round(float(m["_adv_correct"].sum) / max(float(m["_adv_count"].sum), 1), 4)
            )
        if total("_grl_n") > 0:
            metrics.log_scalar("grl_lambda", total("_grl_lambda") / total("_grl_n"), round=5)
        n_outputs = max(total("_n_outputs"), 1)
        if "soft_sharing_penalty" in keys:
            metrics.log_scalar("soft_sharing_penalty", total("soft_sharing_penalty") / n_outputs, round=6)
        for key in sorted(k for k in keys if k.startswith("_gnorm_") or k.startswith("_gcos_")):
            metrics.log_scalar(key[1:], total(key) / n_outputs, round=4)
        for key in sorted(k for k in keys if k.startswith("_weight_")):
            metrics.log_scalar(key[1:], total(key) / n_outputs, round=4)

        for key in sorted(k for k in keys if k.startswith("nonfinite_")):
            if total(key) > 0:
                metrics.log_scalar_sum(key, total(key))
        cls._reduce_ner(keys, total)
        cls._reduce_sentiment(keys, total)
        cls._reduce_tagging(keys, total)

    @staticmethod
    def _reduce_tagging(keys, total):
        for key in sorted(k for k in keys if k.startswith("_tag_") and "_total" in k):
            name_and_suffix = key[len("_tag_") :]
            name, _, suffix = name_and_suffix.partition("_total")
            if total(key) == 0:
                continue
            metrics.log_scalar(f"_tag_{name}_correct{suffix}", total(f"_tag_{name}_correct{suffix}"))
            metrics.log_scalar(key, total(key))
            metric = f"{name}_acc" + ("_" + suffix[1:] if suffix else "")

            def acc(m, name=name, suffix=suffix):
                return round(
                    float(m[f"_tag_{name}_correct{suffix}"].sum) / max(float(m[f"_tag_{name}_total{suffix}"].sum), 1), 4
                )

            metrics.log_derived(metric, acc)

    @staticmethod
    def _reduce_ner(keys, total):
        per_language = []
        for key in sorted(k for k in keys if k.startswith("_ner_correct")):
            suffix = key[len("_ner_correct") :]
            if total(f"_ner_gold{suffix}") + total(f"_ner_pred{suffix}") == 0:
                continue
            for stat in ("correct", "pred", "gold"):
                metrics.log_scalar(f"_ner_{stat}{suffix}", total(f"_ner_{stat}{suffix}"))
            name = "ner_f1" + ("_" + suffix[1:] if suffix else "")

            def f1(m, suffix=suffix):
                return round(
                    xlt_metrics.f1_from_counts(
                        float(m[f"_ner_correct{suffix}"].sum),
                        float(m[f"_ner_pred{suffix}"].sum),
                        float(m[f"_ner_gold{suffix}"].sum),
                    ),
                    4,
                )

            metrics.log_derived(name, f1)
            if suffix:
                per_language.append(suffix)
        if per_language:
            # the languages' mean (each language counts once, whatever its dev size): what a multilingual run's
            # --best-checkpoint-metric and --patience follow, so that a large pivot dev set does not decide alone.
            # Over every language in the aggregated meters (reduce_metrics runs once per batch, and a batch may
            # hold one language only)
            metrics.log_derived("ner_f1_mean", _mean_ner_f1)

    @staticmethod
    def _reduce_sentiment(keys, total):
        for key in sorted(k for k in keys if k.startswith("_sentiment_total")):
            suffix = key[len("_sentiment_total") :]
            if total(key) == 0:
                continue
            classes = sorted(
                {
                    int(k.split(":")[1])
                    for k in keys
                    if k.startswith("_sentiment_tp:") and k.endswith(suffix) and k.count(":") == (2 if suffix else 1)
                }
            )
            metrics.log_scalar(f"_sentiment_total{suffix}", total(f"_sentiment_total{suffix}"))
            metrics.log_scalar(f"_sentiment_correct{suffix}", total(f"_sentiment_correct{suffix}"))
            for c in classes:
                for stat in ("tp", "fp", "fn"):
                    metrics.log_scalar(f"_sentiment_{stat}:{c}{suffix}", total(f"_sentiment_{stat}:{c}{suffix}"))
            tag = "_" + suffix[1:] if suffix else ""

            def acc(m, suffix=suffix):
                return round(
                    float(m[f"_sentiment_correct{suffix}"].sum) / max(float(m[f"_sentiment_total{suffix}"].sum), 1), 4
                )

            def macro_f1(m, suffix=suffix, classes=tuple(classes)):
                return round(
                    xlt_metrics.macro_f1_from_counts(
                        [float(m[f"_sentiment_tp:{c}{suffix}"].sum) for c in classes],
                        [float(m[f"_sentiment_fp:{c}{suffix}"].sum) for c in classes],
                        [float(m[f"_sentiment_fn:{c}{suffix}"].sum) for c in classes],
                    ),
                    4,
                )

            metrics.log_derived("sentiment_acc" + tag, acc)
            metrics.log_derived("sentiment_macro_f1" + tag, macro_f1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
