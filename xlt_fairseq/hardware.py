# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What the machine offers the process: native bf16 on the CPU, and the number
of cores it may really use (for the plugin's own entry points' thread count)."""

import logging
import os
import time

logger = logging.getLogger(__name__)

# /proc/cpuinfo flags of CPUs with native bf16 arithmetic (x86: AVX-512 BF16, AMX; Arm: BF16)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(path="/proc/cpuinfo"):
    flags = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return flags


def cpu_supports_bf16() -> bool:
    """True when the CPU computes in bf16 natively (without it, torch emulates
    bf16 matrix products, several times slower than fp32)."""
    flags = cpu_flags()
    if flags:
        return any(f in flags for f in BF16_CPU_FLAGS)
    try:  # no /proc/cpuinfo (not Linux): ask oneDNN
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover
        return False


def check_bf16(device_type: str):
    """Raises ``RuntimeError`` when ``device_type`` cannot train in bf16."""
    import torch

    if device_type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise RuntimeError(
                f"--bf16-autocast: this GPU ({torch.cuda.get_device_name()}) has no bf16 support; use --fp16 or --amp"
            )
    elif not cpu_supports_bf16():
        raise RuntimeError(
            "--bf16-autocast: this CPU has no native bf16 arithmetic (no avx512_bf16 / amx_bf16 / bf16 flag in "
            "/proc/cpuinfo); bf16 would be emulated and slower than fp32. Train in fp32 (drop --bf16-autocast)"
        )


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset,
    cgroups/cpusets or SLURM), not the machine's count."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover (not Linux)
        return max(os.cpu_count() or 1, 1)


def _cpu_times(path="/proc/stat"):
    """cpu index -> (busy, total) jiffies."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *values = line.split()
                v = [int(x) for x in values]
                idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
                out[int(name[3:])] = (sum(v) - idle, sum(v))
    return out


def busy_cores(cpus, interval=0.25) -> float:
    """How many of ``cpus`` other processes keep busy, sampled over ``interval``
    seconds while this process sleeps; 0.0 where /proc/stat cannot be read."""
    try:
        a = _cpu_times()
        time.sleep(interval)
        b = _cpu_times()
    except (OSError, ValueError):
        return 0.0
    busy = 0.0
    for c in cpus:
        if c in a and c in b and b[c][1] > a[c][1]:
            busy += (b[c][0] - a[c][0]) / (b[c][1] - a[c][1])
    return busy


def free_cores() -> int:
    """The cores of this process' affinity that other processes are not keeping
    busy now (at least 1)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover (not Linux)
        return usable_cores()
    return max(1, len(cpus) - int(round(busy_cores(cpus))))


def thread_env(environ=None) -> int:
    """The plugin's default thread count, written into ``environ`` (default
    ``os.environ``) as ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` unless the user set
    them: the cores of this process' affinity that other processes are not
    keeping busy now, at least 1. Two torch threads on two cores next to one other
    busy process made training 20x slower (OpenMP threads waiting for a core that
    is not theirs). A count the user set is kept, capped at the usable cores."""
    environ = os.environ if environ is None else environ
    value = str(environ.get("OMP_NUM_THREADS", "")).strip()
    if value.isdigit() and int(value) > 0:
        return min(int(value), usable_cores())
    n = free_cores()
    environ["OMP_NUM_THREADS"] = str(n)
    environ.setdefault("MKL_NUM_THREADS", str(n))
    logger.info(f"using {n} thread(s): {usable_cores()} core(s) usable, {n} free now (set OMP_NUM_THREADS to choose)")
    return n


def configure_threads() -> int:
    """Sets torch's intra-op threads of this process to :func:`thread_env`'s count
    (child processes get their own count, from the load when they start); returns it."""
    n = thread_env(dict(os.environ))
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
