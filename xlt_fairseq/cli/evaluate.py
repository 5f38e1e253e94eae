# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-evaluate: score a trained model on a raw test file (any format
preprocessing reads) and print the metrics as JSON: entity F1 overall and per
type (seqeval), accuracy and macro-F1 (scikit-learn), BLEU with its signature
(sacreBLEU; translation generated in-process). Every test example is scored.

    xlt-evaluate --model model_dir --task ner --lang sw --test sw/test.conll
    xlt-evaluate --checkpoint ckpt/checkpoint_best.pt --task translation --pair en-sw --test raw/test
"""

import argparse
import sys

from ..data.spec import add_spec_arguments
from ..data.task_names import LABELLED_TASKS

READING_OPTIONS = (
    "tag_scheme",
    "map_label",
    "drop_label",
    "text_column",
    "label_column",
    "delimiter",
    "marc_labels",
    "include_title",
)


def build_parser():
    from .common import add_model_arguments

    parser = argparse.ArgumentParser(
        prog="xlt-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--task", required=True, choices=LABELLED_TASKS)
    parser.add_argument("--lang", help="language of the test file (ner, sentiment)")
    parser.add_argument("--pair", help="SRC-TGT (translation); --test is then the prefix of PREFIX.SRC/PREFIX.TGT")
    parser.add_argument("--test", required=True, help="raw test file (translation: its prefix)")
    parser.add_argument("--format", help="input format (see xlt_fairseq/data/formats.py; default: the task's)")
    # how the test file is read: the same options (names, types, defaults) as xlt-preprocess, from CorpusSpec
    add_spec_arguments(parser, names=READING_OPTIONS)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beam", type=int, default=5, help="translation beam")
    parser.add_argument("--save-predictions", help="write the predictions here (JSON Lines)")
    return parser


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):
        from ..data.manifest import parse_label_map
        from ..data.outputs import check_outputs
        from ..experiments.evaluation import evaluate_file, make_spec
        from ..generation import check_generation_options
        from .common import model_inputs

        check_generation_options(beam=args.beam)  # before the model is loaded
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
        check_outputs([("--save-predictions", args.save_predictions)], spec.input_paths() + model_inputs(args))
        return evaluate_file(
            args.model or args.checkpoint,
            spec,
            args.data,
            args.encoder_dir,
            args.batch_size,
            {"beam": args.beam},
            args.cpu,
            args.save_predictions,
        )

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
