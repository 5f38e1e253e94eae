"""Half precision, as far as it can be tested on CPU.

fairseq's ``--fp16`` turns the model (and the criterion) into fp16 with
``model.half()`` and scales the loss dynamically; its default fp16 optimizer keeps
the fp32 master weights on the CUDA device, so it runs only on a GPU
(scripts/gpu_check.sh). What runs here: the plugin's modules and criterion on a
half-precision model (every loss term in fp32, the gradient reversal layer on half
gradients, mean pooling over long sequences) and fairseq's training loop with
``--fp16 --memory-efficient-fp16`` (fp16 weights, the same dynamic loss scaler),
including the skipped update and lowered scale after a gradient overflow.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import run_train, train_args
from xlt_fairseq.modules.gradient_reversal import grad_reverse
from xlt_fairseq.modules.heads import masked_mean

NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]
LOSS_KEYS = ("loss", "ner_loss", "sentiment_loss", "translation_loss", "mlm_loss", "adv_loss")


# ---- modules ----------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.01, 1.0])
def test_grl_backward_in_half_keeps_dtype_and_scale(lam):
    torch.manual_seed(0)
    x = torch.randn(16, 32).half().requires_grad_(True)
    # gradients as they arrive under loss scaling: large, but finite in fp16
    upstream = (torch.randn(16, 32) * 1000).half()
    grad_reverse(x, lam).backward(upstream)
    assert x.grad.dtype == torch.float16
    # one rounding of the exact product: the reversal adds no error of its own
    assert torch.equal(x.grad, (-lam * upstream.float()).half())
    assert torch.isfinite(x.grad).all()


def test_grl_passes_an_overflow_on_to_the_loss_scaler():
    # an inf gradient must stay non-finite, so that fairseq's scaler skips the update
    x = torch.zeros(3).half().requires_grad_(True)
    grad_reverse(x, 0.01).backward(torch.tensor([1.0, float("inf"), 2.0]).half())
    assert torch.isinf(x.grad[1]) and torch.isfinite(x.grad[[0, 2]]).all()


def test_masked_mean_in_half_does_not_overflow_on_long_sequences():
    # 512 tokens of a feature of 200: the mean (200) is a small fp16 number, the sum (102400) is not
    features = torch.full((2, 512, 4), 200.0).half().requires_grad_(True)
    padding = torch.zeros(2, 512, dtype=torch.bool)
    padding[1, 300:] = True
    pooled = masked_mean(features, padding)
    assert pooled.dtype == torch.float16
    assert torch.equal(pooled, torch.full((2, 4), 200.0).half())
    pooled.sum().backward()
    assert features.grad.dtype == torch.float16 and torch.isfinite(features.grad).all()
    assert features.grad[1, 299, 0] > 0 and features.grad[1, 300, 0] == 0  # padding gets no gradient
    # without a mask too
    assert torch.equal(masked_mean(features.detach(), None), torch.full((2, 4), 200.0).half())


def test_masked_mean_in_half_matches_fp32():
    torch.manual_seed(0)
    features = torch.randn(4, 512, 16) * 30
    padding = torch.rand(4, 512) > 0.7
    expected = masked_mean(features, padding)
    got = masked_mean(features.half(), padding).float()
    assert torch.allclose(got, expected, rtol=2e-3, atol=2e-3)


# ---- the model and criterion in half precision ----------------------------------------


@pytest.fixture(scope="module")
def built(tiny_data):
    """The task, a tiny model and the criterion built through fairseq's parser, and one training batch."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(
        options.get_training_parser(), train_args(tiny_data["data"], tiny_data["tmp"] + "/unused", *NO_DROPOUT)
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(16)])
    return {"model": model, "criterion": criterion, "batch": batch}


def _value(v):
    return float(v.float()) if torch.is_tensor(v) else float(v)


def test_half_model_gives_fp32_losses_close_to_fp32(built):
    import copy

    model32 = built["model"]
    model16 = copy.deepcopy(model32).half()
    criterion = built["criterion"]
    model32.train()
    model16.train()
    loss32, _, log32 = criterion(model32, built["batch"])

    captured = {}
    handle = model16.discriminator.register_forward_hook(lambda m, i, o: captured.setdefault("logits", o))
    try:
        loss16, _, log16 = criterion(model16, built["batch"])
    finally:
        handle.remove()

    # the discriminator runs in fp16, its loss is computed in fp32 from the fp16 logits
    logits = captured["logits"]
    assert logits.dtype == torch.float16
    targets = torch.cat([sub["lang_id"] for sub in built["batch"].values()])
    expected = F.nll_loss(F.log_softmax(logits.float(), dim=-1), targets, reduction="sum")
    assert _value(log16["adv_loss"]) == pytest.approx(float(expected), rel=1e-6)

    assert loss16.dtype == torch.float32
    for key in ("ner_loss", "sentiment_loss", "translation_loss", "mlm_loss", "adv_loss"):
        assert math.isfinite(_value(log16[key])), key
        assert _value(log16[key]) == pytest.approx(_value(log32[key]), rel=2e-2), key
    assert float(loss16) == pytest.approx(float(loss32), rel=2e-2)

    # backward under a loss scale of 128 (fairseq's --fp16-init-scale default)
    (loss16 * 128).backward()
    grads = {n: p.grad for n, p in model16.named_parameters() if p.requires_grad}
    assert all(g is not None and g.dtype == torch.float16 for g in grads.values())
    assert all(torch.isfinite(g).all() for g in grads.values())
    # the reversed gradient reaches the feature extractor, the discriminator learns
    assert grads["encoder.feature_extractor.dense.weight"].abs().sum() > 0
    assert all(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("discriminator."))


# ---- fairseq's fp16 training loop ---------------------------------------------------------


def _losses(logs):
    return {int(r["num_updates"]): r for r in logs["train_inner"]}


@pytest.fixture
def one_thread():
    # fp16 kernels on CPU with 2 threads slow down many times over when another
    # job holds a core (the threads wait for each other); one thread is steady
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fp16_training_with_dynamic_loss_scaling_follows_fp32(tiny_data, tmp_path, one_thread):
    # batches of 4: fp16 kernels on CPU are slow
    extra = [*NO_DROPOUT, "--batch-size", "4", "--log-interval", "2", "--no-save", "--disable-validation"]
    fp32 = _losses(run_train(train_args(tiny_data["data"], str(tmp_path / "a"), *extra, max_update=8)))
    fp16 = _losses(
        run_train(
            train_args(
                tiny_data["data"], str(tmp_path / "b"), *extra, "--fp16", "--memory-efficient-fp16", max_update=8
            )
        )
    )
    assert sorted(fp16) == sorted(fp32) == [2, 4, 6, 8]
    for step, rec in fp16.items():
        assert float(rec["loss_scale"]) == 128.0
        for key in LOSS_KEYS:
            assert float(rec[key]) == pytest.approx(float(fp32[step][key]), rel=2e-2, abs=2e-2), (step, key)
    assert float(fp16[8]["loss"]) < float(fp16[2]["loss"])


def test_gradient_overflow_skips_the_update_and_lowers_the_scale(tiny_data, tmp_path, monkeypatch, one_thread):
    # fairseq's overflow handler creates its zero grad norm with .cuda() (trainer.py);
    # on CPU let that one call be a no-op, the rest is fairseq's and the plugin's code
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    logs = run_train(
        train_args(
            tiny_data["data"],
            str(tmp_path / "c"),
            *NO_DROPOUT,
            "--batch-size",
            "4",
            "--fp16",
            "--memory-efficient-fp16",
            "--fp16-init-scale",
            str(2**19),
            "--log-interval",
            "1",
            "--no-save",
            "--disable-validation",
            max_update=6,
        )
    )
    records = _losses(logs)
    # overflowing steps are not updates: all 6 updates happened, each with finite losses ...
    assert sorted(records) == [1, 2, 3, 4, 5, 6]
    for rec in records.values():
        assert all(math.isfinite(float(rec[key])) for key in LOSS_KEYS)
    # ... after the scaler halved the scale until the scaled gradients fit in fp16
    scales = [float(records[s]["loss_scale"]) for s in sorted(records)]
    assert scales[0] <= 2**18 and scales == sorted(scales, reverse=True)
    assert float(records[6]["gnorm"]) > 0
