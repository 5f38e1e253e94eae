"""Every console script answers --help and argument errors at once (neither fairseq nor torch is
imported to build a parser) and quietly (no "Please install tensorboardX" line); the package
imports light, and ``from xlt_fairseq.models import XLTModel`` registers the whole plugin."""

import ast
import os
import statistics
import subprocess
import sys
import time

import pytest

from tests.utils import REPO


def _console_scripts():
    """setup.py's CONSOLE_SCRIPTS (read, not imported: importing setup.py runs setup())."""
    tree = ast.parse(open(os.path.join(REPO, "setup.py"), encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CONSOLE_SCRIPTS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no CONSOLE_SCRIPTS")


CONSOLE_SCRIPTS = _console_scripts()

ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(module, *args):
    """The console script's own wrapper (what pip writes into bin/xlt-NAME)."""
    code = f"import sys; from xlt_fairseq.cli.{module} import main; sys.exit(main())"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV, timeout=60)
    return time.perf_counter() - start, proc


@pytest.mark.parametrize("script", sorted(CONSOLE_SCRIPTS))
def test_help_and_argument_errors_are_fast_and_quiet(script):
    module = CONSOLE_SCRIPTS[script]
    times = []
    for _ in range(3):
        seconds, proc = _run(module, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]
        times.append(seconds)
    seconds, error = _run(module, "--no-such-option")
    assert error.returncode == 2 and "error:" in error.stderr
    assert proc.stderr == "" and error.stdout == ""
    assert "tensorboardX" not in error.stderr and "INFO" not in error.stderr
    # the target is 0.5 s; the margin is for a busy machine (the interpreter alone takes about 0.05 s)
    assert statistics.median(times) < 1.5 and seconds < 1.5, (times, seconds)


def test_the_package_imports_without_fairseq_or_torch():
    code = "import sys, xlt_fairseq.cli.predict; print(sorted(m for m in ('fairseq', 'torch') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]


def test_models_package_exports_the_api_and_registers_the_plugin():
    code = (
        "from xlt_fairseq.models import XLTModel\n"
        "from xlt_fairseq.models.xlt_model import XLTModel as Same\n"
        "from fairseq.criterions import CRITERION_REGISTRY\n"
        "from fairseq.models import MODEL_REGISTRY\n"
        "from fairseq.tasks import TASK_REGISTRY\n"
        "print(XLTModel is Same, 'xlt_multitask' in TASK_REGISTRY, 'xlt_multitask_adversarial' in CRITERION_REGISTRY,"
        " MODEL_REGISTRY.get('xlt_model') is XLTModel)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True"] * 4
    assert "tensorboardX" not in proc.stderr
