# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Runs an experiment grid (:mod:`.grid`): prepares each run's data through the
data layer's manifest, trains with ``fairseq-train`` in a subprocess, selects
checkpoints on dev sets, evaluates them on every test set and appends one JSON
line per (run, test set, selection rule) to the results file.

Resuming: a run is finished when all its result lines are in the results file;
finished runs are skipped. A training that completed is not repeated
(``train_done.json`` in its folder); an interrupted one is resumed by fairseq
from its ``checkpoint_last.pt``. Result lines are appended whole (flush +
fsync); a half-written last line left by a crash is cut off before appending.

Model selection: every validation of a run is saved as its own checkpoint; after
training, each (selection rule, test corpus) picks the validation with the best
dev metric (``english-dev``: the pivot language's, ``target-dev``: the test
corpus' own), exactly as ``--best-checkpoint-metric`` would (ties: the later
one), and the checkpoints nobody selected are deleted. So one training serves
every selection rule and every target of a multilingual run.
"""

import contextlib
import datetime
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
import yaml

from .. import hardware
from ..data.formats import DataFormatError
from .evaluation import EvaluationError
from .grid import Experiment, RunSpec, _hash, expand_grid

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
TRAIN_DONE = "train_done.json"
SELECTION = "selection.json"
FEATURES = "features.npz"


class RunFailed(RuntimeError):
    pass


# ---- results file ------------------------------------------------------------------------------------------------


def read_results(path) -> List[dict]:
    """The complete lines of a results file (a half-written last line is ignored)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines[:-1]):  # the part after the last newline is incomplete
        if not line.strip():
            continue
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            logger.warning(f"{path}:{i + 1}: not a JSON line; ignored")
    if lines[-1].strip():
        logger.warning(f"{path}: the last line is incomplete (an interrupted write); it will be dropped")
    return out


def repair_results(path):
    """Cuts a half-written last line off the results file."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())


def append_result(path, record: dict):
    """Appends one complete line (one write, flushed and synced to disk)."""
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def result_key(record: dict) -> Tuple[str, str, str]:
    return record["run_id"], record["test_set"], record["selection_rule"]


# ---- fairseq's log -------------------------------------------------------------------------------------------------

_SAVED = re.compile(r"Saved checkpoint (\S+) \(epoch (\d+) @ (\d+) updates")


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def parse_train_log(text: str) -> Tuple[List[dict], Dict[int, str]]:
    """Validation records (``| valid | {json}``, numbers as floats, the last one
    of each update) and the checkpoint file saved at each update. A file is
    kept only where it holds that update's model: epoch and interval files, and
    ``checkpoint_last.pt`` for the final save."""
    valid: Dict[int, dict] = {}
    saves: Dict[int, str] = {}
    last_update = None
    for line in text.splitlines():
        if "| valid | {" in line:
            rec = {k: _number(v) for k, v in json.loads(line.split("| valid | ", 1)[1]).items()}
            valid[int(rec["valid_num_updates"])] = rec
            continue
        m = _SAVED.search(line)
        if m:
            path, updates = m.group(1), int(m.group(3))
            saves[updates] = path
            last_update = updates
    kept = {}
    for updates, path in saves.items():
        name = os.path.basename(path)
        if name.startswith("checkpoint_last") or name.startswith("checkpoint_best"):
            if updates != last_update:
                continue  # overwritten by a later save
            path = os.path.join(os.path.dirname(path), "checkpoint_last.pt")
        kept[updates] = path
    return [valid[u] for u in sorted(valid)], kept


def select_checkpoint(records: List[dict], saves: Dict[int, str], metric: str) -> Optional[dict]:
    """The validation with the best ``metric`` among those with a saved checkpoint
    (ties: the later one, as fairseq's ``--best-checkpoint-metric``)."""
    best = None
    for rec in records:
        u = int(rec["valid_num_updates"])
        if u not in saves or not isinstance(rec.get(metric), float):
            continue
        if best is None or rec[metric] >= best[metric]:
            best = rec
    return best


# ---- data ------------------------------------------------------------------------------------------------------------


class DataManager:
    """Prepares (once) the data root of each data variant of the grid."""

    def __init__(self, exp: Experiment, out: str, progress: bool = False):
        self.exp, self.out, self.progress = exp, out, progress
        self.data_dir = os.path.join(out, "data")
        self._base = None
        self._specs = {}

    def base(self) -> Tuple[List[dict], str, dict]:
        """(corpus entries with absolute paths, encoder dir, manifest defaults/seed)."""
        if self._base is not None:
            return self._base
        d = self.exp.data
        if "synthetic" in d:
            entries, enc = self._synthetic(d["synthetic"] or {})
            extra = {}
        elif "manifest" in d:
            from ..data.manifest import load_yaml

            path = self.exp.resolve(d["manifest"])
            m = load_yaml(path)
            if m.get("scenario"):
                raise ValueError(f"{path}: the grid decides the scenario; remove 'scenario:' from the manifest")
            base = os.path.dirname(os.path.abspath(path))
            entries = [self._absolute(dict(e), base) for e in m.get("corpora") or []]
            enc = d.get("encoder_dir") and self.exp.resolve(d["encoder_dir"])
            enc = enc or (m.get("encoder_dir") and os.path.join(base, m["encoder_dir"]))
            extra = {k: m[k] for k in ("defaults",) if m.get(k)}
        else:
            base = os.path.dirname(self.exp.path)
            entries = [self._absolute(dict(e), base) for e in d["corpora"]]
            enc = d.get("encoder_dir") and self.exp.resolve(d["encoder_dir"])
            extra = {}
        if d.get("defaults"):
            extra["defaults"] = {**extra.get("defaults", {}), **d["defaults"]}
        if not enc:
            raise ValueError(f"{self.exp.path}: data needs an encoder_dir")
        self._base = (entries, enc, extra)
        return self._base

    def _absolute(self, entry, base):
        for split in ("train", "valid", "test"):
            if entry.get(split):
                p = os.path.expanduser(os.path.expandvars(str(entry[split])))
                entry[split] = p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
        return entry

    def _synthetic(self, opts):
        """Generated corpora in languages aa, bb (:mod:`xlt_fairseq.data.synthetic`) and a vocabulary."""
        from ..data.synthetic import LANGS, write_raw_data
        from ..data.vocab import build_vocab

        folder = os.path.join(self.data_dir, "synthetic")
        raw = os.path.join(folder, "raw")
        enc = os.path.join(folder, "encoder")
        paths = write_raw_data(raw, seed=int(opts.get("seed", 0)), sizes=opts.get("sizes"))
        if not os.path.exists(os.path.join(enc, "dict.txt")):
            texts = [p for (task, _, split), p in paths.items() if task in ("mlm", "sentiment") and split == "train"]
            texts += [paths[("translation", "aa-bb", "train")] + "." + lang for lang in LANGS]
            build_vocab(texts, int(opts.get("vocab_size", 200)), enc)
        entries = []
        for lang in LANGS:
            for task in ("ner", "sentiment", "mlm"):
                e = {
                    "task": task,
                    "lang": lang,
                    "train": paths[(task, lang, "train")],
                    "valid": paths[(task, lang, "valid")],
                }
                if task != "mlm":
                    e["test"] = paths[(task, lang, "test")]
                entries.append(e)
        pair = {s: paths[("translation", "aa-bb", s)] for s in ("train", "valid", "test")}
        entries.append({"task": "translation", "src_lang": "aa", "tgt_lang": "bb", **pair})
        return entries, enc

    def manifest_for(self, run: RunSpec) -> dict:
        entries, enc, extra = self.base()
        v = run.data_variant()
        manifest = {"encoder_dir": enc, "seed": v["subset_seed"], "corpora": entries, **extra}
        scenario = {"name": v["scenario"]}
        if v["kind"] == "low-resource":
            langs = {k: t for k, t in v["tiers"].items()}
            scenario["tiers"] = {
                "languages": langs,
                "fractions": v["fractions"],
                "default": "high",
                "tasks": v["tier_tasks"],
            }
        if v["zero_shot"]:
            scenario["zero_shot"] = {"languages": self._zero_shot_languages(run, v["zero_shot"]), "tasks": [v["task"]]}
        if len(scenario) > 1:
            manifest["scenario"] = scenario
        return manifest

    @staticmethod
    def _zero_shot_languages(run: RunSpec, keys):
        if run.task.name != "translation":
            return list(keys)
        # a pair loses its training split when either side is listed: list the sides no kept pair has
        kept = {lang for k in run.task.keys if k not in keys for lang in k.split("-")}
        langs = sorted({lang for k in keys for lang in k.split("-")} - kept)
        if not langs:
            raise ValueError(f"zero-shot pairs {keys} share both languages with training pairs")
        return langs

    def prepare(self, run: RunSpec):
        """(data root, specs by (task, key)) of the run's data variant, prepared if needed."""
        from ..data.manifest import load_manifest
        from ..data.prepare import prepare_many

        name = run.data_variant_name()
        if name in self._specs:
            return self._specs[name]
        root = os.path.join(self.data_dir, name)
        manifest = self.manifest_for(run)
        digest = _hash(manifest)
        os.makedirs(self.data_dir, exist_ok=True)
        path = os.path.join(self.data_dir, name + ".manifest.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(manifest, f, sort_keys=False, allow_unicode=True)
        parsed = load_manifest(path)
        stamp = os.path.join(root, "variant.json")
        if os.path.exists(stamp):
            with open(stamp, encoding="utf-8") as f:
                old = json.load(f)
            if old.get("hash") != digest:
                raise ValueError(
                    f"{root} was prepared from another manifest ({old.get('manifest')}); the experiment's data "
                    "changed since: use a new --out, or delete that folder"
                )
        else:
            logger.info(f"preparing data variant {name}")
            prepare_many(
                parsed.specs,
                parsed.encoder_dir,
                root,
                parsed.workers or int(self.exp.data.get("workers", 1)),
                progress=False,
                extra_summary=parsed.scenario,
            )
            with open(stamp + ".tmp", "w", encoding="utf-8") as f:
                json.dump({"hash": digest, "manifest": path, "variant": run.data_variant()}, f, indent=2)
            os.replace(stamp + ".tmp", stamp)
        specs = OrderedDict(((s.folder, s.key), s) for s in parsed.specs)
        self._specs[name] = (root, specs, digest)
        return self._specs[name]


def _entry_key(entry: dict) -> str:
    e = {k.replace("-", "_"): v for k, v in entry.items()}
    return f"{e.get('src_lang')}-{e.get('tgt_lang')}" if e.get("task") == "translation" else str(e.get("lang"))


def corpora_of(specs) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = OrderedDict()
    for task, key in specs:
        out.setdefault(task, []).append(key)
    return out


# ---- one run ----------------------------------------------------------------------------------------------------------


class Runner:
    """Executes the grid of an experiment into an output folder."""

    def __init__(self, exp: Experiment, out: str, progress: bool = True, keep_checkpoints: bool = False):
        self.exp = exp
        self.out = os.path.abspath(out)
        self.results = os.path.join(self.out, RESULTS_FILE)
        self.progress = progress
        self.keep_checkpoints = keep_checkpoints
        self.data = DataManager(exp, self.out)
        self.runs = expand_grid(exp)
        self._train_dirs: Dict[str, str] = {}
        self.counts = {"trained": 0, "evaluated": 0, "skipped_finished": 0, "not_applicable": 0, "failed": 0}

    # ---- planning -----------------------------------------------------------------------------------------------

    def run_dir(self, run: RunSpec) -> str:
        return os.path.join(self.out, "runs", *run.run_id.split("/"))

    def test_sets(self, run: RunSpec, specs) -> List[Tuple[str, object]]:
        """(test-set id, corpus spec) of every main-task corpus of the run with an evaluation file."""
        out = []
        for key in run.eval_keys:
            spec = specs.get((run.task.name, key))
            if spec is None:
                raise ValueError(f"{self.exp.path}: no {run.task.name} corpus {key} in the data")
            if getattr(spec, self.exp.evaluate_on):
                out.append((f"{run.task.name}/{key}", spec))
            else:
                logger.warning(f"{spec.name}: no {self.exp.evaluate_on} file; not evaluated")
        return out

    def expected_keys(self, run: RunSpec) -> set:
        """The result keys of a finished run (from the corpus list: no data is prepared)."""
        entries, _, _ = self.data.base()
        have = {(e["task"], _entry_key(e)) for e in entries if e.get(self.exp.evaluate_on)}
        tests = [f"{run.task.name}/{k}" for k in run.eval_keys if (run.task.name, k) in have]
        return {(run.run_id, t, rule) for t in tests for rule in self.exp.selection}

    def plan(self) -> List[dict]:
        return [
            {
                "run_id": r.run_id,
                "system": r.system.name,
                "scenario": r.scenario.name,
                "task": r.task.name,
                "target": r.target,
                "seed": r.seed,
                "train": r.train_keys,
                "evaluation_only": [k for k in r.eval_keys if k not in r.train_keys],
                "skip": r.skip_reason,
            }
            for r in self.runs
        ]

    # ---- execution ----------------------------------------------------------------------------------------------

    def run(self, max_runs: Optional[int] = None, only: Optional[List[str]] = None, keep_going: bool = False) -> dict:
        """Runs every unfinished run (``only``: those whose id contains one of these strings;
        ``keep_going``: a failed run is logged to failures.jsonl and the grid goes on)."""
        from tqdm import tqdm

        os.makedirs(self.out, exist_ok=True)
        with _lock(os.path.join(self.out, ".lock")):
            repair_results(self.results)
            with open(os.path.join(self.out, "grid.json"), "w", encoding="utf-8") as f:
                json.dump({"experiment": self.exp.path, "runs": self.plan()}, f, indent=2)
            done = {result_key(r) for r in read_results(self.results)}
            started = 0
            bar = tqdm(self.runs, desc=self.exp.name, unit="run", disable=not self.progress, dynamic_ncols=True)
            for run in bar:
                bar.set_postfix_str(run.run_id)
                if only and not any(s in run.run_id for s in only):
                    continue
                if run.skip_reason:
                    self.counts["not_applicable"] += 1
                    continue
                if self._finished(run, done):
                    self.counts["skipped_finished"] += 1
                    continue
                if max_runs is not None and started >= max_runs:
                    break
                started += 1
                try:
                    self.run_one(run, done)
                except (RunFailed, EvaluationError, DataFormatError) as e:
                    if not keep_going:
                        raise
                    self.counts["failed"] += 1
                    logger.error(str(e))
                    append_result(os.path.join(self.out, "failures.jsonl"), {"run_id": run.run_id, "error": str(e)})
            bar.close()
        return dict(self.counts)

    def _finished(self, run: RunSpec, done: set) -> bool:
        mine = {k for k in done if k[0] == run.run_id}
        if not mine:
            return False
        return self.expected_keys(run) <= mine

    def run_one(self, run: RunSpec, done: set):
        root, specs, digest = self.data.prepare(run)
        tests = self.test_sets(run, specs)
        rdir = self.run_dir(run)
        os.makedirs(rdir, exist_ok=True)
        flags = run.train_flags(root, os.path.join(rdir, "checkpoints"), _user_dir(), corpora_of(specs))
        train_id = _hash({"data": digest, "flags": flags[1:-2]})  # without --save-dir
        tdir = self._train_dirs.setdefault(train_id, self._find_training(train_id) or rdir)
        if tdir != rdir:
            flags[-1] = os.path.join(tdir, "checkpoints")
        with open(os.path.join(rdir, "run.json"), "w", encoding="utf-8") as f:
            json.dump(
                {**self.plan()[self.runs.index(run)], "train_id": train_id, "trained_in": tdir, "flags": flags},
                f,
                indent=2,
            )
        training = self.train(run, flags, tdir, train_id)
        selection = self.select(run, training, tdir, tests)
        self.evaluate(run, training, selection, tdir, tests, done, digest, flags)

    def _find_training(self, train_id) -> Optional[str]:
        """A run folder that already trained this exact configuration (same data, flags and seed)."""
        for run in self.runs:
            d = self.run_dir(run)
            p = os.path.join(d, "run.json")
            if os.path.exists(p):
                with open(p, encoding="utf-8") as f:
                    info = json.load(f)
                if info.get("train_id") == train_id:
                    return info.get("trained_in", d)
        return None

    def train(self, run: RunSpec, flags: List[str], tdir: str, train_id: str) -> dict:
        done_path = os.path.join(tdir, TRAIN_DONE)
        if os.path.exists(done_path):
            with open(done_path, encoding="utf-8") as f:
                return json.load(f)
        os.makedirs(tdir, exist_ok=True)
        cmd = [sys.executable, "-m", "fairseq_cli.train", *flags]
        with open(os.path.join(tdir, "train_cmd.sh"), "w", encoding="utf-8") as f:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.exp.env.items())
            f.write(
                "#!/bin/sh\n"
                + (env + " " if env else "")
                + "fairseq-train "
                + " ".join(shlex.quote(a) for a in flags)
                + "\n"
            )
        write_hydra_config(flags, os.path.join(tdir, "hydra", "run.yaml"))
        log_path = os.path.join(tdir, "train.log")
        env = {**os.environ, **self.exp.env}
        hardware.thread_env(env)  # no more threads than free cores, unless the YAML's env says
        start = time.time()
        try:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(
                    f"\n# {datetime.datetime.now().isoformat(timespec='seconds')} {run.run_id}: {' '.join(cmd)}\n"
                )
                log.flush()
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            with open(os.path.join(tdir, "train_attempts.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"seconds": round(time.time() - start, 2)}) + "\n")
        if proc.returncode != 0:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = "".join(f.readlines()[-25:])
            raise RunFailed(f"{run.run_id}: fairseq-train failed (exit {proc.returncode}); log {log_path}:\n{tail}")
        with open(log_path, encoding="utf-8", errors="replace") as f:
            records, saves = parse_train_log(f.read())
        if not records:
            raise RunFailed(f"{run.run_id}: no validation in {log_path}")
        with open(os.path.join(tdir, "train_attempts.jsonl"), encoding="utf-8") as f:
            seconds = sum(json.loads(line)["seconds"] for line in f if line.strip())
        done = {
            "train_id": train_id,
            "valid": records,
            "saves": {str(k): v for k, v in saves.items()},
            "train_time_s": round(seconds, 2),
        }
        with open(done_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(done, f, indent=1)
        os.replace(done_path + ".tmp", done_path)
        self.counts["trained"] += 1
        return done

    def select(self, run: RunSpec, training: dict, tdir: str, tests) -> dict:
        """{rule: {test set: {metric, update, checkpoint, score, note}}}; prunes unselected checkpoints."""
        path = os.path.join(tdir, SELECTION)
        old = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        saves = {int(k): v for k, v in training["saves"].items()}
        records = training["valid"]
        out = {}
        for rule in self.exp.selection:
            for test_id, spec in tests:
                if test_id in old.get(rule, {}):
                    out.setdefault(rule, {})[test_id] = old[rule][test_id]
                    continue
                metric, note = run.selection_metric(rule, spec.key)
                best = select_checkpoint(records, saves, metric)
                if best is None:
                    raise RunFailed(f"{run.run_id}: no validation logged {metric}; cannot select a checkpoint")
                u = int(best["valid_num_updates"])
                if not os.path.exists(saves[u]):
                    raise RunFailed(
                        f"{run.run_id}: {saves[u]}, selected by {metric}, was deleted after an earlier selection "
                        "(a selection rule was added?); use a new --out or rerun with --keep-checkpoints"
                    )
                out.setdefault(rule, {})[test_id] = {
                    "metric": metric,
                    "score": best[metric],
                    "update": u,
                    "epoch": int(best.get("epoch", 0)),
                    "checkpoint": saves[u],
                    "adv_acc": best.get("valid_adv_acc"),
                    "note": note,
                }
        merged = {rule: {**old.get(rule, {}), **v} for rule, v in out.items()}
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(merged, f, indent=1)
        os.replace(path + ".tmp", path)
        if not self.keep_checkpoints:
            self._prune(tdir, {s["checkpoint"] for r in merged.values() for s in r.values()})
        return out

    def _prune(self, tdir, keep):
        folder = os.path.join(tdir, "checkpoints")
        if not os.path.isdir(folder):
            return
        keep = {os.path.abspath(p) for p in keep}
        for name in os.listdir(folder):
            p = os.path.abspath(os.path.join(folder, name))
            if name.endswith(".pt") and p not in keep:
                os.remove(p)

    def evaluate(self, run, training, selection, tdir, tests, done, digest, flags):
        from .evaluation import evaluate_spec, load_checkpoint

        cache: Dict[Tuple[str, str], Tuple[dict, str]] = {}
        loaded = {}
        gen = dict(self.exp.eval_options.get("generation") or {})
        batch = int(self.exp.eval_options.get("batch_size", 32))
        pred_dir = os.path.join(tdir, "predictions")
        os.makedirs(pred_dir, exist_ok=True)
        features = self._features(run, training, selection, tdir)
        n_disc = run.discriminated_languages(flags)
        for rule in self.exp.selection:
            for test_id, spec in tests:
                key = (run.run_id, test_id, rule)
                if key in done:
                    continue
                sel = selection[rule][test_id]
                ckpt = sel["checkpoint"]
                cache_key = (ckpt, test_id)
                if cache_key not in cache:
                    if ckpt not in loaded:
                        loaded.clear()  # one model in memory at a time
                        loaded[ckpt] = load_checkpoint(ckpt)
                    metrics, rows = evaluate_spec(
                        loaded[ckpt], spec, self.exp.evaluate_on, batch, gen, os.path.join(tdir, "eval.log")
                    )
                    pred_path = os.path.join(
                        pred_dir, f"{os.path.basename(ckpt)[:-3]}.{test_id.replace('/', '.')}.jsonl"
                    )
                    with open(pred_path, "w", encoding="utf-8") as f:
                        for row in rows:
                            f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    cache[cache_key] = (metrics, pred_path)
                metrics, pred_path = cache[cache_key]
                record = self._record(run, rule, test_id, spec, sel, metrics, pred_path, training, tdir, digest, n_disc)
                if features and rule == self.exp.selection[0]:
                    record["features"] = os.path.relpath(features, self.out)
                append_result(self.results, record)
                done.add(key)
                self.counts["evaluated"] += 1
        loaded.clear()
        _free_gpu_memory()  # the next training is another process

    def _record(self, run, rule, test_id, spec, sel, metrics, pred_path, training, tdir, digest, n_disc) -> dict:
        key = spec.key
        adv = sel.get("adv_acc") if n_disc >= 2 else None
        return {
            "experiment": self.exp.name,
            "run_id": run.run_id,
            "system": run.system.name,
            "system_title": run.system.title,
            "system_order": run.system_index,
            "tables": list(run.system.tables),
            "row": run.system.row,
            "scenario": run.scenario.name,
            "scenario_kind": run.scenario.kind,
            "task": run.task.name,
            "target": run.target,
            "train_languages": run.train_keys,
            "evaluation_only_languages": [k for k in run.eval_keys if k not in run.train_keys],
            "test_set": test_id,
            "lang": key,
            "lang_tier": run.task.tiers[key],
            "test_split": self.exp.evaluate_on,
            "test_path": getattr(spec, self.exp.evaluate_on),
            "test_format": spec.split_format(self.exp.evaluate_on),
            "data_fraction": run.fraction(key),
            "seed": run.seed,
            "selection_rule": rule,
            "selection_metric": sel["metric"],
            "selection_note": sel.get("note"),
            "selected_update": sel["update"],
            "selected_dev_score": sel["score"],
            "metrics": metrics,
            "adv_acc_dev": adv,
            "adv_chance": (1.0 / n_disc) if n_disc >= 2 else None,
            "discriminated_languages": n_disc,
            "train_time_s": training.get("train_time_s"),
            "checkpoint": os.path.relpath(sel["checkpoint"], self.out),
            "predictions": os.path.relpath(pred_path, self.out),
            "run_dir": os.path.relpath(tdir, self.out),
            "data_hash": digest,
            "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
        }

    # ---- Figure 3 features --------------------------------------------------------------------------------------

    def _wants_features(self, run: RunSpec) -> bool:
        t = self.exp.tsne
        if t.get("enabled", True) is False:
            return False
        systems = [e.system.name for e in self.exp.systems if e.system.train_languages != "each"]
        system = t.get("system") or ("full" if "full" in systems else (systems or [None])[-1])
        scenario = t.get("scenario") or self.exp.scenarios[0].name
        seed = t.get("seed", self.exp.seeds[0])
        return run.system.name == system and run.scenario.name == scenario and run.seed == seed and run.target is None

    def _features(self, run: RunSpec, training, selection, tdir) -> Optional[str]:
        """Sentence representations before and after training (dev sets of every main-task language)."""
        if not self._wants_features(run):
            return None
        path = os.path.join(tdir, FEATURES)
        if os.path.exists(path):
            return path
        from .evaluation import initial_model, load_checkpoint, pooled_features

        sel = next(iter(selection[self.exp.selection[0]].values()))
        loaded = load_checkpoint(sel["checkpoint"])
        n = int(self.exp.tsne.get("sentences", 200))
        after, owners = pooled_features(loaded, run.task.name, run.eval_keys, "valid", n)
        before, owners0 = pooled_features(
            loaded, run.task.name, run.eval_keys, "valid", n, model=initial_model(loaded, run.seed)
        )
        assert owners == owners0
        np.savez_compressed(
            path + ".tmp.npz",
            before=before,
            after=after,
            langs=np.array(owners),
            tiers=np.array([run.task.tiers[k] for k in owners]),
            meta=np.array(json.dumps({"run_id": run.run_id, "system": run.system.title, "update": sel["update"]})),
        )
        os.replace(path + ".tmp.npz", path)
        del loaded
        _free_gpu_memory()
        return path


def write_hydra_config(flags: List[str], path: str):
    """The run as a fairseq-hydra-train config, parsed by fairseq itself from the flags
    (``fairseq-hydra-train --config-dir DIR --config-name run`` repeats the training; not named
    config.yaml, which would lose to fairseq's own ``fairseq/config/config.yaml``)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's own config files
        warnings.simplefilter("ignore")
        args = options.parse_args_and_arch(options.get_training_parser(), list(flags))
        cfg = OmegaConf.to_container(convert_namespace_to_omegaconf(args), resolve=True, enum_to_str=True)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("# the run's fairseq-train flags as a fairseq-hydra-train config (written by the runner)\n")
        yaml.safe_dump(cfg, f, sort_keys=False)


def _free_gpu_memory():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _user_dir() -> str:
    from .evaluation import user_dir

    return user_dir()


@contextlib.contextmanager
def _lock(path):
    """One runner per output folder at a time."""
    import fcntl

    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"{os.path.dirname(path)} is in use by another run_experiments.py") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_out(exp: Experiment) -> str:
    if exp.out:
        return exp.resolve(exp.out)
    return os.path.join(os.getcwd(), "runs", exp.name)
