"""A Ray Data building block: convert files read by your own pipeline.

    import ray
    import unitok.ray

    ds = ray.data.read_binary_files("s3://bucket/docs/", include_paths=True)
    rows = ds.map_batches(unitok.ray.Converter, fn_constructor_kwargs={"config": "job.yaml"},
                          batch_format="pyarrow", batch_size=8, concurrency=(1, 4))

Each output row is a segment with the segments table's columns (provenance included) plus `status`,
`stage`, `error_type` and `error_message`: a failed page or file is a row with status `error`, never lost.
Chunks and documents are the Python API's (`unitok.convert`); a whole job is `unitok run`.

`concurrency=(1, 4)`: a pool that grows to 4 actors as the reads that feed it leave CPUs free. A fixed pool
(`concurrency=n`, one CPU an actor) must leave a CPU for those reads; one that leaves none fails at once
with PoolTooLarge, which says what it asked and what the cluster has (Ray Data would wait forever).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa


def source_uri(path: str) -> str:
    """A read_binary_files path as a URI: absolute local paths as file:// URIs; a scheme kept as given."""
    if "://" in path:
        return path
    return Path(path).as_uri() if path.startswith("/") else path


class PoolTooLarge(RuntimeError):
    """The Converter actors would hold the CPUs that the reads of their input need: the dataset would wait
    forever, so the first actor says so instead."""


def _autoscaling() -> bool:
    """Whether the cluster can add nodes (then a pool larger than today's cluster is a scale-up request)."""
    try:
        from ray.data._internal.cluster_autoscaler.util import is_autoscaling_enabled

        return is_autoscaling_enabled()
    except Exception:  # noqa: BLE001 - Ray's internals moved: assume a fixed cluster, as a laptop's is
        return False


def check_pool_fits() -> None:
    """In a starting Converter actor: raise PoolTooLarge when this dataset's Converter actors together
    leave less than one CPU of a cluster that cannot grow, while their input comes from an earlier
    operator (a read not fused into the actors). Ray Data would hold that read back forever (Ray 2.60:
    `concurrency=2` on a 2-CPU machine, read_binary_files of one or a few files). Nothing is checked
    outside an actor, where Ray's actor table cannot be read, or once a sibling actor has started: an
    autoscaling pool grows only into CPUs that Ray Data's budget left free, and an over-sized fixed pool
    has been refused by the first of its actors to start, before any of them ran."""
    import ray

    if not ray.is_initialized():
        return
    ctx = ray.get_runtime_context()
    if ctx.get_actor_id() is None:  # a driver (Beam's DoFn, a script): not an actor of a pool
        return
    actor_id = ctx.get_actor_id()
    each = float(ctx.get_assigned_resources().get("CPU", 0))
    if each <= 0:
        return
    try:
        from ray._private import state

        name = state.actors(actor_id=actor_id)["ActorClassName"]
        table = state.actors(job_id=ray.JobID.from_hex(ctx.get_job_id())).values()
    except Exception:  # noqa: BLE001 - a Ray without this table: no check rather than a false alarm
        return
    if name.removeprefix("MapWorker(").startswith("Read"):
        return  # "MapWorker(ReadBinary->MapBatches(Converter))": the read runs in these actors
    pool = [a for a in table if a.get("ActorClassName") == name and a.get("ActorID") != actor_id]
    if any(a.get("State") == "ALIVE" for a in pool):
        return
    starting = ("PENDING_CREATION", "DEPENDENCIES_UNREADY", "RESTARTING")
    actors = 1 + sum(1 for a in pool if a.get("State") in starting)
    cluster = float(ray.cluster_resources().get("CPU", 0))
    if cluster - actors * each >= 1 or _autoscaling():
        return
    fits = int((cluster - 1) // each)
    raise PoolTooLarge(
        f"unitok.ray.Converter: the pool asks for {actors} actor(s) x {each:g} CPU = {actors * each:g} CPU "
        f"and the Ray cluster has {cluster:g} CPU, none left for the reads that feed it: it would wait "
        "forever. "
        + (f"Use concurrency={fits}, or a pool that grows: concurrency=(1, {actors})" if fits >= 1
           else "Give Ray 2 CPUs or more (ray.init(num_cpus=2)), or ask less per actor (num_cpus=0.5)")
    )  # fmt: skip


class Converter:
    """A callable class for `map_batches` over `read_binary_files(..., include_paths=True)` rows
    (columns `bytes` and `path`): the engines load once per actor. An actor pool that would leave no CPU
    for the reads (which Ray Data would wait on forever) fails at once with PoolTooLarge."""

    def __init__(self, config: Any = None):
        from unitok import _runtime

        check_pool_fits()
        self.rt = _runtime(config)

    def __call__(self, batch: Any) -> pa.Table:
        from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
        from unitok.pipeline.stages.convert_file import convert_file

        table = batch if isinstance(batch, pa.Table) else pa.table(batch)
        rows: list[dict[str, Any]] = []
        for data, path in zip(table["bytes"].to_pylist(), table["path"].to_pylist(), strict=True):
            with tempfile.TemporaryDirectory(prefix="unitok-ray-") as tmp:
                local = Path(tmp) / Path(path).name
                local.write_bytes(data)
                out = convert_file(local, local.name, self.rt.cfg, self.rt.engines, "ray-udf",
                                   uri=source_uri(path), plain=False)  # fmt: skip
            rows += [{**r, "status": "ok"} for r in out["segments"]]
            rows += [{**e, "error_message": e["message"], "status": "error"} for e in out["errors"]]
        return rows_to_table(rows, RESULT_SCHEMA)
