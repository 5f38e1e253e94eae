# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
import json
import logging
import os
import sys
import tempfile

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
    """Collects fairseq's --log-format json records by progress-bar tag, for programs without a --log-file
    (fairseq-validate) and for every rank of a distributed run."""

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
    """Runs fairseq-train in-process through the real argument parser; returns its JSON records by tag
    (``train_inner``, ``train``, ``valid``), read from its ``--log-file`` by the runner's own reader."""
    from fairseq import checkpoint_utils, options
    from fairseq_cli import train

    from xlt_fairseq.experiments.train_records import read_training_log

    # fairseq keeps the best validation score in a function attribute: reset it
    # so that in-process runs do not see each other's
    if hasattr(checkpoint_utils.save_checkpoint, "best"):
        del checkpoint_utils.save_checkpoint.best
    fd, log_file = tempfile.mkstemp(prefix="train_log.", suffix=".jsonl")
    os.close(fd)
    # fairseq adds a file handler for --log-file to these loggers and never removes it: a later in-process
    # run would write into this run's file
    loggers = [logging.getLogger("fairseq.logging.progress_bar"), logging.getLogger("fairseq_cli.train")]
    before = [list(lg.handlers) for lg in loggers]
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        parser = options.get_training_parser()
        train.main(options.parse_args_and_arch(parser, [*args, "--log-file", log_file]))
        return read_training_log(log_file)
    finally:
        for lg, old in zip(loggers, before):
            for handler in [h for h in lg.handlers if h not in old]:
                lg.removeHandler(handler)
                handler.close()
        root.setLevel(old_level)
        os.remove(log_file)


def train_args(data, save_dir, *extra, max_update=60):
    """fairseq-train arguments of the tiny recipe on every task of the generated data (``extra`` last)."""
    from xlt_fairseq.experiments.command import synthetic_command

    return synthetic_command(data, save_dir, max_update, log_interval=10).argv() + list(extra)
