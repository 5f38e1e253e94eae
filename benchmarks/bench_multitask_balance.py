# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Multi-task balance on the synthetic case (issue "auxiliary tasks that help"):
two languages, all four tasks, NER typed by context (``synthetic.context_ner_sentence``),
``xlt_tiny``, Adam, 16 sentences per task per update, 400 updates.

Three parts, each written to ``--out`` as JSON:

- ``mechanism``: every 25 updates of a plain summed-loss run (and of NER alone), the
  per-task gradients on the shared encoder: their norms, their pairwise cosines, and
  the step Adam's current state gives each (``lr * ||g_t / (sqrt(v_hat) + eps)||``);
- ``matrix``: dev scores of every task alone and of all four together in the
  :data:`VARIANTS` (summed losses with tied output layers, the defaults; own
  output layers; the balance on top), for two
  recipes (constant lr 1e-3; lr 3e-3 with inverse_sqrt and 30 warm-up updates) and
  several seeds; a task "holds" when it is within 0.02 of its single-task score (NER
  F1, sentiment accuracy, BLEU / 100) or within 2 % of its masked-LM loss;
- ``cost``: CPU seconds per update of the four-task model with and without the balance (own output layers),
  alternated in one process (median of the per-round ratios).

    OMP_NUM_THREADS=1 python benchmarks/bench_multitask_balance.py --parts mechanism,matrix,cost \\
        --seeds 1,2,3 --workdir /tmp/xlt_balance --out benchmarks/results/multitask_balance.json
    python benchmarks/bench_multitask_balance.py --table benchmarks/results/multitask_balance*.json
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

from benchmarks.common import alternate, build_trainer, machine, quiet_logging, ratio_stats, set_threads  # noqa: E402

TASK_FLAGS = {
    "ner": ["--ner-langs", "aa,bb"],
    "sentiment": ["--sentiment-langs", "aa,bb"],
    "translation": ["--translation-pairs", "aa-bb"],
    "mlm": ["--mlm-langs", "aa,bb"],
}
RECIPES = {
    "constant-1e-3": ["--lr", "1e-3", "--lr-scheduler", "fixed"],
    "inverse_sqrt-3e-3": ["--lr", "3e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "30"],
}
SCORE_KEYS = {"ner": "valid_ner_f1", "sentiment": "valid_sentiment_acc", "translation": "valid_bleu", "mlm": "valid_mlm_loss"}
UPDATES = 400
# the four-task model: summed losses with the output layers tied to the embeddings (the defaults), with their own
# output layers, and the balance on top of that
VARIANTS = {
    "summed_tied": [],
    "untied": ["--untie-output-embeddings"],
    "balanced": ["--untie-output-embeddings", "--task-balance", "main"],
}


def prepare(workdir):
    from xlt_fairseq.data.synthetic import CONTEXT_SIZES

    from tests.utils import prepare_all

    data = os.path.join(workdir, "data-bin")
    if not os.path.exists(os.path.join(workdir, "prepared")):
        prepare_all(workdir, sizes=CONTEXT_SIZES, ner="context")
        open(os.path.join(workdir, "prepared"), "w").close()
    return data


def argv(data, tasks, recipe, seed, *extra, save_dir=None):
    return [
        data, "--user-dir", os.path.join(REPO, "xlt_fairseq"), "--task", "xlt_multitask", "--arch", "xlt_tiny",
        "--criterion", "xlt_multitask_adversarial", "--optimizer", "adam", "--batch-size", "16",
        "--seed", str(seed), "--cpu", "--num-workers", "0", "--required-batch-size-multiple", "1",
        "--tokens-per-sample", "32", "--max-update", str(UPDATES), "--log-format", "json",
        *(["--save-dir", save_dir, "--no-save", "--validate-interval-updates", str(UPDATES)] if save_dir else []),
        *[f for t in tasks for f in TASK_FLAGS[t]], *RECIPES[recipe], *extra,
    ]  # fmt: skip


def scores(data, workdir, tasks, recipe, seed, *extra):
    """Dev scores after UPDATES updates (BLEU / 100)."""
    from xlt_fairseq.experiments.train_records import train_in_process

    save = os.path.join(workdir, "runs", f"{'+'.join(tasks)}-{recipe}-{seed}-{'_'.join(extra) or 'default'}")
    records = train_in_process(argv(data, tasks, recipe, seed, *extra, save_dir=save))
    valid = records["valid"][-1]
    out = {t: float(valid[SCORE_KEYS[t]]) for t in tasks}
    if "translation" in out:
        out["translation"] /= 100.0
    return out


def holds(task, joint, single):
    if task == "mlm":
        return joint <= single * 1.02
    return joint >= single - 0.02


def run_matrix(data, workdir, seeds, recipes):
    rows = []
    for recipe in recipes:
        for seed in seeds:
            single = {}
            for t in TASK_FLAGS:
                single.update(scores(data, workdir, [t], recipe, seed, "--adversarial-weight", "0"))
            row = {"recipe": recipe, "seed": seed, "single": single}
            for variant, flags in VARIANTS.items():
                joint = scores(data, workdir, list(TASK_FLAGS), recipe, seed, "--adversarial-weight", "0", *flags)
                row[variant] = {"scores": joint, "holds": {t: holds(t, joint[t], single[t]) for t in joint}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def summarise(rows):
    out = {}
    for recipe in sorted({r["recipe"] for r in rows}):
        sub = [r for r in rows if r["recipe"] == recipe]
        out[recipe] = {}
        for t in TASK_FLAGS:
            entry = {"single": statistics.mean(r["single"][t] for r in sub)}
            for variant in VARIANTS:
                entry[variant] = statistics.mean(r[variant]["scores"][t] for r in sub)
                entry[f"{variant}_holds"] = sum(r[variant]["holds"][t] for r in sub)
            entry["seeds"] = len(sub)
            out[recipe][t] = entry
    return out


# ---- the mechanism --------------------------------------------------------------------------


def _flat(grads):
    import torch

    return torch.cat([g.reshape(-1) for g in grads])


def mechanism(data, tasks, seed, every=25):
    """Per-task gradient statistics on the shared encoder along a plain summed-loss run."""
    import torch

    _, task, trainer = build_trainer(argv(data, tasks, "constant-1e-3", seed, "--adversarial-weight", "0",
                                          *VARIANTS["summed_tied"]), seed=seed)  # fmt: skip
    task.load_dataset("train")
    itr = trainer.get_train_iterator(epoch=1)
    rows, update = [], 0
    while update < UPDATES:
        for batch in itr.next_epoch_itr(shuffle=True):
            if update and update % every == 0:
                rows.append(_gradient_stats(trainer, batch, torch))
                rows[-1]["update"] = update
            trainer.train_step([batch])
            update += 1
            if update >= UPDATES:
                break
    return rows


def _gradient_stats(trainer, batch, torch):
    """Per-task gradients on the encoder body and, apart, on the token embeddings (which the masked-LM head and
    the decoder share as their output layer in this run)."""
    model, criterion = trainer.model, trainer.criterion
    model.train()
    sample = trainer._prepare_sample(batch)[0]
    embed = model.encoder.sentence_encoder.embed_tokens.weight
    groups = {"body": model.shared_parameters(), "embeddings": [embed]}
    params = groups["body"] + groups["embeddings"]
    grads = {}
    for name, sub in sample.items():
        _, loss_sum, _, units = criterion._task_loss(model, name, sub)
        g = torch.autograd.grad(criterion.weights[name] * loss_sum / max(units, 1), params, allow_unused=True)
        grads[name] = [torch.zeros_like(p) if x is None else x for x, p in zip(g, params)]
    state = trainer.optimizer.optimizer.state
    lr = trainer.get_lr()
    out = {}
    for group, members in groups.items():
        index = [i for i, p in enumerate(params) if any(p is q for q in members)]
        denom = []
        for i in index:
            s = state.get(params[i], {})
            if "exp_avg_sq" in s:
                denom.append((s["exp_avg_sq"] / (1 - 0.999 ** float(s["step"]))).sqrt().reshape(-1) + 1e-8)
            else:
                denom.append(torch.ones_like(params[i]).reshape(-1))
        denom = torch.cat(denom)
        flat = {t: _flat([g[i] for i in index]) for t, g in grads.items()}
        names = list(flat)
        out[group] = {
            "norm": {t: float(g.norm()) for t, g in flat.items()},
            # the step Adam's current state gives this task's gradient alone
            "adam_step": {t: float((lr * g / denom).norm()) for t, g in flat.items()},
            "cos": {
                f"{a}|{b}": float(flat[a] @ flat[b] / (flat[a].norm() * flat[b].norm()).clamp_min(1e-12))
                for i, a in enumerate(names)
                for b in names[i + 1 :]
            },
        }
    trainer.zero_grad()
    return out


def summarise_mechanism(rows):
    """Medians over the measured updates."""
    out = {}
    for group in ("body", "embeddings"):
        out[group] = {}
        for kind in ("norm", "adam_step", "cos"):
            keys = rows[0][group][kind]
            out[group][kind] = {k: round(statistics.median(r[group][kind][k] for r in rows), 4) for k in keys}
    return out


# ---- cost per update ------------------------------------------------------------------------


def cost(data, seed, rounds=7, steps=20):
    from benchmarks.common import xlt_batches

    trainers, batches = {}, None
    for variant in ("untied", "balanced"):
        _, task, trainer = build_trainer(argv(data, list(TASK_FLAGS), "constant-1e-3", seed, *VARIANTS[variant]),
                                         seed=seed)  # fmt: skip
        trainers[variant] = trainer
        if batches is None:
            batches = xlt_batches(task, steps, 16)

    def block(trainer):
        return lambda: [trainer.train_step([b]) for b in batches]

    cpu, wall = alternate({k: block(t) for k, t in trainers.items()}, rounds)
    per_update = {k: statistics.median(v) / steps for k, v in cpu.items()}
    ratio = ratio_stats(cpu["balanced"], cpu["untied"])["median"]
    return {"cpu_s_per_update": per_update, "rounds": rounds, "steps_per_round": steps, "ratio_balanced_over_untied": ratio}


def table(paths):
    """The matrix of result files as a markdown table: per recipe and task, the single-task score and each
    variant's mean over seeds, with the number of seeds in which the task holds."""
    lines = ["| recipe | task | alone | " + " | ".join(VARIANTS) + " |", "|---|---|---|" + "---|" * len(VARIANTS)]
    for path in paths:
        for recipe, tasks in json.load(open(path))["matrix"]["summary"].items():
            for t, e in tasks.items():
                cells = [f"{e[v]:.3f} ({e[v + '_holds']}/{e['seeds']})" for v in VARIANTS]
                lines.append(f"| {recipe} | {t} | {e['single']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    if sys.argv[1:2] == ["--table"]:
        print(table(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="mechanism,matrix,cost")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--workdir", default="/tmp/xlt_balance")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "multitask_balance.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    quiet_logging()
    data = prepare(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    result = json.load(open(args.out)) if os.path.exists(args.out) else {}
    result["machine"] = machine()
    result["threads"] = args.threads
    parts = args.parts.split(",")
    t0 = time.time()
    if "mechanism" in parts:
        result["mechanism"] = {
            "all_tasks": summarise_mechanism(mechanism(data, list(TASK_FLAGS), seeds[0])),
            "ner_alone": summarise_mechanism(mechanism(data, ["ner"], seeds[0])),
        }
        print(json.dumps(result["mechanism"]), flush=True)
    if "matrix" in parts:
        rows = run_matrix(data, args.workdir, seeds, args.recipes.split(","))
        result["matrix"] = {"rows": rows, "summary": summarise(rows)}
    if "cost" in parts:
        result["cost"] = cost(data, seeds[0])
        print(json.dumps(result["cost"]), flush=True)
    result["seconds"] = round(time.time() - t0)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
