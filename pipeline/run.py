"""One run of a job: list → execute (Ray Data or local) → assemble documents → commit with a manifest."""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from connectors.local import path_from_uri
from connectors.parquet_out import STAGING, discard_run, ensure_dataset, publish_run
from connectors.store import open_store
from pipeline import PIPELINE_VERSION
from pipeline.assemble import assemble_sorted
from pipeline.config import JobConfig
from pipeline.incremental import carry_forward, plan_run, write_state
from pipeline.records import DOCUMENTS_SCHEMA, ERRORS_SCHEMA, SEGMENTS_SCHEMA
from pipeline.stages import choose_executor, preflight

log = logging.getLogger("unitok")
DATASETS = {"segments": SEGMENTS_SCHEMA, "documents": DOCUMENTS_SCHEMA, "errors": ERRORS_SCHEMA}
STATE_DATASETS = ["objects", "deletions"]
_DOC_COLUMNS = [
    "doc_id", "source_uri", "source_version", "source_size", "modality", "mime_type", "markdown",
    "segment_index", "segment_kind", "page_number", "time_start_s", "time_end_s", "spans", "warnings",
    "engine", "pipeline_version", "run_id",
]  # fmt: skip


@dataclass
class RunSummary:
    run_id: str
    source_uri: str
    output_uri: str
    executor: str = "ray"
    mode: str = "full"
    objects: int = 0
    converted_objects: int = 0
    carried_objects: int = 0
    deleted_objects: int = 0
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


def assemble_documents(staging: Path, cfg: JobConfig, sink_args: dict[str, Any], executor: str) -> None:
    """segments/ → documents/. A run whose segments fit comfortably in memory is assembled in-process
    (a Ray shuffle costs seconds of fixed overhead); a larger one is grouped by doc_id on the cluster."""
    failures = _failures_by_doc(staging / "errors")
    seg_dir = staging / "segments"
    size = sum(p.stat().st_size for p in seg_dir.glob("*.parquet"))
    if executor == "ray" and size > cfg.runtime.local_assembly_max_bytes:
        from pipeline.ray_driver import assemble_ray

        assemble_ray(staging, _DOC_COLUMNS, failures, sink_args, cfg.audio.heading_every_s)
        return
    table = pads.dataset(seg_dir, format="parquet").to_table(columns=_DOC_COLUMNS)
    folder = staging / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        assemble_sorted(table, failures, cfg.audio.heading_every_s),
        folder / "part-00000.parquet",
        compression=cfg.output.parquet_compression,
    )


def _failed_objects(errors_dir: Path) -> set[str]:
    if not errors_dir.is_dir():
        return set()
    errs = pads.dataset(errors_dir, format="parquet").to_table(columns=["source_uri", "segment_index"])
    return set(errs.filter(pc.less(errs["segment_index"], 0))["source_uri"].to_pylist())


def _count(summary: RunSummary, staging: Path, failed_objects: set[str]) -> None:
    segs = pads.dataset(staging / "segments", format="parquet").to_table(columns=["engine"])
    summary.segments = segs.num_rows
    for item in pc.value_counts(segs["engine"]).to_pylist():
        summary.segments_by_engine[item["values"] or "none"] = item["counts"]
    errs = pads.dataset(staging / "errors", format="parquet").to_table(columns=["segment_index"])
    summary.error_rows = errs.num_rows
    summary.failed_objects = len(failed_objects)
    summary.failed_segments = pc.sum(pc.greater_equal(errs["segment_index"], 0)).as_py() or 0
    summary.documents = pads.dataset(staging / "documents", format="parquet").count_rows()


def run_job(
    cfg: JobConfig, raw_config: dict[str, Any] | None = None, run_id: str | None = None
) -> RunSummary:
    t0 = time.perf_counter()
    started_at = datetime.now(UTC)
    run_id = run_id or new_run_id()
    summary = RunSummary(run_id=run_id, source_uri=cfg.source.uri, output_uri=cfg.output.uri)
    preflight(cfg)

    store = open_store(cfg.source.uri, cfg.source.s3.model_dump())
    listing = [o.to_row() for o in store.list_objects(cfg.source.include, cfg.source.exclude)]
    summary.objects = len(listing)
    log.info("listed %d objects under %s", len(listing), cfg.source.uri)
    remote, previous_run = None, None
    if cfg.output.uri.startswith("s3://"):
        # Object stores cannot rename: the run is built in a local work folder seeded with the committed
        # snapshot, then uploaded as a new snapshot and committed with one manifest PUT.
        from connectors.s3_out import S3Output

        remote = S3Output(cfg.output.uri, **cfg.output.s3.model_dump())
        output_dir = Path(tempfile.mkdtemp(prefix="unitok-out-"))
        previous = remote.read_manifest()
        if previous:
            previous_run = previous["run_id"]
            remote.download_snapshot(previous, output_dir)
    else:
        output_dir = path_from_uri(cfg.output.uri).resolve()
        output_dir.mkdir(parents=True, exist_ok=True)
    summary.mode = cfg.run_mode
    plan = plan_run(listing, output_dir, summary.mode)
    summary.converted_objects, summary.carried_objects = len(plan.convert), len(plan.carried)
    summary.deleted_objects = len(plan.deleted)
    log.info(
        "%s run: %d objects to convert, %d unchanged, %d deleted since the last run",
        summary.mode, len(plan.convert), len(plan.carried), len(plan.deleted),
    )  # fmt: skip
    summary.executor, why = choose_executor(cfg, plan.convert)
    log.info("executor %s (%s)", summary.executor, why)

    # One run per output at a time: staging left by a crashed run is stale and is cleared.
    shutil.rmtree(output_dir / STAGING, ignore_errors=True)
    staging = output_dir / STAGING / run_id
    sink_args = {"compression": cfg.output.compression, "rows_per_file": cfg.output.max_rows_per_file}

    compression = cfg.output.parquet_compression
    try:
        if plan.convert:
            if summary.executor == "local":
                from pipeline.local_driver import execute_local as execute
            else:
                from pipeline.ray_driver import execute_ray as execute
            execute(plan.convert, cfg, run_id, staging, sink_args)
            if (staging / "segments").is_dir():
                assemble_documents(staging, cfg, sink_args, summary.executor)
        carry_forward(output_dir, staging, DATASETS, plan.carried, compression)
        failed = _failed_objects(staging / "errors")
        write_state(staging, plan, listing, failed, run_id, compression)
        for name, schema in DATASETS.items():
            ensure_dataset(staging, name, schema, cfg.output.compression)
        _count(summary, staging, failed)
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
        publish_run(output_dir, run_id, [*DATASETS, *STATE_DATASETS], manifest)
        if remote is not None:
            remote.publish(output_dir, run_id, [*DATASETS, *STATE_DATASETS], manifest)
            # Keep the previous snapshot too: a reader that fetched the old manifest may still be reading.
            remote.prune({run_id, previous_run} - {None})
        summary.committed = True
        log.info("committed run %s to %s", run_id, cfg.output.uri)
        return summary
    except BaseException:
        discard_run(output_dir, run_id)
        raise
    finally:
        if remote is not None:
            shutil.rmtree(output_dir, ignore_errors=True)
