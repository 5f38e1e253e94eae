# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Self-contained model folders: a trained checkpoint without its training folders.

::

    MODEL_DIR/
      model.pt                   fairseq checkpoint: the model config and weights (fp32, or fp16 with --half);
                                 no optimizer state, no path of the training machine
      dict.txt                   the encoder's dictionary
      sentencepiece.bpe.model    the encoder's sentencepiece model
      xlt_model.json             heads, label sets, languages, where it came from (file name and md5)
      <task>/<key>/meta.json     one entry per corpus the model was trained on: its language, domain and
      <task>/<key>/labels.txt    label set, and no data (the task reads the folder as a data root)

The folder is a data root without data and an encoder directory at once, so
fairseq's own machinery loads it: ``XLTModel.from_pretrained(MODEL_DIR)``,
``fairseq-interactive MODEL_DIR --path MODEL_DIR/model.pt ...``. Files are
written to a temporary folder next to ``MODEL_DIR`` and moved into place when
complete: a failed export leaves nothing half-written.
"""

import copy
import json
import logging
import os
import shutil
from typing import Optional

import torch

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
INFO_FILE = "xlt_model.json"
FORMAT_VERSION = 1
# config strings that record the training machine's folders; reset on export
_PATH_KEYS = {
    "common": {"user_dir": None, "tensorboard_logdir": None, "wandb_project": None, "azureml_logging": False},
    "checkpoint": {"save_dir": "checkpoints", "restore_file": "checkpoint_last.pt", "finetune_from_model": None},
    "model": {"pretrained_encoder": None},
    "task": {"data": ".", "save_dir": ""},
}


class ExportError(ValueError):
    """A checkpoint or model folder that cannot be exported or loaded (the message names the file)."""


def is_model_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, INFO_FILE))


def looks_like_model_dir(path: str) -> bool:
    """A folder xlt-export wrote (its marker), or one with a ``model.pt`` and no
    checkpoints of fairseq-train, complete or not."""
    from .data.outputs import read_marker

    if not os.path.isdir(path):
        return False
    if (read_marker(path) or {}).get("tool") == "xlt-export":
        return True
    names = os.listdir(path)
    return MODEL_FILE in names and not any(n.startswith("checkpoint") and n.endswith(".pt") for n in names)


def check_model_dir(model_dir: str, info: Optional[dict] = None):
    """Every file a model folder needs is there: an ExportError naming the first that is missing."""
    from .data import corpora
    from .data.binarize import DICT_FILE, SPM_FILE

    needed = [INFO_FILE] if info is None else [MODEL_FILE, DICT_FILE, SPM_FILE]
    for task, keys in ((info or {}).get("corpora") or {}).items():
        for key in keys:
            folder = os.path.relpath(corpora.corpus_dir(model_dir, task, key), model_dir)
            needed += [os.path.join(folder, corpora.META_FILE), os.path.join(folder, corpora.LABELS_FILE)]
    for name in needed:
        if not os.path.exists(os.path.join(model_dir, name)):
            raise ExportError(f"{model_dir}: incomplete model folder: {name} missing; re-run xlt-export")


def read_info(model_dir: str) -> dict:
    path = os.path.join(model_dir, INFO_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError(f"{path}: cannot be read ({e})") from None
    if info.get("format") != "xlt_model" or int(info.get("version", 0)) > FORMAT_VERSION:
        raise ExportError(f"{path}: not an xlt model folder of format version <= {FORMAT_VERSION}")
    return info


def _scrub_cfg(cfg: dict, roots=()) -> dict:
    """The config without the training machine's folders: known keys get their defaults,
    any other value inside one of ``roots`` (data root, save dir, encoder dir) becomes "" (falsy, valid in a str field).
    """
    cfg = copy.deepcopy(cfg)
    roots = tuple(os.path.abspath(r) for r in roots if r)

    def walk(node):
        for key, value in list(node.items()):
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, str) and os.path.isabs(value):
                if any(value == r or value.startswith(r + os.sep) for r in roots):
                    node[key] = ""

    walk(cfg)
    for group, values in _PATH_KEYS.items():
        if isinstance(cfg.get(group), dict):
            for key, value in values.items():
                if key in cfg[group]:
                    cfg[group][key] = value
    # a model folder serves every head; single-pair generation mode is chosen at load time
    if isinstance(cfg.get("task"), dict):
        cfg["task"]["source_lang"] = cfg["task"]["target_lang"] = None
    return cfg


def _scrubbed_sentencepiece(path: str) -> bytes:
    """The sentencepiece model without the training file names sentencepiece records in its
    trainer spec (encoding reads only the pieces and the normaliser)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    del m.trainer_spec.input[:]
    m.trainer_spec.model_prefix = ""
    return m.SerializeToString()


def export_model(
    checkpoint: str,
    out_dir: str,
    data: Optional[str] = None,
    encoder_dir: Optional[str] = None,
    half: bool = False,
    force: bool = False,
) -> dict:
    """Writes the model folder ``out_dir`` for ``checkpoint`` (any checkpoint of
    ``fairseq-train --task xlt_multitask``); ``data``/``encoder_dir`` override the
    data root and encoder directory the run recorded. Returns ``xlt_model.json``'s content."""
    from omegaconf import OmegaConf

    from .data import corpora
    from .data.binarize import DICT_FILE, SPM_FILE, file_md5
    from .models.hub_interface import load_hub

    from .data import outputs

    sources = [("--checkpoint", checkpoint), ("--data", data), ("--encoder-dir", encoder_dir)]
    outputs.check_outputs([("--out", out_dir)], sources)  # before any work; again before the replacement
    outputs.check_folder_output(out_dir, "xlt-export", force)
    hub = load_hub(checkpoint, data=data, encoder_dir=encoder_dir, device="cpu")
    task, model = hub.task, hub.model
    state_cfg = OmegaConf.to_container(hub.cfg, resolve=True, enum_to_str=True)
    roots = (state_cfg["task"].get("data"), state_cfg["checkpoint"].get("save_dir"), hub.encoder.encoder_dir)
    cfg = _scrub_cfg(state_cfg, roots + (state_cfg["model"].get("pretrained_encoder"),))
    weights = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        weights[key] = value.contiguous()
    num_updates = int(getattr(model, "num_updates", 0))
    state = {
        "args": None,
        "cfg": cfg,
        "model": weights,
        "optimizer_history": [
            {"criterion_name": "none", "optimizer_name": "none", "lr_scheduler_state": {}, "num_updates": num_updates}
        ],
        "extra_state": {},
        "last_optimizer_state": None,
    }
    corpora_info = {name: {} for name in task.corpus_keys}
    for name, keys in task.corpus_keys.items():
        for key in keys:
            meta = task.meta[name][key]
            corpora_info[name][key] = {
                "language": task.corpus_language(name, key),
                "domain": meta.get("domain", "general"),
            }
    labels = {name: task.labels(name) for name in task.corpus_keys if name in getattr(task, "_labels", {})}
    info = {
        "format": "xlt_model",
        "version": FORMAT_VERSION,
        "arch": cfg["model"].get("_name"),
        "tasks": list(task.corpus_keys),
        "heads": sorted(model.heads.keys()),
        "translation": model.decoder is not None,
        "labels": labels,
        "corpora": corpora_info,
        "languages": list(task.languages),
        "domains": list(task.domains),
        "max_positions": int(cfg["model"]["max_positions"]),
        "precision": "fp16" if half else "fp32",
        "source": {
            "checkpoint": os.path.basename(checkpoint),
            "checkpoint_md5": file_md5(checkpoint),
            "num_updates": num_updates,
            "dict_md5": hub.encoder.dict_md5,
            "spm_md5": hub.encoder.spm_md5,
        },
    }

    sources += [("the data root", state_cfg["task"].get("data")), ("the encoder directory", hub.encoder.encoder_dir)]
    with outputs.staged_folder(out_dir, "xlt-export", force, sources) as tmp:
        with open(os.path.join(tmp, SPM_FILE), "wb") as f:
            f.write(_scrubbed_sentencepiece(os.path.join(hub.encoder.encoder_dir, SPM_FILE)))
        shutil.copyfile(os.path.join(hub.encoder.encoder_dir, DICT_FILE), os.path.join(tmp, DICT_FILE))
        for name, keys in corpora_info.items():
            for key, c in keys.items():
                path = corpora.corpus_dir(tmp, name, key)
                os.makedirs(path)
                meta = {
                    "task": name,
                    "key": key,
                    "domain": c["domain"],
                    "dict_md5": hub.encoder.dict_md5,
                    "spm_md5": hub.encoder.spm_md5,
                    "splits": {},
                }
                corpora.write_meta(path, meta)
                corpora.write_labels(path, labels.get(name, []))
        torch.save(state, os.path.join(tmp, MODEL_FILE))
        with open(os.path.join(tmp, INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, ensure_ascii=False)
            f.write("\n")
        # the folder must load and give the checkpoint's outputs before it replaces anything
        _check_roundtrip(hub, tmp)
    logger.info(f"wrote {out_dir} ({info['precision']}, heads: {', '.join(info['heads']) or 'none'})")
    return info


def _check_roundtrip(hub, folder: str):
    """Loads the new folder and compares one forward pass of every head with the checkpoint's."""
    from .models.hub_interface import load_hub

    other = load_hub(folder, device="cpu")
    text = "a b c"
    tol = 1e-2 if other.info.get("precision") == "fp16" else 1e-5
    for task in hub.model.heads.keys():
        a, b = hub.logits(text, task), other.logits(text, task)
        if a.shape != b.shape or not torch.allclose(a.float(), b.float(), atol=tol, rtol=tol):
            raise ExportError(f"{folder}: the exported {task} head does not reproduce the checkpoint's logits")
    if hub.model.decoder is not None and other.info.get("precision") == "fp32":
        if hub.translate(text, beam=2) != other.translate(text, beam=2):
            raise ExportError(f"{folder}: the exported decoder does not reproduce the checkpoint's translation")
    del other
