"""The local driver: the same stage functions in this process (or a small process pool), no Ray.

For small jobs and single files, where starting Ray (seconds of fixed cost) would dominate the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from actors.ray_worker import EnginePool, convert_segments
from connectors.parquet_out import StagedParquetSink
from pipeline import PIPELINE_VERSION
from pipeline.assemble import split_results
from pipeline.config import JobConfig
from pipeline.records import RESULT_SCHEMA, Segment, rows_to_table
from pipeline.stages import engine_options, split_batch

_engines: EnginePool | None = None  # one per worker process, like one per Ray actor


def _convert_object(obj_row: dict[str, Any], cfg_data: dict[str, Any], run_id: str) -> list[pa.Table]:
    global _engines
    cfg = JobConfig.model_validate(cfg_data)
    if _engines is None:
        _engines = EnginePool(engine_options(cfg))
    out = []
    size = cfg.runtime.engine_batch_size
    for work in split_batch(pa.Table.from_pylist([obj_row]), cfg_data):
        segs = [Segment.from_row(r) for r in work.to_pylist()]
        for i in range(0, len(segs), size):
            rows = convert_segments(segs[i : i + size], _engines, run_id, PIPELINE_VERSION)
            out.append(rows_to_table(rows, RESULT_SCHEMA))
    return out


def execute_local(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    cfg_data = cfg.model_dump()
    workers = min(len(listing), cfg.runtime.max_workers or os.cpu_count() or 1)

    def results() -> Iterator[pa.Table]:
        if workers <= 1:
            for obj in listing:
                yield from _convert_object(obj, cfg_data, run_id)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            n = len(listing)
            for tables in pool.map(_convert_object, listing, [cfg_data] * n, [run_id] * n):
                yield from tables

    sink = StagedParquetSink(staging, split_results, **sink_args)
    sink.on_write_start()
    sink.write(results(), SimpleNamespace(task_idx=0))
