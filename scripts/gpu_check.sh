#!/bin/bash
# GPU check: the plugin at XLM-R base dimensions (12 x 768, FFN 3072, 12 heads; random init) trained
# with fairseq's Trainer in fp32 and in fp16 (fairseq's dynamic loss scaling), next to vanilla fairseq
# sentence_prediction on a RoBERTa of the same size, on the same batches; then the full multi-task model
# with the adversarial branch in fp16. Prints words/s, peak GPU memory and model FLOPs utilisation (MFU).
#
#   bash scripts/gpu_check.sh [UPDATES]        # default 300 updates per run; a few minutes on one H100
#
# Generates its own data (synthetic text, a 16k sentencepiece vocabulary) under $WORK (default: a new
# temporary folder). MFU = counted matmul FLOPs (forward + backward, torch's FlopCounterMode) x updates/s
# / the GPU's dense peak (fp16 tensor cores for fp16, fp32 without TF32 for fp32, as torch defaults);
# set PEAK_TFLOPS_FP16 / PEAK_TFLOPS_FP32 for a GPU the table below does not know.
set -euo pipefail
cd "$(dirname "$0")/.."
export UPDATES=${1:-300}
export WORK=${WORK:-$(mktemp -d)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
${PYTHON:-python} - <<'EOF'
import gc
import math
import os
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
if not torch.cuda.is_available():
    sys.exit("scripts/gpu_check.sh needs a CUDA GPU")
import bench_training as bt  # noqa: E402
import common  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

# dense peak TFLOP/s: (fp16 tensor core, fp32 without TF32)
PEAKS = {"H200": (989.4, 66.9), "H100 NVL": (835.0, 60.0), "H100 PCIe": (756.5, 51.2), "H100": (989.4, 66.9),
         "A100": (312.0, 19.5), "L40S": (362.0, 91.6), "A10": (125.0, 31.2)}
updates, work, batch = int(os.environ["UPDATES"]), os.environ["WORK"], 32
device = torch.cuda.get_device_name()
peak = next((v for k, v in PEAKS.items() if k in device), (None, None))
peak = (float(os.environ.get("PEAK_TFLOPS_FP16", peak[0] or "nan")),
        float(os.environ.get("PEAK_TFLOPS_FP32", peak[1] or "nan")))

common.quiet_logging()
print(f"{device}; data and vocabulary in {work} ...", flush=True)
paths = common.prepare(work, vocab_size=16000, n_train=3000, n_eval=50, lengths=(40, 120), n_types=40000)
common.set_dims(dict(common.BASE, dec_layers=6))  # xlt_xlmr_base: 12 x 768, 6-layer decoder
cpu_free = [a for a in common.COMMON_TRAIN if a != "--cpu"]


def measure(label, variant, precision):
    common.COMMON_TRAIN = cpu_free + (["--fp16"] if precision == "fp16" else [])
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    trainer, batches, _ = bt.make_variant(paths, variant, 16, batch)
    tokens = [b["ntokens"] if "net_input" in b else sum(s["ntokens"] for s in b.values()) for b in batches]
    for b in batches[:4]:  # warm-up (and the first loss-scale adjustments)
        trainer.train_step([b])
    with FlopCounterMode(display=False) as counter:
        for b in batches:
            trainer.train_step([b])
    flops_per_word = counter.get_total_flops() / sum(tokens)
    torch.cuda.synchronize()
    t0, words = time.perf_counter(), 0
    for i in range(updates):
        out = trainer.train_step([batches[i % len(batches)]])
        words += tokens[i % len(batches)]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    wps = words / seconds
    p = peak[0] if precision == "fp16" else peak[1]
    opt = trainer.optimizer
    scale = opt.scaler.loss_scale if hasattr(opt, "scaler") and opt.scaler is not None else None
    row = {"run": label, "precision": precision, "words/s": wps, "updates/s": updates / seconds,
           "peak GiB": torch.cuda.max_memory_allocated() / 2**30, "TFLOP/s": flops_per_word * wps / 1e12,
           "MFU": flops_per_word * wps / (p * 1e12), "loss": float(out["loss"]) if out else float("nan"),
           "loss scale": scale}
    print(row, flush=True)
    assert math.isfinite(row["loss"]), f"{label} {precision}: non-finite loss"
    del trainer, batches
    return row


rows = []
for precision in ("fp32", "fp16"):
    rows.append(measure("xlt sentiment (single task)", "p1:sentiment:xlt", precision))
    rows.append(measure("fairseq sentence_prediction (roberta)", "p1:sentiment:vanilla", precision))
rows.append(measure("xlt 4 tasks x 2 languages + adversarial", "p2:on", "fp16"))

print(f"\n{device}, {updates} updates per run, batches of {batch} sentences per task, peak TFLOP/s "
      f"fp16 {peak[0]} / fp32 {peak[1]}\n")
print("| run | precision | words/s | peak GPU memory (GiB) | model TFLOP/s | MFU | last loss | loss scale |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['run']} | {r['precision']} | {r['words/s']:,.0f} | {r['peak GiB']:.2f} | {r['TFLOP/s']:.1f} | "
          f"{r['MFU']:.1%} | {r['loss']:.3f} | {r['loss scale'] or '-'} |")
for precision in ("fp32", "fp16"):
    x, v = [r for r in rows if r["precision"] == precision][:2]
    print(f"xlt / vanilla words/s, {precision}: {x['words/s'] / v['words/s']:.3f}")
EOF
