"""The Ray Data driver: listed objects → engine batches (split fused into the engine actors) → engines
(autoscaling actor pool) → staged Parquet; documents grouped by doc_id on the cluster for large runs.

Holds no format or engine logic: it wires the plain stage functions into a streaming Ray Data plan. Each
row between the stages is one engine batch (stages.work), so Ray's block sizes never change a batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.block import Block, BlockAccessor
from ray.data.datasource.datasink import Datasink, WriteResult
from unitok.actors.registry import engine_options
from unitok.connectors.parquet_files import BlockSplitter, StagedWriter
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.core.workerenv import worker_env_vars
from unitok.pipeline.drivers.cluster import cluster_address, joins_cluster
from unitok.pipeline.stages.assemble import assemble_document, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.work import batch_rows, split_batch

log = logging.getLogger("unitok")


def ensure_ray(cfg: JobConfig) -> None:
    """Join the configured cluster (runtime.ray_address or RAY_ADDRESS), else start an embedded local Ray.
    Workers start with the worker environment contract's variables, before any library loads."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    runtime_env = {"env_vars": worker_env_vars()}
    address = cluster_address(cfg)
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:
        ray.init(num_cpus=cfg.runtime.num_cpus, include_dashboard=False, runtime_env=runtime_env)


class SegmentWorker:
    """The engine stage as a Ray Data callable class: one instance per actor, engines loaded once."""

    def __init__(self, engine_options: dict[str, dict[str, Any]], run_id: str, pipeline_version: str):
        self.engines = EnginePool(engine_options)  # applies the worker environment contract
        self.run_id = run_id
        self.pipeline_version = pipeline_version

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [
            row
            for segments in batch_rows(batch)
            for row in convert_segments(segments, self.engines, self.run_id, self.pipeline_version)
        ]
        return rows_to_table(rows, RESULT_SCHEMA)


class StagedParquetSink(Datasink[dict[str, int]]):
    """connectors.parquet_files.StagedWriter as a Ray Datasink: each write task writes its own files;
    Ray Data buffers blocks up to rows_per_file first so files are not tiny."""

    def __init__(
        self, staging_dir: Path, split: BlockSplitter, compression: str = "zstd", rows_per_file: int = 100_000
    ):
        self.writer = StagedWriter(staging_dir, split, compression, rows_per_file)
        self.rows_written: dict[str, int] = {}

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        self.writer.staging_dir.mkdir(parents=True, exist_ok=True)

    @property
    def min_rows_per_write(self) -> int | None:
        return self.writer.rows_per_file

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict[str, int]:
        tables = (BlockAccessor.for_block(block).to_arrow() for block in blocks)
        return self.writer.write(tables, ctx.task_idx)

    def on_write_complete(self, write_result: WriteResult[dict[str, int]]) -> None:
        for counts in write_result.write_returns:
            for name, n in counts.items():
                self.rows_written[name] = self.rows_written.get(name, 0) + n


def execute_ray(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    import ray.data

    ensure_ray(cfg)
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    num_gpus = 0.0
    max_workers = cfg.runtime.max_workers or max(cfg.runtime.min_workers, cpus)
    if cfg.engine.uses_phi4:
        gpus = resources.get("GPU", 0)
        if gpus and cfg.engine.phi4.num_gpus:
            num_gpus = cfg.engine.phi4.num_gpus  # one replica per GPU by default, fractional allowed
            max_workers = cfg.runtime.max_workers or max(cfg.runtime.min_workers, int(gpus / num_gpus))
        else:
            log.warning("engine phi4: no GPU in the Ray cluster, replicas run on CPU (slow; for tests)")
    # On the embedded local Ray the machine is ours: start the whole pool rather than wait for the
    # autoscaler (short jobs end before it scales up). On a shared cluster start small and grow.
    initial = cfg.runtime.min_workers if joins_cluster(cfg) else max_workers
    ds = ray.data.from_items(listing, override_num_blocks=min(len(listing), 1000))
    # Ray Data fuses splitting into the engine actors (same CPU request): no object-store hop for text
    # pages, parallelism across objects. Measured: unfusing (zero-CPU split tasks) made a 7-scan job take
    # 20 s instead of 11 s on 2 cores, the task workers starting late. A GPU engine's actors ask for GPUs,
    # so they are never fused with the CPU split tasks.
    ds = ds.map_batches(
        split_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"cfg_data": cfg.model_dump()},
        num_cpus=1,
    )
    ds = ds.map_batches(
        SegmentWorker,
        fn_constructor_kwargs={
            "engine_options": engine_options(cfg),
            "run_id": run_id,
            "pipeline_version": PIPELINE_VERSION,
        },
        compute=ray.data.ActorPoolStrategy(
            min_size=cfg.runtime.min_workers, max_size=max_workers, initial_size=initial
        ),
        batch_size=1,  # one row is one engine batch
        batch_format="pyarrow",
        num_cpus=1,
        num_gpus=num_gpus or None,
    )
    ds.write_datasink(StagedParquetSink(staging, split_results, **sink_args))


def assemble_ray(
    staging: Path,
    columns: list[str],
    failures: dict[str, list[dict[str, Any]]],
    sink_args: dict[str, Any],
    heading_every_s: float,
) -> None:
    """segments/ → documents/ with a hash shuffle on doc_id, for runs too large to assemble in one process."""
    import ray.data

    seg_dir = staging / "segments"
    size = sum(p.stat().st_size for p in seg_dir.glob("*.parquet"))
    n_parts = max(1, min(64, size // (256 << 20)))  # ~256 MB of compressed segments per partition
    docs = ray.data.read_parquet(str(seg_dir), columns=columns)
    docs = docs.groupby("doc_id", num_partitions=n_parts).map_groups(
        assemble_document,
        fn_kwargs={"failures": failures, "heading_every_s": heading_every_s},
        batch_format="pyarrow",
    )
    docs.write_datasink(StagedParquetSink(staging, _documents_only, **sink_args))


def _documents_only(table: pa.Table) -> dict[str, pa.Table]:
    return {"documents": table}


class EmbedWorker:
    """A Ray actor holding one encoder; each row it gets is one batch formed by stages.embed."""

    def __init__(self, options: dict[str, Any]):
        from unitok.actors.embedder import TextEmbedder

        self.embedder = TextEmbedder(**options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for row in batch.to_pylist():
            vectors = self.embedder(row["texts"])
            out.append({"i": row["i"], "vectors": vectors.tobytes(), "dim": vectors.shape[1],
                        "model_id": self.embedder.model_id})  # fmt: skip
        return pa.Table.from_pylist(out)


def embed_ray(
    batches: list[list[str]], options: dict[str, Any], cfg: JobConfig
) -> tuple[list[np.ndarray], str]:
    """Embedding batches through a pool of encoder actors (GPUs when embedding.num_gpus asks for them)."""
    import ray.data

    ensure_ray(cfg)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    max_workers = cfg.embedding.max_workers or max(1, min(cpus, len(batches)))
    ds = ray.data.from_items([{"i": i, "texts": b} for i, b in enumerate(batches)],
                             override_num_blocks=min(len(batches), 200))  # fmt: skip
    ds = ds.map_batches(
        EmbedWorker,
        fn_constructor_kwargs={"options": options},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max_workers),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=0 if cfg.embedding.num_gpus else 1,
        num_gpus=cfg.embedding.num_gpus or None,
    )
    rows = sorted(ds.take_all(), key=lambda r: r["i"])
    vectors = [np.frombuffer(r["vectors"], dtype=np.float32).reshape(-1, r["dim"]) for r in rows]
    return vectors, (rows[0]["model_id"] if rows else "")
