"""Checkpoint / run averaging (xlt_fairseq/averaging.py)."""

import os

import pytest
import torch
from fairseq import checkpoint_utils

from tests.conftest import run_train, train_args
from xlt_fairseq.averaging import AveragingError, average_checkpoints, last_checkpoints


def _ckpt(path, a, b, step=0):
    state = {
        "model": {"w": torch.tensor([a, b], dtype=torch.float32), "step": torch.tensor([step])},
        "cfg": None,
        "extra_state": {},
        "last_optimizer_state": {"exp_avg": torch.ones(2)},
        "optimizer_history": [],
    }
    torch.save(state, path)
    return str(path)


def test_average_is_the_mean_of_float_tensors_and_drops_optimizer_state(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 1.0, 2.0, step=1)
    b = _ckpt(tmp_path / "b.pt", 3.0, 6.0, step=2)
    out = str(tmp_path / "avg.pt")
    summary = average_checkpoints([a, b], out)
    state = torch.load(out, weights_only=True)
    assert torch.allclose(state["model"]["w"], torch.tensor([2.0, 4.0]))
    assert state["model"]["w"].dtype == torch.float32
    assert int(state["model"]["step"]) == 2  # non-float tensors: the last file's
    assert state["last_optimizer_state"] is None
    assert summary["n"] == 2 and not os.path.exists(out + ".tmp")


def test_mismatched_checkpoints_are_refused_and_nothing_is_written(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 1.0, 2.0)
    torch.save({"model": {"v": torch.zeros(2)}}, tmp_path / "b.pt")
    out = str(tmp_path / "avg.pt")
    with pytest.raises(AveragingError, match="b.pt: its parameters differ"):
        average_checkpoints([a, str(tmp_path / "b.pt")], out)
    with pytest.raises(AveragingError, match="missing.pt: checkpoint not found"):
        average_checkpoints([a, str(tmp_path / "missing.pt")], out)
    assert not os.path.exists(out)


def test_last_checkpoints_of_a_real_run_average_into_a_loadable_model(tiny_data, tmp_path):
    save = str(tmp_path / "ckpt")
    run_train(train_args(tiny_data["data"], save, "--save-interval-updates", "10", max_update=30))
    paths = last_checkpoints(save, 2)
    # update 30 ends the epoch: fairseq would not save it, the xlt task's runs do (checkpoint_io)
    assert [os.path.basename(p) for p in paths] == ["checkpoint_1_20.pt", "checkpoint_1_30.pt"]
    out = str(tmp_path / "avg.pt")
    average_checkpoints(paths, out)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([out])
    first = checkpoint_utils.load_checkpoint_to_cpu(paths[0])["model"]
    last = checkpoint_utils.load_checkpoint_to_cpu(paths[1])["model"]
    params = dict(models[0].named_parameters())
    changed = [k for k in params if k in first and not torch.equal(first[k], last[k])]
    assert changed, "the two checkpoints should differ"
    for name in changed:
        assert torch.allclose(params[name], (first[name] + last[name]) / 2, atol=1e-6), name
    with pytest.raises(AveragingError, match="4 wanted"):
        last_checkpoints(save, 4)


def test_cli_averages_and_reports_bad_input_clearly(tmp_path, capsys):
    from xlt_fairseq.cli.average import main

    a = _ckpt(tmp_path / "checkpoint_1_10.pt", 1.0, 2.0)
    _ckpt(tmp_path / "checkpoint_1_20.pt", 3.0, 4.0)
    out = str(tmp_path / "avg.pt")
    assert main(["--save-dir", str(tmp_path), "--last", "2", "--out", out]) == 0
    assert torch.allclose(torch.load(out, weights_only=True)["model"]["w"], torch.tensor([2.0, 3.0]))
    assert main(["--inputs", a, str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.pt")]) == 1
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "x.pt"))
