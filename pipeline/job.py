"""One run of a job: list → plan → execute (local pool or Ray Data) → assemble documents → commit to the
output's Delta tables, through the one output interface (connectors.output)."""

from __future__ import annotations

import importlib.util
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from unitok.actors.contract import EngineSetupError
from unitok.connectors.output import RunOutput, check_output_location
from unitok.connectors.store import open_store
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.redact import redact_uri
from unitok.pipeline.core.schemas import CHUNKS_SCHEMA, TABLES, rows_to_table
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.drivers.cluster import cluster_address, joins_cluster
from unitok.pipeline.stages.assemble import DOC_COLUMNS, assemble_sorted
from unitok.pipeline.stages.plan import check_deletions, plan_run, state_table
from unitok.pipeline.stages.preflight import preflight

log = logging.getLogger("unitok")


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
    chunks: int = 0
    segments: int = 0
    segments_by_engine: dict[str, int] = field(default_factory=dict)
    failed_objects: int = 0
    failed_segments: int = 0
    error_rows: int = 0
    elapsed_s: float = 0.0
    committed: bool = False
    table_versions: dict[str, int] = field(default_factory=dict)  # each table's version after the commit
    lancedb: dict[str, int] = field(default_factory=dict)  # rows loaded, upserted and deleted in LanceDB

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


def choose_executor(cfg: JobConfig, listing: list[dict[str, Any]]) -> tuple[str, str]:
    """(executor, why) for this run."""
    rt = cfg.runtime
    if rt.executor != "auto":
        return rt.executor, "runtime.executor or --executor"
    if cluster_address(cfg):
        return "ray", "a Ray cluster address is set"
    total = sum(o["size"] for o in listing)
    if len(listing) <= rt.local_max_objects and total <= rt.local_max_bytes:
        return "local", f"{len(listing)} objects, {total / 2**20:.1f} MiB: under the local_max_* bounds"
    return "ray", f"{len(listing)} objects, {total / 2**20:.1f} MiB: over the local_max_* bounds"


def assemble_documents(
    output: RunOutput, staging: Path, cfg: JobConfig, sink_args: dict[str, Any], executor: str
) -> None:
    """segments/ → documents/. A run whose segments fit comfortably in memory is assembled in-process
    (a Ray shuffle costs seconds of fixed overhead); a larger one is grouped by doc_id on the cluster."""
    failures = _failures_by_doc(staging / "errors")
    seg_dir = staging / "segments"
    size = sum(p.stat().st_size for p in seg_dir.glob("*.parquet"))
    if executor == "ray" and size > cfg.runtime.local_assembly_max_bytes:
        from unitok.pipeline.drivers.ray_data import assemble_ray

        assemble_ray(staging, DOC_COLUMNS, failures, sink_args, cfg.audio.heading_every_s)
        return
    table = pads.dataset(seg_dir, format="parquet").to_table(columns=DOC_COLUMNS)
    output.write_table(staging, "documents", assemble_sorted(table, failures, cfg.audio.heading_every_s))


def chunk_documents(staging: Path, cfg: JobConfig) -> pa.Table:
    """documents/ (and their segments, for provenance) → the chunk rows, document by document."""
    from unitok.pipeline.stages.chunk import Chunker

    if not (staging / "documents").is_dir():
        return CHUNKS_SCHEMA.empty_table()
    chunker = Chunker.from_config(cfg.chunking)
    segs = pads.dataset(staging / "segments", format="parquet").to_table(
        columns=["doc_id", "segment_index", "markdown", "page_number", "time_start_s", "time_end_s", "spans"]
    )
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for row in segs.to_pylist():
        by_doc.setdefault(row["doc_id"], []).append(row)
    rows = []
    for doc in pads.dataset(staging / "documents", format="parquet").to_table().to_pylist():
        rows.extend(chunker.chunks(doc, by_doc.get(doc["doc_id"], [])))
    return rows_to_table(rows, CHUNKS_SCHEMA)


def embed_chunks(table: pa.Table, cfg: JobConfig, executor: str) -> pa.Table:
    """The chunks with their embeddings: batches formed once (in a fixed order, whatever order the driver
    staged the documents in), encoded in a worker (local) or Ray actors."""
    from unitok.pipeline.stages.embed import batches_of, embed_in_worker, embedder_options, with_embeddings

    table = table.sort_by([("doc_id", "ascending"), ("chunk_index", "ascending")])
    batches = batches_of(table, cfg.embedding.batch_size)
    options = embedder_options(cfg.embedding)
    if executor == "ray":
        from unitok.pipeline.drivers.ray_data import embed_ray

        vectors, model_id = embed_ray(batches, options, cfg)
    else:
        vectors, model_id = embed_in_worker(batches, options)
    log.info("embedded %d chunks with %s", table.num_rows, model_id)
    return with_embeddings(table, vectors, model_id)


def _failed_objects(errors_dir: Path) -> set[str]:
    if not errors_dir.is_dir():
        return set()
    errs = pads.dataset(errors_dir, format="parquet").to_table(columns=["source_uri", "segment_index"])
    return set(errs.filter(pc.less(errs["segment_index"], 0))["source_uri"].to_pylist())


def _rows(staging: Path, name: str, columns: list[str]) -> pa.Table:
    folder = staging / name
    if not folder.is_dir():
        return TABLES[name].empty_table().select(columns)
    return pads.dataset(folder, format="parquet").to_table(columns=columns)


def _count(summary: RunSummary, staging: Path, failed_objects: set[str]) -> None:
    """What this run wrote (unchanged objects' rows stay in the tables and are not counted)."""
    segs = _rows(staging, "segments", ["engine"])
    summary.segments = segs.num_rows
    for item in pc.value_counts(segs["engine"]).to_pylist():
        summary.segments_by_engine[item["values"] or "none"] = item["counts"]
    errs = _rows(staging, "errors", ["segment_index"])
    summary.error_rows = errs.num_rows
    summary.failed_objects = len(failed_objects)
    summary.failed_segments = pc.sum(pc.greater_equal(errs["segment_index"], 0)).as_py() or 0
    summary.documents = _rows(staging, "documents", ["doc_id"]).num_rows


def check_engines(cfg: JobConfig) -> None:
    """Preflight where this machine runs the engines; a cluster's workers check their own installs. A
    Beam job's runner and options are checked here too, before anything is listed."""
    if not joins_cluster(cfg):
        preflight(cfg)
    if cfg.runtime.executor == "beam":
        if importlib.util.find_spec("apache_beam") is None:
            raise EngineSetupError("runtime.executor: beam needs apache-beam: pip install -e '.[beam]'")
        from unitok.pipeline.drivers.beam import check_beam

        check_beam(cfg)


def run_job(
    cfg: JobConfig,
    raw_config: dict[str, Any] | None = None,
    run_id: str | None = None,
    allow_mass_delete: bool = False,
) -> RunSummary:
    """List, plan, convert and commit one run. Raises MassDeleteError (before converting anything) when
    the run would delete more than runtime.max_delete_fraction of the last run's objects, unless
    allow_mass_delete."""
    t0 = time.perf_counter()
    started_at = datetime.now(UTC)
    run_id = run_id or new_run_id()
    # Every URI this run writes (summary, manifest, logs) is redacted; the config is kept as written.
    summary = RunSummary(
        run_id=run_id, source_uri=redact_uri(cfg.source.uri), output_uri=redact_uri(cfg.output.uri)
    )
    check_engines(cfg)
    check_output_location(cfg.source.uri, cfg.output.uri)

    store = open_store(cfg.source.uri, cfg.source.s3.model_dump())
    listing = [o.to_row() for o in store.list_objects(cfg.source.include, cfg.source.exclude)]
    summary.objects = len(listing)
    log.info("listed %d objects under %s", len(listing), summary.source_uri)
    with RunOutput(
        cfg.output.uri, cfg.output.s3.model_dump(), cfg.output.compression, cfg.output.table_config
    ) as output:
        summary.mode = cfg.run_mode
        plan = plan_run(listing, output.previous_rows("objects"), summary.mode)
        summary.converted_objects, summary.carried_objects = len(plan.convert), len(plan.carried)
        summary.deleted_objects = len(plan.deleted)
        log.info(
            "%s run: %d objects to convert, %d unchanged, %d deleted since the last run",
            summary.mode, len(plan.convert), len(plan.carried), len(plan.deleted),
        )  # fmt: skip
        if not allow_mass_delete:
            check_deletions(plan, len(listing), summary.source_uri, cfg.runtime.max_delete_fraction)
        summary.executor, why = choose_executor(cfg, plan.convert)
        log.info("executor %s (%s)", summary.executor, why)

        staging = output.begin(run_id)
        sink_args = {"compression": cfg.output.compression, "rows_per_file": cfg.output.max_rows_per_file}
        try:
            if plan.convert:
                if summary.executor == "local":
                    from unitok.pipeline.drivers.local import execute_local as execute
                elif summary.executor == "beam":
                    from unitok.pipeline.drivers.beam import execute_beam as execute
                else:
                    from unitok.pipeline.drivers.ray_data import execute_ray as execute
                execute(plan.convert, cfg, run_id, staging, sink_args)
                if (staging / "segments").is_dir():
                    if summary.executor != "beam":  # the Beam pipeline groups and assembles them itself
                        assemble_documents(output, staging, cfg, sink_args, summary.executor)
                    if cfg.chunking.enabled:
                        chunks = chunk_documents(staging, cfg)
                        if cfg.embedding.enabled and chunks.num_rows:
                            chunks = embed_chunks(chunks, cfg, summary.executor)
                        output.write_table(staging, "chunks", chunks)
                        summary.chunks = chunks.num_rows
            failed = _failed_objects(staging / "errors")
            output.write_table(staging, "objects", state_table(plan, failed, run_id))
            _count(summary, staging, failed)
            summary.elapsed_s = round(time.perf_counter() - t0, 3)
            # Each table's commit carries the run: who, what, and the config as written (never resolved).
            metadata = {
                "run_id": run_id,
                "pipeline_version": PIPELINE_VERSION,
                "started_at": started_at.isoformat(),
                "source_uri": summary.source_uri,
                "config": json.dumps(raw_config or {}, default=str),
                "summary": json.dumps(summary.as_dict()),
            }
            converted = {o["uri"] for o in plan.convert}
            listed = {o["uri"] for o in listing}
            summary.table_versions = output.commit(staging, run_id, TABLES, converted, listed, metadata)
            summary.committed = True
            log.info("committed run %s to %s", run_id, summary.output_uri)
            if cfg.output.lancedb is not None and cfg.chunking.enabled:
                from unitok.connectors.lancedb_sink import sync_lancedb

                lance = cfg.output.lancedb
                summary.lancedb = sync_lancedb(cfg.output.uri, output.storage_options, lance.uri, lance.table)
                log.info("LanceDB %s/%s in step with chunks version %d", redact_uri(lance.uri), lance.table,
                         summary.lancedb["version"])  # fmt: skip
            return summary
        except BaseException:
            output.discard(run_id)
            raise
