"""One-line errors (``error: FILE[:LINE]: problem``, exit status 1 or 2, no traceback) where tracebacks were:
invalid UTF-8 on standard input, truncated checkpoints given to the averaging tool and to fairseq-generate,
generation options that cannot work (refused before a model is loaded), and model folders missing a file."""

import contextlib
import io
import os
import subprocess
import sys

import pytest
import torch

from xlt_fairseq.generation import GenerationOptionsError, check_command_line, check_generation_options

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(main, argv, stdin_bytes=None):
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin_bytes is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_bytes), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        sys.stdin = old
    return rc, out.getvalue(), err.getvalue().strip()


def one_line(rc, err):
    assert rc in (1, 2), err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_invalid_utf8_on_standard_input_is_reported_like_a_file(tmp_path):
    from xlt_fairseq.cli import predict

    # the input is read before the model is loaded: a model folder is not even needed
    rc, _, err = run_main(predict.main, ["--model", str(tmp_path), "--task", "ner"], b"habari\nsana \xff\xfe\n")
    one_line(rc, err)
    assert err.startswith("error: <stdin>:2: invalid UTF-8"), err


def _checkpoint(path, n=2000):
    torch.save({"model": {"w": torch.randn(n, 16)}, "cfg": None}, path)
    return path


@pytest.mark.parametrize("keep", [4096, 12000, 0.5])
def test_a_truncated_checkpoint_given_to_the_averaging_tool(tmp_path, keep):
    from xlt_fairseq.cli import average

    good = _checkpoint(str(tmp_path / "a.pt"))
    data = open(good, "rb").read()
    cut = tmp_path / "b.pt"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    rc, _, err = run_main(average.main, ["--inputs", good, str(cut), "--out", str(tmp_path / "avg.pt")])
    one_line(rc, err)
    assert f"error: {cut}: cannot be read as a checkpoint (truncated or corrupt" in err, err
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt"]


def test_a_checkpoint_cut_to_a_few_kilobytes_given_to_fairseq_generate(tiny_data, tmp_path):
    # torch's zip reader fails on such a file with a bare "[Errno 22] Invalid argument" naming no file
    cut = tmp_path / "checkpoint_best.pt"
    data = open(_checkpoint(str(tmp_path / "full.pt"), 20000), "rb").read()
    cut.write_bytes(data[:12000])
    import xlt_fairseq

    user_dir = os.path.dirname(xlt_fairseq.__file__)
    generate = os.path.join(os.path.dirname(sys.executable), "fairseq-generate")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run(
        [generate, tiny_data["data"], "--user-dir", user_dir, "--task", "xlt_multitask", "--path", str(cut), "--cpu"]
        + ["--gen-subset", "valid", "--source-lang", "aa", "--target-lang", "bb", "--beam", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    last = proc.stderr.strip().splitlines()[-1]  # after fairseq's own logging
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert last.startswith(f"error: {cut}: cannot be read as a checkpoint (truncated or corrupt"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "options, message",
    [
        ({"nbest": 0}, "--nbest 0"),
        ({"beam": -1}, "--beam -1"),
        ({"beam": 2, "nbest": 3}, "--nbest 3 cannot exceed --beam 2"),
        ({"min_len": 5, "max_len_a": 0, "max_len_b": 3}, "allow fewer tokens than --min-len 5"),
        ({"min_len": 5, "max_len": 3}, "--max-len 3 is below --min-len 5"),
    ],
)
def test_generation_options_that_cannot_work(options, message):
    with pytest.raises(GenerationOptionsError, match=message):
        check_generation_options(**options)


def test_generation_options_are_checked_before_the_model_is_loaded(tmp_path):
    from xlt_fairseq.cli import predict

    check_generation_options(beam=5, nbest=5, min_len=1, max_len_a=1.2, max_len_b=10)  # fairseq's usual settings
    # xlt-predict: the junk model folder is never read
    for argv, message in (
        (["--nbest", "0"], "--nbest 0"),
        (["--beam", "-2"], "--beam -2"),
        (["--max-len-a", "-1"], "--max-len-a -1"),
    ):
        rc, _, err = run_main(predict.main, ["--model", str(tmp_path), "--task", "translation"] + argv, b"hello\n")
        one_line(rc, err)
        assert message in err, err
    # fairseq-generate's command line, as the plugin sees it when --user-dir imports it
    with pytest.raises(GenerationOptionsError, match="--nbest 0"):
        check_command_line(["data-bin", "--path", "x.pt", "--nbest", "0"])
    with pytest.raises(GenerationOptionsError, match="allow fewer tokens than --min-len 20"):
        check_command_line(["data-bin", "--min-len", "20", "--max-len-b", "10"])
    check_command_line(["data-bin", "--beam", "4", "--nbest", "4", "--max-len-a", "1.2", "--max-len-b", "10"])


def test_fairseq_generate_refuses_impossible_options_at_once(tiny_data):
    import xlt_fairseq

    generate = os.path.join(os.path.dirname(sys.executable), "fairseq-generate")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run(
        [generate, tiny_data["data"], "--user-dir", os.path.dirname(xlt_fairseq.__file__), "--task", "xlt_multitask"]
        + ["--path", "/nonexistent/checkpoint.pt", "--nbest", "0", "--cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: --nbest 0: at least 1 hypothesis per input must be returned" in proc.stderr
    assert "Traceback" not in proc.stderr and "/nonexistent" not in proc.stderr  # before the model is looked for


# ---- model folders missing a file --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder of a tiny checkpoint (NER, sentiment, translation, MLM), written by xlt-export."""
    from tests.conftest import run_train, train_args
    from tests.utils import prepare_all
    from xlt_fairseq.export import export_model

    tmp = str(tmp_path_factory.mktemp("folder"))
    enc, data, raw = prepare_all(os.path.join(tmp, "train"))
    run_train(train_args(data, os.path.join(tmp, "ck"), max_update=2))
    out = os.path.join(tmp, "model")
    export_model(os.path.join(tmp, "ck", "checkpoint_last.pt"), out)
    return out


@pytest.mark.parametrize("missing", ["xlt_model.json", "dict.txt", "sentencepiece.bpe.model", "ner/aa/labels.txt"])
def test_a_model_folder_missing_a_file_names_it(model_dir, tmp_path, missing):
    import shutil

    from xlt_fairseq.cli import predict

    broken = str(tmp_path / "model")
    shutil.copytree(model_dir, broken)
    os.remove(os.path.join(broken, missing))
    rc, _, err = run_main(predict.main, ["--model", broken, "--task", "ner"], b"aka\n")
    one_line(rc, err)
    assert err == f"error: {broken}: incomplete model folder: {missing} missing; re-run xlt-export", err
