"""What happens when things go wrong: non-finite losses, a collapsed
discriminator, configurations that cannot work, killed runs."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from fairseq.trainer import Trainer

from tests.conftest import run_train, train_args
from tests.utils import distributed_recipe
from xlt_fairseq import checkpoint_safety
from tests.test_model_criterion import batch, setup


def _nan_in(criterion, task_name, calls):
    """Makes ``task_name``'s loss NaN on the given (0-based) forward calls."""
    original = criterion._task_loss
    counter = {"n": 0}

    def patched(model, name, sub):
        out, loss, nll, units = original(model, name, sub)
        if name == task_name:
            if counter["n"] in calls:
                loss = loss * float("nan")
            counter["n"] += 1
        return out, loss, nll, units

    criterion._task_loss = patched


def test_nonfinite_task_loss_skips_the_update_and_names_the_task(tiny_data, tmp_path, caplog):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--lr-scheduler", "fixed", "--warmup-updates", "0")
    _nan_in(criterion, "sentiment", calls={1})
    trainer = Trainer(cfg, task, model, criterion)
    trainer.train_step([batch(task, n=8, start=0)])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with caplog.at_level(logging.WARNING):
        log = trainer.train_step([batch(task, n=8, start=8)])
    assert any("non-finite loss in sentiment" in r.getMessage() for r in caplog.records)
    assert all(
        torch.equal(p.detach(), before[n]) for n, p in model.named_parameters()
    ), "skipped update changed weights"
    assert float(log["nonfinite_sentiment"]) == 1
    trainer.train_step([batch(task, n=8, start=16)])
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_training_stops_after_consecutive_nonfinite_updates(tiny_data, tmp_path):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--max-consecutive-nonfinite", "3")
    _nan_in(criterion, "mlm", calls=set(range(100)))
    trainer = Trainer(cfg, task, model, criterion)
    trainer.train_step([batch(task, n=8)])
    trainer.train_step([batch(task, n=8)])
    from xlt_fairseq.tasks.xlt_multitask import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="3 consecutive updates had a non-finite loss"):
        trainer.train_step([batch(task, n=8)])


def test_nonfinite_adversarial_loss_is_caught(tiny_data, tmp_path, caplog):
    cfg, task, model, criterion = setup(tiny_data, tmp_path)
    trainer = Trainer(cfg, task, model, criterion)
    last = model.discriminator.layers[-1]
    with torch.no_grad():
        last.bias.fill_(float("inf"))
    with caplog.at_level(logging.WARNING):
        trainer.train_step([batch(task, n=8)])
    assert any("non-finite loss in adv" in r.getMessage() for r in caplog.records)


def test_collapsed_discriminator_is_reported(tiny_data, tmp_path, caplog):
    cfg, task, model, criterion = setup(tiny_data, tmp_path, "--collapse-window", "3")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            task.policy.watch_discriminator({"adv_count": 10, "adv_correct": 10})
    assert any("collapsed" in r.getMessage() and "100 %" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for acc in (5, 10, 5, 5):  # the streak restarts after the saturated step
            task.policy.watch_discriminator({"adv_count": 10, "adv_correct": acc})
    assert sum("chance" in r.getMessage() for r in caplog.records) == 0
    task.policy.watch_discriminator({"adv_count": 10, "adv_correct": 5})
    with caplog.at_level(logging.WARNING):
        task.policy.watch_discriminator({"adv_count": 10, "adv_correct": 5})
    assert any("chance" in r.getMessage() for r in caplog.records)


def test_weight_for_a_task_without_corpora_is_refused(tiny_data, tmp_path):
    args = train_args(tiny_data["data"], str(tmp_path), "--sentiment-weight", "0.5")
    i = args.index("--sentiment-langs")
    del args[i : i + 2]
    with pytest.raises(ValueError, match="--sentiment-weight 0.5 is set but the sentiment task has no corpora"):
        run_train(args)


def test_language_without_data_is_refused(tiny_data, tmp_path):
    args = train_args(tiny_data["data"], str(tmp_path))
    args[args.index("--ner-langs") + 1] = "aa,bb,zz"
    with pytest.raises(FileNotFoundError, match="no ner corpus for 'zz'"):
        run_train(args)


def test_translation_pair_without_target_side_is_refused(tiny_data, tmp_path):
    data = str(tmp_path / "data")
    shutil.copytree(tiny_data["data"], data)
    for ext in ("bin", "idx"):
        os.remove(os.path.join(data, "translation", "aa-bb", f"train.tgt.{ext}"))
    with pytest.raises(FileNotFoundError, match="train split of translation pair aa-bb has no target"):
        run_train(train_args(data, str(tmp_path / "ckpt")))


def test_single_language_turns_the_adversarial_branch_off(tiny_data, tmp_path, caplog):
    args = train_args(tiny_data["data"], str(tmp_path), max_update=2)
    for flag in ("--sentiment-langs", "--mlm-langs", "--translation-pairs"):
        i = args.index(flag)
        del args[i : i + 2]
    args[args.index("--ner-langs") + 1] = "aa"
    with caplog.at_level(logging.WARNING):
        run_train(args)
    warnings = [r.getMessage() for r in caplog.records if "adversarial branch is off" in r.getMessage()]
    assert len(warnings) == 1, warnings
    state = checkpoint_safety.load(os.path.join(str(tmp_path), "checkpoint_last.pt"))
    assert not any(k.startswith("discriminator.") for k in state["model"]), "a one-language model has no discriminator"
    assert state["optimizer_history"][-1]["num_updates"] == 2


def test_label_set_mismatch_on_restore_is_refused(tiny_data, tmp_path):
    save = str(tmp_path / "ckpt")
    run_train(train_args(tiny_data["data"], save, max_update=2))
    data = str(tmp_path / "data")
    shutil.copytree(tiny_data["data"], data)
    # same number of labels, different names: the head would silently mean something else
    for lang in ("aa", "bb"):
        path = os.path.join(data, "ner", lang, "labels.txt")
        labels = open(path).read().replace("B-LOC", "B-GPE")
        open(path, "w").write(labels)
        meta_path = os.path.join(data, "ner", lang, "meta.json")  # a consistent corpus, other labels
        meta = open(meta_path).read().replace("B-LOC", "B-GPE")
        open(meta_path, "w").write(meta)
    args = train_args(
        data, str(tmp_path / "ckpt2"), "--restore-file", os.path.join(save, "checkpoint_last.pt"), max_update=4
    )
    with pytest.raises(Exception) as excinfo:
        run_train(args)
    # fairseq wraps load errors in its own "Cannot load model parameters"; ours is the cause shown above it
    chain = [excinfo.value, excinfo.value.__context__, excinfo.value.__cause__]
    assert any(isinstance(e, ValueError) and "other label sets" in str(e) and "B-GPE" in str(e) for e in chain)


def _cli(save_dir, data, max_update, log):
    cmd = [os.path.join(os.path.dirname(sys.executable), "fairseq-train")] + train_args(
        data, save_dir, "--save-interval-updates", "10", "--log-interval", "1", max_update=max_update
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def test_run_killed_mid_epoch_resumes_to_the_same_result(tiny_data, tmp_path):
    """SIGKILL after the checkpoint at update 10 (an epoch here is 30 updates),
    restart with the same command: the final weights equal an uninterrupted run's."""
    data = tiny_data["data"]
    killed = _cli(str(tmp_path / "b"), data, 60, tmp_path / "b.log")
    deadline = time.time() + 300
    ckpt = tmp_path / "b" / "checkpoint_last.pt"  # written (atomically) after checkpoint_1_10.pt
    while not ckpt.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if killed.poll() is None:
        killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    log_b = open(tmp_path / "b.log").read()
    assert ckpt.exists()
    assert '"num_updates": "60"' not in log_b, "the run finished before it could be killed"
    restarted = _cli(str(tmp_path / "b"), data, 60, tmp_path / "b2.log")
    straight = _cli(str(tmp_path / "a"), data, 60, tmp_path / "a.log")
    assert restarted.wait(timeout=300) == 0
    assert straight.wait(timeout=300) == 0
    resumed_log = open(tmp_path / "b2.log").read()
    assert "Loaded checkpoint" in resumed_log
    a = torch.load(tmp_path / "a" / "checkpoint_last.pt", map_location="cpu")
    b = torch.load(tmp_path / "b" / "checkpoint_last.pt", map_location="cpu")
    assert a["optimizer_history"][-1]["num_updates"] == b["optimizer_history"][-1]["num_updates"] == 60
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-4), key


@pytest.fixture
def saved_run(tiny_data, tmp_path):
    save = str(tmp_path / "ckpt")
    run_train(train_args(tiny_data["data"], save, max_update=4))
    return save


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_full_disk_while_copying_keeps_the_previous_checkpoint(tiny_data, saved_run, monkeypatch):
    last = os.path.join(saved_run, "checkpoint_last.pt")
    before = open(last, "rb").read()

    def half_then_full(src, dst, length=0):
        dst.write(src.read(1000))
        _disk_full()

    monkeypatch.setattr(shutil, "copyfileobj", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        # checkpoint_1_6.pt is written, then copied to checkpoint_last.pt
        run_train(train_args(tiny_data["data"], saved_run, "--save-interval-updates", "2", max_update=8))
    assert open(last, "rb").read() == before
    assert torch.load(last, map_location="cpu")["optimizer_history"][-1]["num_updates"] == 4
    assert not [f for f in os.listdir(saved_run) if f.endswith((".partial", ".tmp"))]


def test_failed_save_leaves_no_partial_file(tiny_data, saved_run, monkeypatch):
    last = os.path.join(saved_run, "checkpoint_last.pt")
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        real_save({"partial": True}, f)
        _disk_full()

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        run_train(train_args(tiny_data["data"], saved_run, max_update=8))
    monkeypatch.undo()
    assert torch.load(last, map_location="cpu")["optimizer_history"][-1]["num_updates"] == 4
    assert not [f for f in os.listdir(saved_run) if f.endswith((".partial", ".tmp"))]


def test_truncated_checkpoint_gives_a_clear_error(tiny_data, saved_run):
    from xlt_fairseq.checkpoint_io import CheckpointReadError

    last = os.path.join(saved_run, "checkpoint_last.pt")
    data = open(last, "rb").read()
    open(last, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointReadError, match="checkpoint_last.pt: cannot be read as a checkpoint"):
        run_train(train_args(tiny_data["data"], saved_run, max_update=8))
    open(last, "wb").write(b"not a checkpoint at all")
    with pytest.raises(CheckpointReadError, match="checkpoint_last.pt"):
        run_train(train_args(tiny_data["data"], saved_run, max_update=8))


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_worker_makes_the_other_exit_without_hanging(tiny_data, tmp_path):
    """Two CPU workers over gloo (TOOLCHAIN.md recipe); SIGKILL one mid-run: the
    other exits non-zero within a bounded time and leaves no partial checkpoint."""
    port = _free_port()
    save = str(tmp_path / "ckpt")
    procs, logs = [], []
    for rank in (0, 1):
        log = tmp_path / f"rank{rank}.log"
        logs.append(log)
        cmd = [os.path.join(os.path.dirname(sys.executable), "fairseq-train")] + train_args(
            tiny_data["data"],
            save,
            "--log-interval",
            "1",
            "--save-interval-updates",
            "5",
            *distributed_recipe(port, rank),
            "--heartbeat-timeout",
            "30",
            max_update=100000,
        )
        env = dict(os.environ, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env))
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if '"num_updates": "8"' in open(logs[0]).read():
                break
            assert procs[0].poll() is None and procs[1].poll() is None, open(logs[0]).read()[-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("the two workers did not start training")
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        rc = procs[0].wait(timeout=120)
        waited = time.time() - killed_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert rc != 0, "the surviving worker exited 0 after its peer died"
    assert waited < 120
    assert not [f for f in os.listdir(save) if f.endswith((".tmp", ".partial"))]
    for f in os.listdir(save):
        torch.load(os.path.join(save, f), map_location="cpu")  # every checkpoint left is complete
