"""Signals leave nothing behind (README, "What happens when things go wrong"): SIGTERM, SIGHUP and Ctrl-C during a
tool's final write remove its temporaries; the experiment runner's training and the demo's commands end with
them, and a child ends when its parent is killed; parallel preprocessing returns within seconds of a Ctrl-C to its
process group at any moment. Every test sets the signal dispositions it relies on itself (a shell's background
job starts with SIGINT ignored, `nohup` with SIGHUP ignored), so the suite passes however it is started."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the child's dispositions, whatever the suite inherited: the defaults a terminal gives
DEFAULTS = "import signal\nfor s in (signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_DFL)\n" \
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _default_signals():
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_DFL)


def start(code, *args, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", DEFAULTS + code, *map(str, args)],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_signals,
    )


def wait_for(path, proc, timeout=90):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def result(proc) -> dict:
    """The child's next ``RESULT {json}`` line (the tools print their own output too)."""
    import json

    for line in proc.stdout:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError((proc.communicate(), proc.returncode))


def group_gone(pgid, timeout=10) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# ---- a tool's final write ----------------------------------------------------------------------------------------------

# Runs three tools (each way a tool's main ends: errors.run, run_tool) once per signal. Each pauses at the end,
# its output complete in a temporary file or folder, when it checks its output again before the rename;
# the test then sends the signal.
_TOOLS_CHILD = r"""
import json, os, sys, time
import torch
from xlt_fairseq.data import outputs
from xlt_fairseq.cli import average, build_vocab, split_dev

tmp = sys.argv[1]
check = outputs.check_outputs
def pausing(outs, inputs):
    for _, out in outs:
        folder, base = os.path.split(os.path.abspath(out))
        if os.path.isdir(folder) and any(n.startswith(f".{base}.tmp-") for n in os.listdir(folder)):
            open(os.path.join(tmp, "ready"), "w").close()
            time.sleep(30)
    return check(outs, inputs)
for module in list(sys.modules.values()):  # every tool's reference to the helper
    if getattr(module, "check_outputs", None) is check:
        module.check_outputs = pausing
open(os.path.join(tmp, "dev.conll"), "w").write("".join(f"w{i}\tO\n\n" for i in range(20)))
open(os.path.join(tmp, "text.txt"), "w").write("".join(f"word{i} other{i % 7}\n" for i in range(200)))
for name in ("a.pt", "b.pt"):
    torch.save({"model": {"w": torch.ones(3)}, "cfg": None}, os.path.join(tmp, name))
out = os.path.join(tmp, "out")
runs = {
    "split_dev": lambda: split_dev.main([f"{tmp}/dev.conll", "--format", "conll", "--select", f"{out}/s.conll",
                                         "--report", f"{out}/r.conll"]),
    "average": lambda: average.main(["--inputs", f"{tmp}/a.pt", f"{tmp}/b.pt", "--out", f"{out}/avg.pt"]),
    "build_vocab": lambda: build_vocab.main(["--text", f"{tmp}/text.txt", "--vocab-size", "30", "--out", f"{out}/enc"]),
}
for tool in sys.argv[2:]:
    rc = runs[tool]()
    left = sorted(os.listdir(out)) if os.path.isdir(out) else []
    os.remove(os.path.join(tmp, "ready"))
    print("RESULT " + json.dumps({"tool": tool, "rc": rc, "left": left}), flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_the_final_write_leaves_no_temporary(tmp_path, sig):
    tools = ["split_dev", "average", "build_vocab"]
    proc = start(_TOOLS_CHILD, tmp_path, *tools, tmp_path=tmp_path)
    lines = []
    for tool in tools:
        wait_for(str(tmp_path / "ready"), proc)
        os.kill(proc.pid, sig)
        lines.append(result(proc))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for tool, line in zip(tools, lines):
        assert line == {"tool": tool, "rc": 128 + sig, "left": []}, (line, err)  # no temporary, no output
    assert err.count("nothing was written") == 3, err


# ---- process groups -------------------------------------------------------------------------------------------------


def _processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd[:200]))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_sigterm_to_the_runner_ends_its_training(tmp_path):
    out = tmp_path / "grid"
    script = os.path.join(REPO, "scripts", "run_experiments.py")
    code = f"import runpy, sys\nsys.argv = [{script!r}] + sys.argv[1:]\nrunpy.run_path({script!r}, run_name='__main__')\n"
    config = os.path.join(REPO, "examples", "experiments", "tiny.yaml")
    proc = start(code, config, "--out", out, "--max-runs", "1", "--no-progress", tmp_path=tmp_path)
    deadline = time.time() + 120
    while not [p for p in _processes_mentioning(str(out)) if "fairseq" in p[1] and p[0] != proc.pid]:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no training started"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)  # the runner alone, as a scheduler or `timeout` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err
    deadline = time.time() + 15
    while _processes_mentioning(str(out)) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_mentioning(str(out)), "a training process outlived the runner"


_PARENT = r"""
import sys, time
from xlt_fairseq.data.staging import child_process
with child_process([sys.executable, "-c", "import time; time.sleep(60)", sys.argv[1]]) as proc:
    print(proc.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_ends_when_its_parent_is_killed(tmp_path):
    tag = f"xlt-orphan-test-{os.getpid()}"
    proc = start(_PARENT, tag, tmp_path=tmp_path)
    child = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup can run in the parent
    proc.communicate(timeout=30)
    assert group_gone(child), "the child outlived its killed parent"


# ---- parallel preprocessing: Ctrl-C at any moment --------------------------------------------------------------------

# One process, imports paid once: for every delay it prepares a corpus with two workers while the test sends
# Ctrl-C to its whole process group (as a terminal does) that many seconds after the run starts. After each run,
# no worker may be left and no thread the interpreter would wait for at exit (the hang seen before: a worker
# killed while it sent a result, or a job feeder writing into a pipe nobody reads).
_SWEEP_CHILD = r"""
import json, multiprocessing, os, signal, sys, threading, time
from xlt_fairseq.cli import preprocess
from xlt_fairseq.data import prepare  # what preprocess.main imports after parsing: run 0 then times the work alone
enc, conll, tmp, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C that comes after a run finished: not the loop's business
for i in range(n):
    while not os.path.exists(os.path.join(tmp, f"go{i}")):  # the test's clock starts now
        time.sleep(0.002)
    t0 = time.time()
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # in the try: a Ctrl-C may come at once
        rc = preprocess.main(["ner", "--lang", "sw", "--encoder-dir", enc, "--destdir", os.path.join(tmp, f"d{i}"),
                              "--train", conll, "--workers", "2"])
    except KeyboardInterrupt:  # a Ctrl-C before the tool's handlers, or after its cleanup finished
        rc = "late"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stuck = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    workers = len(multiprocessing.active_children())
    print("RESULT " + json.dumps({"i": i, "rc": rc, "s": round(time.time() - t0, 2), "workers": workers,
                                  "threads": stuck}), flush=True)
"""


def test_ctrl_c_to_the_group_returns_at_any_moment(tmp_path):
    from tests.test_formats import ner_text, write
    from tests.test_preprocess_errors import make_encoder

    enc = make_encoder(tmp_path)
    conll = write(tmp_path, "big.conll", ner_text("conll") * 400)  # 1,200 sentences: several chunks per worker
    n = 10
    proc = start(_SWEEP_CHILD, enc, conll, tmp_path, n, tmp_path=tmp_path)
    results = []
    # the first run is not interrupted: it measures how long a run takes; the others get Ctrl-C spread over it
    (tmp_path / "go0").touch()
    results.append(result(proc))
    length = max(results[0]["s"], 0.05)  # the run measured (about 0.1 s): a longer guess sends most Ctrl-Cs too late
    for i in range(1, n):
        (tmp_path / f"go{i}").touch()
        time.sleep(length * (i - 1) / (n - 2) * 1.1)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.time()
        watchdog = threading.Timer(20, os.killpg, (proc.pid, signal.SIGKILL))  # a hang ends here, as a failure
        watchdog.start()
        try:
            results.append(result(proc))
        finally:
            watchdog.cancel()
        assert time.time() - sent < 15, f"run {i} took {time.time() - sent:.0f} s after Ctrl-C ({results})"
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for r in results:
        assert r["workers"] == 0 and r["threads"] == [], results
        assert r["rc"] in (0, 128 + signal.SIGINT, "late"), results
    assert results[0]["rc"] == 0
    assert sum(r["rc"] == 128 + signal.SIGINT for r in results) >= 3, results  # most Ctrl-Cs hit the run
    assert group_gone(proc.pid)
