#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""P11: NER inference on a CPU, the torch engine against the model's ONNX export
(fp32) and its int8 dynamic quantisation, in one process on one thread.

The model folder's NER head is exported with ``xlt-export-onnx --quantize int8``
(its own checks: logits, and dev F1 when ``--dev`` is given); then one loaded
model tags raw sentences (``XLTHubInterface.tag``: word splitting, encoding,
length-sorted batches, the records ``xlt-predict`` writes) with each engine in
turn, alternated over ``--rounds`` rounds after a warm-up (``common.alternate``:
the order rotates every round). sentences/s is over the process' CPU time (one
thread; wall-clock figures next to it). Entity F1 (seqeval) of each engine on
the whole dev file, and the words whose label differs from the torch engine's.

    python benchmarks/bench_onnx.py --model MODEL_DIR --dev ../shared/data/ner/sw/dev.conll --lang sw \\
        --out benchmarks/results
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder with a NER head (xlt-export)")
    parser.add_argument("--dev", required=True, help="a CoNLL dev file: the timed sentences and the F1")
    parser.add_argument("--lang", required=True)
    parser.add_argument("--format", default="conll")
    parser.add_argument("--task", default="ner")
    parser.add_argument("--sentences", type=int, default=300, help="sentences per timed block (the dev file's first)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--onnx-dir", help="an existing export to use (default: export into a temporary folder)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from xlt_fairseq.data import formats
    from xlt_fairseq.experiments.evaluation import ner_metrics
    from xlt_fairseq.exporters.onnx import FILES, OnnxHead, export_onnx, read_export
    from xlt_fairseq.models.xlt_model import XLTModel

    dev = formats.read_tagged(args.dev, args.format, tagged=True, lang=args.lang)
    work = tempfile.mkdtemp(prefix="xlt-bench-onnx-")
    folder = args.onnx_dir
    t0 = time.perf_counter()
    if folder is None:
        folder = os.path.join(work, "onnx")
        export_onnx(args.model, args.task, folder, quantize="int8", check_dev=args.dev, dev_format=args.format, lang=args.lang)
    export_s = time.perf_counter() - t0
    info = read_export(folder)
    hub = XLTModel.from_pretrained(args.model, device="cpu")
    engines = {
        "torch": None,
        "onnx-fp32": OnnxHead(os.path.join(folder, FILES["fp32"]), threads=1),
        "onnx-int8": OnnxHead(os.path.join(folder, FILES["int8"]), threads=1),
    }

    def use(name):
        hub.engines.pop(args.task, None)
        if engines[name] is not None:
            hub.engines[args.task] = engines[name]

    texts = [" ".join(s.tokens) for s in dev[: args.sentences]]

    def block(name):
        def run():
            use(name)
            hub.tag(texts, args.lang, args.task, args.batch_size)

        return run

    cpu, wall = common.alternate({name: block(name) for name in engines}, args.rounds, warmup=1)

    labels = hub.labels(args.task)
    gold = [list(s.tags) for s in dev]
    quality, predictions = {}, {}
    for name in engines:
        use(name)
        probs = hub.tag_probs([s.tokens for s in dev], args.task, args.batch_size)
        predictions[name] = [[labels[int(i)] for i in p.argmax(dim=-1)] if len(p) else [] for p in probs]
        m = ner_metrics(gold, predictions[name])
        quality[name] = {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}
    words = sum(len(p) for p in predictions["torch"])
    for name in engines:
        same = sum(a == b for x, y in zip(predictions["torch"], predictions[name]) for a, b in zip(x, y))
        quality[name]["words_as_torch"] = same / words

    n = len(texts)
    results = {}
    for name in engines:
        results[name] = {
            "sentences_per_s_cpu": n / common.median(cpu[name]),
            "sentences_per_s_wall": n / common.median(wall[name]),
            "cpu_s": cpu[name],
            "wall_s": wall[name],
            **quality[name],
            "f1_minus_torch": quality[name]["f1"] - quality["torch"]["f1"],
        }
        if name != "torch":
            results[name]["speedup_cpu"] = common.ratio_stats(cpu["torch"], cpu[name])
            results[name]["speedup_wall"] = common.ratio_stats(wall["torch"], wall[name])
    sizes = {p: os.path.getsize(os.path.join(folder, f)) for p, f in info["files"].items()}
    sizes["torch model.pt"] = os.path.getsize(os.path.join(args.model, "model.pt"))
    out = {
        "benchmark": "P11 NER inference: torch vs ONNX fp32 vs ONNX int8 (onnxruntime), one thread",
        "model": os.path.abspath(args.model),
        "dev": os.path.abspath(args.dev),
        "dev_sentences": len(dev),
        "dev_words": words,
        "timed_sentences": n,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "threads": 1,
        "export_s": export_s,
        "export_checks": info["checks"],
        "opset": info["opset"],
        "file_bytes": sizes,
        "results": results,
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_name(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "loadavg": os.getloadavg(),
        },
        "git": _git(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "onnx.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(table(out))
    print(f"wrote {path}")


def table(out) -> str:
    rows = [
        "| engine | sentences/s (CPU time) | speed-up, median [min, max] | sentences/s (wall) | dev entity F1 | "
        "F1 - torch | words labelled as torch | file |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    sizes = out["file_bytes"]
    files = {"torch": "torch model.pt", "onnx-fp32": "fp32", "onnx-int8": "int8"}
    for name, r in out["results"].items():
        s = r.get("speedup_cpu")
        speed = "1" if s is None else f"**{s['median']:.2f}x** [{s['min']:.2f}, {s['max']:.2f}]"
        rows.append(
            f"| {name} | {r['sentences_per_s_cpu']:.1f} | {speed} | {r['sentences_per_s_wall']:.1f} | {r['f1']:.4f} | "
            f"{r['f1_minus_torch']:+.4f} | {100 * r['words_as_torch']:.2f} % | {sizes[files[name]] / 2**20:.0f} MB |"
        )
    return "\n".join(rows)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git():
    try:
        return subprocess.run(
            ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
