"""The local driver: the same stage functions without Ray. A process pool (one engine set per worker
process, like one per Ray actor) takes listed objects one at a time; each worker splits, converts,
assembles, chunks and writes its object's data files (stages.per_object) and hands back their metadata,
with a bounded number of objects in flight. A long PDF is spread over the workers: its page ranges are
split and converted in parallel, then one worker makes the object from their rows (the same bytes as
one worker converting it whole).

For single machines and small jobs, where Ray's fixed start-up cost (seconds) would dominate the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.stages.per_object import ObjectConverter, page_parts

_worker: ObjectConverter | None = None  # this worker process's engines and output
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
log = logging.getLogger("unitok")


def _init_worker(cfg_data: dict[str, Any], run_id: str, files: TableFiles) -> None:
    global _worker
    # A worker dies with the driver (even a SIGKILLed one), and leaves Ctrl-C to it: the driver stops the
    # pool and says what was committed. SIGTERM (the driver stopping the pool) ends it at once: the
    # driver's own handler, inherited through the fork, would raise inside the worker instead, and the
    # pool caught that as one task's failure and kept the worker waiting for more work.
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker = ObjectConverter(cfg_data, run_id, files)  # applies the worker environment contract


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still ends the workers
        return
    if os.getppid() == 1:  # the driver was gone before the call took effect
        os._exit(1)


def _convert_object(obj: dict[str, Any]) -> dict[str, Any]:
    assert _worker is not None, "worker not initialised"
    return _worker(obj)


def _convert_pages(obj: dict[str, Any], pages: tuple[int, int]) -> pa.Table:
    assert _worker is not None, "worker not initialised"
    return _worker.convert_pages(obj, pages)


def _finish_pages(obj: dict[str, Any], parts: list[pa.Table]) -> dict[str, Any]:
    assert _worker is not None, "worker not initialised"
    return _worker.finish_pages(obj, parts)


def _objects(listing: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in listing.to_batches(max_chunksize=1024):  # a few rows as Python objects at a time
        yield from batch.to_pylist()


def execute_local(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, staging: Path
) -> Iterator[dict[str, Any]]:
    """Each object's metadata as its worker finishes it."""
    workers = cfg.runtime.pool_size
    # Engines never run in this process, even with one worker: a fork of a process whose engines have
    # run native thread pools can deadlock on a lock held by a thread that is gone (seen here: an
    # in-process run, then a pool). Forked, not spawned: spawn re-imports the caller's main module,
    # which breaks scripts that call run_job without a __main__ guard.
    fork = multiprocessing.get_context("fork")
    # What this process holds now (imports, config, listing) is frozen out of the cyclic collector before
    # the fork, as the gc module's docs advise: the workers' collections no longer walk it (nor write to
    # its pages, which stay shared). Unfrozen when the pool is done, for a caller that goes on, unless
    # that caller had frozen objects of its own (unfreezing is all or nothing).
    ours = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        yield from _run_pool(listing, cfg, run_id, files, workers, fork)
    finally:
        if ours:
            gc.unfreeze()


def _run_pool(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, workers: int, fork: Any
) -> Iterator[dict[str, Any]]:
    """The listing through a pool of `workers`. A worker that dies (the kernel's OOM killer, a native
    crash) breaks the pool and fails every object in flight: those objects are each converted again alone,
    in a pool of their own, so the one that kills its worker again is named and recorded as crashed, and
    the rest of the listing goes on in a new pool."""
    todo = _objects(listing)
    while True:
        suspects: list[dict[str, Any]] = []
        with _pool(cfg, run_id, files, workers, fork) as pool:
            suspects = yield from _drive(pool, todo, cfg, workers)
        if not suspects:
            return
        log.warning("a pool worker died; converting the %d object(s) it may have held one at a time",
                    len(suspects))  # fmt: skip
        for obj in suspects:
            yield _alone(obj, cfg, run_id, files, fork)


@contextmanager
def _pool(
    cfg: JobConfig, run_id: str, files: TableFiles, workers: int, fork: Any
) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(
        workers, mp_context=fork, initializer=_init_worker, initargs=(cfg.model_dump(), run_id, files)
    )
    try:
        yield pool
    except BaseException:
        # Stopped (an interrupt, SIGTERM, a failed commit): the workers stop now, not after their objects.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _drive(
    pool: ProcessPoolExecutor, todo: Iterator[dict[str, Any]], cfg: JobConfig, workers: int
) -> Generator[dict[str, Any], None, list[dict[str, Any]]]:
    """Each object's metadata as its worker finishes it; returns [] when the listing is done, or the
    objects in flight when the pool broke (a worker died)."""
    # A future's role: (its object, None, -1) for a whole object, or (its object, its parts list, k) for
    # part k of a spread object.
    inflight: dict[Future[Any], tuple[dict[str, Any], list[Any] | None, int]] = {}
    try:
        while True:
            for obj in todo:  # a few objects queued per worker, never the whole listing
                ranges = page_parts(obj, cfg, workers)
                if ranges:
                    parts: list[Any] = [None] * len(ranges)
                    for k, pages in enumerate(ranges):
                        inflight[pool.submit(_convert_pages, obj, pages)] = (obj, parts, k)
                else:
                    inflight[pool.submit(_convert_object, obj)] = (obj, None, -1)
                if len(inflight) >= 2 * workers:
                    break
            if not inflight:
                return []
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                return list({o["uri"]: o for o, _, _ in inflight.values()}.values())
            for future in done:
                obj, parts, k = inflight.pop(future)
                if parts is None:
                    yield future.result()
                    continue
                parts[k] = future.result()
                if all(part is not None for part in parts):
                    inflight[pool.submit(_finish_pages, obj, parts)] = (obj, None, -1)
    finally:  # the run stopped early (a failed commit, an interrupt): queued objects are not started
        for future in inflight:
            future.cancel()


def _alone(obj: dict[str, Any], cfg: JobConfig, run_id: str, files: TableFiles, fork: Any) -> dict[str, Any]:
    """One object in a pool of its own worker. When that worker dies too, the object is the one that
    kills it: a new worker records its error row and marks it crashed (not converted again until it
    changes, or a run with --retry-failed)."""
    with _pool(cfg, run_id, files, 1, fork) as pool:
        future = pool.submit(_convert_object, obj)
        processes = list(getattr(pool, "_processes", {}).values())
        try:
            return future.result()
        except BrokenProcessPool:
            pass
    codes = [p.exitcode for p in processes if p.exitcode]
    how = _death(codes[0]) if codes else "ended abruptly"
    log.warning("%s: the worker converting it %s; recorded as crashed", obj["uri"], how)
    with _pool(cfg, run_id, files, 1, fork) as pool:
        return pool.submit(_record_crash, obj, f"the worker converting this object {how}").result()


def _death(exitcode: int) -> str:
    if exitcode < 0:
        sig = signal.Signals(-exitcode).name
        why = " (out of memory, or killed)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {sig}{why}"
    return f"exited with code {exitcode}"


def _record_crash(obj: dict[str, Any], reason: str) -> dict[str, Any]:
    assert _worker is not None, "worker not initialised"
    return _worker.crashed(obj, reason)
