# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The one criterion of the xlt framework: weighted task losses plus the
adversarial discriminator loss, every term computed and logged here."""

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass

from .. import metrics as xlt_metrics
from ..data.corpora import IGNORE_INDEX

logger = logging.getLogger(__name__)

TASK_NAMES = ("ner", "sentiment", "translation", "mlm")


@dataclass
class XLTMultitaskAdversarialConfig(FairseqDataclass):
    ner_weight: float = field(default=1.0, metadata={"help": "alpha of the NER loss"})
    sentiment_weight: float = field(default=1.0, metadata={"help": "alpha of the sentiment loss"})
    translation_weight: float = field(default=1.0, metadata={"help": "alpha of the translation loss"})
    mlm_weight: float = field(default=1.0, metadata={"help": "alpha of the masked-LM loss"})
    adversarial_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of the discriminator loss (0 turns the adversarial branch off; "
            "the reversed gradient reaching the encoder is scaled by this times --grl-lambda)"
        },
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the translation loss"})


@register_criterion("xlt_multitask_adversarial", dataclass=XLTMultitaskAdversarialConfig)
class XLTMultitaskAdversarialCriterion(FairseqCriterion):
    """``L_total = sum_t alpha_t * L_t + w_adv * L_adv`` (paper, "Multi-task
    Learning Setup" and "Adversarial Training Module").

    Normalisation: each task loss ``L_t`` is the mean over that task's own units
    in the batch (tagged tokens for NER, sentences for sentiment, target tokens
    for translation, masked tokens for the masked LM), and ``L_adv`` is the mean
    cross-entropy of the discriminator over every example of every task in the
    batch. The returned ``sample_size`` is 1, so fairseq averages these means over
    gradient-accumulation steps and workers. Task weights therefore mean exactly
    what they say, whatever the batch composition.

    The discriminator sits behind the model's gradient reversal layer, so the
    same backward pass trains it to recognise the language (or domain) and the
    encoder to hide it.
    """

    def __init__(self, cfg: XLTMultitaskAdversarialConfig, task):
        super().__init__(task)
        self.cfg = cfg
        self.weights = {
            "ner": cfg.ner_weight,
            "sentiment": cfg.sentiment_weight,
            "translation": cfg.translation_weight,
            "mlm": cfg.mlm_weight,
        }
        self.active = [name for name in TASK_NAMES if task.has_task(name)]
        self.corpus_keys = {name: list(task.corpus_keys[name]) for name in self.active}
        self.ner_labels = task.labels("ner") if task.has_task("ner") else []
        self.sentiment_labels = task.labels("sentiment") if task.has_task("sentiment") else []
        self._checked_adversarial = False

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
        units = int(target.ne(IGNORE_INDEX).sum()) if name == "ner" else target.numel()
        return out, loss, None, units

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
        logging_output = {"ntokens": 0, "nsentences": 0, "sample_size": 1}
        for name in self.active:
            logging_output[f"{name}_loss"] = 0.0
            logging_output[f"{name}_count"] = 0
        if "translation" in self.active:
            logging_output["translation_nll_loss"] = 0.0
        evaluating = not model.training
        if evaluating:
            self._init_metric_keys(logging_output)

        total = None
        pooled, adv_targets = [], []
        adv_key = "lang_id" if self._adversarial_target(model) == "language" else "domain_id"
        for name, sub in sample.items():
            if not sub:
                continue
            out, loss_sum, nll_sum, units = self._task_loss(model, name, sub)
            term = self.weights[name] * loss_sum / max(units, 1)
            total = term if total is None else total + term
            logging_output[f"{name}_loss"] = loss_sum.data
            logging_output[f"{name}_count"] = units
            if nll_sum is not None:
                logging_output["translation_nll_loss"] = nll_sum.data
            logging_output["ntokens"] += sub["ntokens"]
            logging_output["nsentences"] += sub["nsentences"]
            pooled.append(out["pooled"])
            adv_targets.append(sub[adv_key])
            if evaluating:
                self._add_metric_counts(logging_output, name, out, sub)

        discriminator = getattr(model, "discriminator", None)
        if discriminator is not None and pooled:
            logits = discriminator(torch.cat(pooled, dim=0))
            targets = torch.cat(adv_targets, dim=0)
            self._check_adversarial(logits)
            lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
            adv_sum = F.nll_loss(lprobs, targets, reduction="sum")
            # with weight 0 the discriminator still runs (for adv_acc) and stays in
            # the graph, so distributed training sees no unused parameters
            term = self.cfg.adversarial_weight * adv_sum / targets.numel()
            total = term if total is None else total + term
            logging_output["adv_loss"] = adv_sum.data
            logging_output["adv_count"] = targets.numel()
            logging_output["adv_correct"] = int((lprobs.argmax(-1) == targets).sum())
            logging_output["_grl_lambda"] = float(discriminator.grl_lambda)
            logging_output["_grl_n"] = 1
        else:
            for key in ("adv_loss", "adv_count", "adv_correct", "_grl_lambda", "_grl_n"):
                logging_output[key] = 0
        if total is None:
            raise ValueError("empty multi-task batch")
        logging_output["loss"] = total.data
        return total, 1, logging_output

    def _adversarial_target(self, model):
        cfg = getattr(model, "cfg", None)
        return getattr(cfg, "adversarial_target", "language") if cfg is not None else "language"

    def _check_adversarial(self, logits):
        if self._checked_adversarial:
            return
        self._checked_adversarial = True
        if logits.size(-1) < 2 and self.cfg.adversarial_weight > 0:
            raise ValueError(
                "the adversarial target has a single class (one language or one domain across all corpora); "
                "the discriminator has nothing to learn: set --adversarial-weight 0 or add corpora"
            )

    # ---- evaluation counts ----------------------------------------------------

    def _init_metric_keys(self, log):
        if "ner" in self.active:
            for suffix in [""] + [":" + k for k in self.corpus_keys["ner"]]:
                for stat in ("correct", "pred", "gold"):
                    log[f"_ner_{stat}{suffix}"] = 0
        if "sentiment" in self.active:
            for suffix in [""] + [":" + k for k in self.corpus_keys["sentiment"]]:
                log[f"_sentiment_total{suffix}"] = 0
                log[f"_sentiment_correct{suffix}"] = 0
                for c in range(len(self.sentiment_labels)):
                    for stat in ("tp", "fp", "fn"):
                        log[f"_sentiment_{stat}:{c}{suffix}"] = 0

    def _add_metric_counts(self, log, name, out, sub):
        if name == "ner":
            pred = out["logits"].argmax(dim=-1).cpu()
            target = sub["target"].cpu()
            corpus = sub["corpus_id"].cpu().tolist()
            keys = self.corpus_keys["ner"]
            for i in range(target.size(0)):
                keep = target[i].ne(IGNORE_INDEX)
                gold = [self.ner_labels[t] for t in target[i][keep].tolist()]
                hyp = [self.ner_labels[p] for p in pred[i][keep].tolist()]
                c = xlt_metrics.entity_counts([gold], [hyp])
                for suffix in ("", ":" + keys[corpus[i]]):
                    log[f"_ner_correct{suffix}"] += c["correct"]
                    log[f"_ner_pred{suffix}"] += c["pred"]
                    log[f"_ner_gold{suffix}"] += c["gold"]
        elif name == "sentiment":
            pred = out["logits"].argmax(dim=-1).cpu()
            target = sub["target"].cpu()
            corpus = sub["corpus_id"].cpu()
            k = len(self.sentiment_labels)
            for cid, key in enumerate(self.corpus_keys["sentiment"]):
                for suffix, sel in (("", None), (":" + key, corpus.eq(cid))):
                    if sel is None and cid > 0:
                        continue
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
            return sum(log.get(key, 0) for log in logging_outputs)

        keys = set()
        for log in logging_outputs:
            keys.update(log.keys())

        sample_size = total("sample_size")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
        for name in TASK_NAMES:
            if f"{name}_count" not in keys:
                continue
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
            metrics.log_derived("adv_acc", lambda m: round(m["_adv_correct"].sum / max(m["_adv_count"].sum, 1), 4))
        if total("_grl_n") > 0:
            metrics.log_scalar("grl_lambda", total("_grl_lambda") / total("_grl_n"), round=5)

        cls._reduce_ner(keys, total)
        cls._reduce_sentiment(keys, total)

    @staticmethod
    def _reduce_ner(keys, total):
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
                        m[f"_ner_correct{suffix}"].sum, m[f"_ner_pred{suffix}"].sum, m[f"_ner_gold{suffix}"].sum
                    ),
                    4,
                )

            metrics.log_derived(name, f1)

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
                return round(m[f"_sentiment_correct{suffix}"].sum / max(m[f"_sentiment_total{suffix}"].sum, 1), 4)

            def macro_f1(m, suffix=suffix, classes=tuple(classes)):
                return round(
                    xlt_metrics.macro_f1_from_counts(
                        [m[f"_sentiment_tp:{c}{suffix}"].sum for c in classes],
                        [m[f"_sentiment_fp:{c}{suffix}"].sum for c in classes],
                        [m[f"_sentiment_fn:{c}{suffix}"].sum for c in classes],
                    ),
                    4,
                )

            metrics.log_derived("sentiment_acc" + tag, acc)
            metrics.log_derived("sentiment_macro_f1" + tag, macro_f1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
