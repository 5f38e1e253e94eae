"""Safe loading: fairseq checkpoints (new, legacy and published-style) load with
torch's weights_only=True and the plugin's minimal allowlist; a crafted
checkpoint whose pickle would run code is refused with a clear message on every
path (fairseq's loader, --restore-file, --pretrained-encoder, from_pretrained,
importers) and nothing runs; a trusted legacy file loads only when named."""

import argparse
import os
import shutil

import numpy as np
import pytest
import torch

from tests.test_pretrained import TINY, build_xlt_model, fairseq_checkpoint  # noqa: F401
from xlt_fairseq import checkpoint_safety
from xlt_fairseq.checkpoint_safety import TRUST_ENV, UnsafeCheckpointError

MARKER_NAME = "PWNED"


class Payload:
    """Unpickling this runs code (it writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


class OldMeter:
    """Stands for a class an old fairseq version pickled into its training state."""

    def __init__(self):
        self.avg = 1.5


def _evil(path, marker, base_state=None, legacy=False):
    state = dict(base_state or {"model": {}})
    state["extra_state"] = {"payload": Payload(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def _assert_refused(excinfo, path, marker):
    msg = str(excinfo.value)
    assert str(path) in msg and "exec" in msg and TRUST_ENV in msg and "nothing in the file was run" in msg
    assert not os.path.exists(marker)


def test_fairseq_checkpoints_need_only_the_allowlist(fairseq_checkpoint):  # noqa: F811
    from fairseq import checkpoint_utils

    path = os.path.join(fairseq_checkpoint, "model.pt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # with the allowlist
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:  # without it: exactly the Namespace that fairseq pickles
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == ["argparse.Namespace"]
    finally:
        torch.serialization.add_safe_globals(saved)
    assert "argparse.Namespace" in checkpoint_safety._allowed_names()
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    assert "encoder.sentence_encoder.embed_tokens.weight" in state["model"]


def test_published_style_file_loads(tmp_path):
    """Old fairseq files (XLM-R's among them) are legacy (non-zip) pickles with
    an args Namespace and numpy scalars/arrays under numpy 1 names."""
    path = str(tmp_path / "old.pt")
    state = {
        "args": argparse.Namespace(arch="roberta_base", task="multilingual_masked_lm"),
        "model": {"decoder.sentence_encoder.embed_tokens.weight": torch.zeros(4, 2)},
        "optimizer_history": [{"lr_scheduler_state": {"best": np.float64(1.5)}, "num_updates": 3}],
        "extra_state": {"val_loss": np.float32(2.0), "mask": np.arange(3)},
    }
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:  # as numpy 1 pickled them
        f.write(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray\nscalar" in open(path, "rb").read()
    loaded = torch.load(path, map_location="cpu")  # fairseq's own call: weights_only by default
    assert loaded["optimizer_history"][0]["lr_scheduler_state"]["best"] == 1.5
    assert loaded["extra_state"]["mask"].tolist() == [0, 1, 2]
    assert checkpoint_safety.load(path)["args"].arch == "roberta_base"


@pytest.mark.parametrize("legacy", [False, True])
def test_crafted_checkpoint_is_refused_everywhere(tiny_data, fairseq_checkpoint, tmp_path, legacy):  # noqa: F811
    from fairseq import checkpoint_utils, options
    from fairseq.models.roberta import XLMRModel
    from fairseq_cli import train

    from xlt_fairseq.importers.hf import import_hf

    marker = str(tmp_path / MARKER_NAME)
    base = checkpoint_safety.load(os.path.join(fairseq_checkpoint, "model.pt"))

    evil = _evil(str(tmp_path / "evil.pt"), marker, base, legacy)
    with pytest.raises(UnsafeCheckpointError) as e:  # what generate, resume and from_pretrained call
        checkpoint_utils.load_checkpoint_to_cpu(evil)
    _assert_refused(e, evil, marker)
    with pytest.raises(UnsafeCheckpointError) as e:
        checkpoint_safety.load(evil)
    _assert_refused(e, evil, marker)

    # fairseq-train --restore-file
    data = os.path.join(os.path.dirname(fairseq_checkpoint), "mlm-bin")
    args = [data, "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta", *TINY, "--cpu"]
    args += ["--optimizer", "adam", "--lr", "0.001", "--batch-size", "4", "--max-update", "1", "--num-workers", "0"]
    args += ["--tokens-per-sample", "64", "--sample-break-mode", "complete", "--save-dir", str(tmp_path / "ck")]
    args += ["--restore-file", evil, "--disable-validation", "--no-progress-bar"]
    with pytest.raises(UnsafeCheckpointError) as e:
        train.main(options.parse_args_and_arch(options.get_training_parser(), args))
    _assert_refused(e, evil, marker)

    # --pretrained-encoder and fairseq's own from_pretrained on a checkpoint directory
    evil_dir = str(tmp_path / "evil-dir")
    shutil.copytree(fairseq_checkpoint, evil_dir)
    _evil(os.path.join(evil_dir, "model.pt"), marker, base, legacy)
    with pytest.raises(UnsafeCheckpointError) as e:
        build_xlt_model(tiny_data["data"], *TINY, "--pretrained-encoder", evil_dir)
    _assert_refused(e, os.path.join(evil_dir, "model.pt"), marker)
    with pytest.raises(UnsafeCheckpointError) as e:
        XLMRModel.from_pretrained(evil_dir, checkpoint_file="model.pt")
    _assert_refused(e, os.path.join(evil_dir, "model.pt"), marker)

    # a Hugging Face pytorch_model.bin
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text('{"model_type": "xlm-roberta"}')
    shutil.copy(os.path.join(fairseq_checkpoint, "sentencepiece.bpe.model"), hf_dir)
    _evil(str(hf_dir / "pytorch_model.bin"), marker, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError) as e:
        import_hf(str(hf_dir), str(tmp_path / "out"))
    _assert_refused(e, hf_dir / "pytorch_model.bin", marker)


def test_trusted_legacy_file_is_an_explicit_opt_in(fairseq_checkpoint, tmp_path, monkeypatch):  # noqa: F811
    from fairseq import checkpoint_utils

    state = checkpoint_safety.load(os.path.join(fairseq_checkpoint, "model.pt"))
    state["extra_state"]["train_meters"] = OldMeter()
    old = str(tmp_path / "old.pt")
    torch.save(state, old)
    marker = str(tmp_path / MARKER_NAME)
    evil = _evil(str(tmp_path / "evil.pt"), marker, state)

    with pytest.raises(UnsafeCheckpointError, match="test_checkpoint_safety.OldMeter") as e:
        checkpoint_utils.load_checkpoint_to_cpu(old)
    assert f"{TRUST_ENV}={os.path.realpath(old)}" in str(e.value)

    monkeypatch.setenv(TRUST_ENV, old)
    loaded = checkpoint_utils.load_checkpoint_to_cpu(old)
    assert loaded["extra_state"]["train_meters"].avg == 1.5
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    with pytest.raises(UnsafeCheckpointError):  # trusting one file trusts no other
        checkpoint_utils.load_checkpoint_to_cpu(evil)
    assert not os.path.exists(marker)
    monkeypatch.delenv(TRUST_ENV)

    with checkpoint_safety.trust_checkpoints(old):
        assert checkpoint_safety.load(old)["extra_state"]["train_meters"].avg == 1.5
    with pytest.raises(UnsafeCheckpointError):
        checkpoint_safety.load(old)


@pytest.mark.parametrize("switch", ["1", "true"])
def test_torch_environment_switch_does_not_turn_safe_loading_off(
    fairseq_checkpoint, tmp_path, monkeypatch, switch  # noqa: F811
):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD (a common torch >= 2.6 workaround) would make
    fairseq's torch.load unsafe: every guarded load ignores it, and it is left as it was."""
    from fairseq import checkpoint_utils

    base = checkpoint_safety.load(os.path.join(fairseq_checkpoint, "model.pt"))
    marker = str(tmp_path / MARKER_NAME)
    evil = _evil(str(tmp_path / "evil.pt"), marker, base)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", switch)
    for load in (
        checkpoint_utils.load_checkpoint_to_cpu,  # generate, resume, --restore-file, from_pretrained
        checkpoint_utils.load_ema_from_checkpoint,
        checkpoint_safety.load,
    ):
        with pytest.raises(UnsafeCheckpointError) as e:
            load(evil)
        _assert_refused(e, evil, marker)
        assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == switch
    with pytest.raises(UnsafeCheckpointError):  # fairseq-generate's own entry
        checkpoint_utils.load_model_ensemble_and_task([evil])
    assert not os.path.exists(marker)
    # a good checkpoint still loads, and the opt-in still works with the switch set
    assert "model" in checkpoint_utils.load_checkpoint_to_cpu(os.path.join(fairseq_checkpoint, "model.pt"))
    monkeypatch.setenv(TRUST_ENV, evil)
    checkpoint_utils.load_checkpoint_to_cpu(evil)
    assert os.path.exists(marker)  # the user trusted it: it ran


def test_generate_in_a_subprocess_with_the_switch_set_runs_nothing(fairseq_checkpoint, tmp_path):  # noqa: F811
    import subprocess
    import sys

    base = checkpoint_safety.load(os.path.join(fairseq_checkpoint, "model.pt"))
    marker = str(tmp_path / MARKER_NAME)
    evil = _evil(str(tmp_path / "evil.pt"), marker, base)
    code = (
        "import sys, xlt_fairseq\n"
        "from fairseq import checkpoint_utils\n"
        "try:\n    checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])\n"
        "except xlt_fairseq.checkpoint_safety.UnsafeCheckpointError as e:\n    print('REFUSED', e); sys.exit(3)\n"
    )
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    env.pop(TRUST_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code, evil], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "REFUSED" in proc.stdout and evil in proc.stdout
    assert not os.path.exists(marker)
