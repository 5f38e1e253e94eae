"""Thread defaults of the plugin's entry points (xlt_fairseq.hardware)."""

import os

from xlt_fairseq import hardware


def test_thread_count_is_the_free_cores_of_the_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(hardware, "busy_cores", lambda cpus, interval=0.25: 1.2)  # another process on ~1 core
    env = {}
    assert hardware.thread_env(env) == 3
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "3"
    # every core busy: still one thread, never zero
    monkeypatch.setattr(hardware, "busy_cores", lambda cpus, interval=0.25: 4.0)
    assert hardware.thread_env({}) == 1


def test_a_user_thread_count_is_kept_but_capped_at_the_usable_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert hardware.thread_env({"OMP_NUM_THREADS": "1"}) == 1
    assert hardware.thread_env({"OMP_NUM_THREADS": "16"}) == 2
    env = {"OMP_NUM_THREADS": "junk"}
    monkeypatch.setattr(hardware, "busy_cores", lambda cpus, interval=0.25: 0.0)
    assert hardware.thread_env(env) == 2 and env["OMP_NUM_THREADS"] == "2"


def test_busy_cores_reads_only_the_affinity_cpus(monkeypatch):
    samples = iter([{0: (100, 1000), 1: (100, 1000), 2: (0, 1000)}, {0: (200, 1100), 1: (100, 1100), 2: (100, 1100)}])
    monkeypatch.setattr(hardware, "_cpu_times", lambda path="/proc/stat": next(samples))
    monkeypatch.setattr(hardware.time, "sleep", lambda s: None)
    assert abs(hardware.busy_cores([0, 1]) - 1.0) < 1e-9  # cpu 2 is not ours


def test_cpu_bf16_detection_reads_the_flags(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2", "avx512_bf16"})
    assert hardware.cpu_supports_bf16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2", "avx512f"})
    assert not hardware.cpu_supports_bf16()
