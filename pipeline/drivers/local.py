"""The local driver: the same stage functions without Ray. This process splits objects into engine
batches (streaming); a process pool (one engine set per worker process, like one per Ray actor) converts
them, with a bounded number of batches in flight so memory stays flat on long documents.

For single machines and small jobs, where Ray's fixed start-up cost (seconds) would dominate the run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
from unitok.actors.registry import engine_options
from unitok.connectors.parquet_files import StagedWriter
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import Segment
from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
from unitok.pipeline.core.testhooks import checkpoint
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.stages.assemble import split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.work import object_batches

_worker: tuple[EnginePool, str] | None = None  # (engines, run_id) of this worker process


def _init_worker(options: dict[str, dict[str, Any]], run_id: str) -> None:
    global _worker
    _worker = (EnginePool(options), run_id)  # EnginePool applies the worker environment contract


def _convert_batch(batch: list[Segment]) -> pa.Table:
    assert _worker is not None, "worker not initialised"
    engines, run_id = _worker
    return rows_to_table(convert_segments(batch, engines, run_id, PIPELINE_VERSION), RESULT_SCHEMA)


def _batches(listing: list[dict[str, Any]], cfg: JobConfig) -> Iterator[list[Segment]]:
    for obj in listing:
        yield from object_batches(obj, cfg)


def execute_local(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    workers = cfg.runtime.max_workers or cfg.runtime.num_cpus or os.cpu_count() or 1
    options = engine_options(cfg)

    def results() -> Iterator[pa.Table]:
        # Engines never run in this process, even with one worker: a fork of a process whose engines have
        # run native thread pools can deadlock on a lock held by a thread that is gone (seen here: an
        # in-process run, then a pool). Forked, not spawned: spawn re-imports the caller's main module,
        # which breaks scripts that call run_job without a __main__ guard.
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            workers, mp_context=fork, initializer=_init_worker, initargs=(options, run_id)
        ) as pool:
            inflight: deque[Future[pa.Table]] = deque()
            for batch in _batches(listing, cfg):
                inflight.append(pool.submit(_convert_batch, batch))
                if len(inflight) >= 2 * workers:  # backpressure: rendered pages wait in the splitter
                    yield inflight.popleft().result()
            while inflight:
                yield inflight.popleft().result()

    StagedWriter(staging, split_results, **sink_args).write(_with_progress(results(), len(listing)))


def _with_progress(tables: Iterator[pa.Table], n_objects: int) -> Iterator[pa.Table]:
    """A progress bar on a terminal (segments converted, and how much of the recordings), silent in logs
    and cron jobs, where the end-of-run summary speaks."""
    from tqdm import tqdm

    media_s = 0.0
    with tqdm(desc=f"converting {n_objects} object(s)", unit=" segments", disable=None) as bar:
        for table in tables:
            kinds = table["segment_kind"].to_pylist()
            starts, ends = table["time_start_s"].to_pylist(), table["time_end_s"].to_pylist()
            media_s += sum(
                e - s for k, s, e in zip(kinds, starts, ends, strict=True) if k == "audio_window" and e
            )
            bar.update(table.num_rows)
            if media_s:
                bar.set_postfix_str(f"{media_s / 60:.1f} min of audio")
            yield table
            checkpoint("converted.batch")  # staged: a test may kill the run here
