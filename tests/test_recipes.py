"""The recipes of the experiment runner (``recipe:`` in examples/systems: self-training, checkpoint and run
averaging, two-stage training) on the tiny grid's generated data: each runs what it builds on first, and does
what its system file says, checked against the files it leaves."""

import json
import os

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.test_experiments import cli, counts, one_thread  # noqa: F401 (fixture)
from xlt_fairseq.data.formats import read_tagged
from xlt_fairseq.experiments import grid
from xlt_fairseq.experiments.runner import read_results

SYSTEMS = os.path.join(REPO, "examples", "systems")
RECIPE_RUNS = [
    "low-resource/ner/self_training/seed1",
    "low-resource/ner/checkpoint_average/seed1",
    "low-resource/ner/run_average/seed1",
    "low-resource/ner/two_stage/seed1",
]


def _experiment(folder, systems, seeds=(1, 2)):
    with open(os.path.join(REPO, "examples", "experiments", "tiny.yaml"), encoding="utf-8") as f:
        exp = yaml.safe_load(f)
    exp.update(
        name="recipes",
        systems=systems,
        systems_dir=SYSTEMS,
        seeds=list(seeds),
        tsne={"enabled": False},
    )
    exp["train"]["max-update"] = 36  # three validations to average
    path = os.path.join(folder, "recipes.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(exp, f)
    return path


@pytest.fixture(scope="module")
def recipe_grid(tmp_path_factory):
    import run_experiments

    folder = str(tmp_path_factory.mktemp("recipes"))
    systems = ["multilingual", "cross_lingual", "self_training", "checkpoint_average", "run_average", "two_stage"]
    config = _experiment(folder, systems)
    out = os.path.join(folder, "out")
    rc, so = cli(run_experiments.main, [config, "--out", out, "--no-progress", "--only", *RECIPE_RUNS])
    assert rc == 0, so
    rows = read_results(os.path.join(out, "results.jsonl"))
    return {"out": out, "rows": rows, "counts": counts(so), "config": config}


def _run_info(out, run_id):
    with open(os.path.join(out, "runs", *run_id.split("/"), "run.json"), encoding="utf-8") as f:
        return json.load(f)


def test_recipes_run_what_they_build_on_first(recipe_grid):
    ids = {r["run_id"] for r in recipe_grid["rows"]}
    # the teacher (multilingual) and the first stage (cross_lingual) were run and evaluated on the way
    assert {"low-resource/ner/multilingual/seed1", "low-resource/ner/cross_lingual/seed1"} <= ids
    assert set(RECIPE_RUNS) <= ids
    # trainings: multilingual seeds 1 and 2 (run averaging), cross-lingual, the self-training student, the second
    # stage; checkpoint averaging reuses multilingual's training
    assert recipe_grid["counts"]["trained"] == 5
    out = recipe_grid["out"]
    assert _run_info(out, "low-resource/ner/checkpoint_average/seed1")["trained_in"] == _run_info(
        out, "low-resource/ner/multilingual/seed1"
    )["trained_in"]


def test_self_training_adds_the_confident_pseudo_labels(recipe_grid):
    out = recipe_grid["out"]
    run_dir = os.path.join(out, "runs", "low-resource", "ner", "self_training", "seed1")
    with open(os.path.join(run_dir, "pseudo", "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    assert list(summary) == ["bb"]  # the low-resource language only
    pseudo = read_tagged(os.path.join(run_dir, "pseudo", "ner.bb.conll"), "conll")
    assert 0 < len(pseudo) == summary["bb"]["kept"] <= summary["bb"]["unlabelled"]
    assert summary["bb"]["teacher"].startswith(_run_info(out, "low-resource/ner/multilingual/seed1")["trained_in"])
    # the student's data: bb's training split is the gold subset plus the pseudo-labelled sentences
    data = _run_info(out, "low-resource/ner/self_training/seed1")["flags"][0]  # the data root
    teacher_data = _run_info(out, "low-resource/ner/multilingual/seed1")["flags"][0]
    assert data != teacher_data

    def train_examples(root):
        with open(os.path.join(root, "ner", "bb", "meta.json"), encoding="utf-8") as f:
            return json.load(f)["splits"]["train"]["examples"]

    assert train_examples(data) == train_examples(teacher_data) + len(pseudo)


def test_checkpoint_averaging_evaluates_the_mean_of_the_last_checkpoints(recipe_grid):
    out = recipe_grid["out"]
    rows = [r for r in recipe_grid["rows"] if r["system"] == "checkpoint_average"]
    assert rows and all(r["selection_note"].startswith("average of 3 checkpoints") for r in rows)
    averaged = torch.load(os.path.join(out, rows[0]["checkpoint"]), weights_only=False)
    sources = averaged["extra_state"]["averaged_from"]
    assert len(sources) == 3 and all("multilingual" in p for p in sources)
    states = [torch.load(p, weights_only=False)["model"] for p in sources]
    name = next(k for k, v in averaged["model"].items() if v.is_floating_point() and v.dim() == 2)
    expected = sum(s[name].double() for s in states) / 3
    assert torch.allclose(averaged["model"][name].double(), expected, atol=1e-6)
    assert not torch.equal(states[0][name], states[-1][name])  # the checkpoints differ: the test can fail
    # run averaging: the same last three of both seeds' trainings
    runs = [r for r in recipe_grid["rows"] if r["system"] == "run_average"]
    assert runs and all("average of 6 checkpoints" in r["selection_note"] for r in runs)
    sources = torch.load(os.path.join(out, runs[0]["checkpoint"]), weights_only=False)["extra_state"]["averaged_from"]
    assert any("/seed1/" in p for p in sources) and any("/seed2/" in p for p in sources)


def test_two_stage_starts_from_the_first_stage(recipe_grid):
    out = recipe_grid["out"]
    info = _run_info(out, "low-resource/ner/two_stage/seed1")
    flags = info["flags"]
    start = flags[flags.index("--finetune-from-model") + 1]
    with open(os.path.join(_run_info(out, "low-resource/ner/cross_lingual/seed1")["trained_in"], "selection.json")) as f:
        first = json.load(f)
    assert start == first["english-dev"]["ner/aa"]["checkpoint"]
    with open(os.path.join(info["trained_in"], "train.log"), encoding="utf-8") as f:
        assert f"loading pretrained model from {start}" in f.read()
    # the second stage trains on the low-resource language only; the pivot is validated and tested
    assert info["train"] == ["bb"] and info["evaluation_only"] == ["aa"]


def test_recipe_errors_name_the_file(tmp_path):
    config = _experiment(str(tmp_path), ["multilingual", "two_stage"])  # two_stage builds on cross_lingual
    with pytest.raises(grid.ConfigError, match="cross_lingual, not a system of the grid"):
        grid.expand_grid(grid.load_experiment(config))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrow: base\nrecipe:\n  average: {checkpoints: 0}\n", encoding="utf-8")
    with pytest.raises(grid.ConfigError, match=r"bad.yaml:4: recipe.average: checkpoints must be a positive integer"):
        grid.load_system(str(bad), SYSTEMS)
    bad.write_text("name: bad\nrow: base\nrecipe:\n  self_training: {threshold: 0.5}\n", encoding="utf-8")
    with pytest.raises(grid.ConfigError, match="recipe.self_training needs teacher"):
        grid.load_system(str(bad), SYSTEMS)


def test_extra_training_examples_with_an_unknown_label_are_refused(tmp_path):
    from xlt_fairseq.data.formats import DataFormatError
    from xlt_fairseq.data.prepare import _read
    from xlt_fairseq.data.spec import CorpusSpec

    train = tmp_path / "train.conll"
    train.write_text("Ann\tB-PER\nsat\tO\n\nBob\tB-PER\n\n", encoding="utf-8")
    extra = tmp_path / "pseudo.conll"
    extra.write_text("Kim\tB-PER\n\nParis\tB-LOC\n\n", encoding="utf-8")
    spec = CorpusSpec(task="ner", lang="xx", train=str(train), extra_train=str(extra), subsample=0.5, seed=1)
    with pytest.raises(DataFormatError, match=r"pseudo.conll:3: tag 'B-LOC' does not occur"):
        _read(spec)
    extra.write_text("Kim\tB-PER\n\nZoe\tB-PER\n\n", encoding="utf-8")
    parsed, stats, _ = _read(spec)
    # the subset (1 of 2 gold sentences) plus every extra sentence, never subsampled
    assert len(parsed["train"]) == 1 + 2 and stats["train"]["extra"]["read"] == 2


def test_the_report_lists_the_recipes(recipe_grid, tmp_path):
    import csv

    import make_report

    report = str(tmp_path / "report")
    rc, so = cli(make_report.main, [os.path.join(recipe_grid["out"], "results.jsonl"), "--out", report])
    assert rc == 0, so
    with open(os.path.join(report, "table1_ner.csv"), encoding="utf-8") as f:
        systems = {c["system"] for c in csv.DictReader(f)}
    assert {"self_training", "checkpoint_average", "run_average", "two_stage"} <= systems
