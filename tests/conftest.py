import json
import logging
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
USER_DIR = os.path.join(REPO, "xlt_fairseq")


def pytest_configure(config):
    # torch's threads = the cores free now (at most the affinity's), as the plugin's
    # entry points do: a second busy process made 2-thread runs 20x slower
    from xlt_fairseq.hardware import configure_threads

    configure_threads()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from tests.utils import prepare_all

    tmp = tmp_path_factory.mktemp("tiny")
    enc, data, raw = prepare_all(str(tmp))
    return {"encoder": enc, "data": data, "raw": raw, "tmp": str(tmp)}


class JsonLogCapture(logging.Handler):
    """Collects fairseq's --log-format json records by progress-bar tag."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.records = {"train_inner": [], "valid": [], "train": []}

    def emit(self, record):
        if record.name in self.records:
            try:
                self.records[record.name].append(json.loads(record.getMessage()))
            except ValueError:
                pass


def run_train(args):
    """Runs fairseq-train in-process through the real argument parser; returns the JSON log."""
    from fairseq import checkpoint_utils, options
    from fairseq_cli import train

    # fairseq keeps the best validation score in a function attribute: reset it
    # so that in-process runs do not see each other's
    if hasattr(checkpoint_utils.save_checkpoint, "best"):
        del checkpoint_utils.save_checkpoint.best
    capture = JsonLogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        parser = options.get_training_parser()
        train.main(options.parse_args_and_arch(parser, args))
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    return capture.records


def train_args(data, save_dir, *extra, max_update=60):
    return [
        data,
        "--user-dir",
        USER_DIR,
        "--task",
        "xlt_multitask",
        "--ner-langs",
        "aa,bb",
        "--sentiment-langs",
        "aa,bb",
        "--mlm-langs",
        "aa,bb",
        "--translation-pairs",
        "aa-bb",
        "--arch",
        "xlt_tiny",
        "--criterion",
        "xlt_multitask_adversarial",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--lr-scheduler",
        "inverse_sqrt",
        "--warmup-updates",
        "30",
        "--batch-size",
        "16",
        "--max-update",
        str(max_update),
        "--save-dir",
        save_dir,
        "--log-format",
        "json",
        "--log-interval",
        "10",
        "--tokens-per-sample",
        "32",
        "--seed",
        "1",
        "--cpu",
        "--num-workers",
        "0",
        "--no-epoch-checkpoints",
        *extra,
    ]
