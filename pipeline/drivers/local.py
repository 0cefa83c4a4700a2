"""The local driver: the same stage functions without Ray. A process pool (one engine set per worker
process, like one per Ray actor) takes listed objects one at a time; each worker splits, converts,
assembles, chunks and writes its object's data files (stages.per_object) and hands back their metadata,
with a bounded number of objects in flight. A long PDF is spread over the workers: its page ranges are
split and converted in parallel, then one worker makes the object from their rows (the same bytes as
one worker converting it whole).

For single machines and small jobs, where Ray's fixed start-up cost (seconds) would dominate the run.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import pyarrow as pa
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.stages.per_object import ObjectConverter, page_parts

_worker: ObjectConverter | None = None  # this worker process's engines and output


def _init_worker(cfg_data: dict[str, Any], run_id: str, files: TableFiles) -> None:
    global _worker
    _worker = ObjectConverter(cfg_data, run_id, files)  # applies the worker environment contract


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
    with ProcessPoolExecutor(
        workers, mp_context=fork, initializer=_init_worker, initargs=(cfg.model_dump(), run_id, files)
    ) as pool:
        todo = _objects(listing)
        # A future's role: an object's metadata (None), or part k of a spread object (its parts list, k).
        inflight: dict[Future[Any], tuple[dict[str, Any], list[Any], int] | None] = {}
        try:
            while True:
                for obj in todo:  # a few objects queued per worker, never the whole listing
                    ranges = page_parts(obj, cfg, workers)
                    if ranges:
                        parts: list[Any] = [None] * len(ranges)
                        for k, pages in enumerate(ranges):
                            inflight[pool.submit(_convert_pages, obj, pages)] = (obj, parts, k)
                    else:
                        inflight[pool.submit(_convert_object, obj)] = None
                    if len(inflight) >= 2 * workers:
                        break
                if not inflight:
                    return
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    role = inflight.pop(future)
                    if role is None:
                        yield future.result()
                        continue
                    obj, parts, k = role
                    parts[k] = future.result()
                    if all(part is not None for part in parts):
                        inflight[pool.submit(_finish_pages, obj, parts)] = None
        finally:  # the run stopped early (a failed commit, an interrupt): queued objects are not started
            for future in inflight:
                future.cancel()
