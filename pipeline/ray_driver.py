"""The Ray Data driver: listed objects → split (fused into the engine actors) → engines (autoscaling actor
pool) → staged Parquet; documents grouped by doc_id on the cluster for large runs.

Holds no format or engine logic: it wires the plain stage functions into a streaming Ray Data plan.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from connectors.parquet_out import StagedParquetSink
from pipeline import PIPELINE_VERSION
from pipeline.assemble import assemble_document, split_results
from pipeline.config import JobConfig
from pipeline.stages import engine_options, joins_cluster, split_batch

log = logging.getLogger("unitok")


def ensure_ray(cfg: JobConfig) -> None:
    """Join the configured cluster (runtime.ray_address or RAY_ADDRESS), else start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    runtime_env = {"env_vars": {"OMP_THREAD_LIMIT": "1"}}
    address = cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:
        ray.init(num_cpus=cfg.runtime.num_cpus, include_dashboard=False, runtime_env=runtime_env)


def execute_ray(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    import ray.data

    from actors.ray_worker import SegmentWorker

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
        batch_size=cfg.runtime.engine_batch_size,
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


def _documents_only(table):
    return {"documents": table}
