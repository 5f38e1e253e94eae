# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The multi-task, multilingual task of the xlt framework."""

import contextlib
import json
import logging
from argparse import Namespace
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from fairseq import utils
from fairseq.data import Dictionary, LanguagePairDataset
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING, open_dict

from .. import checkpoint_io
from .. import metrics as xlt_metrics
from ..data import checks, corpora, task_names
from ..data.round_robin import MultilingualTaskDataset, MultitaskConcatDataset, RoundRobinMultitaskDataset
from ..data.selection import CorporaView, corpus_language, temperature_resample  # noqa: F401
from ..training_policy import NonFiniteLossError, TrainingPolicy, check_alternating  # noqa: F401

logger = logging.getLogger(__name__)

CRITERION = "xlt_multitask_adversarial"
MODEL = "xlt_model"


def metric_suffix(key: str) -> str:
    """``en-fr`` -> ``en_fr`` (metric names use underscores)."""
    return key.replace("-", "_")


@dataclass
class XLTMultitaskConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={"help": "data root written by scripts/preprocess.py"})
    ner_langs: str = field(default="", metadata={"help": "comma-separated NER languages (empty: no NER)"})
    sentiment_langs: str = field(
        default="", metadata={"help": "comma-separated sentiment languages (empty: no sentiment)"}
    )
    mlm_langs: str = field(
        default="", metadata={"help": "comma-separated languages of unlabelled text for the masked LM"}
    )
    translation_pairs: str = field(default="", metadata={"help": "comma-separated translation pairs, e.g. en-fr,en-sw"})
    tagging_tasks: str = field(
        default="",
        metadata={
            "help": "auxiliary token-tagging tasks (e.g. POS), prepared like NER under DATA/<name>/<lang>: "
            "NAME[:LANG+LANG...][,NAME...], e.g. pos:en+sw; without languages, every language found is used"
        },
    )
    source_lang: Optional[str] = field(
        default=None, metadata={"help": "with --target-lang: evaluate/generate this single translation pair"}
    )
    target_lang: Optional[str] = field(default=None, metadata={"help": "see --source-lang"})
    sampling_temperature: float = field(
        default=1.0,
        metadata={"help": "mix a task's languages with probability proportional to size^(1/T); 1 = by size"},
    )
    tokens_per_sample: int = field(default=512, metadata={"help": "block size of the masked-LM text"})
    mask_prob: float = field(default=0.15, metadata={"help": "masked-LM masking probability"})
    max_source_positions: int = field(default=512, metadata={"help": "longest source sequence"})
    max_target_positions: int = field(default=512, metadata={"help": "longest target sequence"})
    no_eval_bleu: bool = field(default=False, metadata={"help": "do not decode for BLEU during validation"})
    eval_bleu_args: str = field(
        default='{"beam": 1, "max_len_a": 1.2, "max_len_b": 10}',
        metadata={"help": "generation arguments for validation BLEU, as a JSON string"},
    )
    eval_bleu_print_samples: bool = field(default=False, metadata={"help": "log a sample hypothesis"})
    bf16_autocast: bool = field(
        default=False,
        metadata={
            "help": "bfloat16 mixed precision by torch.autocast on the training device (CPU with AVX-512 bf16/AMX, "
            "or CUDA): forward and backward in bf16, weights, optimizer state, losses, metrics and checkpoints in "
            "fp32. fairseq's own --bf16 means TPU and pure-bf16 weights and cannot run on a CPU"
        },
    )
    max_consecutive_nonfinite: int = field(
        default=20,
        metadata={
            "help": "stop training after this many consecutive updates skipped because a task's loss or the "
            "adversarial loss was NaN/Inf"
        },
    )
    collapse_window: int = field(
        default=200,
        metadata={
            "help": "report a collapsed discriminator (accuracy at chance or at 100%% for this many consecutive "
            "updates); 0 turns the check off"
        },
    )
    # options of other groups that this task checks before any data is loaded
    seed: int = II("common.seed")
    cpu: bool = II("common.cpu")
    fp16: bool = II("common.fp16")
    memory_efficient_fp16: bool = II("common.memory_efficient_fp16")
    amp: bool = II("common.amp")
    train_subset: str = II("dataset.train_subset")
    save_dir: str = II("checkpoint.save_dir")
    valid_subset: str = II("dataset.valid_subset")
    ddp_backend: str = II("distributed_training.ddp_backend")
    distributed_world_size: int = II("distributed_training.distributed_world_size")
    disable_validation: bool = II("dataset.disable_validation")
    best_checkpoint_metric: str = II("checkpoint.best_checkpoint_metric")
    maximize_best_checkpoint_metric: bool = II("checkpoint.maximize_best_checkpoint_metric")


@register_task("xlt_multitask", dataclass=XLTMultitaskConfig)
class XLTMultitaskTask(FairseqTask):
    """Round-robin multi-task training over (task, language) corpora.

    Every training batch holds a sub-batch of every active task (NER, sentiment,
    translation, masked LM); within a task, languages are mixed by size (or by
    temperature sampling). Validation visits every example exactly once.
    Every example carries its corpus, language and domain ids, which the
    criterion uses for the discriminator and per-language metrics.

    With ``--source-lang``/``--target-lang`` the task serves a single translation
    pair in fairseq's flat format, for ``fairseq-generate`` and
    ``fairseq-interactive``.
    """

    cfg: XLTMultitaskConfig

    def __init__(self, cfg: XLTMultitaskConfig, dictionary: Dictionary, corpora_view: "CorporaView"):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.index("<mask>")
        self.sequence_generator = None
        self.generation_pair = corpora_view.generation_pair
        self.tagging_tasks = corpora_view.tagging_tasks
        self.corpus_keys = corpora_view.corpus_keys
        self.meta = corpora_view.meta
        self._labels = corpora_view.labels
        self.languages = corpora_view.languages
        self.domains = corpora_view.domains
        logger.info(
            "xlt_multitask: "
            + "; ".join(f"{name}: {','.join(keys)}" for name, keys in self.corpus_keys.items())
            + f"; {len(self.languages)} language(s), {len(self.domains)} domain(s)"
        )

    @classmethod
    def setup_task(cls, cfg: XLTMultitaskConfig, **kwargs):
        """Reads the data root's dictionary and the ``meta.json`` / labels of the
        corpora the options select (the data itself is read by :meth:`load_dataset`)."""
        paths = utils.split_paths(cfg.data)
        assert len(paths) > 0
        dictionary = checks.load_root_dictionary(paths[0])
        # XLM-R's dict.txt has no <mask>; like fairseq's masked_lm task, add it
        # last so the embedding has XLM-R's 250,002 rows
        dictionary.add_symbol("<mask>")
        logger.info(f"dictionary: {len(dictionary)} types")
        task = cls(cfg, dictionary, CorporaView.read(cfg))
        checks.verify_corpora(paths[0], task.corpus_keys, len(dictionary))  # before any use (data/checks.py)
        return task

    # ---- what the data holds -------------------------------------------------

    def has_task(self, name) -> bool:
        return name in self.corpus_keys

    def task_kind(self, name) -> str:
        """``tagging`` (NER and auxiliary taggers), ``classification``, ``translation`` or ``mlm``."""
        return task_names.builtin_kind(name)

    @property
    def task_names(self) -> List[str]:
        return list(self.corpus_keys.keys())

    def labels(self, name) -> List[str]:
        return self._labels[name]

    def corpus_language(self, name, key) -> str:
        return corpus_language(name, key)

    def check_resumed_cfg(self, saved_cfg, checkpoint, model_cfg=None):
        """Called (by :mod:`xlt_fairseq.checkpoint_safety`) when training resumes from
        ``checkpoint``: refuses one trained on other corpora, languages or discriminator target."""
        checks.check_same_corpora(saved_cfg, self.cfg, checkpoint, model_cfg)

    def num_adversarial_classes(self, target) -> int:
        return len(self.languages) if target == "language" else len(self.domains)

    # ---- datasets ---------------------------------------------------------------

    def _load_corpus(self, name, key, split):
        path = corpora.corpus_dir(self.cfg.data, name, key)
        stream = "src" if name == "translation" else "input"
        if not corpora.has_split(path, split, stream):
            return None
        if self.task_kind(name) == task_names.TAGGING:
            return corpora.load_tagging_corpus(path, split, self.dictionary, self.labels(name))
        if name == "sentiment":
            return corpora.load_classification_corpus(path, split, self.dictionary, self.labels(name))
        if name == "mlm":
            return corpora.load_mlm_corpus(
                path,
                split,
                self.dictionary,
                self.mask_idx,
                self.cfg.tokens_per_sample,
                seed=self.cfg.seed,
                mask_prob=self.cfg.mask_prob,
            )
        return corpora.load_translation_corpus(path, split, self.dictionary, shuffle=split == "train")

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        if self.generation_pair is not None:
            path = corpora.corpus_dir(self.cfg.data, "translation", self.generation_pair)
            self.datasets[split] = corpora.load_translation_corpus(path, split, self.dictionary, shuffle=False)
            self.datasets[split].xlt_longest = [(f"{path} ({split})", *checks.longest(self.datasets[split]))]
            return

        training = split == (getattr(self.cfg, "train_subset", None) or "train")
        per_task, lengths = OrderedDict(), []
        for name, keys in self.corpus_keys.items():
            datasets, ids = [], {"corpus_id": [], "lang_id": [], "domain_id": []}
            for corpus_id, key in enumerate(keys):
                ds = self._load_corpus(name, key, split)
                if ds is None or len(ds) == 0:
                    logger.info(f"{name}/{key}: no {split} data")
                    continue
                datasets.append(ds)
                lengths.append((f"{corpora.corpus_dir(self.cfg.data, name, key)} ({split})", *checks.longest(ds)))
                ids["corpus_id"].append(corpus_id)
                ids["lang_id"].append(self.languages.index(self.corpus_language(name, key)))
                ids["domain_id"].append(self.domains.index(self.meta[name][key].get("domain", "general")))
                logger.info(f"{name}/{key}: {len(ds)} {split} examples")
            if not datasets:
                if training:
                    raise FileNotFoundError(f"task {name} has no {split} data for any of {keys} in {self.cfg.data}")
                continue
            dataset = MultilingualTaskDataset(datasets, ids)
            if training and self.cfg.sampling_temperature != 1.0 and len(datasets) > 1:
                dataset = self._temperature_resample(dataset, datasets, epoch)
            per_task[name] = dataset
        if not per_task:
            raise FileNotFoundError(f"no {split} data for any task in {self.cfg.data}")
        if training:
            self.datasets[split] = RoundRobinMultitaskDataset(per_task, seed=self.cfg.seed)
        else:
            self.datasets[split] = MultitaskConcatDataset(per_task)
        # checked against the model's positions when batches are made (before the first update)
        self.datasets[split].xlt_longest = lengths

    def _temperature_resample(self, dataset, datasets, epoch):
        return temperature_resample(
            dataset, [len(d) for d in datasets], self.cfg.sampling_temperature, self.cfg.seed, epoch
        )

    def get_batch_iterator(self, dataset, **kwargs):
        if not isinstance(dataset, (RoundRobinMultitaskDataset, MultitaskConcatDataset)):
            # fairseq's batch_by_size drops the last batch when its size is not a
            # multiple of --required-batch-size-multiple: generation must see
            # every sentence
            kwargs["required_batch_size_multiple"] = 1
        checks.check_positions(getattr(dataset, "xlt_longest", ()), kwargs.get("max_positions"))
        return super().get_batch_iterator(dataset, **kwargs)

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        bos = self.dictionary.bos()
        src = [torch.cat([t.new([bos]), t]) for t in src_tokens]
        return LanguagePairDataset(
            src,
            [n + 1 for n in src_lengths],
            self.source_dictionary,
            tgt_dict=self.target_dictionary,
            constraints=constraints,
            left_pad_source=False,
        )

    # ---- model ---------------------------------------------------------------

    def build_model(self, cfg, from_checkpoint=False):
        from fairseq.models import ARCH_MODEL_NAME_REGISTRY, MODEL_REGISTRY

        arch = getattr(cfg, "_name", None)
        if arch not in MODEL_REGISTRY and ARCH_MODEL_NAME_REGISTRY.get(arch) != MODEL:
            archs = sorted(a for a, m in ARCH_MODEL_NAME_REGISTRY.items() if m == MODEL)
            raise ValueError(
                f"--arch {arch} is not an architecture of {MODEL}, the one model --task xlt_multitask trains: "
                f"use one of {', '.join(archs)}"
            )
        if self.cfg.bf16_autocast and not from_checkpoint:
            self._check_bf16()
        # The head sizes are stored in the model config, so that a checkpoint can
        # be rebuilt by a task that lists fewer corpora (fairseq-generate).
        # The discriminator's chance level, for the collapse check, depends on its target.
        self.adversarial_classes = self.num_adversarial_classes(getattr(cfg, "adversarial_target", "language"))
        self._policy = None
        if not from_checkpoint and getattr(cfg, "adversarial_mode", "grl") == "alternating":
            check_alternating(self.cfg, self.cfg.ddp_backend, self.cfg.distributed_world_size)
        sizes = {
            "num_ner_labels": len(self.labels("ner")) if self.has_task("ner") else 0,
            "num_sentiment_labels": len(self.labels("sentiment")) if self.has_task("sentiment") else 0,
            "num_adversarial_classes": self.adversarial_classes,
            "with_decoder": self.has_task("translation"),
            "tagging_heads": ",".join(f"{name}:{len(self.labels(name))}" for name in self.tagging_tasks),
            "task_names": ",".join(self.task_names),
            "label_sets": json.dumps({name: labels for name, labels in sorted(self._labels.items())}),
        }
        with open_dict(cfg):
            for key, value in sizes.items():
                if from_checkpoint and getattr(cfg, key, None):
                    continue
                setattr(cfg, key, value)
            if from_checkpoint and getattr(cfg, "pretrained_encoder", None):
                # the checkpoint's weights replace the pretrained ones: the
                # original encoder directory need not exist where it is loaded
                cfg.pretrained_encoder = None
        model = super().build_model(cfg, from_checkpoint)
        if self.has_task("translation") and not self.cfg.no_eval_bleu and self.generation_pair is None:
            gen_args = json.loads(self.cfg.eval_bleu_args)
            self.sequence_generator = self.build_generator([model], Namespace(**gen_args))
        return model

    def build_criterion(self, cfg, from_checkpoint=False):
        """Refuses, before any data is loaded, a criterion that cannot read this
        task's batches and a ``--best-checkpoint-metric`` this run cannot produce."""
        name = getattr(cfg, "_name", None)
        if name != CRITERION:
            raise ValueError(
                f"--criterion {name} cannot train --task xlt_multitask (its batches hold one sub-batch per task): "
                f"use --criterion {CRITERION}"
            )
        self.check_best_checkpoint_metric()
        if getattr(self.cfg, "save_dir", None):
            # training: atomic checkpoint copies and no partial files in this run's folder (checkpoint_io.py)
            checkpoint_io.protect(self.cfg.save_dir)
        return super().build_criterion(cfg, from_checkpoint)

    def validation_metrics(self) -> Dict[str, bool]:
        """The metrics validation logs with this run's corpora, each with True
        when higher is better (the choices of ``--best-checkpoint-metric``)."""
        valid = (getattr(self.cfg, "valid_subset", None) or "valid").split(",")[0]
        out = {"loss": False}
        if self.generation_pair is not None:
            return out
        for name, keys in self.corpus_keys.items():
            stream = "src" if name == "translation" else "input"
            with_valid = [k for k in keys if corpora.has_split(corpora.corpus_dir(self.cfg.data, name, k), valid, stream)]
            if not with_valid:
                continue
            out[f"{name}_loss"] = False
            kind = self.task_kind(name)
            scores = []
            if name == "ner":
                scores = ["ner_f1"]
            elif kind == task_names.TAGGING:
                scores = [f"{name}_acc"]
            elif kind == task_names.CLASSIFICATION:
                scores = [f"{name}_acc", f"{name}_macro_f1"]
            elif kind == task_names.TRANSLATION:
                out.update(translation_nll_loss=False, translation_ppl=False)
                if not self.cfg.no_eval_bleu:
                    out["bleu"] = True
                    out.update({f"bleu_{metric_suffix(k)}": True for k in with_valid})
            for score in scores:
                out[score] = True
                out.update({f"{score}_{k}": True for k in with_valid})
            if name == "ner" and with_valid:
                out["ner_f1_mean"] = True  # the languages' mean (the criterion's _reduce_ner)
        if (getattr(self, "adversarial_classes", None) or len(self.languages)) > 1:
            out.update(adv_loss=False, adv_acc=True)
        return out

    def check_best_checkpoint_metric(self):
        metric = getattr(self.cfg, "best_checkpoint_metric", None)
        if not metric or getattr(self.cfg, "disable_validation", False):
            return
        choices = self.validation_metrics()
        if metric not in choices:
            raise ValueError(
                f"--best-checkpoint-metric {metric}: this run's validation does not log it "
                f"(it logs: {', '.join(sorted(choices))}); a task's metrics need its corpora's "
                f"{(self.cfg.valid_subset or 'valid').split(',')[0]} split, and bleu needs validation BLEU "
                "(no --no-eval-bleu)"
            )
        maximize = bool(getattr(self.cfg, "maximize_best_checkpoint_metric", False))
        if choices[metric] != maximize:
            fix = "add --maximize-best-checkpoint-metric" if choices[metric] else "drop --maximize-best-checkpoint-metric"
            better = "higher" if choices[metric] else "lower"
            raise ValueError(
                f"--best-checkpoint-metric {metric}: {better} is better, but the best checkpoint would be the one "
                f"with the {'lowest' if choices[metric] else 'highest'} value: {fix}"
            )

    # ---- precision: --bf16-autocast ------------------------------------------------

    def _check_bf16(self):
        """Refuses --bf16-autocast before training where it cannot work (a
        checkpoint trained with it still loads anywhere, e.g. for evaluation)."""
        from ..hardware import check_bf16

        cfg = self.cfg
        if getattr(cfg, "fp16", False) or getattr(cfg, "amp", False):
            raise ValueError("--bf16-autocast is a mixed-precision mode of its own: drop --fp16 / --amp")
        check_bf16("cuda" if torch.cuda.is_available() and not getattr(cfg, "cpu", False) else "cpu")

    def autocast(self, model):
        """``torch.autocast`` in bf16 on the model's device with ``--bf16-autocast``, else a no-op."""
        if not self.cfg.bf16_autocast:
            return contextlib.nullcontext()
        device = next(model.parameters()).device.type
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    # ---- training step: the policy around fairseq's update (training_policy.py) ---------

    @property
    def policy(self) -> TrainingPolicy:
        if getattr(self, "_policy", None) is None:
            classes = getattr(self, "adversarial_classes", None) or len(self.languages)
            self._policy = TrainingPolicy(self.cfg.max_consecutive_nonfinite, self.cfg.collapse_window, classes)
        return self._policy

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step, plus: an update whose task or adversarial loss
        is NaN/Inf is skipped (on every worker) and the culprit logged."""
        model.train()
        model.set_num_updates(update_num)
        with torch.autograd.profiler.record_function("forward"), self.autocast(model):
            loss, sample_size, logging_output = criterion(model, sample)
        loss, skip = self.policy.after_forward(loss, logging_output, model, update_num)
        if ignore_grad or skip:
            loss = loss * 0
        self.policy.watch_discriminator(logging_output)
        terms = criterion.take_balance_terms() if hasattr(criterion, "take_balance_terms") else None
        with torch.autograd.profiler.record_function("backward"):
            if terms is not None and not (ignore_grad or skip):
                # --task-balance main: one backward per task, auxiliary tasks rescaled on the shared encoder
                stats = criterion.balance.backward(optimizer, terms, model.shared_parameters())
                logging_output.update({f"_{k}": v for k, v in stats.items()})
            else:
                optimizer.backward(loss)
        return loss, sample_size, logging_output

    def optimizer_step(self, optimizer, model, update_num):
        self.policy.step(optimizer, model, update_num)

    # ---- validation with BLEU --------------------------------------------------

    def build_generator(self, models, args, **kwargs):
        """fairseq's generator, after refusing options no generation can satisfy (``--nbest 0``, a
        beam below 1, a maximum length below the minimum) with one clear error."""
        from ..generation import check_generation_args

        check_generation_args(args)
        return super().build_generator(models, args, **kwargs)

    def valid_step(self, sample, model, criterion):
        with self.autocast(model):
            loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.sequence_generator is not None and isinstance(sample, dict) and "net_input" not in sample:
            stats = self._bleu_stats(sample.get("translation"), model)
            logging_output.update(stats)
        return loss, sample_size, logging_output

    def _bleu_keys(self):
        keys = [""] + [metric_suffix(k) + "_" for k in self.corpus_keys["translation"]]
        return keys

    def _bleu_stats(self, sub, model):
        prefixes = self._bleu_keys()
        if sub is None:
            return xlt_metrics.bleu_log_stats(prefixes, {}, [])
        gen_out = self.inference_step(self.sequence_generator, [model], sub, prefix_tokens=None)
        by_corpus: Dict[int, tuple] = {}
        for i in range(len(gen_out)):
            hyp = self._decode(gen_out[i][0]["tokens"])
            ref = self._decode(utils.strip_pad(sub["target"][i], self.dictionary.pad()), escape_unk=True)
            hyps, refs = by_corpus.setdefault(int(sub["corpus_id"][i]), ([], []))
            hyps.append(hyp)
            refs.append(ref)
        if self.cfg.eval_bleu_print_samples and by_corpus:
            hyps, refs = next(iter(by_corpus.values()))
            logger.info(f"example hypothesis: {hyps[0]}")
            logger.info(f"example reference: {refs[0]}")
        pairs = [metric_suffix(k) + "_" for k in self.corpus_keys["translation"]]
        return xlt_metrics.bleu_log_stats(prefixes, by_corpus, pairs)

    def _decode(self, tokens, escape_unk=False):
        return self.dictionary.string(
            tokens.int().cpu(),
            "sentencepiece",
            unk_string=("UNKNOWNTOKENINREF" if escape_unk else "UNKNOWNTOKENINHYP"),
        )

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if self.sequence_generator is not None and self.has_task("translation"):
            xlt_metrics.reduce_bleu(logging_outputs, self._bleu_keys())

    # ---- misc -----------------------------------------------------------------

    def max_positions(self):
        if self.generation_pair is not None:
            return (self.cfg.max_source_positions, self.cfg.max_target_positions)
        return None

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
