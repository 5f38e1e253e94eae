# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Convert a Hugging Face XLM-RoBERTa checkpoint (or a BERT-architecture model
that uses XLM-R's sentencepiece vocabulary, e.g. multilingual-e5) into a fairseq
XLM-R checkpoint directory (model.pt, dict.txt, sentencepiece.bpe.model) that
--pretrained-encoder and fairseq's XLMRModel.from_pretrained load.

    xlt-import-hf --hf-dir xlm-roberta-base/ --out encoders/xlmr-base

The folder must hold config.json, the weights (model.safetensors, sharded
safetensors or pytorch_model.bin) and sentencepiece.bpe.model or tokenizer.json.
Nothing is downloaded. The matching fairseq-train flags are printed and written
to OUT/xlt_encoder.json.
"""

import argparse
import json
import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hf-dir", required=True, help="local Hugging Face model folder")
    parser.add_argument("--out", required=True, help="fairseq checkpoint directory to write")
    args = parser.parse_args(argv)
    from xlt_fairseq.checkpoint_safety import UnsafeCheckpointError
    from xlt_fairseq.hardware import configure_threads
    from xlt_fairseq.importers import ConversionError
    from xlt_fairseq.importers.hf import import_hf

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from .common import guarded

    def body():
        summary = import_hf(args.hf_dir, args.out)
        print(json.dumps({"out": args.out, "notes": summary["notes"], "xlt_flags": " ".join(summary["xlt_flags"])}))
        return 0

    return guarded(body, (ConversionError, UnsafeCheckpointError, OSError))
