# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Self-training, step 1: label unlabelled target-language text with a trained
tagger and keep the sentences it is confident about, as a CoNLL file to train on
next to the gold data (xlt_fairseq/self_training.py says what is kept and why):

    xlt-pseudo-label --model MODEL_DIR --text ../shared/data/mlm/sw/train.txt --lang sw \
        --exclude sw/train.conll --threshold 0.9 --max-sentences 2000 --out sw/pseudo.conll
    cat sw/train.conll sw/pseudo.conll > sw/train+pseudo.conll    # then preprocess and train again

--model is a folder written by xlt-export, or a checkpoint (with --data, its data root).
"""

import argparse
import json
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (xlt-export) or checkpoint file")
    parser.add_argument("--data", help="with a checkpoint: its data root (default: the one it was trained on)")
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
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--out", required=True, help="CoNLL file to write")
    args = parser.parse_args(argv)

    from xlt_fairseq.data.formats import DataFormatError, read_tagged
    from xlt_fairseq.hardware import configure_threads
    from xlt_fairseq.models.hub_interface import HubError, from_pretrained
    from xlt_fairseq.self_training import pseudo_label, read_unlabelled, write_conll

    configure_threads()
    try:
        gold = []
        for path in args.exclude:
            gold += [s.tokens for s in read_tagged(path, "conll")]
        sentences = read_unlabelled(args.text, exclude=gold)
        device = "cpu" if args.cpu else None
        if os.path.isfile(args.model):
            folder, name = os.path.split(os.path.abspath(args.model))
            hub = from_pretrained(folder, name, args.data or ".", device=device)
        else:
            hub = from_pretrained(args.model, device=device)
        if args.lang:
            hub._check_lang(args.lang)
        kept = pseudo_label(
            hub, sentences, args.threshold, args.task, args.batch_size, args.max_sentences, args.empty_ratio
        )
        n = write_conll(args.out, kept)
    except (DataFormatError, HubError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"out": args.out, "unlabelled": len(sentences), "kept": n, "threshold": args.threshold}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
