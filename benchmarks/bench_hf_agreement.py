#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Word agreement of the transformers export with the plugin: the model folder's
NER head exported by ``xlt-export-hf``, run by transformers' ``pipeline`` with the
export's ``xlt-token-classification`` pipeline, against ``XLTModel.tag`` (what
``xlt-predict`` writes), word by word (the same word, offsets and label) on
real sentences: the dev file's sentences (tokens joined by spaces) and raw lines
of running text (``--text``: punctuation and quotes attached to words, as users
send them). One thread; sentences/s of both next to it.

    python benchmarks/bench_hf_agreement.py --model MODEL_DIR --dev ../shared/data/ner/sw/dev.conll \\
        --text ../shared/data/mlm/sw/train.txt --lines 1000 --out benchmarks/results
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def agreement(pipe, hub, texts, batch_size):
    t0 = time.process_time()
    theirs = pipe(texts, ignore_labels=[], batch_size=batch_size)
    pipe_s = time.process_time() - t0
    t0 = time.process_time()
    mine = hub.tag(texts, batch_size=batch_size)
    plugin_s = time.process_time() - t0
    words = same = same_segmentation = 0
    examples = []
    for text, got, want in zip(texts, theirs, mine):
        g = [(r["word"], r["start"], r["end"], r["entity"]) for r in got]
        w = [(r["word"], r["start"], r["end"], r["label"]) for r in want]
        words += len(w)
        same += sum(a == b for a, b in zip(g, w)) if len(g) == len(w) else 0
        same_segmentation += [x[:3] for x in g] == [x[:3] for x in w]
        if g != w and len(examples) < 5:
            examples.append({"text": text, "pipeline": g[:20], "plugin": w[:20]})
    return {
        "sentences": len(texts),
        "words": words,
        "words_agreeing": same,
        "word_agreement": same / max(words, 1),
        "sentences_segmented_alike": same_segmentation,
        "pipeline_sentences_per_s_cpu": len(texts) / pipe_s,
        "plugin_sentences_per_s_cpu": len(texts) / plugin_s,
        "disagreements": examples,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--text", help="raw text, one sentence/paragraph per line")
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from xlt_fairseq.data import formats
    from xlt_fairseq.exporters.hf import export_hf, import_transformers
    from xlt_fairseq.models.xlt_model import XLTModel

    transformers = import_transformers()
    folder = os.path.join(tempfile.mkdtemp(prefix="xlt-bench-hf-"), "hf")
    export_hf(args.model, "ner", folder)
    pipe = transformers.pipeline(
        "token-classification",
        model=transformers.AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True),
        tokenizer=transformers.AutoTokenizer.from_pretrained(folder),
        pipeline_class=get_class_from_dynamic_module("pipeline_xlt.XLTTokenClassificationPipeline", folder),
    )
    hub = XLTModel.from_pretrained(args.model, device="cpu")
    sets = {"dev": [" ".join(s.tokens) for s in formats.read_tagged(args.dev, "conll")]}
    if args.text:
        lines = [t for t in formats.read_text_lines(args.text, allow_empty_lines=True) if t.strip()]
        sets["text"] = lines[: args.lines]
    results = {name: agreement(pipe, hub, texts, args.batch_size) for name, texts in sets.items()}
    total_words = sum(r["words"] for r in results.values())
    total_same = sum(r["words_agreeing"] for r in results.values())
    out = {
        "benchmark": "word agreement of the transformers export (xlt-token-classification pipeline) with XLTModel.tag",
        "model": os.path.abspath(args.model),
        "dev": os.path.abspath(args.dev),
        "text": os.path.abspath(args.text) if args.text else None,
        "results": results,
        "sentences": sum(r["sentences"] for r in results.values()),
        "words": total_words,
        "word_agreement": total_same / max(total_words, 1),
        "transformers": transformers.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "hf_agreement.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
        f.write("\n")
    for name, r in results.items():
        print(f"{name}: {r['sentences']} sentences, {r['words']} words, agreement {100 * r['word_agreement']:.3f} %, "
              f"segmented alike {r['sentences_segmented_alike']}; sentences/s pipeline "
              f"{r['pipeline_sentences_per_s_cpu']:.1f}, plugin {r['plugin_sentences_per_s_cpu']:.1f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
