#!/usr/bin/env python
# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Evaluate a checkpoint on a raw test file (any format preprocessing reads) and
print the metrics as JSON: entity F1 overall and per type (seqeval), accuracy and
macro-F1 (scikit-learn), BLEU with its signature (sacreBLEU, translation through
fairseq-interactive). Every test example is scored.

    python scripts/evaluate.py --checkpoint ckpt/checkpoint_best.pt --task ner --lang sw --test sw/test.conll
    python scripts/evaluate.py --checkpoint ckpt/checkpoint_best.pt --task translation --pair en-sw --test raw/test
"""

import argparse
import json
import logging
import sys

from xlt_fairseq.data.formats import DataFormatError
from xlt_fairseq.data.manifest import parse_label_map
from xlt_fairseq.experiments.evaluation import EvaluationError, evaluate_file, make_spec


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of fairseq-train (xlt_model)")
    parser.add_argument("--task", required=True, choices=["ner", "sentiment", "translation"])
    parser.add_argument("--lang", help="language of the test file (ner, sentiment)")
    parser.add_argument("--pair", help="SRC-TGT (translation); --test is then the prefix of PREFIX.SRC/PREFIX.TGT")
    parser.add_argument("--test", required=True, help="raw test file (translation: its prefix)")
    parser.add_argument("--format", help="input format (see xlt_fairseq/data/formats.py; default: the task's)")
    parser.add_argument("--tag-scheme", default="iob2", help="NER tag scheme of the file: iob2, iob1, bioes, bilou")
    parser.add_argument("--map-label", nargs="*", default=[], metavar="FROM=TO", help="e.g. DATE=O (as preprocessing)")
    parser.add_argument("--drop-label", nargs="*", default=[], help="sentiment labels to leave out")
    parser.add_argument("--text-column", default="text", help="csv: the text column")
    parser.add_argument("--label-column", default="label", help="csv: the label column")
    parser.add_argument("--delimiter", default=",", help="csv: the delimiter")
    parser.add_argument("--marc-labels", default="binary", choices=["binary", "stars"], help="marc-jsonl labels")
    parser.add_argument("--include-title", action="store_true", help="marc-jsonl: title before the body")
    parser.add_argument("--data", help="data root (default: the one the checkpoint was trained on)")
    parser.add_argument("--encoder-dir", help="encoder directory (default: the data root's, from meta.json)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beam", type=int, default=5, help="translation beam")
    parser.add_argument("--save-predictions", help="write the predictions here (JSON Lines)")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    from xlt_fairseq.hardware import configure_threads

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", force=True)
    try:
        options = {
            "tag_scheme": args.tag_scheme,
            "map_label": parse_label_map(args.map_label),
            "drop_label": args.drop_label,
        }
        if args.task == "sentiment":
            options.update(
                text_column=args.text_column,
                label_column=args.label_column,
                delimiter=args.delimiter,
                marc_labels=args.marc_labels,
                include_title=args.include_title,
            )
        spec = make_spec(args.task, args.test, args.lang, args.pair, args.format, **options)
        result = evaluate_file(
            args.checkpoint,
            spec,
            args.data,
            args.encoder_dir,
            args.batch_size,
            {"beam": args.beam},
            args.cpu,
            args.save_predictions,
        )
    except (DataFormatError, EvaluationError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
