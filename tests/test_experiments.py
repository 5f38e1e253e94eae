"""The experiment tooling end to end on the tiny grid (examples/experiments/tiny.yaml:
generated data, xlt_tiny, two systems x two seeds, fairseq-train in subprocesses):
the results file is complete, an interrupted grid resumes and skips finished runs,
a half-written line is repaired, evaluation reproduces the validation metric, and
the report's tables hold the numbers of the results file."""

import contextlib
import csv
import io
import json
import math
import os

import evaluate as evaluate_script
import make_report as make_report_script
import predict as predict_script
import pytest
import run_experiments
import yaml

from tests.conftest import REPO
from xlt_fairseq.experiments import grid
from xlt_fairseq.experiments.runner import read_results, repair_results

TINY = os.path.join(REPO, "examples", "experiments", "tiny.yaml")
SYSTEMS = os.path.join(REPO, "examples", "systems")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process work (evaluation, t-SNE) on one thread: faster than oversubscribed cores shared with other jobs
    (the training subprocesses get OMP_NUM_THREADS=1 from tiny.yaml)."""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def cli(main, args):
    """Runs a script's main() in-process; returns (exit code, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    return rc, buf.getvalue()


def counts(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("grid"))
    results = os.path.join(out, "results.jsonl")
    steps = {}
    # an interrupted grid: only two of the four runs
    rc, so = cli(run_experiments.main, [TINY, "--out", out, "--max-runs", "2", "--no-progress"])
    assert rc == 0
    steps["partial"] = counts(so)
    steps["partial_lines"] = read_results(results)
    # resumed: the other two
    rc, so = cli(run_experiments.main, [TINY, "--out", out, "--no-progress"])
    assert rc == 0
    steps["resumed"] = counts(so)
    with open(results, "rb") as f:
        steps["complete_bytes"] = f.read()
    # nothing left to do
    rc, so = cli(run_experiments.main, [TINY, "--out", out, "--no-progress"])
    steps["again"] = counts(so)
    with open(results, "rb") as f:
        steps["again_bytes"] = f.read()
    # a crash while writing: one run's lines lost, the last line half written
    lines = steps["complete_bytes"].decode("utf-8").splitlines(keepends=True)
    lost = [line for line in lines if '"low-resource/ner/full/seed2"' in line]
    kept = [line for line in lines if line not in lost]
    with open(results, "w", encoding="utf-8") as f:
        f.write("".join(kept) + lost[0][: len(lost[0]) // 2])
    steps["lost"] = len(lost)
    rc, so = cli(run_experiments.main, [TINY, "--out", out, "--no-progress"])
    steps["repaired"] = counts(so)
    return {"out": out, "results": results, "rows": read_results(results), **steps}


# ---- configuration, no training -------------------------------------------------------------------------------------


def _flags(run, corpora):
    return run.train_command("DATA", "SAVE", corpora).flags


def test_systems_map_to_flags():
    exp = grid.load_experiment(TINY)
    corpora = {"ner": ["aa", "bb"], "sentiment": ["aa", "bb"], "mlm": ["aa", "bb"], "translation": ["aa-bb"]}
    expected = {
        # system: (tasks on, grl lambda, adversarial weight, main-task corpora, zero-shot corpora)
        "monolingual": ({"ner-langs"}, "0.0", "1", "bb", []),  # one language: the task turns the branch off
        "multilingual": ({"ner-langs"}, "0.0", "1.0", "aa,bb", []),
        "cross_lingual": ({"ner-langs"}, "0.0", "1.0", "aa,bb", ["bb"]),
        "adversarial": ({"ner-langs"}, "0.01", "1.0", "aa,bb", []),
        "multitask": ({"ner-langs", "sentiment-langs", "translation-pairs", "mlm-langs"}, "0.0", "1.0", "aa,bb", []),
        "full": ({"ner-langs", "sentiment-langs", "translation-pairs", "mlm-langs"}, "0.01", "1.0", "aa,bb", []),
    }
    scenario = grid.Scenario("full", "full")
    same_as = {"base": "multilingual", "adversarial": "adversarial", "language_modelling": "multitask", "full": "full"}
    by_system = {}
    for name in sorted(os.listdir(SYSTEMS)):
        system = grid.load_system(os.path.join(SYSTEMS, name), SYSTEMS)
        run = grid.RunSpec(
            exp, scenario, system, exp.tasks[0], 1, 0, "bb" if system.train_languages == "each" else None
        )
        flags = _flags(run, corpora)
        by_system[system.name] = flags
        assert flags["task"] == "xlt_multitask" and flags["seed"] == "1" and flags["arch"] == "xlt_tiny"
        # a multilingual run follows the languages' mean (valid_ner_f1_mean), a per-language run its language
        assert flags["best-checkpoint-metric"] == ("ner_f1_bb" if run.target else "ner_f1_mean")
        if system.name in expected:
            tasks, lam, w, ner, zs = expected[system.name]
            assert {f for f in flags if f.endswith(("-langs", "-pairs"))} == tasks, system.name
            assert (flags["grl-lambda"], flags["adversarial-weight"], flags["ner-langs"]) == (lam, w, ner), system.name
            assert run.zero_shot_keys == zs
    assert "sentiment-langs" in by_system["ablation_multitask"] and "mlm-langs" not in by_system["ablation_multitask"]
    assert "tagging-tasks" not in by_system["full"]
    full = grid.RunSpec(exp, scenario, grid.load_system("full", SYSTEMS), exp.tasks[0], 1, 0)
    assert _flags(full, {**corpora, "pos": ["aa", "bb"]})["tagging-tasks"] == "pos:aa+bb"  # an auxiliary tagger
    for row, system in same_as.items():  # these ablation rows are trained once, with the system
        assert by_system[f"ablation_{row}"] == by_system[system], row


def test_real_grid_config_expands():
    exp = grid.load_experiment(os.path.join(REPO, "examples", "experiments", "lowres_ner.yaml"))
    runs = grid.expand_grid(exp)
    assert exp.train_flags["pretrained-encoder"].endswith("encoders/e5-small-lowres")
    assert not [r.run_id for r in runs if r.skip_reason]
    assert len(runs) == 3 * (3 + 1 + 4 + 4)  # seeds x (mono sw/yo/zu, cross-lingual, 4 all-language systems, 4 ablations)
    assert not any("monolingual-en" in r.run_id for r in runs)
    xl = [r for r in runs if r.system.name == "cross_lingual" and r.scenario.name == "low-resource"][0]
    assert xl.train_keys == ["en"] and xl.zero_shot_keys == ["sw", "yo", "zu"] and xl.fraction("sw") == 0.0
    low = [r for r in runs if r.system.name == "full" and r.scenario.name == "low-resource"][0]
    assert low.fraction("sw") == 0.01 and low.fraction("en") == 1.0


def test_bad_system_is_refused(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("row: full\ntrain_languages: all\nfairseq: {model: {grl_lambda: 0}}\n")
    with pytest.raises(grid.ConfigError, match="adversarial"):
        grid.load_system(str(p), str(tmp_path))
    p.write_text("row: base\nfairseq: {checkpoint: {no_epoch_checkpoints: true}}\n")
    with pytest.raises(grid.ConfigError, match="runner decides"):
        grid.load_system(str(p), str(tmp_path))


def test_half_written_line_is_ignored_and_cut(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_results(str(p)) == [{"a": 1}, {"a": 2}]
    repair_results(str(p))
    assert p.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


# ---- fairseq's records, the command builder ------------------------------------------------------------------------


def test_log_reader_keeps_records_once_and_skips_other_lines(tmp_path):
    from xlt_fairseq.experiments.train_records import TrainingLog, validations

    inner = '{"epoch": 1, "update": 0.5, "loss": "3.2", "num_updates": "5"}'
    valid = '{"epoch": 1, "valid_loss": "2.5", "valid_ner_f1": "0.4", "valid_num_updates": "10"}'
    train = '{"epoch": 1, "train_loss": "3.0", "train_num_updates": "10"}'
    again = '{"epoch": 2, "valid_loss": "2.0", "valid_ner_f1": "0.5", "valid_num_updates": "10"}'
    p = tmp_path / "log.jsonl"
    # fairseq writes a record once per progress bar opened so far; the configuration and the model as text
    p.write_text("{'_name': None, 'common': {}}\nXLTModel(\n)\n" + inner + "\n" + valid + "\n" + valid + "\n")
    log = TrainingLog(str(p))
    assert log.poll() == [("train_inner", json.loads(inner)), ("valid", json.loads(valid))]
    with open(p, "a") as f:
        f.write(train + "\n" + train + "\n" + again[:20])  # a line still being written
    assert log.poll() == [("train", json.loads(train))]
    with open(p, "a") as f:
        f.write(again[20:] + "\n")
    assert log.poll() == [("valid", json.loads(again))]
    records = TrainingLog(str(p)).read()
    assert [len(records[t]) for t in ("train_inner", "train", "valid")] == [1, 1, 2]
    # an update validated again (a resumed run) counts once, the later record; numbers as floats
    assert validations(records) == [{"epoch": 2.0, "valid_loss": 2.0, "valid_ner_f1": 0.5, "valid_num_updates": 10.0}]


def test_checkpoint_saves_read_the_files(tmp_path):
    import torch

    from xlt_fairseq.experiments.train_records import checkpoint_saves

    def save(name, updates):
        torch.save({"optimizer_history": [{"num_updates": updates}], "extra_state": {}}, tmp_path / name)

    save("checkpoint_2_20.pt", 20)
    save("checkpoint3.pt", 30)  # the epoch file and checkpoint_last.pt hold the same update
    save("checkpoint_last.pt", 30)
    save("checkpoint_best.pt", 20)  # a copy: never the file of an update
    save("checkpoint_1_10.pt", 10)
    (tmp_path / "checkpoint_1_5.pt").write_bytes(b"cut short")
    saves = checkpoint_saves(str(tmp_path))
    expected = [(10, "checkpoint_1_10.pt"), (20, "checkpoint_2_20.pt"), (30, "checkpoint3.pt")]
    assert saves == {n: str(tmp_path / name) for n, name in expected}
    assert list(saves) == [10, 20, 30]


def test_records_are_the_same_from_fairseq_train_and_fairseq_hydra_train(tiny_data, tmp_path):
    """One training command, run by both programs; the reader finds the same validations and checkpoints."""
    import subprocess
    import sys

    from xlt_fairseq.experiments.command import synthetic_command
    from xlt_fairseq.experiments.train_records import checkpoint_saves, read_training_log, validations

    cmd = synthetic_command(
        tiny_data["data"],
        str(tmp_path / "a"),
        8,
        log_interval=2,
        validate_interval_updates=4,
        save_interval_updates=4,
        no_eval_bleu=True,
        log_file=str(tmp_path / "a.jsonl"),
    )
    assert cmd.identity() == cmd.with_flags(save_dir="elsewhere", log_file="x").identity()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(cmd.cli(), env=env, capture_output=True).returncode == 0
    cmd.write_hydra_config(str(tmp_path / "hydra" / "run.yaml"))
    bin_dir = os.path.dirname(sys.executable)
    hydra = [os.path.join(bin_dir, "fairseq-hydra-train"), "--config-dir", str(tmp_path / "hydra"), "--config-name"]
    hydra += ["run", f"checkpoint.save_dir={tmp_path / 'b'}", f"common.log_file={tmp_path / 'b.jsonl'}"]
    proc = subprocess.run(hydra, env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {}
    for side in ("a", "b"):
        records = read_training_log(str(tmp_path / f"{side}.jsonl"))
        valid = validations(records)
        assert [int(v["valid_num_updates"]) for v in valid] == [4, 8]
        assert [int(float(r["num_updates"])) for r in records["train_inner"]] == [2, 4, 6, 8]
        saves = checkpoint_saves(str(tmp_path / side))
        assert set(saves) == {4, 8} and os.path.basename(saves[4]) == "checkpoint_1_4.pt"
        runs[side] = [{k: v for k, v in r.items() if not k.endswith(("wps", "wall", "wpb", "ups"))} for r in valid]
    assert runs["a"] == runs["b"]
    assert all(math.isfinite(v["valid_loss"]) and 0 <= v["valid_ner_f1"] <= 1 for v in runs["a"])


def test_grid_command_is_a_mapping_until_fairseq_gets_it(tmp_path):
    exp = grid.load_experiment(TINY)
    runs = {r.run_id: r for r in grid.expand_grid(exp)}
    corpora = {"ner": ["aa", "bb"], "sentiment": ["aa", "bb"], "mlm": ["aa", "bb"], "translation": ["aa-bb"]}
    full = runs["low-resource/ner/full/seed1"].train_command("DATA", "SAVE", corpora, log_file="LOG")
    twin = runs["low-resource/ner/ablation_full/seed1"].train_command("DATA", "ELSEWHERE", corpora, log_file="L2")
    assert full.flags["log-file"] == "LOG" and full.save_dir == "SAVE" and full.argv()[0] == "DATA"
    assert full.identity() == twin.identity()  # the same training: trained once
    assert full.argv()[-4:] == ["--save-dir", "SAVE", "--log-file", "LOG"]
    assert full.flags["grl-lambda"] == "0.01" and full.flags["seed"] == "1"


def test_config_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("row: full\ntrain_languages: all\nfairseq:\n  model:\n    grl_lambda: 0\n")
    with pytest.raises(grid.ConfigError, match=f"^{p}:5: row full is adversarial"):
        grid.load_system(str(p), str(tmp_path))
    p.write_text("row: base\ntitle: x\ncolour: red\n")
    with pytest.raises(grid.ConfigError, match=f"^{p}:3: unknown key 'colour' in a system"):
        grid.load_system(str(p), str(tmp_path))
    exp = tmp_path / "exp.yaml"
    text = open(TINY).read().replace("name: tiny", f"name: tiny\nsystems_dir: {SYSTEMS}")
    exp.write_text(text.replace("  arch: xlt_tiny\n", "  arch: xlt_tiny\n  save_dir: here\n"))
    line = exp.read_text().splitlines().index("  save_dir: here") + 1
    with pytest.raises(grid.ConfigError, match=rf"^{exp}:{line}: train sets save-dir, which the runner decides"):
        grid.load_experiment(str(exp))


def test_rows_switches_are_decided_once():
    from xlt_fairseq.experiments import ablations

    corpora = {"ner": ["aa", "bb"], "sentiment": ["aa"], "translation": ["aa-bb"], "mlm": ["bb"], "pos": ["aa"]}
    for row in ablations.ABLATION_ROWS:
        flags = grid.list_to_flags(ablations.ablation_flags(row, "ner", corpora, grl_lambda=0.05))
        assert (float(flags["grl-lambda"]) > 0) == ablations.is_adversarial(row) == (row in ("adversarial", "full"))
        tasks = list(ablations.row_corpora(row, "ner", corpora))
        assert tasks[0] == "ner" and ("mlm" in tasks) == (row in ("language_modelling", "full"))
        assert ("pos" in tasks) == ("sentiment" in tasks) == (row in ("multitask", "language_modelling", "full"))
    with pytest.raises(ValueError, match="unknown ablation row"):
        ablations.is_adversarial("everything")


# ---- the tiny grid --------------------------------------------------------------------------------------------------


def test_results_file_is_complete(tiny_grid):
    rows = tiny_grid["rows"]
    keys = [(r["run_id"], r["test_set"], r["selection_rule"]) for r in rows]
    assert len(keys) == len(set(keys)) == 20  # mono(bb): 1 test set, full and ablation_full: 2; x 2 rules x 2 seeds
    for r in rows:
        if r["system"] == "ablation_full":
            assert r["run_dir"] == r["run_dir"].replace("ablation_full", "full")  # trained once, in full's folder
        assert 0.0 <= r["metrics"]["f1"] <= 1.0 and set(r["metrics"]["per_type_f1"]) <= {"PER", "LOC", "ORG"}
        assert r["metrics"]["examples"] == 37  # every test sentence scored
        assert r["data_fraction"] == {"aa": 1.0, "bb": 0.25}[r["lang"]]
        assert r["test_split"] == "test" and r["train_time_s"] > 0
        # synthetic test files: neither the dev file nor a half of one
        assert (r["eval_split"], r["eval_path"]) == ("test", os.path.abspath(r["test_path"]))
        assert os.path.exists(os.path.join(tiny_grid["out"], r["checkpoint"]))
        with open(os.path.join(tiny_grid["out"], r["predictions"]), encoding="utf-8") as f:
            assert sum(1 for _ in f) == 37
        if r["system"] == "monolingual":
            assert r["train_languages"] == ["bb"] and r["adv_acc_dev"] is None
        else:
            assert r["train_languages"] == ["aa", "bb"] and 0.0 <= r["adv_acc_dev"] <= 1.0 and r["adv_chance"] == 0.5
    assert any(r.get("features") for r in rows if r["system"] == "full" and r["seed"] == 1)
    # the features file keeps the input of each sentence (its pieces) for the input probe
    import numpy as np

    features = next(r["features"] for r in rows if r.get("features"))
    data = np.load(os.path.join(tiny_grid["out"], features))
    assert len(data["offsets"]) == len(data["langs"]) + 1 == len(data["after"]) + 1
    assert data["offsets"][-1] == len(data["pieces"]) and data["pieces"].min() >= 4  # no special symbols
    # each run as a fairseq-hydra-train config, parsed by fairseq from the same flags
    full = [r for r in rows if r["system"] == "full" and r["seed"] == 2][0]
    with open(os.path.join(tiny_grid["out"], full["run_dir"], "hydra", "run.yaml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    assert (cfg["task"]["ner_langs"], cfg["task"]["mlm_langs"], cfg["model"]["grl_lambda"]) == ("aa,bb", "aa,bb", 0.01)
    assert cfg["common"]["seed"] == 2 and cfg["model"]["_name"] == "xlt_tiny"


def test_the_languages_mean_is_logged_at_every_validation(tiny_grid):
    """valid_ner_f1_mean (what a multilingual run's --patience follows) is the mean of the languages' F1."""
    full = [r for r in tiny_grid["rows"] if r["system"] == "full"][0]
    with open(os.path.join(tiny_grid["out"], full["run_dir"], "train_done.json"), encoding="utf-8") as f:
        valid = json.load(f)["valid"]
    for v in valid:
        mean = (float(v["valid_ner_f1_aa"]) + float(v["valid_ner_f1_bb"])) / 2
        assert float(v["valid_ner_f1_mean"]) == pytest.approx(mean, abs=2e-4)
    assert any(float(v["valid_ner_f1_mean"]) > 0 for v in valid)


def test_selection_follows_the_dev_log(tiny_grid):
    for r in tiny_grid["rows"]:
        if r["selection_rule"] == "target-dev":
            assert r["selection_metric"] == f"valid_ner_f1_{r['lang']}" and r["selection_note"] is None
        elif r["system"] in ("full", "ablation_full"):
            assert r["selection_metric"] == "valid_ner_f1_aa"
        else:  # a monolingual bb run has no aa dev set: said so
            assert r["selection_metric"] == "valid_ner_f1_bb" and "no aa dev set" in r["selection_note"]
        with open(os.path.join(tiny_grid["out"], r["run_dir"], "train_done.json"), encoding="utf-8") as f:
            valid = json.load(f)["valid"]
        assert len(valid) >= 2
        scores = [v[r["selection_metric"]] for v in valid]
        assert r["selected_dev_score"] == max(scores)
        last_best = max(int(v["valid_num_updates"]) for v in valid if v[r["selection_metric"]] == max(scores))
        assert r["selected_update"] == last_best
    # unselected checkpoints are deleted
    ckpts = os.listdir(os.path.join(tiny_grid["out"], tiny_grid["rows"][0]["run_dir"], "checkpoints"))
    assert 1 <= len(ckpts) <= 2


def test_resume_skips_finished_runs(tiny_grid):
    assert tiny_grid["partial"]["trained"] == 2 and len(tiny_grid["partial_lines"]) == 4
    assert {r["system"] for r in tiny_grid["partial_lines"]} == {"monolingual"}
    # ablation_full has full's flags: its runs reuse full's trainings
    assert tiny_grid["resumed"]["trained"] == 2 and tiny_grid["resumed"]["skipped_finished"] == 2
    assert tiny_grid["again"]["trained"] == 0 and tiny_grid["again"]["evaluated"] == 0
    assert tiny_grid["again"]["skipped_finished"] == 6
    assert tiny_grid["again_bytes"] == tiny_grid["complete_bytes"]
    # after a crash: the lost run is evaluated again from its finished training, the broken line cut off
    assert tiny_grid["repaired"]["trained"] == 0 and tiny_grid["repaired"]["evaluated"] == tiny_grid["lost"] == 4
    before = {
        json.dumps(json.loads(line)["metrics"], sort_keys=True) for line in tiny_grid["complete_bytes"].splitlines()
    }
    assert {json.dumps(r["metrics"], sort_keys=True) for r in tiny_grid["rows"]} == before


def test_evaluate_reproduces_the_validation_metric(tiny_grid, tmp_path):
    r = [
        x
        for x in tiny_grid["rows"]
        if x["system"] == "full" and x["lang"] == "bb" and x["selection_rule"] == "target-dev"
    ][0]
    ckpt = os.path.join(tiny_grid["out"], r["checkpoint"])
    dev = r["test_path"].replace(".test.", ".valid.")
    preds = str(tmp_path / "p.jsonl")
    rc, so = cli(
        evaluate_script.main,
        ["--checkpoint", ckpt, "--task", "ner", "--lang", "bb", "--test", dev, "--save-predictions", preds, "--cpu"],
    )
    assert rc == 0
    out = json.loads(so)
    # the same model on the same dev sentences: the F1 fairseq logged in validation (rounded to 4 digits)
    assert out["metrics"]["f1"] == pytest.approx(r["selected_dev_score"], abs=6e-5)
    assert out["metrics"]["examples"] == 41 and sum(1 for _ in open(preds)) == 41
    rc, so = cli(
        evaluate_script.main,
        [
            "--checkpoint",
            ckpt,
            "--task",
            "translation",
            "--pair",
            "aa-bb",
            "--beam",
            "2",
            "--test",
            r["test_path"].replace("ner.bb.test.conll", "mt.test"),
            "--cpu",
        ],
    )
    assert rc == 0
    out = json.loads(so)["metrics"]
    assert out["examples"] == 37 and 0.0 <= out["bleu"] <= 100.0 and out["signature"].startswith("nrefs:1|")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("Bper1\nbka\n\nBloc2\nbinc\nbka\n")
    rc, so = cli(
        predict_script.main,
        ["--checkpoint", ckpt, "--task", "ner", "--format", "tokens", "--output-format", "conll", "--input", str(tokens)]
        + ["--cpu"],
    )
    assert rc == 0 and [line.split("\t")[0] for line in so.splitlines()] == [
        "Bper1",
        "bka",
        "",
        "Bloc2",
        "binc",
        "bka",
        "",
    ]


def test_report_tables_match_results(tiny_grid):
    report = os.path.join(tiny_grid["out"], "report")
    rc, so = cli(make_report_script.main, [tiny_grid["results"], "--out", report])
    assert rc == 0
    for name in (
        "report.md",
        "table1_ner.csv",
        "invariance.csv",
        "fig2_ner_target-dev.png",
        "fig3_tsne_full_low-resource_seed1.png",
        "confusion_low-resource_target-dev.png",
        "confusion.csv",
    ):
        assert os.path.getsize(os.path.join(report, name)) > 0, name
    md = open(os.path.join(report, "report.md"), encoding="utf-8").read()
    assert "_Omitted: no sentiment results" in md and "_Omitted: no translation results" in md
    assert "| Full Framework |" in md  # Table 4's row title
    rows = tiny_grid["rows"]
    with open(os.path.join(report, "table1_ner.csv"), encoding="utf-8") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 6  # (mono bb, full aa, full bb) x 2 rules
    for c in cells:
        values = [
            r["metrics"]["f1"]
            for r in rows
            if (r["system"], r["lang"], r["selection_rule"], r["scenario"])
            == (c["system"], c["lang"], c["selection_rule"], c["scenario"])
        ]
        assert len(values) == int(c["n"]) == 2
        mean = sum(values) / 2
        std = math.sqrt(sum((v - mean) ** 2 for v in values))  # sample std of two values
        assert float(c["mean"]) == pytest.approx(mean, abs=1e-6) and float(c["std"]) == pytest.approx(std, abs=1e-6)
        assert f"{mean:.3f} ± {std:.3f}" in md
        if c["system"] == "full" and c["lang"] == "bb":
            mono = [
                r["metrics"]["f1"]
                for r in rows
                if r["system"] == "monolingual" and r["selection_rule"] == c["selection_rule"]
            ]
            base = sum(mono) / 2
            assert float(c["rel_impr_vs_mono_pct"]) == pytest.approx(100 * (mean - base) / base, abs=1e-3)
    with open(os.path.join(report, "table4_ablation.csv"), encoding="utf-8") as f:
        table4 = {(c["selection_rule"], c["lang"]): c["mean"] for c in csv.DictReader(f)}
    assert set(table4) == {("target-dev", "bb"), ("english-dev", "bb")}  # low-resource languages only
    for (rule, lang), mean in table4.items():  # the same trainings as full
        assert (
            mean
            == [c["mean"] for c in cells if (c["system"], c["selection_rule"], c["lang"]) == ("full", rule, lang)][0]
        )
    with open(os.path.join(report, "invariance.csv"), encoding="utf-8") as f:
        inv = list(csv.DictReader(f))
    assert {r["system"] for r in inv} == {"full", "ablation_full"}  # a one-language run has none
    # learning curves: each training once (ablation_full shares full's), its bb dev F1 at every validation
    with open(os.path.join(report, "learning_curves.csv"), encoding="utf-8") as f:
        curves = list(csv.DictReader(f))
    trainings = {(c["system"].replace("ablation_full", "full"), c["seed"]) for c in curves}
    assert trainings == {(s, str(k)) for s in ("full", "monolingual-bb") for k in (1, 2)}
    assert len({(c["system"], c["seed"]) for c in curves}) == 4  # not full and ablation_full both
    full = [r for r in rows if (r["system"], r["seed"], r["lang"]) == ("full", 1, "bb")][0]
    with open(os.path.join(tiny_grid["out"], full["run_dir"], "train_done.json"), encoding="utf-8") as f:
        valid = json.load(f)["valid"]
    mine = sorted((int(c["update"]), float(c["score"])) for c in curves if (c["system"], c["seed"]) == ("full", "1"))
    assert mine == sorted((int(v["valid_num_updates"]), round(float(v["valid_ner_f1_bb"]), 4)) for v in valid)
    assert os.path.getsize(os.path.join(report, "learning_curves_low-resource.png")) > 0


def test_report_merges_results_files(tiny_grid, tmp_path):
    """Grids run side by side in separate folders are reported together; a run twice is refused."""
    single = os.path.join(tiny_grid["out"], "report-single")
    assert cli(make_report_script.main, [tiny_grid["results"], "--out", single, "--no-figures"])[0] == 0
    lines = open(tiny_grid["results"], encoding="utf-8").read().splitlines(keepends=True)
    parts = [os.path.join(tiny_grid["out"], f"part{i}.jsonl") for i in (0, 1)]
    for i, path in enumerate(parts):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(line for line in lines if ('"monolingual"' in line) == (i == 0))
    assert all(os.path.getsize(p) > 0 for p in parts)
    merged = str(tmp_path / "merged")
    assert cli(make_report_script.main, [*parts, "--out", merged, "--no-figures"])[0] == 0
    for name in ("table1_ner.csv", "table4_ablation.csv"):
        assert open(os.path.join(merged, name)).read() == open(os.path.join(single, name)).read(), name
    rc, _ = cli(make_report_script.main, [tiny_grid["results"], parts[0], "--out", str(tmp_path / "dup")])
    assert rc == 1


def test_every_validation_is_saved_even_at_the_end_of_an_epoch(tiny_grid):
    """fairseq skips the interval checkpoint when the update ends an epoch; the monolingual bb runs (60 sentences,
    4 updates per epoch, a validation every 12) hit that at every validation: each must still be on disk to be
    selectable (xlt_fairseq.checkpoint_io.keep_interval_checkpoint)."""
    checked = 0
    for root, _, files in os.walk(os.path.join(tiny_grid["out"], "runs")):
        if "train_done.json" in files:
            with open(os.path.join(root, "train_done.json"), encoding="utf-8") as f:
                done = json.load(f)
            validated = {int(v["valid_num_updates"]) for v in done["valid"]}
            assert {int(u) for u in done["saves"]} == validated, root
            assert all("checkpoint_last" not in p for u, p in done["saves"].items() if int(u) < max(validated))
            checked += "monolingual" in root
    assert checked == 2  # both seeds' monolingual trainings
