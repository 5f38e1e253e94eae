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
