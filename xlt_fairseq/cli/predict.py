# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-predict: tag, classify or translate raw text with a trained model.

Input (``--input``, default stdin): ``text`` one raw sentence/text per line
(default), ``jsonl`` JSON Lines with ``"text"`` (or ``"tokens"``, a list of
words, for tagging; other keys are copied to the output), or any format of the
data layer (``tokens``/``conll``/... for tagging; ``tsv``/``csv``/``marc-jsonl``
for sentiment). Output (``--output``, default stdout): JSON Lines (default) with
probabilities/scores, ``spans`` (tagging: JSON Lines, each input with its
``entities``: text, label, start, end, score = the mean of the entity's word
probabilities; offsets are characters of the input line), ``conll`` (tagging:
``word<TAB>label``), or ``tsv``.

Text and JSON Lines are streamed: the input is checked in one pass (an error
names its line before anything is written), then read, predicted and written
``--chunk-size`` inputs at a time (sorted by length within a chunk), in memory
that does not grow with the input; the data-layer formats are read whole. A
progress bar goes to stderr when it is a terminal; ``--output`` is renamed into
place when complete.

    xlt-predict --model model_dir --task ner --lang sw < sentences.txt
    xlt-predict --model model_dir --task ner --lang sw --output-format spans < sentences.txt
    echo "habari njema sana" | xlt-predict --model model_dir --task sentiment
    xlt-predict --model model_dir --task translation --input news.en --output-format tsv
    xlt-predict --model model_dir --task ner --engine onnx-int8 < sentences.txt     # after xlt-export-onnx
    xlt-predict --checkpoint checkpoints/checkpoint_best.pt --task ner --format conll --input test.conll
"""

import argparse
import itertools
import json
import logging
import sys
from typing import Iterator, List

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("jsonl", "spans", "conll", "tsv")
TAGGING_ONLY = ("spans", "conll")
STREAMED_FORMATS = ("text", "jsonl")


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
    parser.add_argument("--output", default="-", help="output file (default: stdout); renamed into place when complete")
    parser.add_argument(
        "--output-format",
        default="jsonl",
        choices=OUTPUT_FORMATS,
        help="jsonl (default), spans (tagging: entities with character offsets and the mean word probability), "
        "conll (tagging), tsv",
    )
    parser.add_argument("--lang", help="input language (checked against the languages the task was trained on)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--chunk-size", type=int, default=1000, help="inputs read, predicted and written at a time (default: 1000)"
    )
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


def iter_inputs(task_kind: str, path: str, fmt: str, text_field: str, lang=None) -> Iterator[dict]:
    """One dict per input, as the file is read (``text``, ``jsonl``; the data-layer formats are
    read whole): ``text`` (a raw line, offsets of ``spans`` count in it) or ``tokens``, plus
    pass-through keys of JSON Lines input."""
    from ..data import formats

    if fmt == "text":
        return ({"text": line} for _, line in formats.iter_lines(path))
    if fmt == "jsonl":
        return (_json_input(row, text_field) for row in formats.iter_json_lines(path, text_field, _tokens(task_kind)))
    if task_kind == "tagging":
        if fmt not in formats.NER_FORMATS:
            raise ValueError(
                f"--format {fmt}: not an input format of a tagging task (text, jsonl, {formats.NER_FORMATS})"
            )
        return iter([{"tokens": s.tokens} for s in formats.read_tagged(path, fmt, tagged=fmt != "tokens", lang=lang)])
    if task_kind == "classification":
        if fmt not in formats.SENTIMENT_FORMATS:
            raise ValueError(
                f"--format {fmt}: not an input format of sentiment (text, jsonl, {formats.SENTIMENT_FORMATS})"
            )
        return iter([{"text": x.text} for x in formats.read_classification(path, fmt, labelled=False, language=lang)])
    raise ValueError(f"--format {fmt}: translation reads text or jsonl")


def _tokens(task_kind: str):
    return "tokens" if task_kind == "tagging" else None


def _json_input(row: dict, text_field: str) -> dict:
    row.pop("_line")
    if text_field != "text" and text_field in row:
        row["text"] = row.pop(text_field)
    return row


def read_inputs(task_kind: str, path: str, fmt: str, text_field: str, lang=None) -> List[dict]:
    """:func:`iter_inputs` as a list."""
    return list(iter_inputs(task_kind, path, fmt, text_field, lang))


def count_inputs(task_kind: str, path: str, fmt: str, text_field: str) -> int:
    """The number of inputs of a streamed file, checked in one pass without keeping them
    (an input error stops the tool before the model is loaded or anything is written)."""
    from ..data import formats

    if fmt == "text":
        return sum(1 for _ in formats.iter_lines(path))
    return sum(1 for _ in formats.iter_json_lines(path, text_field, _tokens(task_kind)))


def chunks(items: Iterator[dict], size: int) -> Iterator[List[dict]]:
    items = iter(items)
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


def predict(hub, task: str, inputs: List[dict], args, output_format: str = "jsonl") -> List[dict]:
    """The inputs with their predictions added (the records ``--output-format jsonl``/``spans`` writes,
    and xlt-serve answers). The hub sorts them by length for its batches and returns them in order."""
    from ..data.task_names import builtin_kind

    kind = builtin_kind(task)
    if kind == "tagging":
        texts = [x["tokens"] if "tokens" in x else x["text"] for x in inputs]
        if output_format == "spans":
            entities = hub.entities(texts, args.lang, task, args.batch_size)
            return [dict(x, entities=e) for x, e in zip(inputs, entities)]
        words = hub.tag(texts, args.lang, task, args.batch_size)
        return [dict(x, words=w) for x, w in zip(inputs, words)]
    if kind == "classification":
        results = hub.classify([x["text"] for x in inputs], task, args.lang, args.batch_size)
        return [dict(x, **r) for x, r in zip(inputs, results)]
    if kind == "translation":
        hub.check_language(args.lang, "translation")
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
    if output_format in ("jsonl", "spans"):
        return [json.dumps(r, ensure_ascii=False) for r in rows]
    out = []
    if kind == "tagging":
        for r in rows:
            for w in r["words"]:
                cols = [w["word"], w["label"]] + ([f"{w['prob']:.6f}"] if output_format == "tsv" else [])
                out.append("\t".join(cols))
            out.append("")
        return out
    if kind == "classification":
        return [f"{r['label']}\t{r['prob']:.6f}\t{r['text']}" for r in rows]
    return [f"{r['translation']}\t{r['score']:.6f}" for r in rows]


def check_request(hub, kind: str, task: str, output_format: str):
    if output_format in TAGGING_ONLY and kind != "tagging":
        raise ValueError(f"--output-format {output_format} is for tagging tasks; use jsonl or tsv")
    if kind != "translation" and task not in hub.heads:
        raise ValueError(f"--task {task}: the model has no such head (heads: {', '.join(hub.heads)})")


def warn_long_inputs(hub, kind: str):
    """One warning with the count of inputs longer than the model's positions."""
    n_pos = hub.max_pieces + 2
    if hub.counts["truncated"]:
        logger.warning(
            f"{hub.counts['truncated']} input(s) longer than the model's {n_pos} positions were truncated "
            "(the prediction reads their beginning only)"
        )
    if kind == "tagging" and hub.counts["windowed"]:
        logger.warning(
            f"{hub.counts['windowed']} sentence(s) longer than the model's {n_pos} positions were tagged in windows "
            "(every word is tagged; context does not cross a window's edge)"
        )


def run(args, path: str) -> None:
    """Predicts ``path`` (``--input``, or standard input copied to a file) into ``--output``."""
    import contextlib

    from tqdm import tqdm

    from ..data.outputs import check_outputs
    from ..data.task_names import builtin_kind
    from ..data.textio import atomic_output
    from ..generation import check_generation_options
    from .common import load, model_inputs

    sources = [("--input", args.input), ("--onnx-dir", args.onnx_dir)] + model_inputs(args)
    check_outputs([("--output", args.output)], sources)  # before any work
    check_generation_options(args.beam, args.nbest, None, args.max_len_a, args.max_len_b)  # before the model is loaded
    if args.chunk_size < 1 or args.batch_size < 1:
        raise ValueError("--chunk-size and --batch-size must be >= 1")
    kind = builtin_kind(args.task)
    if args.output_format in TAGGING_ONLY and kind != "tagging":
        raise ValueError(f"--output-format {args.output_format} is for tagging tasks; use jsonl or tsv")
    if args.engine != "torch" and kind not in ("tagging", "classification"):
        raise ValueError(f"--engine {args.engine}: only tagging and classification heads run in ONNX")
    total = None
    if args.format in STREAMED_FORMATS:
        total = count_inputs(kind, path, args.format, args.text_field)
        inputs = iter_inputs(kind, path, args.format, args.text_field, args.lang)
    else:  # read (and checked) whole before the model is loaded
        inputs = read_inputs(kind, path, args.format, args.text_field, args.lang)
        total = len(inputs)
    hub = load(args, args.half)
    check_request(hub, kind, args.task, args.output_format)
    if args.engine != "torch":
        from ..exporters.onnx import ENGINES

        hub.use_onnx(args.task, args.onnx_dir, ENGINES[args.engine])
    with contextlib.ExitStack() as stack:
        out = sys.stdout if args.output == "-" else stack.enter_context(atomic_output(args.output, sources, "--output"))
        bar = stack.enter_context(
            tqdm(total=total, unit="input", file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True)
        )
        for chunk in chunks(inputs, args.chunk_size):
            rows = predict(hub, args.task, chunk, args, args.output_format)
            out.write("".join(line + "\n" for line in format_rows(kind, rows, args.output_format)))
            out.flush()
            bar.update(len(chunk))
    warn_long_inputs(hub, kind)


def main(argv=None) -> int:
    from .common import input_path, interrupted, report, setup, user_errors

    args = build_parser().parse_args(argv)
    from ..data.staging import Interrupted, signals_as_exceptions

    setup(args)
    errors = user_errors()
    with signals_as_exceptions(), input_path(args.input) as path:
        try:
            run(args, path)
        except errors as e:
            return report(e, path if args.input == "-" else None)
        except (Interrupted, KeyboardInterrupt) as e:
            return interrupted(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
