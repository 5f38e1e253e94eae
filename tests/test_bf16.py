"""bf16 mixed precision on the CPU (--bf16-autocast): fp32 weights, optimizer
state and checkpoints, bf16 matrix products; refused where the CPU has no bf16."""

import os

import pytest
import torch

from tests.conftest import run_train, train_args
from xlt_fairseq import hardware

needs_bf16 = pytest.mark.skipif(
    not hardware.cpu_supports_bf16(), reason="this CPU has no native bf16 (avx512_bf16 / amx_bf16 / bf16)"
)


@needs_bf16
def test_bf16_training_learns_and_its_checkpoint_resumes_in_fp32(tiny_data, tmp_path, monkeypatch):
    save = str(tmp_path / "ck")
    records = run_train(train_args(tiny_data["data"], save, "--bf16-autocast", max_update=40))
    losses = [float(r["loss"]) for r in records["train_inner"]]
    assert len(losses) >= 3 and losses[-1] < losses[0] * 0.8, losses
    assert all(torch.isfinite(torch.tensor(losses)))
    valid = records["valid"][-1]
    assert float(valid["valid_ner_f1"]) >= 0.0 and "valid_sentiment_acc" in valid
    # the checkpoint holds fp32 weights and fp32 optimizer state
    state = torch.load(os.path.join(save, "checkpoint_last.pt"), map_location="cpu", weights_only=False)
    assert all(v.dtype in (torch.float32, torch.long) for v in state["model"].values())
    moments = [t for s in state["last_optimizer_state"]["state"].values() for t in s.values() if torch.is_tensor(t)]
    assert moments and all(t.dtype == torch.float32 for t in moments if t.is_floating_point())
    # it loads for evaluation on a CPU without bf16
    from xlt_fairseq.experiments import evaluation

    with monkeypatch.context() as m:
        m.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2"})
        loaded = evaluation.load_checkpoint(os.path.join(save, "checkpoint_last.pt"), cpu=True)
        assert next(loaded.model.parameters()).dtype == torch.float32
    # an fp32 run resumes it and goes on learning
    more = run_train(train_args(tiny_data["data"], save, max_update=60))
    assert int(more["train_inner"][-1]["num_updates"]) == 60
    assert float(more["train_inner"][-1]["loss"]) < losses[0]


@needs_bf16
def test_bf16_autocast_runs_the_matrix_products_in_bf16(tiny_data, tmp_path):
    from tests.test_model_criterion import batch, setup

    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--bf16-autocast")
    model.train()
    seen = []
    hook = model.heads["ner"].out_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with task.autocast(model):
        loss, _, log = criterion(model, batch(task))
    hook.remove()
    assert seen == [torch.bfloat16]
    assert loss.dtype == torch.float32  # losses are reduced in fp32
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def test_bf16_is_refused_before_training_on_a_cpu_without_it(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": {"fpu", "sse2", "avx2"})
    assert not hardware.cpu_supports_bf16()
    with pytest.raises(RuntimeError, match="no native bf16"):
        run_train(train_args(tiny_data["data"], str(tmp_path / "ck"), "--bf16-autocast", max_update=5))
    assert not os.path.exists(tmp_path / "ck" / "checkpoint_last.pt")


def test_bf16_autocast_with_fp16_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="drop --fp16"):
        run_train(train_args(tiny_data["data"], str(tmp_path / "ck"), "--bf16-autocast", "--amp", max_update=5))
