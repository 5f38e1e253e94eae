# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-export-onnx: one tagging or classification head of a trained model (with
its encoder) as an ONNX graph for onnxruntime, optionally dynamically quantised
to int8. Opset 17; input ``input_ids`` (int64, [batch, sequence]), output
``logits`` ([batch, sequence, labels] for tagging, [batch, labels] for
classification); batch and sequence are dynamic axes.

Checked before anything is written: the fp32 logits equal the torch model's
within --atol on padded batches of real sentences; with --check-dev, entity F1
(tagging) or accuracy (classification) of every exported precision is within
--max-drop of the torch model's on that file, or the export is refused.

    xlt-export-onnx --model model_dir --task ner --quantize int8 --check-dev dev.conll --lang sw
    xlt-predict --model model_dir --task ner --engine onnx-int8 < sentences.txt

Written by default into the model folder (MODEL/onnx/TASK/: model.onnx,
model.int8.onnx, xlt_onnx.json), where --engine onnx finds it.
"""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xlt-export-onnx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a model folder written by xlt-export (or a checkpoint)")
    parser.add_argument("--task", required=True, help="the head: ner, sentiment, or an auxiliary tagging head")
    parser.add_argument("--out", help="the folder to write (default: MODEL/onnx/TASK)")
    parser.add_argument("--quantize", choices=["int8"], help="also write model.int8.onnx (dynamic quantisation)")
    parser.add_argument("--check-text", help="a file of sentences (one per line) to compare the logits on")
    parser.add_argument("--check-dev", help="a labelled dev file: the ONNX models' F1/accuracy must be the torch one's")
    parser.add_argument("--format", help="--check-dev's format (default: conll for tagging, tsv for sentiment)")
    parser.add_argument("--lang", help="--check-dev's language (checked against the model's)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest fp32 logit difference accepted (1e-4)")
    parser.add_argument(
        "--max-drop", type=float, default=0.005, help="largest F1/accuracy drop on --check-dev accepted (0.005)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="--check-dev's batch size")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out that xlt-export-onnx wrote")
    return parser


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):  # (after parsing: the exporter imports torch and fairseq)
        from ..data import formats
        from ..data.outputs import check_outputs
        from ..exporters.onnx import export_onnx

        check_outputs([("--out", args.out)], [("--check-text", args.check_text), ("--check-dev", args.check_dev)])
        texts = formats.read_text_lines(args.check_text) if args.check_text else None
        return export_onnx(
            args.model,
            args.task,
            args.out,
            quantize=args.quantize,
            check_texts=texts,
            check_dev=args.check_dev,
            dev_format=args.format,
            lang=args.lang,
            atol=args.atol,
            max_drop=args.max_drop,
            batch_size=args.batch_size,
            force=args.force,
        )

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
