# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Worker processes for preprocessing: chunks of a corpus (or whole corpora)
encoded in parallel, results in order, no worker outliving the call.

Workers ignore Ctrl-C and SIGTERM: the parent alone decides. When the parent
stops early (an error, Ctrl-C, SIGTERM), it cancels the jobs not started, gives
each worker a moment to finish its chunk and kills the others, and only then
lets the exception continue; a second Ctrl-C during that cleanup is held back
until it is done. A worker killed while it sends a result
leaves half a message in the result pipe, for which concurrent.futures would
wait forever (at exit, Ctrl-C or not): :func:`_stop` closes the pipe after a
kill. A worker whose parent dies is killed (Linux).
"""

import contextlib
import logging
import math
import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Optional

from .binarize import PieceEncoder, encode_pair_chunk, encode_tagged_chunk, encode_text_chunk
from .staging import TERMINATING, signals_deferred

logger = logging.getLogger(__name__)

_WORKER_ENCODER: Optional[PieceEncoder] = None


def worker_encoder(encoder_dir) -> PieceEncoder:
    """This process' encoder for ``encoder_dir`` (loaded once)."""
    global _WORKER_ENCODER
    if _WORKER_ENCODER is None or _WORKER_ENCODER.encoder_dir != encoder_dir:
        _WORKER_ENCODER = PieceEncoder(encoder_dir)
    return _WORKER_ENCODER


def _worker_init(encoder_dir):
    # Ctrl-C and a SIGTERM sent to the whole process group go to the parent, which stops the workers
    # between chunks (see above); what the parent ignores (SIGHUP under nohup) the workers ignore too
    for s in (signal.SIGINT,) + TERMINATING:
        signal.signal(s, signal.SIG_IGN)
    _die_with_parent()
    worker_encoder(encoder_dir)


def _die_with_parent():
    """SIGKILL when the parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``): a worker ignores the signals that
    would otherwise end it."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG


def _tagged_job(encoder, chunk, label_index, max_pieces):
    return encode_tagged_chunk(
        encoder, [(tokens, [label_index[t] for t in tags]) for tokens, tags in chunk], max_pieces
    )


JOBS = {
    "tagged": _tagged_job,
    "text": encode_text_chunk,
    "pairs": encode_pair_chunk,
}


def _worker_run(job):
    name, chunk, params = job
    return JOBS[name](_WORKER_ENCODER, chunk, **params)


def executor(encoder: PieceEncoder, workers: int) -> ProcessPoolExecutor:
    """A process pool; fork shares the parent's loaded encoder, elsewhere each worker loads its own.
    (concurrent.futures reports a worker that dies instead of waiting for it forever.)"""
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(encoder.encoder_dir,))


def _stop(pool: ProcessPoolExecutor, timeout: float = 1.0):
    """Stops a pool now: jobs not started are cancelled, each worker may end after its
    current chunk within ``timeout`` seconds; the others are killed."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    results, calls = getattr(pool, "_result_queue", None), getattr(pool, "_call_queue", None)  # shutdown() forgets them
    manager = getattr(pool, "_executor_manager_thread", None)  # and its thread
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    killed = [p for p in procs if p.is_alive()]
    for p in killed:
        p.kill()
        p.join(10.0)
    if killed:
        # A worker killed while it sent a result left half a message, which the pool's thread would wait
        # for forever (and the interpreter for that thread at exit): closing our end of the result pipe,
        # the last writer left, turns that wait into end-of-file, which the pool reports as broken. Jobs
        # no worker will read fill the job pipe: its feeder thread is not waited for at exit either.
        if results is not None:
            with contextlib.suppress(OSError):
                results._writer.close()
        if calls is not None:
            calls.cancel_join_thread()
            with contextlib.suppress(OSError):
                calls._reader.close()
    if manager is not None:  # it ends once it has seen every worker go: no thread of the pool outlives the call
        manager.join(2.0)


def ordered(pool: ProcessPoolExecutor, fn: Callable, jobs: Iterable) -> Iterator:
    """``pool.map`` that, when the caller stops early (an error, Ctrl-C, SIGTERM,
    a closed generator), stops every worker before the exception goes on."""
    finished = False
    try:
        # the first job forks the workers; a Ctrl-C that arrives during a fork is lost (Python
        # reports it as "Exception ignored" in an after-fork hook and goes on): held back instead
        with signals_deferred():
            results = pool.map(fn, jobs)
        yield from results
        finished = True
    finally:
        with signals_deferred():
            if finished:
                pool.shutdown(wait=True)
            else:
                _stop(pool)


def map_chunks(encoder: PieceEncoder, job: str, items: list, params: dict, workers: int) -> Iterator[dict]:
    """Runs a chunk encoder over ``items`` and yields the chunk results in order."""
    if not items:
        return
    chunk_size = max(64, min(4000, math.ceil(len(items) / max(1, 4 * workers))))
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) == 1:
        for chunk in chunks:
            yield JOBS[job](encoder, chunk, **params)
        return
    pool = executor(encoder, min(workers, len(chunks)))
    yield from ordered(pool, _worker_run, ((job, chunk, params) for chunk in chunks))
