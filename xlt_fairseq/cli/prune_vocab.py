# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Shrink an encoder directory's vocabulary to the pieces your corpora use.

XLM-R's 250,002-piece embedding is most of the model and of the optimizer's
memory. This keeps the special tokens, <mask> and every piece that occurs in a
binarised data root (all its corpora and splits) and/or raw text files, and
writes a smaller encoder directory (model.pt, dict.txt, sentencepiece.bpe.model)
whose model gives identical features on that text:

    xlt-prune-vocab --encoder-dir encoders/e5 --data-bin data-bin --out encoders/e5-pruned
    # then binarise again with the pruned directory and train from it
    xlt-preprocess ner --lang sw --encoder-dir encoders/e5-pruned --destdir data-bin-pruned ...
    fairseq-train data-bin-pruned ... --pretrained-encoder encoders/e5-pruned

Include every split you will evaluate on (dev and test): text outside the
corpus may segment differently and hit <unk> more often with the smaller
vocabulary.
"""

import argparse
import json
import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder-dir", required=True, help="checkpoint directory to prune (model.pt, dict.txt, ...)")
    parser.add_argument("--data-bin", nargs="*", default=[], help="data roots binarised with --encoder-dir")
    parser.add_argument("--text", nargs="*", default=[], help="raw text files, one text per line")
    parser.add_argument("--tagged", nargs="*", default=[], help="CoNLL files (token<TAB>tag), e.g. NER train/dev/test")
    parser.add_argument("--labelled", nargs="*", default=[], help="label<TAB>text files, e.g. sentiment train/dev/test")
    parser.add_argument("--out", required=True, help="pruned encoder directory to write")
    args = parser.parse_args(argv)
    if not (args.data_bin or args.text or args.tagged or args.labelled):
        parser.error("give --data-bin, --text, --tagged and/or --labelled")
    import numpy as np

    from xlt_fairseq.checkpoint_safety import UnsafeCheckpointError
    from xlt_fairseq.data.binarize import EncoderVocabularyError, PieceEncoder
    from xlt_fairseq.data.formats import DataFormatError
    from xlt_fairseq.hardware import configure_threads
    from xlt_fairseq.importers import ConversionError
    from xlt_fairseq.importers.prune import ids_in_data_root, ids_in_files, ids_in_text, prune_encoder_dir

    configure_threads()  # the cores free now (OMP_NUM_THREADS to choose)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from xlt_fairseq.data.outputs import check_outputs

    from .common import guarded

    inputs = [("--data-bin", p) for p in args.data_bin] + [("--text", p) for p in args.text]
    inputs += [("--tagged", p) for p in args.tagged] + [("--labelled", p) for p in args.labelled]

    def body():
        check_outputs([("--out", args.out)], [("--encoder-dir", args.encoder_dir)] + inputs)  # before any work
        used = [ids_in_data_root(root, args.encoder_dir) for root in args.data_bin]
        if args.text or args.tagged or args.labelled:
            pieces = PieceEncoder(args.encoder_dir)
            used.append(ids_in_text(pieces, args.text))
            used.append(ids_in_files(pieces, args.tagged, args.labelled))
        summary = prune_encoder_dir(args.encoder_dir, args.out, np.unique(np.concatenate(used)), inputs)
        print(json.dumps({"out": args.out, **summary}))
        return 0

    return guarded(body, (ConversionError, EncoderVocabularyError, DataFormatError, UnsafeCheckpointError, OSError))
