"""The plugin's checkpoint I/O changes are scoped: importing it changes nothing in
fairseq, and a run of the xlt task protects only its own --save-dir."""

import os
import subprocess
import sys

import pytest
from fairseq.file_io import PathManager

from tests.conftest import REPO, run_train, train_args
from xlt_fairseq import checkpoint_io


def test_importing_the_plugin_leaves_fairseqs_checkpoint_functions_alone():
    code = (
        "from fairseq import checkpoint_utils; from fairseq.file_io import PathManager\n"
        "copy, save = PathManager.copy, checkpoint_utils.torch_persistent_save\n"
        "import xlt_fairseq\n"
        "assert PathManager.copy is copy and checkpoint_utils.torch_persistent_save is save\n"
        "print('unchanged')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "unchanged" in out.stdout, out.stderr[-2000:]


def test_only_the_runs_save_dir_gets_atomic_copies(tiny_data, tmp_path, monkeypatch):
    save = str(tmp_path / "ckpt")
    run_train(train_args(tiny_data["data"], save, max_update=2))
    assert checkpoint_io.is_protected(os.path.join(save, "checkpoint_last.pt"))
    other = tmp_path / "other"
    other.mkdir()
    assert not checkpoint_io.is_protected(str(other / "x.pt"))
    calls = []
    monkeypatch.setattr(checkpoint_io, "atomic_copy", lambda *a, **k: calls.append(a) or True)
    src = tmp_path / "src.pt"
    src.write_bytes(b"x")
    PathManager.copy(str(src), str(other / "x.pt"), overwrite=True)  # fairseq's own copy, another folder
    assert calls == [] and (other / "x.pt").read_bytes() == b"x"
    PathManager.copy(str(src), os.path.join(save, "y.pt"), overwrite=True)
    assert len(calls) == 1


def test_corrupt_file_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    from fairseq import checkpoint_utils

    with pytest.raises(checkpoint_io.CheckpointReadError, match="bad.pt: cannot be read as a checkpoint"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))


def test_a_validation_that_ends_an_epoch_is_saved(tiny_data, tmp_path):
    """fairseq writes no ``checkpoint_E_U.pt`` when the interval update ends an epoch; the xlt task's runs keep
    it (a copy of ``checkpoint_last.pt``), so every validation can be selected."""
    from xlt_fairseq.experiments.command import SYNTHETIC_RECIPE, train_command
    from xlt_fairseq.experiments.train_records import checkpoint_saves, checkpoint_updates

    save = str(tmp_path / "ckpt")
    settings = {**SYNTHETIC_RECIPE, "save_dir": save, "no_epoch_checkpoints": False, "max_update": 30}
    # ner/bb: 240 sentences, batch 16 -> 15 updates an epoch; validations (and saves) every 15 updates
    settings.update(validate_interval_updates=15, save_interval_updates=15, validate_interval=1000, save_interval=1000)
    records = run_train(train_command(tiny_data["data"], {"ner": ["bb"]}, settings).argv())
    assert [int(v["valid_num_updates"]) for v in records["valid"]] == [15, 30]
    names = sorted(n for n in os.listdir(save) if n.startswith("checkpoint_") and n[11].isdigit())
    assert names == ["checkpoint_1_15.pt", "checkpoint_2_30.pt"]
    assert checkpoint_updates(os.path.join(save, "checkpoint_1_15.pt")) == 15
    assert set(checkpoint_saves(save)) == {15, 30}
