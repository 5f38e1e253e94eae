# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""examples/README.md's commands, run as written (bash, the installed console
scripts, fairseq-train/-generate/-hydra-train) in a temporary folder, with fewer
updates: the quick start and the Hydra config cannot drift from the code."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.utils import REPO

README = os.path.join(REPO, "examples", "README.md")
SAMPLE = os.path.join(REPO, "examples", "demo_data")


def _blocks():
    text = open(README, encoding="utf-8").read()
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def _run(block, cwd, timeout=600):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's plugin, also in children
    for tool in sorted(set(re.findall(r"^(xlt-[a-z0-9-]+)", block, re.M))):
        assert shutil.which(tool, path=env["PATH"]), f"{tool} is not installed (console script): run `make install`"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _records(text, tag="valid"):
    """fairseq's --log-format json records with this progress-bar tag, as fairseq-train
    (``... | valid | {...}``) and fairseq-hydra-train (``[...][valid][INFO] - {...}``) print them."""
    return [json.loads(m) for m in re.findall(rf"(?:\| {tag} \| |\]\[{tag}\]\[INFO\] - )(\{{.*\}})$", text, re.M)]


def _count_lines(path):
    return sum(1 for line in open(path, encoding="utf-8") if line.strip())


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    """The quick start block, run in a fresh folder that sees the checkout's examples/."""
    work = tmp_path_factory.mktemp("examples")
    os.symlink(os.path.join(REPO, "examples"), work / "examples")
    block = _blocks()[0]
    # only the budget changes: 20 updates instead of the script's 300
    block, n = re.subn(r"^(examples/train_tiny\.sh .*)$", r"\1 --max-update 20", block, flags=re.M)
    assert n == 1, "the quick start no longer runs examples/train_tiny.sh"
    proc = _run(block, work)
    return {"work": work, "proc": proc, "out": proc.stdout + proc.stderr}


def test_quick_start_prepares_trains_and_translates(quick_start):
    proc, work, out = quick_start["proc"], quick_start["work"], quick_start["out"]
    assert proc.returncode == 0, out[-4000:]
    # every corpus of examples/tiny.yaml, with all its examples
    corpora = {
        ("ner", "en"): ("train", "valid"),
        ("ner", "sw"): ("train", "valid"),
        ("sentiment", "sw"): ("train", "valid"),
        ("sentiment", "yo"): ("train", "valid"),
        ("translation", "en-sw"): ("train", "valid"),
        ("mlm", "sw"): ("train",),
    }
    for (task, key), splits in corpora.items():
        meta = json.load(open(work / "tiny" / "data-bin" / task / key / "meta.json", encoding="utf-8"))
        assert sorted(meta["splits"]) == sorted(splits), (task, key)
    meta = json.load(open(work / "tiny" / "data-bin" / "sentiment" / "yo" / "meta.json", encoding="utf-8"))
    assert meta["splits"]["valid"]["examples"] == _count_lines(os.path.join(SAMPLE, "sentiment", "yo", "dev.tsv"))
    # fairseq-train ran the full framework for the given budget and validated every task per language
    valid = _records(out)[-1]
    assert valid["valid_num_updates"] == "20"
    for key in ("ner_f1_en", "ner_f1_sw", "sentiment_acc_sw", "sentiment_acc_yo", "bleu_en_sw", "adv_acc"):
        assert f"valid_{key}" in valid, key
    train = _records(out, "train")[-1]  # the masked LM has no dev split: its loss is in the training record
    for task in ("ner", "sentiment", "translation", "mlm", "adv"):
        assert float(train[f"train_{task}_loss"]) > 0, task
    assert os.path.exists(work / "tiny" / "checkpoints" / "checkpoint_best.pt")
    # fairseq-generate translated every dev sentence of the sample
    n_dev = _count_lines(os.path.join(SAMPLE, "mt", "dev.en"))
    assert f"Translated {n_dev} sentences" in out
    assert len([line for line in proc.stdout.splitlines() if line.startswith("H-")]) == n_dev
    assert re.search(r"Generate valid with beam=4: BLEU = [\d.]+", out)


def test_hydra_config_trains_on_the_quick_start_data(quick_start):
    assert quick_start["proc"].returncode == 0, "the quick start failed (see the test above)"
    work = quick_start["work"]
    block = _blocks()[1].rstrip("\n") + f" optimization.max_update=10 hydra.run.dir={work / 'hydra-run'}"
    proc = _run(block, work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert os.path.exists(work / "tiny" / "hydra" / "checkpoint_last.pt")
    valid = _records(out)[-1]
    assert valid["valid_num_updates"] == "10"
    assert "valid_ner_f1_sw" in valid and "valid_sentiment_acc_yo" in valid and "valid_bleu_en_sw" in valid
