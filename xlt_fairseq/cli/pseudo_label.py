# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Self-training, step 1: label unlabelled target-language text with a trained
tagger and keep the sentences it is confident about, as a CoNLL file to train on
next to the gold data (xlt_fairseq/self_training.py says what is kept and why):

    xlt-pseudo-label --model MODEL_DIR --text ../shared/data/mlm/sw/train.txt --lang sw \
        --exclude sw/train.conll --threshold 0.9 --max-sentences 2000 --out sw/pseudo.conll
    cat sw/train.conll sw/pseudo.conll > sw/train+pseudo.conll    # then preprocess and train again

--model is a folder written by xlt-export; --checkpoint a training checkpoint (with --data, its data root).
"""

import argparse
import sys


def build_parser():
    from .common import add_model_arguments

    parser = argparse.ArgumentParser(
        prog="xlt-pseudo-label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--text", required=True, help="unlabelled text, one sentence per line")
    parser.add_argument("--lang", help="the text's language (checked against the model's)")
    parser.add_argument("--task", default="ner", help="the tagging head (default: ner)")
    parser.add_argument("--exclude", nargs="*", default=[], help="CoNLL files whose sentences are left out (gold)")
    parser.add_argument("--threshold", type=float, default=0.9, help="minimum probability of every word's label")
    parser.add_argument("--max-sentences", type=int, help="keep at most this many (most confident first)")
    parser.add_argument(
        "--empty-ratio", type=float, default=1.0, help="sentences without entities: at most this times those with"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", required=True, help="CoNLL file to write")
    return parser


def main(argv=None) -> int:
    from xlt_fairseq.data.formats import read_tagged
    from xlt_fairseq.self_training import pseudo_label, read_unlabelled, write_conll

    from .common import load, model_inputs, run_tool

    def work(args):
        from xlt_fairseq.data.outputs import check_outputs

        sources = [("--text", args.text)] + [("--exclude", p) for p in args.exclude] + model_inputs(args)
        check_outputs([("--out", args.out)], sources)  # before any work
        gold = []
        for path in args.exclude:
            gold += [s.tokens for s in read_tagged(path, "conll")]
        sentences = read_unlabelled(args.text, exclude=gold)
        hub = load(args)
        if args.lang:
            hub.check_language(args.lang, args.task)
        kept = pseudo_label(
            hub, sentences, args.threshold, args.task, args.batch_size, args.max_sentences, args.empty_ratio
        )
        n = write_conll(args.out, kept, sources)
        return {"out": args.out, "unlabelled": len(sentences), "kept": n, "threshold": args.threshold}

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
