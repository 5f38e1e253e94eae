# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The multi-task, multilingual task of the xlt framework."""

import contextlib
import json
import logging
import os
from argparse import Namespace
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from fairseq import metrics, utils
from fairseq.data import Dictionary, LanguagePairDataset, ResamplingDataset
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING, open_dict

from .. import metrics as xlt_metrics
from ..data import corpora
from ..data.round_robin import MultilingualTaskDataset, MultitaskConcatDataset, RoundRobinMultitaskDataset

logger = logging.getLogger(__name__)

BLEU_ORDER = 4


def _split_list(value: Optional[str]) -> List[str]:
    if not value:
        return []
    return [v.strip() for v in str(value).split(",") if v.strip()]


RESERVED_TASK_NAMES = ("ner", "sentiment", "translation", "mlm", "adv")


def parse_tagging_tasks(value: str, data_root: str) -> "OrderedDict[str, List[str]]":
    """``pos:en+sw,chunk`` -> {"pos": ["en", "sw"], "chunk": [languages found under DATA/chunk]}."""
    out = OrderedDict()
    for item in _split_list(value):
        name, _, langs = item.partition(":")
        name = name.strip()
        if not name.isidentifier() or name in RESERVED_TASK_NAMES:
            raise ValueError(f"--tagging-tasks: {name!r} is not a valid auxiliary task name")
        if name in out:
            raise ValueError(f"--tagging-tasks lists {name!r} twice")
        if langs:
            out[name] = [lang.strip() for lang in langs.split("+") if lang.strip()]
        else:
            folder = os.path.join(data_root, name)
            found = sorted(d for d in os.listdir(folder) if not d.startswith(".")) if os.path.isdir(folder) else []
            if not found:
                raise FileNotFoundError(f"{folder}: no corpora for auxiliary tagging task {name!r}")
            out[name] = found
    return out


def temperature_resample(dataset, corpus_sizes, temperature, seed, epoch):
    """Resamples a task's concatenated corpora so that corpus ``c`` is drawn with
    probability proportional to ``n_c ** (1 / T)`` (the same total size; re-drawn
    every epoch): T=1 is mixing by size, a large T approaches uniform."""
    sizes = np.asarray(corpus_sizes, dtype=np.float64)
    probs = (sizes / sizes.sum()) ** (1.0 / temperature)
    probs /= probs.sum()
    weights = np.concatenate([np.full(int(n), p / n) for n, p in zip(sizes, probs)])
    return ResamplingDataset(dataset, weights=weights, replace=True, size_ratio=1.0, seed=seed, epoch=epoch)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a NaN/Inf loss. (Not a FloatingPointError:
    fairseq's trainer catches those to re-run the batch under its NaN detector.)"""


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return np.isfinite(value)


def nonfinite_terms(logging_output) -> List[str]:
    """Names of the loss terms (tasks, ``adv``) that are NaN/Inf in a logging output."""
    bad = []
    for key, value in logging_output.items():
        if key.endswith("_loss") and key != "translation_nll_loss" and not _finite(value):
            bad.append(key[: -len("_loss")])
    return bad


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
    seed: int = II("common.seed")
    cpu: bool = II("common.cpu")
    fp16: bool = II("common.fp16")
    amp: bool = II("common.amp")
    train_subset: str = II("dataset.train_subset")


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

    def __init__(self, cfg: XLTMultitaskConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.mask_idx = dictionary.index("<mask>")
        self.sequence_generator = None

        pairs = _split_list(cfg.translation_pairs)
        self.generation_pair = None
        if cfg.source_lang or cfg.target_lang:
            if not (cfg.source_lang and cfg.target_lang):
                raise ValueError("--source-lang and --target-lang must be given together")
            self.generation_pair = f"{cfg.source_lang}-{cfg.target_lang}"
            if self.generation_pair not in pairs:
                pairs.append(self.generation_pair)
        self.tagging_tasks = parse_tagging_tasks(cfg.tagging_tasks, utils.split_paths(cfg.data)[0])
        self.corpus_keys: "OrderedDict[str, List[str]]" = OrderedDict(
            (name, keys)
            for name, keys in (
                ("ner", _split_list(cfg.ner_langs)),
                ("sentiment", _split_list(cfg.sentiment_langs)),
                ("translation", pairs),
                ("mlm", _split_list(cfg.mlm_langs)),
                *self.tagging_tasks.items(),
            )
            if keys
        )
        for name, keys in self.corpus_keys.items():
            if len(set(keys)) != len(keys):
                raise ValueError(f"--{name.replace('_', '-')} lists a corpus twice: {keys}")
            if name == "translation":
                for k in keys:
                    if len(k.split("-")) != 2 or not all(k.split("-")):
                        raise ValueError(f"translation pair {k!r} is not of the form SRC-TGT")
        if not self.corpus_keys:
            raise ValueError(
                "no task is active: give at least one of --ner-langs, --sentiment-langs, --mlm-langs, "
                "--translation-pairs"
            )

        self.meta: Dict[str, Dict[str, dict]] = {name: {} for name in self.corpus_keys}
        for name, keys in self.corpus_keys.items():
            for key in keys:
                path = corpora.corpus_dir(cfg.data, name, key)
                if not os.path.isdir(path):
                    raise FileNotFoundError(
                        f"{path}: no {name} corpus for {key!r} in {cfg.data} (prepare it with scripts/preprocess.py)"
                    )
                self.meta[name][key] = corpora.read_meta(path)
                if name == "translation":
                    for split in ("train", "valid", "test"):
                        has_src = corpora.has_split(path, split, "src")
                        if has_src != corpora.has_split(path, split, "tgt"):
                            side = "target (.tgt)" if has_src else "source (.src)"
                            raise FileNotFoundError(
                                f"{path}: the {split} split of translation pair {key} has no {side} side"
                            )

        self._labels = {
            name: corpora.union_labels(
                [corpora.read_labels(corpora.corpus_dir(cfg.data, name, k)) for k in self.corpus_keys[name]]
            )
            for name in self.corpus_keys
            if self.task_kind(name) in ("tagging", "classification")
        }
        languages, domains = set(), set()
        for name, keys in self.corpus_keys.items():
            for key in keys:
                languages.add(self.corpus_language(name, key))
                domains.add(self.meta[name][key].get("domain", "general"))
        self.languages = sorted(languages)
        self.domains = sorted(domains)
        logger.info(
            "xlt_multitask: "
            + "; ".join(f"{name}: {','.join(keys)}" for name, keys in self.corpus_keys.items())
            + f"; {len(self.languages)} language(s), {len(self.domains)} domain(s)"
        )

    @classmethod
    def setup_task(cls, cfg: XLTMultitaskConfig, **kwargs):
        paths = utils.split_paths(cfg.data)
        assert len(paths) > 0
        dictionary = corpora.load_root_dictionary(paths[0])
        # XLM-R's dict.txt has no <mask>; like fairseq's masked_lm task, add it
        # last so the embedding has XLM-R's 250,002 rows
        dictionary.add_symbol("<mask>")
        logger.info(f"dictionary: {len(dictionary)} types")
        task = cls(cfg, dictionary)
        # every corpus against the root (dictionary checksum, listed splits, file sizes) before any use
        dict_md5 = corpora.root_dict_md5(paths[0])
        for name, keys in task.corpus_keys.items():
            for key in keys:
                corpora.verify_corpus(paths[0], name, key, dict_md5, vocab_size=len(dictionary))
        return task

    # ---- what the data holds -------------------------------------------------

    def has_task(self, name) -> bool:
        return name in self.corpus_keys

    def task_kind(self, name) -> str:
        """``tagging`` (NER and auxiliary taggers), ``classification``, ``translation`` or ``mlm``."""
        if name == "sentiment":
            return "classification"
        if name in ("translation", "mlm"):
            return name
        return "tagging"

    @property
    def task_names(self) -> List[str]:
        return list(self.corpus_keys.keys())

    def labels(self, name) -> List[str]:
        return self._labels[name]

    def corpus_language(self, name, key) -> str:
        return key.split("-")[0] if name == "translation" else key

    def check_resumed_cfg(self, saved_cfg, checkpoint):
        """Called (by :mod:`xlt_fairseq.checkpoint_safety`) when training resumes
        from ``checkpoint``: refuses one trained on other corpora or languages."""
        corpora.check_same_corpora(saved_cfg, self.cfg, checkpoint)

    def num_adversarial_classes(self, target) -> int:
        return len(self.languages) if target == "language" else len(self.domains)

    # ---- datasets ---------------------------------------------------------------

    def _load_corpus(self, name, key, split):
        path = corpora.corpus_dir(self.cfg.data, name, key)
        stream = "src" if name == "translation" else "input"
        if not corpora.has_split(path, split, stream):
            return None
        if self.task_kind(name) == "tagging":
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
            self.datasets[split].xlt_longest = [(f"{path} ({split})", *corpora.longest(self.datasets[split]))]
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
                lengths.append((f"{corpora.corpus_dir(self.cfg.data, name, key)} ({split})", *corpora.longest(ds)))
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
        corpora.check_positions(getattr(dataset, "xlt_longest", ()), kwargs.get("max_positions"))
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
        if self.cfg.bf16_autocast and not from_checkpoint:
            self._check_bf16()
        # The head sizes are stored in the model config, so that a checkpoint can
        # be rebuilt by a task that lists fewer corpora (fairseq-generate).
        # The discriminator's chance level, for the collapse check, depends on its target.
        self._adversarial_classes = self.num_adversarial_classes(getattr(cfg, "adversarial_target", "language"))
        sizes = {
            "num_ner_labels": len(self.labels("ner")) if self.has_task("ner") else 0,
            "num_sentiment_labels": len(self.labels("sentiment")) if self.has_task("sentiment") else 0,
            "num_adversarial_classes": self.num_adversarial_classes(getattr(cfg, "adversarial_target", "language")),
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

    # ---- training step: non-finite losses, discriminator health -------------------

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step, plus: an update whose task or adversarial loss
        is NaN/Inf is skipped (on every worker) and the culprit logged."""
        model.train()
        model.set_num_updates(update_num)
        with torch.autograd.profiler.record_function("forward"), self.autocast(model):
            loss, sample_size, logging_output = criterion(model, sample)
        for name in self.task_names + ["adv"]:
            logging_output.setdefault(f"nonfinite_{name}", 0)
        culprits = nonfinite_terms(logging_output)
        if culprits or not torch.isfinite(loss).all():
            culprits = culprits or ["total"]
            logger.warning(f"update {update_num + 1}: non-finite loss in {', '.join(culprits)}; skipping the update")
            self._skip_update = True
            for key, value in list(logging_output.items()):
                if isinstance(value, torch.Tensor) and not _finite(value):
                    logging_output[key] = torch.zeros_like(value)
                elif isinstance(value, float) and not _finite(value):
                    logging_output[key] = 0.0
            for name in culprits:
                logging_output[f"nonfinite_{name}"] = 1
            # a zero loss still touching every parameter keeps distributed
            # backward hooks and all-reduces in step with the other workers
            loss = sum((p.sum() * 0.0) for p in model.parameters() if p.requires_grad)
            ignore_grad = True
        if ignore_grad:
            loss = loss * 0
        self._watch_discriminator(logging_output)
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def _watch_discriminator(self, log):
        window = self.cfg.collapse_window
        n = log.get("adv_count", 0)
        if window <= 0 or not n:
            return
        acc = log["adv_correct"] / n
        chance = 1.0 / max(getattr(self, "_adversarial_classes", len(self.languages)), 2)
        state = "saturated" if acc >= 0.999 else ("chance" if abs(acc - chance) <= 0.05 else None)
        streak = getattr(self, "_collapse", (None, 0))
        streak = (state, streak[1] + 1) if state is not None and state == streak[0] else (state, 1)
        self._collapse = streak
        if state is not None and streak[1] == window:
            what = "100 %" if state == "saturated" else f"chance ({chance:.2f})"
            logger.warning(
                f"the discriminator has collapsed: its accuracy has been at {what} for {window} updates "
                "(saturated: the encoder is not hiding the language, consider a larger --grl-lambda or "
                "--adversarial-weight; chance: it learns nothing, consider a smaller one)"
            )

    def _consensus(self, flag: bool, device) -> bool:
        """True when any data-parallel worker raised ``flag``."""
        from fairseq.distributed import utils as distributed_utils

        if distributed_utils.get_data_parallel_world_size() <= 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        t = distributed_utils.all_reduce(t, group=distributed_utils.get_data_parallel_group())
        return bool(t.item() > 0)

    # ---- alternating adversarial updates -----------------------------------------

    def optimizer_step(self, optimizer, model, update_num):
        """In ``--adversarial-mode alternating`` a critic update must change only
        the discriminator and an encoder update everything but it. Gradients of
        the other side are cleared before the step (distributed all-reduce may have
        filled them with zeros), so the optimizer skips those parameters entirely:
        no moment update, no weight decay."""
        device = next(iter(optimizer.params)).device
        skip = self._consensus(getattr(self, "_skip_update", False), device)
        self._skip_update = False
        if skip:
            optimizer.zero_grad()
            self._nonfinite_streak = getattr(self, "_nonfinite_streak", 0) + 1
            if self._nonfinite_streak >= self.cfg.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{self._nonfinite_streak} consecutive updates had a non-finite loss (see the warnings above "
                    "for the task); stopping. Lower the learning rate or check the data of that task."
                )
            return
        self._nonfinite_streak = 0
        phase = model.adversarial_phase() if hasattr(model, "adversarial_phase") else "joint"
        if phase != "joint":
            from fairseq.optim.fp16_optimizer import FP16Optimizer

            if isinstance(getattr(model, "module", None), torch.nn.parallel.DistributedDataParallel):
                raise ValueError(
                    "--adversarial-mode alternating needs --ddp-backend legacy_ddp (or no_c10d): torch DDP "
                    "all-reduces inside backward and would let the workers' weights drift apart"
                )

            if isinstance(optimizer, FP16Optimizer):
                raise ValueError(
                    "--adversarial-mode alternating needs --memory-efficient-fp16 with --fp16: the flat fp32 "
                    "master copy of --fp16 cannot leave one side's parameters untouched"
                )
            disc = {id(p) for p in model.discriminator.parameters()}
            for p in optimizer.params:
                if (id(p) in disc) != (phase == "critic"):
                    p.grad = None
        super().optimizer_step(optimizer, model, update_num)

    # ---- validation with BLEU --------------------------------------------------

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
        out = {}
        for prefix in self._bleu_keys():
            out[f"_bleu_{prefix}sys_len"] = 0
            out[f"_bleu_{prefix}ref_len"] = 0
            for i in range(BLEU_ORDER):
                out[f"_bleu_{prefix}counts_{i}"] = 0
                out[f"_bleu_{prefix}totals_{i}"] = 0
        if sub is None:
            return out
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
        pairs = self.corpus_keys["translation"]
        for corpus_id, (hyps, refs) in by_corpus.items():
            stats = xlt_metrics.bleu_stats(hyps, refs)
            for prefix in ("", metric_suffix(pairs[corpus_id]) + "_"):
                out[f"_bleu_{prefix}sys_len"] += stats["sys_len"]
                out[f"_bleu_{prefix}ref_len"] += stats["ref_len"]
                for i in range(BLEU_ORDER):
                    out[f"_bleu_{prefix}counts_{i}"] += stats["counts"][i]
                    out[f"_bleu_{prefix}totals_{i}"] += stats["totals"][i]
        return out

    def _decode(self, tokens, escape_unk=False):
        return self.dictionary.string(
            tokens.int().cpu(),
            "sentencepiece",
            unk_string=("UNKNOWNTOKENINREF" if escape_unk else "UNKNOWNTOKENINHYP"),
        )

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if self.sequence_generator is None or not self.has_task("translation"):
            return

        def total(key):
            return float(sum(utils.item(log.get(key, 0)) for log in logging_outputs))

        for prefix in self._bleu_keys():
            name = "bleu" if prefix == "" else "bleu_" + prefix[:-1]
            totals = [total(f"_bleu_{prefix}totals_{i}") for i in range(BLEU_ORDER)]
            if max(totals) <= 0:
                continue
            for i in range(BLEU_ORDER):
                metrics.log_scalar(f"_bleu_{prefix}counts_{i}", total(f"_bleu_{prefix}counts_{i}"))
                metrics.log_scalar(f"_bleu_{prefix}totals_{i}", totals[i])
            metrics.log_scalar(f"_bleu_{prefix}sys_len", total(f"_bleu_{prefix}sys_len"))
            metrics.log_scalar(f"_bleu_{prefix}ref_len", total(f"_bleu_{prefix}ref_len"))

            def compute(meters, prefix=prefix):
                return xlt_metrics.bleu_from_stats(
                    [float(meters[f"_bleu_{prefix}counts_{i}"].sum) for i in range(BLEU_ORDER)],
                    [float(meters[f"_bleu_{prefix}totals_{i}"].sum) for i in range(BLEU_ORDER)],
                    float(meters[f"_bleu_{prefix}sys_len"].sum),
                    float(meters[f"_bleu_{prefix}ref_len"].sum),
                )

            metrics.log_derived(name, compute)

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
