# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Shared pieces of the xlt-vs-vanilla-fairseq benchmarks: data, models built
through fairseq's own argument parser, the alternating timer and peak memory.

Method (TOOLCHAIN.md, "Measuring speed on these machines"): one process, a fixed
thread count, a warm-up, then the compared variants alternated A B A B ... for
at least 5 rounds; the figures are the median of each variant and the median of
the per-round ratio, with the spread (min-max) of that ratio. Times are the
process' CPU time (one thread), wall-clock times are recorded next to them.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
USER_DIR = os.path.join(REPO, "xlt_fairseq")
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, REPO)

from xlt_fairseq.experiments.command import (  # noqa: E402
    flags_from_mapping,
    flags_to_list,
    synthetic_preprocess_args,
    train_command,
)

LANGS = ("aa", "bb")

# Model dimensions of the CPU benchmarks (small enough for minutes on 2 cores), and
# XLM-R base's encoder (with the same 2-layer decoder) for a shorter check at full width.
SMALL = {"name": "small", "layers": 4, "dim": 256, "ffn": 1024, "heads": 4, "dec_layers": 2}
BASE = {"name": "xlmr-base", "layers": 12, "dim": 768, "ffn": 3072, "heads": 12, "dec_layers": 2}
DIMS = dict(SMALL)


def set_dims(dims):
    DIMS.clear()
    DIMS.update(dims)


def encoder_settings(d=DIMS):
    return {
        "encoder_layers": d["layers"],
        "encoder_embed_dim": d["dim"],
        "encoder_ffn_embed_dim": d["ffn"],
        "encoder_attention_heads": d["heads"],
    }


def decoder_settings(d=DIMS):
    return {"decoder_layers": d["dec_layers"], "decoder_ffn_embed_dim": d["ffn"]}


def encoder_args(d=DIMS):
    """:func:`encoder_settings` as flags, for fairseq's own tasks."""
    return flags_to_list(flags_from_mapping(encoder_settings(d)))


# ---- data -------------------------------------------------------------------------------


def _words(rng, n, letters):
    seen, out = set(), []
    while len(out) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def write_raw(raw_dir, n_train=1200, n_eval=300, seed=0, n_types=6000, lengths=(6, 28)):
    """Zipf-distributed random words in two 'languages'; NER tags, 3 sentiment
    labels, unlabelled text and a word-for-word aa->bb translation."""
    rng = random.Random(seed)
    os.makedirs(raw_dir, exist_ok=True)
    lex = {"aa": _words(rng, n_types, "aeioukmtrsln"), "bb": _words(rng, n_types, "aeiouxzpdgbv")}
    weights = [1.0 / (r + 1) for r in range(n_types)]
    paths = {}

    def sentence(lang):
        idx = rng.choices(range(n_types), weights, k=rng.randint(*lengths))
        return idx, [lex[lang][i] for i in idx]

    sizes = {"train": n_train, "valid": n_eval, "test": n_eval}
    for lang in LANGS:
        for split, n in sizes.items():
            p = os.path.join(raw_dir, f"ner.{lang}.{split}.conll")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    _, words = sentence(lang)
                    tags = [rng.choice(["O"] * 8 + ["B-PER", "B-LOC", "B-ORG"]) for _ in words]
                    f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
            paths[("ner", lang, split)] = p
            p = os.path.join(raw_dir, f"sentiment.{lang}.{split}.tsv")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    f.write(f"{rng.choice(['negative', 'neutral', 'positive'])}\t{' '.join(sentence(lang)[1])}\n")
            paths[("sentiment", lang, split)] = p
            p = os.path.join(raw_dir, f"mlm.{lang}.{split}.txt")
            with open(p, "w", encoding="utf-8") as f:
                for _ in range(n):
                    f.write(" ".join(sentence(lang)[1]) + "\n")
            paths[("mlm", lang, split)] = p
    for split, n in sizes.items():
        prefix = os.path.join(raw_dir, f"mt.{split}")
        with open(prefix + ".aa", "w", encoding="utf-8") as fs, open(prefix + ".bb", "w", encoding="utf-8") as ft:
            for _ in range(n):
                idx, words = sentence("aa")
                fs.write(" ".join(words) + "\n")
                ft.write(" ".join(lex["bb"][i] for i in idx) + "\n")
        paths[("translation", "aa-bb", split)] = prefix
    return paths


def prepare(workdir, vocab_size=4000, quiet=True, **raw_args):
    """Raw data -> scripts/build_vocab.py -> scripts/preprocess.py for every task
    in both languages; then the folders fairseq's own tasks read (dictionaries,
    and the translation files under fairseq's names). Returns a dict of paths.
    ``raw_args`` go to :func:`write_raw` (sizes, sentence lengths, word types)."""
    import logging

    import build_vocab
    import preprocess

    done = os.path.join(workdir, "prepared.json")
    if os.path.exists(done):
        return json.load(open(done))
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)
    raw = write_raw(os.path.join(workdir, "raw"), **raw_args)
    enc = os.path.join(workdir, "encoder")
    texts = [p for (task, _, split), p in raw.items() if task == "mlm" and split == "train"]
    assert build_vocab.main(["--text", *texts, "--vocab-size", str(vocab_size), "--out", enc]) == 0
    data = os.path.join(workdir, "data-bin")
    for args in synthetic_preprocess_args(raw, enc, data, mlm_tokens_per_sample=64):
        assert preprocess.main(args) == 0, args

    # fairseq's own tasks: the same dictionary (and, for translation, the same
    # binarised files under fairseq's names), so token ids are identical
    dict_txt = os.path.join(data, "dict.txt")
    vanilla = {
        name: os.path.join(workdir, "vanilla", name) for name in ("sentence_prediction", "masked_lm", "translation")
    }
    for sub in ("input0", "label"):
        os.makedirs(os.path.join(vanilla["sentence_prediction"], sub), exist_ok=True)
    _link(dict_txt, os.path.join(vanilla["sentence_prediction"], "input0", "dict.txt"))
    with open(os.path.join(vanilla["sentence_prediction"], "label", "dict.txt"), "w") as f:
        f.write("".join(f"{c} 1\n" for c in ("negative", "neutral", "positive")))
    os.makedirs(vanilla["masked_lm"], exist_ok=True)
    _link(dict_txt, os.path.join(vanilla["masked_lm"], "dict.txt"))
    os.makedirs(vanilla["translation"], exist_ok=True)
    for lang in ("aa", "bb"):
        _link(dict_txt, os.path.join(vanilla["translation"], f"dict.{lang}.txt"))
    src = os.path.join(data, "translation", "aa-bb")
    for split in ("train", "valid", "test"):
        for stream, lang in (("src", "aa"), ("tgt", "bb")):
            for ext in ("bin", "idx"):
                _link(
                    os.path.join(src, f"{split}.{stream}.{ext}"),
                    os.path.join(vanilla["translation"], f"{split}.aa-bb.{lang}.{ext}"),
                )
    out = {"encoder": enc, "data": data, "vanilla": vanilla}
    json.dump(out, open(done, "w"), indent=1)
    return out


def _link(src, dst):
    if not os.path.exists(dst):
        os.symlink(os.path.abspath(src), dst)


# ---- building trainers through fairseq's parser ---------------------------------------------


def setup_task(argv):
    """fairseq-train's parser and task set-up; returns (cfg, task)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import xlt_fairseq

    xlt_fairseq.register()  # a bare import of the plugin registers nothing (fast --help): --user-dir then finds it loaded
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    return cfg, tasks.setup_task(cfg.task)


def build_trainer(argv, seed=1):
    """fairseq-train's set-up (parser, task, model, criterion, Trainer) without its loop."""
    from fairseq import utils
    from fairseq.trainer import Trainer

    cfg, task = setup_task(argv)
    utils.set_torch_seed(seed)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, Trainer(cfg, task, model, criterion)


COMMON = {"cpu": True, "optimizer": "adam", "lr": 1e-4, "seed": 1, "num_workers": 0}
COMMON_TRAIN = flags_to_list(flags_from_mapping(COMMON))  # the same, for fairseq's own tasks
# every task in both languages
ALL_TASKS = {"ner": list(LANGS), "sentiment": list(LANGS), "mlm": list(LANGS), "translation": ["aa-bb"]}


def xlt_argv(data, corpora, **settings):
    """The plugin's fairseq-train arguments for ``corpora`` (task -> languages) at the benchmark's model size
    (xlt_xlmr_base's architecture with :data:`DIMS`); ``settings`` add or override options."""
    return train_command(
        data,
        corpora,
        {
            "arch": "xlt_xlmr_base",
            **encoder_settings(),
            "feature_extractor_dim": DIMS["dim"],
            "tokens_per_sample": 64,
            **COMMON,
            **settings,
        },
    ).argv()


def xlt_batches(task, n, batch_size, seed=1):
    """``n`` training batches ({task: sub_batch}) of the xlt task, as fairseq-train
    draws them (length-sorted, shuffled), chosen at evenly spaced quantiles of their
    token count so that a timed block has the corpus' mix of lengths."""
    task.load_dataset("train")
    itr = task.get_batch_iterator(
        dataset=task.dataset("train"), max_sentences=batch_size, seed=seed, required_batch_size_multiple=1
    ).next_epoch_itr(shuffle=True)
    # full batches only, so that every compared step has the same size
    full = [b for b in itr if all(sub["nsentences"] == batch_size for sub in b.values())]
    assert len(full) >= n, "not enough training data for the benchmark batches"
    full.sort(key=lambda b: sum(sub["ntokens"] for sub in b.values()))
    return [full[int((i + 0.5) * len(full) / n)] for i in range(n)]


# ---- timing --------------------------------------------------------------------------------


def quiet_logging():
    """fairseq's modules configure INFO logging on import: import them, then raise the level."""
    import logging
    import warnings

    import fairseq_cli.generate  # noqa: F401
    import fairseq_cli.train  # noqa: F401

    logging.getLogger().setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def set_threads(n):
    import torch

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def alternate(variants, rounds, warmup=1):
    """``variants``: name -> callable running one timed block. Runs ``warmup``
    untimed rounds, then ``rounds`` rounds of every variant in turn (the order of
    the variants rotates every round). Returns (cpu, wall): name -> list of
    seconds, the process' CPU time and the wall-clock time of every block.

    With one thread, the process' CPU time is the figure to compare: it leaves out
    the time the process waits while other jobs hold the (shared) cores, which is
    what makes wall-clock times of this machine vary by tens of percent."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    cpu = {name: [] for name in names}
    wall = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            variants[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    return cpu, wall


def ratio_stats(numer, denom):
    """Median and min/max of the per-round ratio numer[i] / denom[i]."""
    ratios = [a / b for a, b in zip(numer, denom)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "per_round": ratios}


def median(xs):
    return statistics.median(xs)


def _status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def rss_mb():
    """Resident set size of this process now (MB)."""
    return _status_mb("VmRSS")


def peak_rss_mb():
    """Peak resident set size of this process (MB) since start or the last :func:`reset_peak_rss`."""
    return _status_mb("VmHWM")


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (Linux >= 4.0), so that the peak of the
    work that follows is not hidden by the imports' own peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_probe(script, args, threads):
    """Runs ``script --probe ...`` in a fresh process and returns its JSON line
    (peak memory must be measured in a process of its own: the OS reports one peak per process)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, script, "--probe", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"probe {args} failed:\n{out.stderr[-3000:]}")
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"probe {args} printed no result:\n{out.stdout[-2000:]}")


def machine():
    import platform

    import torch

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return None

    return {
        "git_head": git("rev-parse", "HEAD"),
        "git_modified_files": len((git("status", "--porcelain", "--untracked-files=no") or "").splitlines()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": os.getloadavg(),
    }
