# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Runs an experiment grid (:mod:`.grid`): prepares each run's data
(:mod:`.data_variants`), trains with ``fairseq-train`` in a subprocess
(:mod:`.command`), selects checkpoints on dev sets from the training's own
records (:mod:`.train_records`), evaluates them on every test set and appends one
JSON line per (run, test set, selection rule) to the results file (:mod:`.results`).

Resuming: a run is finished when all its result lines are in the results file;
finished runs are skipped. A training that completed is not repeated
(``train_done.json`` in its folder); an interrupted one is resumed by fairseq
from its ``checkpoint_last.pt``.

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
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import hardware
from ..data.formats import DataFormatError
from .command import TrainCommand
from .data_variants import DataManager, corpora_of
from .evaluation import EvaluationError
from .experiment import Experiment
from .grid import RunSpec, _hash, expand_grid
from .progress import GridProgress
from .results import RESULTS_FILE, append_result, evaluation_label, read_results, repair_results, result_key
from .train_records import (
    checkpoint_saves,
    console_tail,
    read_training_log,
    run_training,
    select_checkpoint,
    validations,
)

# the names scripts and tests import from here
__all__ = ["RESULTS_FILE", "RunFailed", "Runner", "default_out", "read_results", "repair_results"]

logger = logging.getLogger(__name__)

TRAIN_DONE = "train_done.json"
SELECTION = "selection.json"
FEATURES = "features.npz"
TRAIN_LOG = "train_records.log"  # fairseq's --log-file: the training's JSON records


class RunFailed(RuntimeError):
    pass


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
        self._labels: Dict[str, dict] = {}
        # averaging recipes need the last validated checkpoints of every training: pruning keeps that many
        averaging = [e.system.recipe["average"] for e in exp.systems if "average" in e.system.recipe]
        self.keep_last = max([int(a["checkpoints"]) for a in averaging] or [0])
        self.counts = {"trained": 0, "evaluated": 0, "skipped_finished": 0, "not_applicable": 0, "failed": 0}
        self.grid_progress: Optional[GridProgress] = None

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
        have = self.data.corpora_with(self.exp.evaluate_on)
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
            self.grid_progress = GridProgress(len(self.runs), write=lambda line: tqdm.write(line, file=sys.stderr))
            bar = tqdm(self.runs, desc=self.exp.name, unit="run", disable=not self.progress, dynamic_ncols=True)
            for run in bar:
                bar.set_postfix_str(run.run_id)
                if only and not any(s in run.run_id for s in only):
                    self.grid_progress.skipped()
                    continue
                if run.skip_reason:
                    self.counts["not_applicable"] += 1
                    self.grid_progress.skipped()
                    continue
                if self._finished(run, done):
                    self.counts["skipped_finished"] += 1
                    self.grid_progress.skipped()
                    continue
                if max_runs is not None and started >= max_runs:
                    break
                started += 1
                self.grid_progress.start(run.run_id)
                try:
                    trained_before = self.counts["trained"]
                    self.run_one(run, done)
                    self.grid_progress.finished(trained=self.counts["trained"] > trained_before)
                except (RunFailed, EvaluationError, DataFormatError) as e:
                    self.grid_progress.finished(trained=False)
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
        rdir = self.run_dir(run)
        specs, digest, cmd, tdir, train_id = self._training_of(run, done)
        tests = self.test_sets(run, specs)
        with open(os.path.join(rdir, "run.json"), "w", encoding="utf-8") as f:
            json.dump(
                {**self.plan()[self.runs.index(run)], "train_id": train_id, "trained_in": tdir, "flags": cmd.argv()},
                f,
                indent=2,
            )
        training = self.train(run, cmd, tdir, train_id)
        selection = self.select(run, training, tdir, tests)
        if "average" in run.system.recipe:
            selection = self._averaged(run, training, tdir, tests, done)
        self.evaluate(run, training, selection, tdir, tests, done, digest)

    # ---- recipes (examples/systems: recipe:) --------------------------------------------------------------------

    def _sibling(self, run: RunSpec, system: str, seed: Optional[int] = None) -> RunSpec:
        seed = run.seed if seed is None else seed
        for other in self.runs:
            same = (other.scenario.name, other.task.name, other.seed, other.target)
            if other.system.name == system and same == (run.scenario.name, run.task.name, seed, None):
                return other
        raise RunFailed(f"{run.run_id}: no run of {system} (seed {seed}) in {run.scenario.name} to build on")

    def _finished_selection(self, other: RunSpec, done: set) -> dict:
        """The checkpoint selection of a run the recipe builds on, running it first if needed."""
        if not self._finished(other, done):
            logger.info(f"running {other.run_id} first: a recipe builds on it")
            self.run_one(other, done)
        with open(os.path.join(self.run_dir(other), "run.json"), encoding="utf-8") as f:
            tdir = json.load(f)["trained_in"]
        with open(os.path.join(tdir, SELECTION), encoding="utf-8") as f:
            return json.load(f)

    def _first_stage(self, run: RunSpec, done: set) -> str:
        """two_stage: the first system's checkpoint (its pivot language's test-set entry under the rule)."""
        settings = run.system.recipe["two_stage"]
        first = self._sibling(run, settings["first"])
        selection = self._finished_selection(first, done)
        rule = settings["selection"]
        key = f"{run.task.name}/{run.task.pivot}" if rule == "english-dev" else None
        entries = selection.get(rule) or {}
        if key is None or key not in entries:
            # target-dev (or no pivot test set): the first stage's checkpoint selected for the first target
            key = next((f"{run.task.name}/{k}" for k in run.train_keys if f"{run.task.name}/{k}" in entries), key)
        if key not in entries:
            raise RunFailed(f"{run.run_id}: {first.run_id} selected no checkpoint by {rule} to start from")
        return entries[key]["checkpoint"]

    def _self_training(self, run: RunSpec, done: set, rdir: str) -> Dict[Tuple[str, str], str]:
        """self_training: pseudo-labelled text of each lower-tier training language, by the teacher's model
        selected on that language's dev set; {(task, key): CoNLL file} for the run's data."""
        from .. import self_training
        from .evaluation import load_checkpoint

        settings = run.system.recipe["self_training"]
        teacher = self._sibling(run, settings["teacher"])
        selection = self._finished_selection(teacher, done)
        entries, _, _ = self.data.base()
        texts = {e["lang"]: e["train"] for e in entries if e["task"] == "mlm" and e.get("train")}
        gold = {e["lang"]: e["train"] for e in entries if e["task"] == run.task.name and e.get("train")}
        out, summary = {}, {}
        for key in run.train_keys:
            if run.task.tiers[key] == "high":
                continue
            if key not in texts:
                raise RunFailed(f"{run.run_id}: self-training needs unlabelled {key} text (an mlm corpus of {key})")
            chosen = (selection.get("target-dev") or {}).get(f"{run.task.name}/{key}")
            if chosen is None:
                raise RunFailed(f"{run.run_id}: {teacher.run_id} has no checkpoint selected on the {key} dev set")
            path = os.path.join(rdir, "pseudo", f"{run.task.name}.{key}.conll")
            if not os.path.exists(path):
                from ..data.formats import read_tagged

                mine = [e for e in entries if e["task"] == run.task.name and e["lang"] == key]
                gold_format = mine[0].get("format") if mine else None
                exclude = [s.tokens for s in read_tagged(gold[key], gold_format or "conll")] if key in gold else []
                sentences = self_training.read_unlabelled(texts[key], exclude=exclude)
                hub = load_checkpoint(chosen["checkpoint"]).hub
                kept = self_training.pseudo_label(
                    hub,
                    sentences,
                    float(settings["threshold"]),
                    task=run.task.name,
                    max_sentences=int(settings["max_sentences"]),
                    empty_ratio=float(settings["empty_ratio"]),
                )
                del hub
                if not kept:
                    raise RunFailed(
                        f"{run.run_id}: no {key} sentence reached the confidence threshold {settings['threshold']}"
                    )
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self_training.write_conll(path, kept)
                summary[key] = {"unlabelled": len(sentences), "kept": len(kept), "teacher": chosen["checkpoint"]}
            out[(run.task.name, key)] = path
        if summary:
            from ..data.textio import write_text_atomic

            write_text_atomic(os.path.join(rdir, "pseudo", "summary.json"), json.dumps(summary, indent=1))
        return out

    def _averaged(self, run: RunSpec, training: dict, tdir: str, tests, done: set) -> dict:
        """average: every test set of the run is evaluated on one model, the average of the last validated
        checkpoints of this training (or of every seed's training of the system: seeds: all)."""
        from ..averaging import average_checkpoints

        settings = run.system.recipe["average"]
        k = int(settings["checkpoints"])
        folders = [tdir]
        if settings["seeds"] == "all":
            folders = []
            for seed in self.exp.seeds:
                other = run if seed == run.seed else self._sibling(run, run.system.name, seed)
                folders.append(self._training_dir(other, done))
        paths = []
        for folder in folders:
            saves = _last_saves(os.path.join(folder, TRAIN_DONE), k)
            missing = [p for p in saves if not os.path.exists(p)]
            if missing:
                raise RunFailed(f"{run.run_id}: {missing[0]} is gone; averaging needs the last {k} checkpoints")
            paths.extend(saves)
        out = os.path.join(self.out, "averages", f"checkpoint_average_{_hash(paths)}.pt")  # seeds: all share it
        if not os.path.exists(out):
            average_checkpoints(paths, out)
        note = f"average of {len(paths)} checkpoints: the last {k} validated of " + (
            f"seeds {', '.join(map(str, self.exp.seeds))}" if settings["seeds"] == "all" else "this training"
        )
        update = max(int(u) for u in training["saves"])
        entry = {"metric": "average", "score": None, "update": update, "epoch": 0, "checkpoint": out, "note": note}
        return {rule: {test_id: dict(entry) for test_id, _ in tests} for rule in self.exp.selection}

    def _training_of(self, run: RunSpec, done: set):
        """(specs, data digest, command, training folder, training id) of a run: its data (with a self-training
        recipe's pseudo-labels), its command (with a two-stage recipe's start), and the folder of an earlier run
        with the same data and flags, whose training it shares."""
        rdir = self.run_dir(run)
        os.makedirs(rdir, exist_ok=True)
        recipe = run.system.recipe
        extra_train = self._self_training(run, done, rdir) if "self_training" in recipe else None
        root, specs, digest = self.data.prepare(run, extra_train)
        cmd = run.train_command(
            root, os.path.join(rdir, "checkpoints"), corpora_of(specs), log_file=os.path.join(rdir, TRAIN_LOG)
        )
        if "two_stage" in recipe:
            cmd = cmd.with_flags(finetune_from_model=self._first_stage(run, done))
        train_id = _hash({"data": digest, "flags": cmd.identity()})  # not where it writes: the same training
        tdir = self._train_dirs.setdefault(train_id, self._find_training(train_id) or rdir)
        if tdir != rdir:
            cmd = cmd.with_flags(save_dir=os.path.join(tdir, "checkpoints"), log_file=os.path.join(tdir, TRAIN_LOG))
        return specs, digest, cmd, tdir, train_id

    def _training_dir(self, run: RunSpec, done: set) -> str:
        """The folder of a run's finished training, training it (not evaluating it) if needed."""
        _, _, cmd, tdir, train_id = self._training_of(run, done)
        self.train(run, cmd, tdir, train_id)
        return tdir

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

    def train(self, run: RunSpec, cmd: TrainCommand, tdir: str, train_id: str) -> dict:
        done_path = os.path.join(tdir, TRAIN_DONE)
        if os.path.exists(done_path):
            with open(done_path, encoding="utf-8") as f:
                return json.load(f)
        os.makedirs(tdir, exist_ok=True)
        with open(os.path.join(tdir, "train_cmd.sh"), "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\n" + cmd.shell(self.exp.env) + "\n")
        cmd.write_hydra_config(os.path.join(tdir, "hydra", "run.yaml"))
        console = os.path.join(tdir, "train.log")
        env = {**os.environ, **self.exp.env}
        hardware.thread_env(env)  # no more threads than free cores, unless the YAML's env says
        argv = cmd.cli(console_script=False)
        start = time.time()
        try:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            header = f"\n# {stamp} {run.run_id}: {' '.join(argv)}"
            on_record = self.grid_progress.on_record if self.grid_progress is not None else None
            rc = run_training(argv, cmd.log_file, console, env=env, header=header, on_record=on_record)
        finally:
            with open(os.path.join(tdir, "train_attempts.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"seconds": round(time.time() - start, 2)}) + "\n")
        if rc != 0:
            raise RunFailed(f"{run.run_id}: fairseq-train failed (exit {rc}); log {console}:\n{console_tail(console)}")
        records = validations(read_training_log(cmd.log_file))
        if not records:
            raise RunFailed(f"{run.run_id}: no validation in {cmd.log_file}")
        saves = checkpoint_saves(cmd.save_dir)
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
            keep = {s["checkpoint"] for r in merged.values() for s in r.values()}
            if self.keep_last:
                keep.update(_last_saves(os.path.join(tdir, TRAIN_DONE), self.keep_last, at_most=True))
            self._prune(tdir, keep)
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

    def evaluate(self, run, training, selection, tdir, tests, done, digest):
        from .evaluation import evaluate_spec, load_checkpoint

        cache: Dict[Tuple[str, str], Tuple[dict, str, int]] = {}
        loaded = {}
        gen = dict(self.exp.eval_options.get("generation") or {})
        batch = int(self.exp.eval_options.get("batch_size", 32))
        pred_dir = os.path.join(tdir, "predictions")
        os.makedirs(pred_dir, exist_ok=True)
        features = self._features(run, training, selection, tdir)
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
                    # what the run's discriminator told apart, as the trained model says (one class: none)
                    n_disc = int(getattr(loaded[ckpt].model.cfg, "num_adversarial_classes", 0) or 0)
                    cache[cache_key] = (metrics, pred_path, n_disc)
                metrics, pred_path, n_disc = cache[cache_key]
                record = self._record(run, rule, test_id, spec, sel, metrics, pred_path, training, tdir, digest, n_disc)
                record.update(self._evaluation_label(spec))
                if features and rule == self.exp.selection[0]:
                    record["features"] = os.path.relpath(features, self.out)
                append_result(self.results, record)
                done.add(key)
                self.counts["evaluated"] += 1
        loaded.clear()
        _free_gpu_memory()  # the next training is another process

    def _evaluation_label(self, spec) -> dict:
        """What the test file is (:func:`.results.evaluation_label`), worked out once per file."""
        split = self.exp.evaluate_on
        path = getattr(spec, split)
        if path not in self._labels:
            self._labels[path] = evaluation_label(path, split, spec.split_format(split), spec.valid)
            if self._labels[path]["eval_split"] != "test":
                logger.warning(
                    f"{path}: not a test split ({self._labels[path]['eval_split']}: "
                    f"{self._labels[path]['eval_evidence']}); its result lines say so"
                )
        return self._labels[path]

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
        wanted = t.get("system") or ("full" if "full" in systems else (systems or [None])[-1])
        # one system, a list of them, or "all" (e.g. a sweep of --grl-lambda, each probed)
        wanted = systems if wanted == "all" else ([wanted] if isinstance(wanted, str) else list(wanted))
        scenario = t.get("scenario") or self.exp.scenarios[0].name
        seed = t.get("seed", self.exp.seeds[0])
        seeds = self.exp.seeds if seed == "all" else [seed]
        return run.system.name in wanted and run.scenario.name == scenario and run.seed in seeds and run.target is None

    def _features(self, run: RunSpec, training, selection, tdir) -> Optional[str]:
        """Sentence representations before and after training (dev sets of every main-task language)."""
        if not self._wants_features(run):
            return None
        path = os.path.join(tdir, FEATURES)
        if os.path.exists(path):
            return path
        from .evaluation import feature_inputs, initial_model, load_checkpoint, pooled_features

        sel = next(iter(selection[self.exp.selection[0]].values()))
        loaded = load_checkpoint(sel["checkpoint"])
        n = int(self.exp.tsne.get("sentences", 200))
        after, owners = pooled_features(loaded, run.task.name, run.eval_keys, "valid", n)
        before, owners0 = pooled_features(
            loaded, run.task.name, run.eval_keys, "valid", n, model=initial_model(loaded, run.seed)
        )
        assert owners == owners0
        # the input itself (bags of pieces, without <s> </s> <pad> <unk>) for the input probe (xlt_fairseq.invariance)
        special = loaded.task.source_dictionary.nspecial
        sentences = feature_inputs(loaded, run.task.name, run.eval_keys, "valid", n).values()
        inputs = [t[t >= special].numpy() for items in sentences for t in items]
        np.savez_compressed(
            path + ".tmp.npz",
            before=before,
            after=after,
            pieces=np.concatenate(inputs).astype(np.int32),
            offsets=np.cumsum([0] + [len(t) for t in inputs]).astype(np.int64),
            langs=np.array(owners),
            tiers=np.array([run.task.tiers[k] for k in owners]),
            meta=np.array(json.dumps({"run_id": run.run_id, "system": run.system.title, "update": sel["update"]})),
        )
        os.replace(path + ".tmp.npz", path)
        del loaded
        _free_gpu_memory()
        return path


def _last_saves(train_done: str, n: int, at_most: bool = False) -> List[str]:
    """The checkpoints of a finished training's last ``n`` validations (oldest first; ``at_most``: fewer when
    there are fewer, else an error)."""
    with open(train_done, encoding="utf-8") as f:
        saves = {int(u): p for u, p in json.load(f)["saves"].items()}
    if len(saves) < n and not at_most:
        raise RunFailed(f"{train_done}: {len(saves)} validated checkpoints, {n} wanted for averaging")
    return [saves[u] for u in sorted(saves)[-n:]]


def _free_gpu_memory():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
