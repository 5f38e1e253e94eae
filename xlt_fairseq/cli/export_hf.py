# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-export-hf: one tagging or classification head of a trained model as a
Hugging Face transformers folder (config.json with id2label, model.safetensors,
the XLM-R tokenizer, modeling_xlt.py, a model card README.md; for tagging also
pipeline_xlt.py and words.py, a pipeline that groups pieces into words exactly
as the plugin does). Checked before it is written: token ids, logits (within
--atol) and the pipeline's word labels equal the plugin's.

    xlt-export-hf --model model_dir --task ner --out hf_ner \
        --data-name "MasakhaNER 2.0 (sw)" --metrics eval_sw.json --license cc-by-nc-4.0

Load it offline with torch + transformers only:

    pipeline("xlt-token-classification", model="hf_ner", trust_remote_code=True, aggregation_strategy="first")
    AutoModelForTokenClassification.from_pretrained("hf_ner", trust_remote_code=True)
    AutoTokenizer.from_pretrained("hf_ner")

Translation is not exportable this way (a decoder is neither token- nor
sequence-classification).
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
    card = parser.add_argument_group("model card (README.md)")
    card.add_argument("--data-name", action="append", help="a training data set's name (repeatable)")
    card.add_argument("--metrics", action="append", help="a JSON file printed by xlt-evaluate (repeatable)")
    card.add_argument("--license", help="the licence identifier of the card's metadata (default: other)")
    card.add_argument("--base-model", help="the pretrained encoder's name, e.g. intfloat/multilingual-e5-small")
    return parser


def read_metrics(paths):
    """xlt-evaluate's JSON output (one object, a list of them, or JSON Lines) of each file."""
    import json

    out = []
    for path in paths or []:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            items = json.loads(text)
        except ValueError:
            try:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError as e:
                raise ValueError(f"{path}: not the JSON xlt-evaluate prints ({e})") from None
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict) or not isinstance(item.get("metrics"), dict):
                raise ValueError(f"{path}: not the JSON xlt-evaluate prints (no \"metrics\" object)")
            out.append(item)
    return out


def main(argv=None) -> int:
    from .common import run_tool

    def work(args):
        from ..data.outputs import check_outputs

        check_outputs([("--out", args.out)], [("--model", args.model), ("--check-text", args.check_text)])
        from ..data import formats
        from ..exporters.hf import export_hf

        texts = formats.read_text_lines(args.check_text) if args.check_text else None
        card = {
            "data": args.data_name,
            "metrics": read_metrics(args.metrics),
            "license": args.license,
            "base_model": args.base_model,
        }
        return export_hf(args.model, args.task, args.out, args.force, texts, args.atol, card)

    return run_tool(build_parser(), argv, work)


if __name__ == "__main__":
    sys.exit(main())
