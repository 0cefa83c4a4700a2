"""The Ray Data driver: listed objects → an autoscaling pool of actors, each converting whole objects
(stages.per_object: split, engines, document, chunks, embeddings, data files written where the tables
live) → each object's file metadata streamed back to the driver, which commits as the run goes.

Holds no format or engine logic: it wires the plain stage functions into a streaming Ray Data plan. A
folder output or source on a cluster of several machines is proven shared before anything converts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import ray.util.scheduling_strategies
from unitok.connectors.local import path_from_uri
from unitok.connectors.output import OutputError
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.redact import redact_uri
from unitok.pipeline.core.workerenv import worker_env_vars
from unitok.pipeline.drivers.cluster import ClusterLostError, cluster_address, joins_cluster
from unitok.pipeline.stages.per_object import ObjectConverter

log = logging.getLogger("unitok")


def ensure_ray(cfg: JobConfig) -> bool:
    """Join the configured cluster (runtime.ray_address or RAY_ADDRESS), else start an embedded local Ray.
    Workers start with the worker environment contract's variables, before any library loads. Whether
    this call connected (False: Ray was already initialized, by the caller)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # ray.init makes SIGTERM a bare sys.exit(15): the caller's own handler (the command's, which stops
    # the run and says what was committed) is put back.
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        _init_ray(cfg)
    finally:
        if main and callable(on_term):
            signal.signal(signal.SIGTERM, on_term)
    return True


def _init_ray(cfg: JobConfig) -> None:
    import ray

    address = cluster_address(cfg)
    if address:
        ray.init(address=address, runtime_env={"env_vars": worker_env_vars()})
        return
    # The embedded Ray's processes inherit this one's environment: the contract's variables are set while
    # it starts. A runtime_env sets them through Ray's agent instead, which cost 1.4 s more before the
    # first actor ran (measured: 2 actors ready in 1.84 s with it, 0.48 s without).
    saved = dict(os.environ)
    os.environ.update(worker_env_vars())
    try:
        ray.init(num_cpus=cfg.runtime.num_cpus, include_dashboard=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)


# An object whose worker died this many times while converting it is recorded as crashed, not tried again.
# Once is not enough: a node lost (a spot instance reclaimed) takes the objects it held with it.
CRASHES_TO_GIVE_UP = 2


class Attempts:
    """The run's count of started and finished conversions per object, in one small actor: Ray Data
    retries a task whose actor died, so an object that kills every worker it is given would be retried
    forever. The count lives outside the workers, so it survives them."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def start(self, uri: str) -> int:
        """How many earlier attempts at this object ended without finishing (their worker died)."""
        self.open[uri] = self.open.get(uri, 0) + 1
        return self.open[uri] - 1

    def finish(self, uri: str) -> None:
        self.open.pop(uri, None)


class ObjectWorker:
    """The per-object stage as a Ray Data callable class: one instance per actor, engines loaded once.
    Each input row is a listed object; each output row is that object's metadata (its data files are
    already in the tables' folders), so no row of the run travels back to the driver."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles, attempts: Any = None):
        self.convert = ObjectConverter(cfg_data, run_id, files)
        self.convert.node = ray.get_runtime_context().get_node_id()  # the run's per-node counts
        self.attempts = attempts

    def __call__(self, batch: pa.Table) -> pa.Table:
        """batch: rows of `objects`, each a few listed objects as Arrow IPC bytes (see execute_ray)."""
        metas = [
            json.dumps(self._one(obj))
            for item in batch.column("objects").to_pylist()
            for obj in pa.ipc.open_stream(item).read_all().to_pylist()
        ]
        return pa.table({"meta": pa.array(metas, pa.string())})

    def _one(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.attempts is None:
            return self.convert(obj)
        crashes = ray.get(self.attempts.start.remote(obj["uri"]))
        if crashes >= CRASHES_TO_GIVE_UP:
            log.warning("%s: %d workers died converting it; recorded as crashed", obj["uri"], crashes)
            meta = self.convert.crashed(obj, f"{crashes} workers died converting this object (out of memory, "
                                             "or a native crash)")  # fmt: skip
        else:
            meta = self.convert(obj)
        self.attempts.finish.remote(obj["uri"])
        return meta


def _items(listing: pa.Table) -> list[dict[str, bytes]]:
    """The listing as Ray Data items, each a few objects as Arrow IPC bytes: one object an item up to
    1,000 objects (each actor call is one object), at most 100 an item past that (a million objects are
    10,000 small items, never a Python dict per object). ray.data.from_arrow would keep them Arrow too,
    but it runs a metadata task per table, and one of those lease requests crashed the raylet in the
    suite (`Check failed: binary.size() == T::Size()` in HandleRequestWorkerLease)."""
    per_item = min(100, -(-listing.num_rows // 1000))
    items = []
    for start in range(0, listing.num_rows, per_item):
        sink = pa.BufferOutputStream()
        part = listing.slice(start, per_item)
        with pa.ipc.new_stream(sink, part.schema) as writer:
            writer.write_table(part)
        items.append({"objects": sink.getvalue().to_pybytes()})
    return items


def execute_ray(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, staging: Path
) -> Iterator[dict[str, Any]]:
    """Each object's metadata as an actor finishes it (streamed: the driver commits as the run goes)."""
    import ray.data

    ours = ensure_ray(cfg)
    if joins_cluster(cfg):
        check_shared_paths(files, cfg.source.uri)
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
    emb = cfg.embedding
    if emb.enabled and emb.num_gpus and resources.get("GPU", 0) and emb.num_gpus > num_gpus:
        # Embeddings are made in the object workers: they ask for the encoder's GPU share.
        num_gpus = emb.num_gpus
        max_workers = min(max_workers, max(1, int(resources["GPU"] / num_gpus)))
    max_workers = max(1, min(max_workers, listing.num_rows))
    min_workers = min(cfg.runtime.min_workers, max_workers)
    # On the embedded local Ray the machine is ours: start the whole pool rather than wait for the
    # autoscaler (short jobs end before it scales up). On a shared cluster start small and grow.
    initial = min_workers if joins_cluster(cfg) else max_workers
    items = _items(listing)
    # Up to 1,000 blocks, so that a small run has a block per object to spread over the actors.
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    # Small and on the driver's node: it outlives any worker node that goes.
    node = ray.get_runtime_context().get_node_id()
    on_driver = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node, soft=True)
    attempts = ray.remote(num_cpus=0)(Attempts).options(scheduling_strategy=on_driver).remote()
    # One object per call: its split, engines, document, chunks and files stay in one actor (no
    # object-store hop for pages, nothing to regroup by doc_id); parallelism is across objects.
    ds = ds.map_batches(
        ObjectWorker,
        fn_constructor_kwargs={
            "cfg_data": cfg.model_dump(),
            "run_id": run_id,
            "files": files,
            "attempts": attempts,
        },
        compute=ray.data.ActorPoolStrategy(min_size=min_workers, max_size=max_workers, initial_size=initial),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=1,
        num_gpus=num_gpus or None,
    )
    stopped = True
    try:
        for meta in _watched(ds, num_gpus or 0.0, cfg.runtime.node_wait_s):
            yield json.loads(meta)
        stopped = False
    finally:
        ray.kill(attempts)
        if stopped and ours:
            # The run stops here (an interrupt, a failed commit): Ray goes now, while the dataset's
            # reader thread is waited for, so that nothing it says comes after the run's last line.
            _STOP.set()
            ray.shutdown()
            _READER_DONE.wait(timeout=30)


_POLL_S = 2.0
_READER_DONE = threading.Event()  # the last run's dataset reader has ended
_STOP = threading.Event()  # the driver stopped reading the last run's dataset


def _watched(ds: Any, num_gpus: float, wait_s: float) -> Iterator[str]:
    """The dataset's rows, read on a thread of their own, so that the driver can see a run that cannot go
    on: Ray Data waits forever for an actor no node can host (the only worker node lost, none coming)."""
    rows: queue.Queue[Any] = queue.Queue(maxsize=64)
    done = object()

    def put(item: Any) -> None:
        while not _STOP.is_set():  # the driver stopped reading: drop the rest
            with contextlib.suppress(queue.Full):
                rows.put(item, timeout=0.2)
                return

    def read() -> None:
        try:
            for row in ds.iter_rows():
                put(row["meta"])
                if _STOP.is_set():
                    return
            put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the driver's thread, which raises it
            put(e)
        finally:
            _READER_DONE.set()

    _READER_DONE.clear()
    _STOP.clear()
    threading.Thread(target=read, name="unitok-rows", daemon=True).start()
    stalled_since: float | None = None
    while True:
        try:
            item = rows.get(timeout=_POLL_S)
        except queue.Empty:
            if _can_host(num_gpus):
                stalled_since = None
                continue
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since >= wait_s:
                asks = f"1 CPU, {num_gpus:g} GPU" if num_gpus else "1 CPU"
                raise ClusterLostError(
                    f"no node of the Ray cluster can host a worker ({asks}) and none came for {wait_s:g} s "
                    "(runtime.node_wait_s): the run stops"
                ) from None
            continue
        stalled_since = None
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _can_host(num_gpus: float) -> bool:
    """Whether some alive node has the CPU (and GPU) one worker asks for, in total (busy or not)."""
    for node in ray.nodes():
        res = node.get("Resources") or {}
        if node.get("Alive") and res.get("CPU", 0) >= 1 and res.get("GPU", 0) >= num_gpus:
            return True
    return False


@ray.remote(num_cpus=0)
def _probe(folder: str | None, node_id: str, source: str | None) -> tuple[str, bool]:
    """On one node: write a probe file into the output folder; whether the source folder is there."""
    wrote = ""
    if folder is not None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / node_id).write_text(node_id)
        except OSError as e:
            wrote = e.strerror or type(e).__name__
    return wrote, source is None or Path(source).exists()


def check_shared_paths(files: TableFiles, source_uri: str) -> None:
    """A folder output (or source) on a cluster of several machines must be one shared folder: a task on
    every other node that may run workers writes a probe file into the output folder, which this
    machine must then see. Raises OutputError (exit 2, before converting) where a node cannot."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    nodes = [
        n for n in ray.nodes()
        if n["Alive"] and n["NodeID"] != here and (n["Resources"].get("CPU") or n["Resources"].get("GPU"))
    ]  # fmt: skip
    source = None if source_uri.startswith("s3://") else str(path_from_uri(source_uri).resolve())
    if not nodes or (files.remote and source is None):
        return
    folder = None if files.remote else Path(files.uri) / f".unitok-probe-{uuid.uuid4().hex[:12]}"
    probes = [
        _probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            None if folder is None else str(folder), n["NodeID"], source
        )
        for n in nodes
    ]
    try:
        for n, (error, source_seen) in zip(nodes, ray.get(probes), strict=True):
            where = f"Ray node {n['NodeManagerAddress']} ({n['NodeID'][:12]})"
            if not source_seen:
                raise OutputError(
                    f"source.uri {redact_uri(source_uri)} is a folder that {where} cannot see: on a Ray "
                    "cluster of several machines use an s3:// source, or mount the folder at the same path "
                    "on every node"
                )
            if folder is not None and (error or not (folder / n["NodeID"]).is_file()):
                why = f"it cannot write there: {error}" if error else "a file it wrote there is not here"
                raise OutputError(
                    f"output.uri {files.uri} is a folder that {where} does not share with this machine "
                    f"({why}): on a Ray cluster of several machines use an s3:// output, or mount the "
                    "folder at the same path on every node"
                )
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
