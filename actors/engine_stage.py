"""The engine stage as plain functions, shared by every driver (Ray Data actors, the local process pool,
Beam, Serve): `convert_segments` takes Segments and returns result rows, turning an engine failure into
an error row for the segment that caused it; `EnginePool` loads each engine once per replica.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pipeline.records import (
    ROUTE_NONE,
    STATUS_ERROR,
    STATUS_OK,
    Segment,
)


def _result_row(seg: Segment, run_id: str, pipeline_version: str) -> dict[str, Any]:
    row = seg.to_row()
    row.update(
        markdown=None,
        spans=None,
        engine=None,
        model_id=None,
        prompt_id=None,
        pipeline_version=pipeline_version,
        run_id=run_id,
        processed_at=datetime.now(UTC),
        elapsed_ms=0.0,
    )
    return row


class EnginePool:
    """Engines keyed by route, created on first use (a replica that only sees text pages never loads OCR)."""

    def __init__(self, engine_options: dict[str, dict[str, Any]]):
        from actors.engines import make_engine

        self._make = make_engine
        self._options = engine_options
        self._engines: dict[str, Any] = {}

    def get(self, route: str):
        if route not in self._engines:
            self._engines[route] = self._make(route, self._options.get(route, {}))
        return self._engines[route]


def convert_segments(
    segments: list[Segment], engines: EnginePool, run_id: str, pipeline_version: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any] | None] = [None] * len(segments)
    by_route: dict[str, list[int]] = defaultdict(list)
    for i, seg in enumerate(segments):
        if seg.status == STATUS_ERROR:
            rows[i] = _result_row(seg, run_id, pipeline_version)
        elif seg.route == ROUTE_NONE:
            row = _result_row(seg, run_id, pipeline_version)
            row.update(markdown="", engine=ROUTE_NONE)
            rows[i] = row
        else:
            by_route[seg.route].append(i)
    for route, idxs in by_route.items():
        batch = [segments[i] for i in idxs]
        try:
            engine = engines.get(route)
        except Exception as e:  # noqa: BLE001 - an engine that cannot start fails its segments, not the job
            for i in idxs:
                rows[i] = _result_row(
                    segments[i].as_error("engine_start", e, segments[i].segment_index, True),
                    run_id,
                    pipeline_version,
                )
            continue
        t0 = time.perf_counter()
        try:
            outputs = engine(batch)
            per_item_ms = (time.perf_counter() - t0) * 1000 / len(batch)
            timed = [(o, per_item_ms) for o in outputs]
        except Exception:  # noqa: BLE001 - retry one by one to pin the failure on its segment
            timed = []
            for seg in batch:
                t1 = time.perf_counter()
                try:
                    timed.append((engine([seg])[0], (time.perf_counter() - t1) * 1000))
                except Exception as e:  # noqa: BLE001
                    timed.append((e, (time.perf_counter() - t1) * 1000))
        for i, (out, ms) in zip(idxs, timed, strict=True):
            seg = segments[i]
            if isinstance(out, BaseException):
                row = _result_row(
                    seg.as_error("engine", out, seg.segment_index, False), run_id, pipeline_version
                )
                row.update(engine=engine.name, model_id=engine.model_id, elapsed_ms=ms)
            else:
                markdown, warnings, *timed_spans = out  # engines with times add a third item: spans
                row = _result_row(seg, run_id, pipeline_version)
                row.update(
                    markdown=markdown,
                    spans=timed_spans[0] if timed_spans else None,
                    engine=engine.name,
                    model_id=engine.model_id,
                    prompt_id=engine.prompt_id_for(seg)
                    if hasattr(engine, "prompt_id_for")
                    else engine.prompt_id,
                    elapsed_ms=round(ms, 3),
                    warnings=list(seg.warnings) + list(warnings),
                    status=STATUS_OK,
                )
            rows[i] = row
    return [r for r in rows if r is not None]
