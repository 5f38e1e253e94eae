"""fairseq's own distributed training with the plugin: two CPU processes over gloo.

The processes are started by hand, each with ``--distributed-no-spawn
--distributed-rank R --distributed-world-size 2 --distributed-init-method tcp://...
--distributed-backend gloo --ddp-backend legacy_ddp`` and ``OMP_NUM_THREADS=1``
(the recipe of TOOLCHAIN.md, trap 3). On CPU this exercises gloo all-reduce,
sharded batches, rank-0 checkpointing, resuming and validation across workers;
multi-GPU runs use the same code with NCCL.

The reference for the losses is one process with ``--update-freq 2``: its update
``k`` consumes batches ``2k`` and ``2k+1``, exactly the batches that ranks 0 and 1
consume in update ``k``, and it computes the same thing (the mean of the two
batches' losses, sample size 2). Dropout is off so that both runs draw nothing at
random. The two runs differ only in the order of floating-point sums (gloo
all-reduce vs local gradient accumulation), so the stated tolerances are: logged
losses equal to the logged precision (3 decimals, |diff| <= 2e-3) and the parameters
after every update equal to 1e-6 relative. (A single process with ``--batch-size
16`` is a different objective: each task loss would be one mean over the pooled
16 examples instead of the mean of two 8-example means, and fairseq would form
other batches.)

Every launch checks that each rank logged the updates it was asked for: a
distributed command that starts no training (see test_silent_exit_is_caught) exits
0 and must fail here.

Run as a script (``python -m tests.test_distributed RECORDS ARGS...``) this file is
the worker: fairseq-train's main with the JSON log (on every rank) and a checksum of
the parameters after every update written to RECORDS.
"""

import glob
import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, USER_DIR, JsonLogCapture, run_train, train_args
from tests.utils import VALID_SCORES, distributed_recipe

FIRST_STOP, LAST_STOP = 6, 12  # phase 1 trains to update 6, the resumed phase 2 to 12
BATCH = 8  # per worker; every index of the round-robin dataset holds one example of each of the 4 tasks
DETERMINISTIC = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0", "--log-interval", "1"]
METRICS = VALID_SCORES
TIMINGS = ("wps", "ups", "wall", "train_wall", "gb_free")
LOSSES = ("valid_loss", "valid_ner_loss", "valid_sentiment_loss", "valid_translation_loss", "valid_mlm_loss")


# ---- the worker (one rank) ------------------------------------------------------------


def _instrument_trainer(checksums):
    """Wraps fairseq's ``Trainer.train_step`` to record, after every update, the
    update number and two float64 checksums of this process' parameters."""
    from fairseq.trainer import Trainer

    original = Trainer.train_step

    def train_step(self, samples, raise_oom=False):
        out = original(self, samples, raise_oom)
        params = [p.detach().double() for p in self.model.parameters()]
        checksums.append(
            [self.get_num_updates(), sum(float(p.sum()) for p in params), sum(float(p.abs().sum()) for p in params)]
        )
        return out

    return original, train_step


def _worker(records_path, args):
    from fairseq import distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer
    from fairseq_cli import train

    capture = JsonLogCapture()
    checksums = []
    # fairseq sets the root logger to WARNING on ranks > 0; keep the progress
    # bar's JSON records, so that every rank shows what it trained
    bar = logging.getLogger("fairseq.logging.progress_bar")
    bar.addHandler(capture)
    bar.setLevel(logging.INFO)
    _, Trainer.train_step = _instrument_trainer(checksums)
    try:
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), args))
        # what fairseq-train's cli_main does
        distributed_utils.call_main(cfg, train.main)
        import torch.distributed as dist

        if dist.is_initialized():
            # a gloo group left to interpreter teardown can abort the process ("terminate called
            # without an active exception") after a successful run
            dist.barrier()
            dist.destroy_process_group()
    finally:
        with open(records_path, "w") as f:
            json.dump(dict(capture.records, checksums=checksums), f)


# ---- launching ------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, name, per_rank_args, timeout=180):
    """Starts one worker process per entry of ``per_rank_args`` and waits for all.
    Returns one dict per rank: returncode, records (train_inner, valid, train,
    checksums) and the log file."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = []
    for rank, args in enumerate(per_rank_args):
        log = os.path.join(workdir, f"{name}.rank{rank}.log")
        records = os.path.join(workdir, f"{name}.rank{rank}.json")
        with open(log, "w") as out:
            cmd = [sys.executable, "-m", "tests.test_distributed", records, *args]
            procs.append((subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT), log, records))
    results = []
    try:
        for proc, log, records in procs:
            proc.wait(timeout=timeout)
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log, records in procs:
        recs = json.load(open(records)) if os.path.exists(records) else {}
        results.append({"returncode": proc.returncode, "records": recs, "log": log})
    return results


def _recipe(port, rank, world_size=2):
    return distributed_recipe(port, rank, world_size)


def _tail(path, n=1500):
    return open(path, encoding="utf-8", errors="replace").read()[-n:]


def assert_trained(results, first_update, last_update):
    """Every rank exited 0 and logged updates ``first_update..last_update``."""
    failed = [rank for rank, r in enumerate(results) if r["returncode"] != 0]
    # when one rank dies the others fail with a connection error: show every rank's log
    assert not failed, "rank(s) %s failed:\n%s" % (
        failed,
        "\n".join(f"--- rank {rank} (exit {r['returncode']}):\n{_tail(r['log'])}" for rank, r in enumerate(results)),
    )
    for rank, r in enumerate(results):
        updates = [int(rec["num_updates"]) for rec in r["records"].get("train_inner", [])]
        assert updates, (
            f"rank {rank}: no training happened (exit code {r['returncode']}, no update logged); "
            f"log:\n{_tail(r['log'])}"
        )
        assert updates == list(range(first_update, last_update + 1)), (rank, updates)


def _without_timings(records):
    return [{k: v for k, v in r.items() if k.split("_", 1)[-1] not in TIMINGS and k not in TIMINGS} for r in records]


def _train_args(data, save_dir, *extra, max_update):
    return train_args(data, save_dir, "--batch-size", str(BATCH), *DETERMINISTIC, *extra, max_update=max_update)


# ---- runs shared by the tests -------------------------------------------------------------


@pytest.fixture(scope="module")
def single(tiny_data, tmp_path_factory):
    """One process, --update-freq 2: the same two batches per update as the two ranks."""
    save = str(tmp_path_factory.mktemp("single"))
    checksums = []
    original, wrapped = _instrument_trainer(checksums)
    from fairseq.trainer import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Trainer, "train_step", wrapped)
            logs = run_train(_train_args(tiny_data["data"], save, "--update-freq", "2", max_update=LAST_STOP))
    finally:
        torch.set_num_threads(threads)
    return dict(logs, checksums=checksums)


@pytest.fixture(scope="module")
def distributed(tiny_data, tmp_path_factory):
    """Phase 1: two ranks to update FIRST_STOP, rank 1 pointed at its own (empty)
    save dir; phase 2: both ranks resume from rank 0's checkpoint to LAST_STOP."""
    work = str(tmp_path_factory.mktemp("distributed"))
    save = [os.path.join(work, "save-rank0"), os.path.join(work, "save-rank1")]
    port = _free_port()
    first = _launch(
        work,
        "phase1",
        [_train_args(tiny_data["data"], save[r], *_recipe(port, r), max_update=FIRST_STOP) for r in range(2)],
    )
    assert_trained(first, 1, FIRST_STOP)
    written = {r: sorted(os.path.basename(p) for p in glob.glob(os.path.join(save[r], "*"))) for r in range(2)}
    port = _free_port()
    second = _launch(
        work,
        "phase2",
        [_train_args(tiny_data["data"], save[0], *_recipe(port, r), max_update=LAST_STOP) for r in range(2)],
    )
    assert_trained(second, FIRST_STOP + 1, LAST_STOP)
    return {"phase1": first, "phase2": second, "written": written, "save": save[0]}


# ---- tests --------------------------------------------------------------------------------


def test_both_ranks_train_the_same_model_on_summed_batches(distributed, single):
    for phase in ("phase1", "phase2"):
        ranks = [r["records"] for r in distributed[phase]]
        # all-reduced statistics are logged identically on both ranks ...
        assert _without_timings(ranks[0]["train_inner"]) == _without_timings(ranks[1]["train_inner"])
        # ... and legacy_ddp all-reduces every gradient: the parameters stay bit-identical
        assert ranks[0]["checksums"] == ranks[1]["checksums"]
    logged = distributed["phase1"][0]["records"]["train_inner"] + distributed["phase2"][0]["records"]["train_inner"]
    reference = {int(r["num_updates"]): r for r in single["train_inner"]}
    for rec in logged:
        # 4 tasks x BATCH examples on each of 2 workers
        assert int(rec["bsz"]) == 2 * 4 * BATCH
        # the tokens of both workers' batches: those of the single process' two batches
        assert float(rec["wpb"]) == float(reference[int(rec["num_updates"])]["wpb"])


def test_loss_agrees_with_one_process_on_the_same_doubled_batch(distributed, single):
    logged = distributed["phase1"][0]["records"]["train_inner"] + distributed["phase2"][0]["records"]["train_inner"]
    reference = {int(r["num_updates"]): r for r in single["train_inner"]}
    assert sorted(reference) == list(range(1, LAST_STOP + 1))
    for rec in logged:
        ref = reference[int(rec["num_updates"])]
        for key in ("loss", "ner_loss", "sentiment_loss", "translation_loss", "mlm_loss", "adv_loss"):
            assert float(rec[key]) == pytest.approx(float(ref[key]), abs=2e-3), (rec["num_updates"], key)
    # parameters after every update (phase 2 resumed from phase 1's checkpoint)
    dist = distributed["phase1"][0]["records"]["checksums"] + distributed["phase2"][0]["records"]["checksums"]
    assert [c[0] for c in dist] == list(range(1, LAST_STOP + 1))
    for (step, total, abs_total), (ref_step, ref_total, ref_abs) in zip(dist, single["checksums"]):
        assert step == ref_step
        assert abs_total == pytest.approx(ref_abs, rel=1e-6), step
        assert total == pytest.approx(ref_total, rel=1e-6, abs=1e-3), step
    # the parameters moved: the comparison is not between two untrained models
    assert dist[-1][2] != pytest.approx(dist[0][2], rel=1e-6)


def test_only_rank0_writes_checkpoints_and_resume_continues(distributed):
    assert distributed["written"][1] == [], "rank 1 wrote into its save dir"
    assert "checkpoint_last.pt" in distributed["written"][0]
    state = torch.load(os.path.join(distributed["save"], "checkpoint_last.pt"), map_location="cpu")
    assert state["optimizer_history"][-1]["num_updates"] == LAST_STOP
    # phase 2 started from the checkpoint: its first update is FIRST_STOP + 1 (assert_trained)
    # with the learning rate of that step, not a fresh warmup
    first = distributed["phase2"][0]["records"]["train_inner"][0]
    assert float(first["lr"]) == pytest.approx(0.003 * (FIRST_STOP + 1) / 30, rel=1e-3)


def _validate_one_process(data, checkpoint):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import validate

    args = [
        data,
        "--user-dir",
        USER_DIR,
        "--task",
        "xlt_multitask",
        "--path",
        checkpoint,
        "--batch-size",
        str(BATCH),
        "--cpu",
        "--num-workers",
        "0",
        "--log-format",
        "json",
        "--valid-subset",
        "valid",
    ]
    parsed = options.parse_args_and_arch(options.get_validation_parser(), args)
    overrides = options.parse_args_and_arch(options.get_validation_parser(), args, suppress_defaults=True)
    # validate.main resets the root logger's handlers: listen on the progress bar's logger
    capture = JsonLogCapture()
    bar = logging.getLogger("fairseq.logging.progress_bar")
    bar.addHandler(capture)
    root = logging.getLogger()
    old_handlers, old_levels, threads = root.handlers[:], (root.level, bar.level), torch.get_num_threads()
    bar.setLevel(logging.INFO)
    torch.set_num_threads(1)  # the workers' thread count: the same kernels, the same sums
    try:
        validate.main(convert_namespace_to_omegaconf(parsed), overrides)
    finally:
        bar.removeHandler(capture)
        root.handlers[:] = old_handlers
        root.setLevel(old_levels[0])
        bar.setLevel(old_levels[1])
        torch.set_num_threads(threads)
    assert len(capture.records["valid"]) == 1
    return capture.records["valid"][0]


def test_validation_metrics_are_exact_across_workers(distributed, tiny_data):
    # the two-process validation at the end of phase 2 (batches sharded over the
    # ranks; rank 1 pads with a dummy batch when their number is odd), then the
    # checkpoint saved right after it, validated by one process
    two = [r["records"]["valid"][-1] for r in distributed["phase2"]]
    assert _without_timings(two[:1]) == _without_timings(two[1:])
    one = _validate_one_process(tiny_data["data"], os.path.join(distributed["save"], "checkpoint_last.pt"))
    for key in METRICS:
        assert key in two[0] and key in one, key
        assert float(two[0][key]) == float(one[key]), key
    for key in LOSSES:
        assert float(two[0][key]) == pytest.approx(float(one[key]), abs=2e-3), key
    assert 0 < float(one["valid_ner_f1"]) <= 1  # a number that can differ, not a constant 0


def test_idle_parameters_train_with_legacy_ddp(tiny_data, tmp_path):
    """No masked LM (the encoder's lm_head is idle in every step) and alternating
    adversarial updates (the encoder or the discriminator is idle in every step):
    torch DDP (--ddp-backend c10d) fails or silently desynchronises the ranks here
    (docs/distributed.md); legacy_ddp all-reduces every gradient, so the ranks stay identical."""
    port = _free_port()
    idle = ["--mlm-langs", "", "--adversarial-mode", "alternating", "--no-save"]
    results = _launch(
        str(tmp_path),
        "idle",
        [
            _train_args(tiny_data["data"], str(tmp_path / "save"), *idle, *_recipe(port, r), max_update=4)
            for r in range(2)
        ],
    )
    assert_trained(results, 1, 4)
    a, b = (r["records"]["checksums"] for r in results)
    assert a == b
    assert a[-1][2] != a[0][2]
    assert "mlm_loss" not in results[0]["records"]["train_inner"][0]


def test_silent_exit_is_caught(tiny_data, tmp_path):
    """--distributed-world-size 2 with an init method but without --distributed-no-spawn
    spawns torch.cuda.device_count() = 0 processes on a CPU machine and exits 0
    without training: the check every launch above uses must reject it."""
    args = _train_args(
        tiny_data["data"],
        str(tmp_path / "save"),
        "--distributed-world-size",
        "2",
        "--distributed-init-method",
        f"tcp://127.0.0.1:{_free_port()}",
        "--distributed-backend",
        "gloo",
        max_update=2,
    )
    results = _launch(str(tmp_path), "trap", [args])
    assert results[0]["returncode"] == 0
    with pytest.raises(AssertionError, match="no training happened"):
        assert_trained(results, 1, 2)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2:])
