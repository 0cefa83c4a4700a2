"""The local driver: the same stage functions without Ray. This process splits objects into segments
(streaming); a process pool (one engine set per worker process, like one per Ray actor) converts them,
with a bounded number of blocks in flight so memory stays flat on long documents.

For single machines and small jobs, where Ray's fixed start-up cost (seconds) would dominate the run.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from actors.engine_stage import EnginePool, convert_segments
from connectors.parquet_out import StagedParquetSink
from pipeline import PIPELINE_VERSION
from pipeline.assemble import split_results
from pipeline.config import JobConfig
from pipeline.records import RESULT_SCHEMA, Segment, rows_to_table
from pipeline.stages import engine_options, split_batch

_worker: tuple[EnginePool, str] | None = None  # (engines, run_id) of this worker process


def _init_worker(options: dict[str, dict[str, Any]], run_id: str) -> None:
    global _worker
    _worker = (EnginePool(options), run_id)


def _convert_block(work: pa.Table) -> pa.Table:
    assert _worker is not None, "worker not initialised"
    engines, run_id = _worker
    rows = convert_segments(
        [Segment.from_row(r) for r in work.to_pylist()], engines, run_id, PIPELINE_VERSION
    )
    return rows_to_table(rows, RESULT_SCHEMA)


def _work_blocks(listing: list[dict[str, Any]], cfg: JobConfig) -> Iterator[pa.Table]:
    cfg_data = cfg.model_dump()
    size = cfg.runtime.engine_batch_size
    for obj in listing:
        for work in split_batch(pa.Table.from_pylist([obj]), cfg_data):
            for start in range(0, work.num_rows, size):
                yield work.slice(start, size)


def execute_local(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    workers = cfg.runtime.max_workers or cfg.runtime.num_cpus or os.cpu_count() or 1
    options = engine_options(cfg)

    def results() -> Iterator[pa.Table]:
        if workers <= 1:
            _init_worker(options, run_id)
            yield from map(_convert_block, _work_blocks(listing, cfg))
            return
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(options, run_id)) as pool:
            inflight: deque[Future[pa.Table]] = deque()
            for block in _work_blocks(listing, cfg):
                inflight.append(pool.submit(_convert_block, block))
                if len(inflight) >= 2 * workers:  # backpressure: rendered pages wait in the splitter
                    yield inflight.popleft().result()
            while inflight:
                yield inflight.popleft().result()

    sink = StagedParquetSink(staging, split_results, **sink_args)
    sink.on_write_start()
    sink.write(_with_progress(results(), len(listing)), SimpleNamespace(task_idx=0))


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
