# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
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
    from xlt_fairseq.hardware import configure_threads, usable_cores

    # pytest-xdist (make test): the cores shared out among the workers, for torch here and every subprocess a
    # test starts; each worker counting the cores free at its start took them all (4 threads on 2 cores)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1 and not os.environ.get("OMP_NUM_THREADS"):
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))
    configure_threads()
    # `import xlt_fairseq` no longer imports fairseq; tests call fairseq's own parsers and loaders with
    # --user-dir in-process, where fairseq finds the package imported already and registers nothing
    import xlt_fairseq

    xlt_fairseq.register()


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
    from xlt_fairseq.experiments.train_records import train_in_process

    return train_in_process(args)


def train_args(data, save_dir, *extra, max_update=60):
    """fairseq-train arguments of the tiny recipe on every task of the generated data (``extra`` last)."""
    from xlt_fairseq.experiments.command import synthetic_command

    return synthetic_command(data, save_dir, max_update, log_interval=10).argv() + list(extra)
