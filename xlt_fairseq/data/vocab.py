# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Training a sentencepiece vocabulary and writing an XLM-R-style encoder
directory (``sentencepiece.bpe.model`` + ``dict.txt``)."""

import logging
import os
import shutil
import tempfile
from typing import List

from .binarize import DICT_FILE, SPM_FILE
from .formats import DataFormatError, decode_text, read_bytes
from .outputs import check_outputs, remove_stale_temporaries, temp_prefix
from .staging import os_errors, root_lock, signals_deferred

logger = logging.getLogger(__name__)


def write_fairseq_dict(spm_model_path, dict_path):
    """fairseq's dictionary for a sentencepiece model in XLM-R's layout: fairseq
    reserves ids 0-3 for ``<s> <pad> </s> <unk>``, and sentencepiece piece ``i``
    (``i >= 3``, after ``<unk> <s> </s>``) becomes fairseq id ``i + 1``."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.Load(spm_model_path)
    with open(dict_path, "w", encoding="utf-8") as f:
        for i in range(sp.GetPieceSize()):
            if sp.IsControl(i) or sp.IsUnknown(i):
                continue
            f.write(f"{sp.IdToPiece(i)} 1\n")


def build_vocab(
    texts: List[str], vocab_size: int, out_dir: str, model_type: str = "unigram", character_coverage: float = 0.9995
):
    """Trains sentencepiece on the given text files and writes ``out_dir``."""
    import sentencepiece as spm

    if vocab_size < 8:
        raise ValueError(f"--vocab-size {vocab_size} is too small")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir}: is a file, not a folder (--out must be a folder)")
    sources = [("--text", t) for t in texts]
    check_outputs([("--out", out_dir)], sources)  # before any work; again before the files move in
    parent = os.path.dirname(os.path.abspath(out_dir))
    with os_errors(parent):
        os.makedirs(parent, exist_ok=True)
        remove_stale_temporaries(out_dir)
        tmp = tempfile.mkdtemp(prefix=temp_prefix(out_dir, "tmp"), dir=parent)
    try:
        inputs = []
        for i, path in enumerate(texts):
            data = read_bytes(path)  # existence, readability and emptiness
            decode_text(path, data)  # UTF-8, NUL bytes, stray BOMs and carriage returns
            if os.path.isfile(path) and "," not in path:
                inputs.append(path)
            else:  # a pipe or <(zcat ...) (read once already), or a name sentencepiece would split at a comma
                copy = os.path.join(tmp, f"input{i}.txt")
                with os_errors(copy), open(copy, "wb") as f:
                    f.write(data)
                inputs.append(copy)
        prefix = os.path.join(tmp, "spm")
        try:
            spm.SentencePieceTrainer.Train(
                input=",".join(inputs),
                model_prefix=prefix,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                unk_id=0,
                bos_id=1,
                eos_id=2,
                pad_id=-1,
                hard_vocab_limit=False,
                num_threads=1,
                input_sentence_size=0,
                shuffle_input_sentence=False,
                minloglevel=2,
            )
        except RuntimeError as e:
            raise DataFormatError(",".join(texts), None, f"sentencepiece training failed: {e}") from None
        with os_errors(tmp):
            os.replace(prefix + ".model", os.path.join(tmp, SPM_FILE))
            os.remove(prefix + ".vocab")
            write_fairseq_dict(os.path.join(tmp, SPM_FILE), os.path.join(tmp, DICT_FILE))
        # the two files belong together: no signal, and no other run writing the same --out, may leave one
        # new and one old
        check_outputs([("--out", out_dir)], sources)
        with root_lock(out_dir), signals_deferred(), os_errors(out_dir):
            os.makedirs(out_dir, exist_ok=True)
            for name in (SPM_FILE, DICT_FILE):
                os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"wrote {out_dir}/{SPM_FILE} and {out_dir}/{DICT_FILE}")
