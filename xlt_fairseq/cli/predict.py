# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-predict: tag, classify or translate raw text with a trained model.

Input (``--input``, default stdin): ``text`` one raw sentence/text per line
(default), ``jsonl`` JSON Lines with ``"text"`` (or ``"tokens"``, a list of
words, for tagging; other keys are copied to the output), or any format of the
data layer (``tokens``/``conll``/... for tagging; ``tsv``/``csv``/``marc-jsonl``
for sentiment). Output (``--output``, default stdout): JSON Lines (default) with
probabilities/scores, ``conll`` (tagging: ``word<TAB>label``), or ``tsv``.

    xlt-predict --model model_dir --task ner --lang sw < sentences.txt
    echo "habari njema sana" | xlt-predict --model model_dir --task sentiment
    xlt-predict --model model_dir --task translation --input news.en --output-format tsv
    xlt-predict --model model_dir --task ner --engine onnx-int8 < sentences.txt     # after xlt-export-onnx
    xlt-predict --checkpoint checkpoints/checkpoint_best.pt --task ner --format conll --input test.conll
"""

import argparse
import json
import sys
from typing import List

OUTPUT_FORMATS = ("jsonl", "conll", "tsv")


def build_parser():
    from .common import add_model_arguments

    parser = argparse.ArgumentParser(
        prog="xlt-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--task", required=True, help="ner, sentiment, translation, or an auxiliary tagging head")
    parser.add_argument("--input", default="-", help="input file (default: stdin)")
    parser.add_argument(
        "--format",
        default="text",
        help="input format: text (one text per line; default), jsonl, or a data-layer format "
        "(tokens, conll, conll-space, wikiann-idx, panx for tagging; tsv, csv, marc-jsonl for sentiment)",
    )
    parser.add_argument("--text-field", default="text", help="jsonl: the key of the text (default: text)")
    parser.add_argument("--output", default="-", help="output file (default: stdout); written when complete")
    parser.add_argument("--output-format", default="jsonl", choices=OUTPUT_FORMATS)
    parser.add_argument("--lang", help="input language (checked against the model's; panx/marc-jsonl check it too)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beam", type=int, default=5, help="translation: beam size")
    parser.add_argument("--nbest", type=int, default=1, help="translation: hypotheses per input (jsonl)")
    parser.add_argument("--max-len-a", type=float, default=1.2, help="translation: max length a*source+b")
    parser.add_argument("--max-len-b", type=int, default=10)
    parser.add_argument("--half", action="store_true", help="fp16 inference (GPU only)")
    parser.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "onnx", "onnx-int8"),
        help="tagging/classification: run the head with its ONNX export (fp32 or int8; xlt-export-onnx) "
        "in onnxruntime instead of torch",
    )
    parser.add_argument("--onnx-dir", help="--engine onnx*: the export's folder (default: MODEL/onnx/TASK)")
    return parser


def read_inputs(task_kind: str, path: str, fmt: str, text_field: str, lang=None) -> List[dict]:
    """One dict per input: ``text`` or ``tokens``, plus pass-through keys of JSON Lines input."""
    from ..data import formats

    if fmt == "text":
        return [{"text": t} for t in formats.read_text_lines(path, allow_empty_lines=True)]
    if fmt == "jsonl":
        rows = formats.read_json_lines(path, text_field, "tokens" if task_kind == "tagging" else None)
        out = []
        for row in rows:
            row.pop("_line")
            if text_field != "text" and text_field in row:
                row["text"] = row.pop(text_field)
            out.append(row)
        return out
    if task_kind == "tagging":
        if fmt not in formats.NER_FORMATS:
            raise ValueError(
                f"--format {fmt}: not an input format of a tagging task (text, jsonl, {formats.NER_FORMATS})"
            )
        return [{"tokens": s.tokens} for s in formats.read_tagged(path, fmt, tagged=fmt != "tokens", lang=lang)]
    if task_kind == "classification":
        if fmt not in formats.SENTIMENT_FORMATS:
            raise ValueError(
                f"--format {fmt}: not an input format of sentiment (text, jsonl, {formats.SENTIMENT_FORMATS})"
            )
        return [{"text": x.text} for x in formats.read_classification(path, fmt, labelled=False, language=lang)]
    raise ValueError(f"--format {fmt}: translation reads text or jsonl")


def predict(hub, task: str, inputs: List[dict], args) -> List[dict]:
    """The inputs with their predictions added."""
    from ..data.task_names import builtin_kind

    kind = builtin_kind(task)
    if kind == "tagging":
        words = hub.tag([x["tokens"] if "tokens" in x else x["text"] for x in inputs], args.lang, task, args.batch_size)
        return [dict(x, words=w) for x, w in zip(inputs, words)]
    if kind == "classification":
        results = hub.classify([x["text"] for x in inputs], task, args.lang, args.batch_size)
        return [dict(x, **r) for x, r in zip(inputs, results)]
    if kind == "translation":
        results = hub.translate(
            [x["text"] for x in inputs],
            beam=args.beam,
            nbest=args.nbest,
            max_len_a=args.max_len_a,
            max_len_b=args.max_len_b,
            batch_size=args.batch_size,
        )
        return [dict(x, **r) for x, r in zip(inputs, results)]
    raise ValueError(f"--task {task}: nothing to predict for a {kind} task")


def format_rows(kind: str, rows: List[dict], output_format: str) -> List[str]:
    if output_format == "jsonl":
        return [json.dumps(r, ensure_ascii=False) for r in rows]
    out = []
    if kind == "tagging":
        for r in rows:
            for w in r["words"]:
                cols = [w["word"], w["label"]] + ([f"{w['prob']:.6f}"] if output_format == "tsv" else [])
                out.append("\t".join(cols))
            out.append("")
        return out
    if output_format == "conll":
        raise ValueError("--output-format conll is for tagging tasks; use jsonl or tsv")
    if kind == "classification":
        return [f"{r['label']}\t{r['prob']:.6f}\t{r['text']}" for r in rows]
    return [f"{r['translation']}\t{r['score']:.6f}" for r in rows]


def main(argv=None) -> int:
    from .common import input_path, load, report, setup, user_errors, write_output

    args = build_parser().parse_args(argv)
    setup(args)
    errors = user_errors()
    with input_path(args.input) as path:
        try:
            from ..data.task_names import builtin_kind

            kind = builtin_kind(args.task)
            if args.output_format == "conll" and kind != "tagging":
                raise ValueError("--output-format conll is for tagging tasks; use jsonl or tsv")
            inputs = read_inputs(kind, path, args.format, args.text_field, args.lang)
            hub = load(args, args.half)
            if kind != "translation" and args.task not in hub.heads:
                raise ValueError(f"--task {args.task}: the model has no such head (heads: {', '.join(hub.heads)})")
            if args.engine != "torch":
                from ..exporters.onnx import ENGINES

                if kind not in ("tagging", "classification"):
                    raise ValueError(f"--engine {args.engine}: only tagging and classification heads run in ONNX")
                hub.use_onnx(args.task, args.onnx_dir, ENGINES[args.engine])
            lines = format_rows(kind, predict(hub, args.task, inputs, args), args.output_format)
            write_output(args.output, lines)
        except errors as e:
            return report(e, path if args.input == "-" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
