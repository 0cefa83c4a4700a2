"""The engine stage as a Ray Data callable class: one instance per actor, engines loaded once per replica."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from actors.engine_stage import EnginePool, convert_segments
from pipeline.records import RESULT_SCHEMA, Segment, rows_to_table


class SegmentWorker:
    """Ray Data actor: pyarrow batch of work segments in, pyarrow batch of results out."""

    def __init__(self, engine_options: dict[str, dict[str, Any]], run_id: str, pipeline_version: str):
        self.engines = EnginePool(engine_options)
        self.run_id = run_id
        self.pipeline_version = pipeline_version

    def __call__(self, batch: pa.Table) -> pa.Table:
        segments = [Segment.from_row(r) for r in batch.to_pylist()]
        rows = convert_segments(segments, self.engines, self.run_id, self.pipeline_version)
        return rows_to_table(rows, RESULT_SCHEMA)
