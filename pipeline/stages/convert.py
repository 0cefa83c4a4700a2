"""The engine stage as plain functions, shared by every driver (Ray Data actors, the local process pool,
Serve): `convert_segments` takes routed Segments and returns result rows, one engine call per engine batch
(formed by stages.work), turning an engine failure into an error row for the segment that caused it;
`EnginePool` loads each engine once per replica.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from unitok.actors.contract import Engine, EngineOutput
from unitok.actors.registry import ENRICH, make_engine
from unitok.pipeline.core.records import ROUTE_NONE, STATUS_ERROR, STATUS_OK, Segment
from unitok.pipeline.core.text import replaced_warning, valid_value
from unitok.pipeline.core.workerenv import pin_native_threads
from unitok.pipeline.stages.enrich import EnrichOptions, enrich_rows


def _result_row(seg: Segment, run_id: str, pipeline_version: str) -> dict[str, Any]:
    row = seg.to_row()
    row.update(
        markdown=None,
        spans=None,
        engine=None,
        model_id=None,
        prompt_id=None,
        language=None,
        translation=None,
        description=None,
        enrichments=None,
        pipeline_version=pipeline_version,
        run_id=run_id,
        processed_at=datetime.now(UTC),
        elapsed_ms=0.0,
    )
    return row


def _valid_text(row: dict[str, Any]) -> None:
    """An engine's text made valid Unicode (a PDF's characters outside the BMP come as UTF-16 pairs),
    with a warning that counts what could not be kept."""
    replaced = 0
    for name in ("markdown", "spans"):
        row[name], n = valid_value(row[name])
        replaced += n
    if replaced:
        row["warnings"].append(replaced_warning(replaced))


class EnginePool:
    """Engines by name, created on first use (a replica that only sees text pages never loads OCR). It
    applies the worker environment contract first, in whichever process hosts it."""

    def __init__(self, engine_options: dict[str, dict[str, Any]]):
        pin_native_threads()
        self._options = engine_options
        self._engines: dict[str, Engine] = {}
        self.enrich = EnrichOptions.of(engine_options.get(ENRICH))

    def get(self, name: str) -> Engine:
        if name not in self._engines:
            engine = make_engine(name, self._options.get(name, {}))
            pin_native_threads()  # the engine may have loaded a numeric library with its own pool
            self._engines[name] = engine
        return self._engines[name]

    def close(self) -> None:
        """Every engine that holds native resources (a Tesseract instance per language set) let go."""
        for engine in self._engines.values():
            close = getattr(engine, "close", None)
            if callable(close):
                close()
        self._engines.clear()


def convert_segments(
    segments: list[Segment],
    engines: EnginePool,
    run_id: str,
    pipeline_version: str,
    across_objects: bool = False,
) -> list[dict[str, Any]]:
    """Result rows in the order of `segments`. Segments are grouped back into their engine batches (by
    object and batch number), so a driver that hands over several batches at once changes nothing;
    across_objects: one call per engine and batch number, whatever objects the segments come from (the
    staged plan's engine pools)."""
    rows: list[dict[str, Any] | None] = [None] * len(segments)
    batches: dict[tuple[str, int, str], list[int]] = {}
    for i, seg in enumerate(segments):
        if seg.status == STATUS_ERROR:
            rows[i] = _result_row(seg, run_id, pipeline_version)
        elif seg.route == ROUTE_NONE:
            row = _result_row(seg, run_id, pipeline_version)
            row.update(markdown="", engine=ROUTE_NONE)
            rows[i] = row
        else:
            batches.setdefault(("" if across_objects else seg.doc_id, seg.batch, seg.route), []).append(i)
    for (_, _, name), idxs in batches.items():
        try:
            engine = engines.get(name)
        except Exception as e:  # noqa: BLE001 - an engine that cannot start fails its segments, not the job
            for i in idxs:
                seg = segments[i]
                rows[i] = _result_row(seg.as_error("engine_start", e, seg.segment_index, True), run_id,
                                      pipeline_version)  # fmt: skip
            continue
        for i, (out, ms) in zip(idxs, _run(engine, [segments[i] for i in idxs]), strict=True):
            seg = segments[i]
            if isinstance(out, BaseException):
                row = _result_row(seg.as_error("engine", out, seg.segment_index, False), run_id,
                                  pipeline_version)  # fmt: skip
                row.update(engine=engine.name, model_id=engine.model_id, elapsed_ms=ms)
            else:
                row = _result_row(seg, run_id, pipeline_version)
                row.update(
                    markdown=out.markdown,
                    spans=out.spans,
                    engine=engine.name,
                    model_id=out.model_id,
                    prompt_id=out.prompt_id,
                    language=out.language,
                    elapsed_ms=round(ms, 3),
                    warnings=list(seg.warnings) + list(out.warnings),
                    status=STATUS_OK,
                )
                _valid_text(row)
            rows[i] = row
    if engines.enrich.any:
        enrich_rows(segments, rows, engines, engines.enrich)  # type: ignore[arg-type]
    return [r for r in rows if r is not None]


def _run(engine: Engine, batch: list[Segment]) -> list[tuple[EngineOutput | BaseException, float]]:
    """(output or exception, milliseconds) per segment. A failed batch is retried one segment at a time
    to pin the failure on its segment."""
    t0 = time.perf_counter()
    try:
        outputs = engine(batch)
        if len(outputs) != len(batch):
            raise RuntimeError(
                f"engine {engine.name} returned {len(outputs)} outputs for {len(batch)} segments"
            )
        per_item_ms = (time.perf_counter() - t0) * 1000 / len(batch)
        return [(o, per_item_ms) for o in outputs]
    except Exception:  # noqa: BLE001
        timed: list[tuple[EngineOutput | BaseException, float]] = []
        for seg in batch:
            t1 = time.perf_counter()
            try:
                timed.append((engine([seg])[0], (time.perf_counter() - t1) * 1000))
            except Exception as e:  # noqa: BLE001
                timed.append((e, (time.perf_counter() - t1) * 1000))
        return timed
