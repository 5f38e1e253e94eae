# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt model -> ONNX (the encoder and one tagging or classification head), run
with onnxruntime, optionally dynamically quantised to int8.

The graph is fairseq's own forward of the model (``XLTModel.forward`` after
fairseq's ``prepare_for_onnx_export_``), traced by torch's TorchScript-based
exporter at opset :data:`OPSET`:

==========  =========  =====================================  =============================================
name        type       shape                                  meaning
==========  =========  =====================================  =============================================
input_ids   int64      ``[batch, sequence]``                  ``<s> pieces </s>``, padded with ``<pad>`` (1)
logits      float32    ``[batch, sequence, labels]`` (tag)    per piece; read at each word's first piece
                       ``[batch, labels]`` (classification)   per text
==========  =========  =====================================  =============================================

``batch`` and ``sequence`` are dynamic axes (``sequence`` up to the model's
positions). The padding mask and the positions are computed in the graph from
``input_ids``, as the model computes them, so padding on either side gives the
unpadded logits. The folder written::

    DIR/
      model.onnx          fp32
      model.int8.onnx     with --quantize int8: onnxruntime's quantize_dynamic (int8 weights per channel,
                          activations quantised per batch at run time: :data:`QUANTIZATION`)
      xlt_onnx.json       task, labels, opset, axes, the model it came from, and the checks below

Checked before the folder is moved into place (nothing is written otherwise):
fp32 logits within ``atol`` (default 1e-4) of the torch model's on padded
batches of real inputs (the check texts, and the first 256 sentences of the dev
file when one is given); with a dev file, entity F1 (tagging) or accuracy
(classification) of the int8 model within ``max_drop`` (default 0.005) of the
torch model's. The int8 model is quantised from the graph with its feed-forward
output projections smoothed on those inputs (:func:`smooth_fc2`).

At run time :func:`attach` makes a loaded model (``XLTHubInterface``) run the
head's forward pass with onnxruntime: tokenisation, batching, windows and the
records are the plugin's own, so ``xlt-predict --engine onnx`` writes the torch
engine's records.
"""

import copy
import json
import logging
import os
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

TOOL = "xlt-export-onnx"
EXPORTS = "onnx"  # MODEL/onnx/TASK: the default folder of a model folder's exports
OPSET = 17
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
INFO_FILE = "xlt_onnx.json"
ENGINES = {"onnx": "fp32", "onnx-int8": "int8"}
# padded batches of these are compared with the torch model (plus the dev file's first sentences)
CHECK_TEXTS = (
    "Amina Mohamed alizaliwa Nairobi , Kenya .",
    "The European Union met in Brussels on Monday.",
    "Ọ̀gbẹ́ni Adé lọ sí Èkó lánàá.",
    "a",
    '"""" ▁ « Rais » wa Tanzania , Samia Suluhu Hassan , alisema .',
)
DEV_CHECK_SENTENCES = 256
# dynamic int8 quantisation (onnxruntime.quantization.quantize_dynamic): int8 weights per output channel of
# every MatMul with a constant weight, activations quantised per batch; the graph quantised is the fp32 one with
# the feed-forward output projections smoothed (smooth_fc2, calibrated on the check inputs: the check texts and
# up to DEV_CHECK_SENTENCES dev sentences). On the MasakhaNER sw model of docs/benchmarks.md (dev entity F1 of
# torch 0.7816): no smoothing 0.7713, alpha 0.3 / 0.5 / 0.8 / 0.9 / 1.0 gave 0.462 / 0.762 / 0.777 / 0.774 /
# 0.772; keeping those projections in fp32 instead gave 0.780 at 1.7x the torch model's speed (2.4x smoothed).
SMOOTHING_ALPHA = 0.8
QUANTIZATION = {
    "weights": "int8, per output channel",
    "activations": "uint8, per tensor and batch (dynamic)",
    "smoothquant_alpha": SMOOTHING_ALPHA,
}


class OnnxExportError(ValueError):
    """A model or head that cannot be exported, or an export that fails its checks (the message says why)."""


def _require(module: str, purpose: str):
    from ..optional import MissingExtraError, require

    try:
        return require(module, purpose)
    except MissingExtraError as e:
        raise OnnxExportError(str(e)) from None


def onnxruntime():
    return _require("onnxruntime", "running an ONNX export (xlt-export-onnx, --engine onnx)")


def default_dir(model_dir: str, task: str) -> str:
    """Where ``xlt-export-onnx`` writes and ``--engine onnx`` looks by default: inside the model folder."""
    return os.path.join(model_dir, EXPORTS, task)


class _HeadForward(nn.Module):
    """``input_ids`` -> the head's logits, through the model's own forward."""

    def __init__(self, model, task: str):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, input_ids):
        return self.model(input_ids, None, task=self.task)["logits"]


def _model_source(hub) -> dict:
    """What identifies the weights an export was made from (checked when the export is used)."""
    from ..data.binarize import file_md5

    source = dict(hub.info.get("source") or {})
    source.update(model_file=os.path.basename(hub.path), model_md5=file_md5(hub.path))
    return source


def _kind(hub, task: str) -> str:
    from ..data.task_names import builtin_kind

    if task == "translation":
        raise OnnxExportError(
            "translation is a sequence-to-sequence decoder and is not exported to ONNX; "
            "export a tagging head (ner, an auxiliary tagging task) or a classification head (sentiment)"
        )
    if task not in hub.heads:
        raise OnnxExportError(
            f"{hub.path}: the model has no {task!r} head (heads that can be exported: {', '.join(hub.heads) or 'none'})"
        )
    kind = builtin_kind(task)
    if kind not in ("tagging", "classification"):
        raise OnnxExportError(f"{task}: only tagging and classification heads can be exported")
    return kind


def _inputs(hub, kind: str, texts: Sequence[str]) -> List[torch.Tensor]:
    """The model's inputs for ``texts`` as the plugin encodes them (tagging: the text's words)."""
    from ..data.words import split_words

    if kind == "tagging":
        return [hub.encode(split_words(t)[0]) for t in texts]
    return [hub.encode(t) for t in texts]


def _pad(items: Sequence[torch.Tensor], pad: int) -> torch.Tensor:
    from fairseq.data import data_utils

    return data_utils.collate_tokens(list(items), pad_idx=pad, left_pad=False)


class _Smoothed(nn.Module):
    """``linear(x / s)`` with the linear's input columns multiplied by ``s``: the same function."""

    def __init__(self, linear: nn.Linear, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("inv_scale", (1.0 / scale).to(linear.weight.dtype))
        self.linear = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(linear.weight * scale)
            if linear.bias is not None:
                self.linear.bias.copy_(linear.bias)

    def forward(self, x):
        return self.linear(x * self.inv_scale)


def smooth_fc2(model, task: str, batches: Sequence[torch.Tensor], alpha: float = SMOOTHING_ALPHA) -> int:
    """SmoothQuant (Xiao et al., 2023) for the feed-forward output projections: their input, the GELU
    output, has a few channels with large values, which a per-tensor int8 range of the activations cuts
    worst. Each channel j is divided by s_j = max|x_j|^alpha / max|w_j|^(1-alpha) (maxima over ``batches``
    run through the model, and over the weight's column) and the weight's column multiplied by it, which
    moves the outliers into the weights, quantised per channel. Returns the projections smoothed."""
    linears = [m for m in model.modules() if isinstance(getattr(m, "fc2", None), nn.Linear)]
    peaks = [None] * len(linears)

    def hook(i):
        def record(module, inputs, output):
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0).float()
            peaks[i] = x if peaks[i] is None else torch.maximum(peaks[i], x)

        return record

    handles = [m.fc2.register_forward_hook(hook(i)) for i, m in enumerate(linears)]
    try:
        with torch.no_grad():
            for tokens in batches:
                model(tokens, None, task=task)
    finally:
        for h in handles:
            h.remove()
    for m, peak in zip(linears, peaks):
        if peak is None:  # a layer the task does not run (another task's own layers)
            continue
        w = m.fc2.weight.detach().abs().amax(dim=0).float()
        scale = (peak.clamp(min=1e-5) ** alpha / w.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
        m.fc2 = _Smoothed(m.fc2, scale)
    return sum(p is not None for p in peaks)


def _trace(hub, task: str, path: str, example: torch.Tensor, kind: str, smooth: Sequence[torch.Tensor] = ()):
    model = copy.deepcopy(hub.model).float().cpu().eval()
    if smooth:
        smooth_fc2(model, task, smooth)
    model.prepare_for_onnx_export_()
    axes = {"input_ids": {0: "batch", 1: "sequence"}}
    axes["logits"] = {0: "batch", 1: "sequence"} if kind == "tagging" else {0: "batch"}
    # the tracer warns about fairseq's Python branches on tensors: each is taken as the padded example
    # takes it (a padding mask is applied), which is exact for inputs without padding too (checked below)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            _HeadForward(model, task),
            (example,),
            path,
            input_names=["input_ids"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def quantize_int8(src: str, dst: str):
    """Writes ``dst``, the int8 model of ``src`` (see :data:`QUANTIZATION`), after onnxruntime's
    pre-processing for quantisation (shape inference, graph optimisation)."""
    onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = dst + ".prepared.onnx"
    try:
        quant_pre_process(src, prepared)
        quantize_dynamic(
            prepared,
            dst,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        if os.path.exists(prepared):
            os.remove(prepared)


class OnnxHead:
    """One ONNX file run by onnxruntime: ``src_tokens`` (B x T) -> logits, a torch tensor."""

    def __init__(self, path: str, threads: Optional[int] = None):
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise OnnxExportError(f"{path}: onnxruntime cannot load it ({str(e).strip().splitlines()[0]})") from None
        self.path = path

    def __call__(self, src_tokens: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["logits"], {"input_ids": src_tokens.detach().cpu().numpy().astype("int64")})[0]
        return torch.from_numpy(out).to(src_tokens.device)


def _torch_logits(hub, task: str, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hub.model(tokens.to(hub.device), None, task=task)["logits"].float().cpu()


def _max_diff(kind: str, tokens: torch.Tensor, a: torch.Tensor, b: torch.Tensor, pad: int) -> float:
    if a.shape != b.shape:
        raise OnnxExportError(f"internal error: ONNX logits of shape {tuple(b.shape)}, torch {tuple(a.shape)}")
    diff = (a - b).abs()
    if kind == "tagging":
        diff = diff[tokens.ne(pad)]
    return float(diff.max()) if diff.numel() else 0.0


def _dev_score(hub, task: str, kind: str, examples, batch_size: int) -> float:
    """Entity F1 (tagging, seqeval) or accuracy (classification) of ``hub`` on the dev examples."""
    from ..experiments.evaluation import classification_metrics, ner_metrics

    labels = hub.labels(task)
    if kind == "tagging":
        probs = hub.tag_probs([s.tokens for s in examples], task, batch_size)
        pred = [[labels[int(i)] for i in p.argmax(dim=-1)] if len(p) else [] for p in probs]
        return ner_metrics([list(s.tags) for s in examples], pred)["f1"]
    probs = hub.class_probs([x.text for x in examples], task, batch_size)
    return classification_metrics([x.label for x in examples], [labels[int(i)] for i in probs.argmax(dim=-1)])["acc"]


def read_dev(kind: str, path: str, fmt: Optional[str], lang: Optional[str]):
    from ..data import formats

    if kind == "tagging":
        return formats.read_tagged(path, fmt or "conll", tagged=True, lang=lang)
    return formats.read_classification(path, fmt or "tsv", labelled=True, language=lang)


def model_sources(model: str) -> list:
    """What the export reads of ``model``, for the output rule: a checkpoint, or each entry of a
    model folder but its ``onnx`` folder (where the exports go by default)."""
    if not os.path.isdir(model):
        return [("--model", model)]
    return [("--model", os.path.join(model, name)) for name in sorted(os.listdir(model)) if name != EXPORTS]


def export_onnx(
    model: str,
    task: str,
    out_dir: Optional[str] = None,
    quantize: Optional[str] = None,
    check_texts: Optional[Sequence[str]] = None,
    check_dev: Optional[str] = None,
    dev_format: Optional[str] = None,
    lang: Optional[str] = None,
    atol: float = 1e-4,
    max_drop: float = 0.005,
    batch_size: int = 32,
    force: bool = False,
) -> dict:
    """Writes ``out_dir`` (default: ``MODEL/onnx/TASK``) for ``task``'s head of ``model`` (a model
    folder or a checkpoint); returns the summary written as ``xlt_onnx.json``. The output rule
    (:mod:`xlt_fairseq.data.outputs`) holds: ``out_dir`` is none of what the export reads, is
    replaced only with ``force`` and only when this tool wrote it, and is written in a staging folder."""
    from ..data import outputs
    from ..data.words import split_words
    from ..export import is_model_dir
    from ..models.hub_interface import load_hub

    if out_dir is None:
        if not is_model_dir(model):
            raise OnnxExportError(f"{model}: not a model folder; pass --out for a checkpoint's export")
        out_dir = default_dir(model, task)
    sources = model_sources(model) + [("--check-dev", check_dev)]
    outputs.check_outputs([("--out", out_dir)], sources)  # before any work; again before the replacement
    outputs.check_folder_output(out_dir, TOOL, force)
    onnxruntime()
    onnx = _require("onnx", "xlt-export-onnx")
    if quantize not in (None, "int8"):
        raise OnnxExportError(f"--quantize {quantize}: only int8 (dynamic quantisation) is available")
    hub = load_hub(model, device="cpu").float()
    encoder_dir = hub.encoder.encoder_dir
    if encoder_dir and os.path.realpath(encoder_dir) != os.path.realpath(model):  # a model folder holds its encoder
        sources.append(("the encoder directory", encoder_dir))
    kind = _kind(hub, task)
    dev = read_dev(kind, check_dev, dev_format, lang) if check_dev else []
    if check_dev and not dev:
        raise OnnxExportError(f"{check_dev}: no examples to check on")
    hub.check_language(lang, task)
    texts = list(check_texts or CHECK_TEXTS)
    if kind == "tagging":
        texts += [" ".join(s.tokens) for s in dev[:DEV_CHECK_SENTENCES]]
    else:
        texts += [x.text for x in dev[:DEV_CHECK_SENTENCES]]
    texts = [t for t in texts if t.strip()] if kind == "tagging" else texts
    if kind == "tagging" and not any(split_words(t)[0] for t in texts):
        raise OnnxExportError("no check text has a word")
    pad = hub.task.dictionary.pad()
    items = _inputs(hub, kind, texts)
    # sorted by length in batches, as the engine runs: every batch but the longest has padding
    items.sort(key=len)
    batches = [_pad(items[i : i + 8], pad) for i in range(0, len(items), 8)]
    example = max(batches, key=lambda b: int(b.eq(pad).sum()))
    if not bool(example.eq(pad).any()):  # the trace must see padding: build a batch that has some
        example = _pad(items[:1] + items[-1:], pad) if len(items) > 1 else _pad(items + [items[0][:2]], pad)

    summary = {
        "format": "xlt_onnx",
        "version": 1,
        "task": task,
        "kind": kind,
        "labels": hub.labels(task),
        "opset": OPSET,
        "inputs": {"input_ids": {"type": "int64", "shape": ["batch", "sequence"], "pad": pad}},
        "outputs": {
            "logits": {
                "type": "float32",
                "shape": ["batch", "sequence", "labels"] if kind == "tagging" else ["batch", "labels"],
            }
        },
        "max_positions": int(hub.model.cfg.max_positions),
        "files": {},
        "source": _model_source(hub),
        "checks": {},
    }
    with outputs.staged_folder(out_dir, TOOL, force, sources) as tmp:
        fp32 = os.path.join(tmp, FILES["fp32"])
        _trace(hub, task, fp32, example, kind)
        onnx.checker.check_model(fp32)
        summary["files"]["fp32"] = FILES["fp32"]
        engine = OnnxHead(fp32)
        worst = 0.0
        for tokens in batches + [example]:
            worst = max(worst, _max_diff(kind, tokens, _torch_logits(hub, task, tokens), engine(tokens), pad))
        if worst > atol:
            raise OnnxExportError(
                f"{out_dir}: the ONNX logits differ from the torch model's by {worst:.2e} (> --atol {atol:g})"
            )
        summary["checks"]["fp32"] = {"max_abs_logit_diff": worst, "atol": atol, "texts": len(texts)}
        if quantize == "int8":
            int8 = os.path.join(tmp, FILES["int8"])
            smoothed = os.path.join(tmp, "smoothed.onnx")
            _trace(hub, task, smoothed, example, kind, smooth=batches)
            quantize_int8(smoothed, int8)
            os.remove(smoothed)
            summary["files"]["int8"] = FILES["int8"]
            summary["quantization"] = dict(QUANTIZATION, calibration_texts=len(texts))
            q = OnnxHead(int8)
            agree = total = 0
            for tokens in batches:
                a, b = _torch_logits(hub, task, tokens), q(tokens)
                keep = tokens.ne(pad) if kind == "tagging" else torch.ones(a.shape[0], dtype=torch.bool)
                agree += int((a.argmax(-1) == b.argmax(-1))[keep].sum())
                total += int(keep.sum())
            summary["checks"]["int8"] = {"argmax_agreement": round(agree / max(total, 1), 6), "positions": total}
        if dev:
            metric = "entity_f1" if kind == "tagging" else "accuracy"
            scores = {"torch": _dev_score(hub, task, kind, dev, batch_size)}
            for precision in summary["files"]:
                with attached(hub, task, os.path.join(tmp, FILES[precision])):
                    scores[precision] = _dev_score(hub, task, kind, dev, batch_size)
            check = {
                "file": os.path.basename(check_dev),
                "examples": len(dev),
                "metric": metric,
                "max_drop": max_drop,
                **{k: round(v, 6) for k, v in scores.items()},
            }
            summary["checks"]["dev"] = check
            for precision in summary["files"]:
                drop = scores["torch"] - scores[precision]
                if drop > max_drop:
                    raise OnnxExportError(
                        f"{check_dev}: {metric} of the {precision} ONNX model is {scores[precision]:.4f}, "
                        f"{drop:.4f} below the torch model's {scores['torch']:.4f} (> --max-drop {max_drop:g}); "
                        "nothing written"
                    )
        elif quantize:
            logger.warning(
                "the int8 model's accuracy was not measured: pass --check-dev FILE --lang L to compare its "
                "entity F1 / accuracy with the torch model's"
            )
        with open(os.path.join(tmp, INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, ensure_ascii=False)
            f.write("\n")
    logger.info(f"wrote {out_dir} ({', '.join(summary['files'])}; max logit difference {worst:.2e})")
    return dict(summary, out=out_dir)


class attached:
    """``with attached(hub, task, path):`` the hub runs ``task``'s head with this ONNX file, then torch again."""

    def __init__(self, hub, task: str, path: str):
        self.hub, self.task, self.path = hub, task, path

    def __enter__(self):
        self.previous = self.hub.engines.get(self.task)
        self.hub.engines[self.task] = OnnxHead(self.path)
        return self.hub

    def __exit__(self, *exc):
        if self.previous is None:
            self.hub.engines.pop(self.task, None)
        else:
            self.hub.engines[self.task] = self.previous


def read_export(folder: str) -> dict:
    path = os.path.join(folder, INFO_FILE)
    if not os.path.isfile(path):
        raise OnnxExportError(f"{path}: not found; write the export with xlt-export-onnx (--out {folder})")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise OnnxExportError(f"{path}: cannot be read ({e})") from None
    if info.get("format") != "xlt_onnx":
        raise OnnxExportError(f"{path}: not written by xlt-export-onnx")
    return info


def attach(hub, task: str, folder: Optional[str] = None, precision: str = "fp32", threads: Optional[int] = None):
    """Makes ``hub`` run ``task``'s head with the ONNX export in ``folder`` (default: the model
    folder's ``onnx/TASK``); checks that the export was made from this model's weights."""
    if precision not in FILES:
        raise OnnxExportError(f"precision {precision!r}: one of {', '.join(FILES)}")
    if folder is None:
        if not hub.info:
            raise OnnxExportError("the model is a training checkpoint: name the ONNX export's folder (--onnx-dir)")
        folder = default_dir(os.path.dirname(hub.path), task)
    info = read_export(folder)
    if info.get("task") != task:
        raise OnnxExportError(f"{folder}: an export of the {info.get('task')!r} head, not of {task!r}")
    if precision not in info.get("files", {}):
        hint = " (export it with --quantize int8)" if precision == "int8" else ""
        raise OnnxExportError(f"{folder}: has no {precision} model{hint}")
    from ..data.binarize import file_md5

    same = file_md5(hub.path) == info.get("source", {}).get("model_md5")
    if not same or info.get("labels") != hub.labels(task):
        raise OnnxExportError(
            f"{folder}: exported from other weights than {hub.path}; export it again (xlt-export-onnx --force)"
        )
    hub.engines[task] = OnnxHead(os.path.join(folder, info["files"][precision]), threads)
    return hub
