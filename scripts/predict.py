#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Tag or classify raw text with a checkpoint, or translate it (through
fairseq-interactive), from a file or stdin. Output: NER token<TAB>tag (CoNLL),
sentiment label<TAB>text, translation one hypothesis per line.

    python scripts/predict.py --checkpoint ckpt/checkpoint_best.pt --task ner --input tokens.txt
    echo "habari njema sana" | python scripts/predict.py --checkpoint ckpt.pt --task sentiment
    python scripts/predict.py --checkpoint ckpt.pt --task translation --pair en-sw --input news.en
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile

from xlt_fairseq.data.formats import DataFormatError
from xlt_fairseq.experiments.evaluation import EvaluationError, predict_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of fairseq-train (xlt_model)")
    parser.add_argument("--task", required=True, choices=["ner", "sentiment", "translation"])
    parser.add_argument("--input", default="-", help="input file (default: stdin)")
    parser.add_argument(
        "--format",
        help="input format: ner tokens (one token per line, blank line between sentences; default) or a tagged "
        "format (tags ignored); sentiment text (one per line; default), tsv, csv, marc-jsonl; translation: text",
    )
    parser.add_argument("--lang", help="input language (checked by panx and marc-jsonl)")
    parser.add_argument("--pair", help="SRC-TGT for translation")
    parser.add_argument("--output", default="-", help="output file (default: stdout)")
    parser.add_argument("--data", help="data root (default: the one the checkpoint was trained on)")
    parser.add_argument("--encoder-dir", help="encoder directory (default: the data root's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    from xlt_fairseq.hardware import configure_threads

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", force=True)
    tmp = None
    try:
        path = args.input
        if path == "-":
            tmp = tempfile.mkdtemp(prefix="xlt-predict-")
            path = os.path.join(tmp, "stdin.txt")
            with open(path, "w", encoding="utf-8") as f:
                shutil.copyfileobj(sys.stdin, f)
        lines = predict_file(
            args.checkpoint,
            args.task,
            path,
            args.format,
            args.lang,
            args.pair,
            args.data,
            args.encoder_dir,
            args.batch_size,
            {"beam": args.beam},
            args.cpu,
        )
    except (DataFormatError, EvaluationError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    out.write("".join(line + "\n" for line in lines))
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
