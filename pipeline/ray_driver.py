"""The Ray Data driver: list → split (tasks) → engines (actor pool) → staged Parquet → documents → commit.

Holds no format or engine logic: it wires the plain stage functions into a streaming Ray Data plan.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from connectors.local import path_from_uri
from connectors.objects import ObjectInfo
from connectors.parquet_out import STAGING, StagedParquetSink, discard_run, ensure_dataset, publish_run
from connectors.store import open_store
from pipeline import PIPELINE_VERSION
from pipeline.assemble import assemble_document, assemble_sorted, split_results
from pipeline.config import JobConfig
from pipeline.records import (
    DOCUMENTS_SCHEMA,
    ERRORS_SCHEMA,
    ROUTE_OCR,
    SEGMENT_WORK_SCHEMA,
    SEGMENTS_SCHEMA,
    rows_to_table,
)
from pipeline.split import split_object

log = logging.getLogger("unitok")
DATASETS = ("segments", "documents", "errors")
_DOC_COLUMNS = [
    "doc_id", "source_uri", "source_version", "source_size", "modality", "mime_type", "markdown",
    "segment_index", "page_number", "warnings", "engine", "pipeline_version", "run_id",
]  # fmt: skip


@dataclass
class RunSummary:
    run_id: str
    source_uri: str
    output_uri: str
    objects: int = 0
    documents: int = 0
    segments: int = 0
    segments_by_engine: dict[str, int] = field(default_factory=dict)
    failed_objects: int = 0
    failed_segments: int = 0
    error_rows: int = 0
    elapsed_s: float = 0.0
    committed: bool = False

    @property
    def failures(self) -> int:
        return self.failed_objects + self.failed_segments

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def ensure_ray(cfg: JobConfig) -> None:
    """Join the configured cluster (runtime.ray_address or RAY_ADDRESS), else start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    runtime_env = {"env_vars": {"OMP_THREAD_LIMIT": "1"}}
    address = cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.runtime.num_cpus, include_dashboard=False, runtime_env=runtime_env)


def split_batch(batch: pa.Table, cfg_data: dict[str, Any]) -> Iterator[pa.Table]:
    """Ray Data UDF (generator): listed objects → blocks of work segments, streamed as they are made."""
    cfg = JobConfig.model_validate(cfg_data)
    per_block = cfg.runtime.segments_per_block
    for obj_row in batch.to_pylist():
        pending: list[dict[str, Any]] = []
        for seg in split_object(ObjectInfo(**obj_row), cfg):
            pending.append(seg.to_row())
            # Rendered pages are large: flush them in smaller blocks to bound worker memory.
            if len(pending) >= per_block or (seg.image_png and len(pending) >= 4):
                yield rows_to_table(pending, SEGMENT_WORK_SCHEMA)
                pending = []
        if pending:
            yield rows_to_table(pending, SEGMENT_WORK_SCHEMA)


def engine_options(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    return {
        ROUTE_OCR: {
            "languages": cfg.ocr.languages,
            "tessdata_dir": cfg.ocr.tessdata_dir,
            "psm": cfg.ocr.page_segmentation_mode,
        }
    }


def preflight(cfg: JobConfig) -> None:
    """Fail before any work when a local engine cannot start (missing OCR language data)."""
    from actors.ocr_tesseract import find_tessdata

    if not (cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS")):
        find_tessdata(cfg.ocr.tessdata_dir, cfg.ocr.languages)


def _failures_by_doc(errors_dir: Path) -> dict[str, list[dict[str, Any]]]:
    if not errors_dir.is_dir():
        return {}
    table = pads.dataset(errors_dir, format="parquet").to_table(
        columns=["doc_id", "segment_index", "page_number", "error_type"]
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        out.setdefault(row["doc_id"], []).append(row)
    return out


def _count(summary: RunSummary, staging: Path) -> None:
    segs = pads.dataset(staging / "segments", format="parquet").to_table(columns=["engine"])
    summary.segments = segs.num_rows
    for item in pc.value_counts(segs["engine"]).to_pylist():
        summary.segments_by_engine[item["values"] or "none"] = item["counts"]
    errs = pads.dataset(staging / "errors", format="parquet").to_table(
        columns=["source_uri", "segment_index"]
    )
    summary.error_rows = errs.num_rows
    object_level = errs.filter(pc.less(errs["segment_index"], 0))
    summary.failed_objects = len(set(object_level["source_uri"].to_pylist()))
    summary.failed_segments = errs.num_rows - object_level.num_rows
    summary.documents = pads.dataset(staging / "documents", format="parquet").count_rows()


def assemble_documents(staging: Path, cfg: JobConfig, sink_args: dict[str, Any]) -> None:
    """segments/ → documents/. A run whose markdown fits comfortably in memory is assembled in-process
    (a Ray shuffle costs seconds of fixed overhead); a larger one is grouped by doc_id on the cluster."""
    import ray.data

    failures = _failures_by_doc(staging / "errors")
    seg_dir = staging / "segments"
    size = sum(p.stat().st_size for p in seg_dir.glob("*.parquet"))
    if size <= cfg.runtime.local_assembly_max_bytes:
        table = pads.dataset(seg_dir, format="parquet").to_table(columns=_DOC_COLUMNS)
        folder = staging / "documents"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            assemble_sorted(table, failures),
            folder / "part-00000.parquet",
            compression=None if cfg.output.compression == "none" else cfg.output.compression,
        )
        return
    n_parts = max(1, min(64, size // (256 << 20)))  # ~256 MB of compressed segments per partition
    docs = ray.data.read_parquet(str(seg_dir), columns=_DOC_COLUMNS)
    docs = docs.groupby("doc_id", num_partitions=n_parts).map_groups(
        assemble_document, fn_kwargs={"failures": failures}, batch_format="pyarrow"
    )
    docs.write_datasink(StagedParquetSink(staging, lambda t: {"documents": t}, **sink_args))


def run_job(
    cfg: JobConfig, raw_config: dict[str, Any] | None = None, run_id: str | None = None
) -> RunSummary:
    import ray.data

    t0 = time.perf_counter()
    started_at = datetime.now(UTC)
    run_id = run_id or new_run_id()
    summary = RunSummary(run_id=run_id, source_uri=cfg.source.uri, output_uri=cfg.output.uri)
    preflight(cfg)

    store = open_store(cfg.source.uri)
    listing = [o.to_row() for o in store.list_objects(cfg.source.include, cfg.source.exclude)]
    summary.objects = len(listing)
    log.info("listed %d objects under %s", len(listing), cfg.source.uri)

    output_dir = path_from_uri(cfg.output.uri).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    # One run per output at a time: staging left by a crashed run is stale and is cleared.
    shutil.rmtree(output_dir / STAGING, ignore_errors=True)
    staging = output_dir / STAGING / run_id
    sink_args = {"compression": cfg.output.compression, "rows_per_file": cfg.output.max_rows_per_file}

    try:
        if listing:
            ensure_ray(cfg)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            max_workers = cfg.runtime.max_workers or max(cfg.runtime.min_workers, cpus - 1, 1)
            ds = ray.data.from_items(listing, override_num_blocks=min(len(listing), 1000))
            ds = ds.map_batches(
                split_batch,
                batch_size=1,
                batch_format="pyarrow",
                fn_kwargs={"cfg_data": cfg.model_dump()},
                num_cpus=1,
            )
            from actors.ray_worker import SegmentWorker

            ds = ds.map_batches(
                SegmentWorker,
                fn_constructor_kwargs={
                    "engine_options": engine_options(cfg),
                    "run_id": run_id,
                    "pipeline_version": PIPELINE_VERSION,
                },
                compute=ray.data.ActorPoolStrategy(min_size=cfg.runtime.min_workers, max_size=max_workers),
                batch_size=cfg.runtime.engine_batch_size,
                batch_format="pyarrow",
                num_cpus=1,
            )
            ds.write_datasink(StagedParquetSink(staging, split_results, **sink_args))

            if (staging / "segments").is_dir():
                assemble_documents(staging, cfg, sink_args)

        for name, schema in zip(DATASETS, (SEGMENTS_SCHEMA, DOCUMENTS_SCHEMA, ERRORS_SCHEMA), strict=True):
            ensure_dataset(staging, name, schema, cfg.output.compression)
        _count(summary, staging)
        summary.elapsed_s = round(time.perf_counter() - t0, 3)
        manifest = {
            "run_id": run_id,
            "pipeline_version": PIPELINE_VERSION,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "source_uri": cfg.source.uri,
            "output_uri": cfg.output.uri,
            "config": raw_config or {},
            "summary": summary.as_dict(),
        }
        publish_run(output_dir, run_id, list(DATASETS), manifest)
        summary.committed = True
        return summary
    except BaseException:
        discard_run(output_dir, run_id)
        raise
