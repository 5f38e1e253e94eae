# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-export-hf: one task head of a trained model as a Hugging Face
transformers folder (config.json with id2label, model.safetensors, the
XLM-R tokenizer, modeling_xlt.py). Checked before it is written: token ids
equal the plugin's and logits equal the plugin's within --atol.

    xlt-export-hf --model model_dir --task ner --out hf_ner

Load it offline with torch + transformers only:

    AutoModelForTokenClassification.from_pretrained("hf_ner", trust_remote_code=True)
    AutoTokenizer.from_pretrained("hf_ner")
"""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xlt-export-hf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a model folder written by xlt-export (or a checkpoint)")
    parser.add_argument("--task", required=True, help="the head: ner, sentiment, or an auxiliary tagging head")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--check-text", help="a file of sentences (one per line) to compare the logits on")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest logit difference accepted")
    parser.add_argument("--force", action="store_true", help="replace an existing, non-empty --out")
    return parser


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):
        from ..data.outputs import check_outputs

        check_outputs([("--out", args.out)], [("--model", args.model), ("--check-text", args.check_text)])
        from ..data import formats
        from ..exporters.hf import export_hf

        texts = formats.read_text_lines(args.check_text) if args.check_text else None
        return export_hf(args.model, args.task, args.out, args.force, texts, args.atol)

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
