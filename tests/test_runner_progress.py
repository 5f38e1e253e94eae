"""The experiment runner's progress on stderr (runs done/total, update and dev score, ETA, a run whose dev
F1 is still 0 after its third validation named in a warning) and shipped systems found by name from an
experiment file anywhere."""

import logging
import os

import pytest

from tests.conftest import REPO
from xlt_fairseq.experiments import grid
from xlt_fairseq.experiments.progress import GridProgress, dev_scores

TINY = os.path.join(REPO, "examples", "experiments", "tiny.yaml")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_counts_runs_shows_scores_and_estimates_the_time_left(caplog):
    lines, clock = [], Clock()
    p = GridProgress(4, write=lines.append, clock=clock)
    p.skipped()  # finished before: counted, not timed
    p.start("tiny/ner/mono/aa/s1")
    clock.t = 100.0
    p.on_record("train_inner", {"num_updates": "10"})  # not a validation: nothing said
    p.on_record("valid", {"valid_num_updates": "50", "valid_ner_f1": "0.5", "valid_ner_f1_aa": "0.5", "valid_loss": "1"})
    assert lines[-1] == "[1/4 runs, ETA unknown] tiny/ner/mono/aa/s1: update 50, dev ner_f1 0.5"
    p.finished()
    assert lines[-1] == "[2/4 runs, ETA 0:03:20] tiny/ner/mono/aa/s1: done"  # 2 runs left x 100 s
    p.start("tiny/ner/multi/aa/s1")
    clock.t = 160.0
    p.on_record("valid", {"valid_num_updates": "50", "valid_sentiment_acc": "0.75", "valid_bleu": "1.5"})
    assert lines[-1] == "[2/4 runs, ETA 0:02:20] tiny/ner/multi/aa/s1: update 50, dev bleu 1.5, sentiment_acc 0.75"


def test_a_run_whose_f1_stays_zero_is_named_after_its_third_validation(caplog):
    p = GridProgress(1, write=lambda line: None)
    p.start("zu/ner/mono/zu/s3")
    with caplog.at_level(logging.WARNING):
        for update in (100, 200):
            p.on_record("valid", {"valid_num_updates": update, "valid_ner_f1": 0, "valid_ner_f1_zu": 0})
        assert not caplog.records  # two validations: too early to say
        for update in (300, 400):
            p.on_record("valid", {"valid_num_updates": update, "valid_ner_f1": 0})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per run
    assert warnings[0].startswith("zu/ner/mono/zu/s3: dev ner_f1 still 0 after 3 validations (update 300)")
    caplog.clear()
    p.start("zu/ner/multi/zu/s3")  # a run that learns is not flagged
    with caplog.at_level(logging.WARNING):
        for update in (100, 200, 300):
            p.on_record("valid", {"valid_num_updates": update, "valid_ner_f1": 0 if update < 300 else 0.2})
    assert not caplog.records


def test_dev_scores_are_the_tasks_overall_scores():
    record = {"valid_ner_f1": "0.5", "valid_ner_f1_aa": "0.4", "valid_sentiment_macro_f1": "0.6", "valid_loss": "2"}
    assert dev_scores({**record, "valid_pos_acc": "0.9", "valid_bleu_aa_bb": "3"}) == {"ner_f1": 0.5, "pos_acc": 0.9}


def test_shipped_systems_are_found_from_an_experiment_anywhere(tmp_path):
    """An experiment file outside the checkout names the shipped systems (no systems_dir, no ../systems)."""
    text = open(TINY, encoding="utf-8").read()
    assert "systems_dir" not in text
    exp_path = tmp_path / "elsewhere" / "exp.yaml"
    exp_path.parent.mkdir()
    exp_path.write_text(text, encoding="utf-8")
    exp = grid.load_experiment(str(exp_path))
    assert exp.systems and all(e.system.name for e in exp.systems)
    # a systems folder next to the file still wins over the shipped one
    local = tmp_path / "systems"
    local.mkdir()
    name = exp.systems[0].system.name
    (local / f"{name}.yaml").write_text("row: base\ntitle: local copy\n", encoding="utf-8")
    assert grid.load_experiment(str(exp_path)).systems[0].system.title == "local copy"
    with pytest.raises(grid.ConfigError, match="no system 'nonexistent' \\(looked for nonexistent.yaml in "):
        grid.load_system("nonexistent", str(local))
