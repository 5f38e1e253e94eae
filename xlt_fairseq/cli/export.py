# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-export: a trained checkpoint as a self-contained model folder (weights
without optimizer state, dictionary, sentencepiece model, label sets, languages,
model config), which xlt-predict, xlt-evaluate, ``XLTModel.from_pretrained`` and
fairseq-interactive load without the training data or encoder folders.

    xlt-export --checkpoint checkpoints/checkpoint_best.pt --out model_dir
    xlt-export --checkpoint checkpoints/checkpoint_best.pt --out model_fp16 --half
"""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xlt-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of fairseq-train --task xlt_multitask")
    parser.add_argument("--out", required=True, help="the model folder to write")
    parser.add_argument("--data", help="the run's data root (default: the one the checkpoint recorded)")
    parser.add_argument("--encoder-dir", help="the encoder directory (default: the data root's)")
    parser.add_argument("--half", action="store_true", help="store the weights in fp16 (half the size)")
    parser.add_argument("--force", action="store_true", help="replace an existing, non-empty --out")
    return parser


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):
        from ..export import export_model

        info = export_model(args.checkpoint, args.out, args.data, args.encoder_dir, args.half, args.force)
        return {"out": args.out, **info}

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
