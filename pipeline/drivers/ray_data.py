"""The Ray Data driver: listed objects → an autoscaling pool of actors, each converting whole objects
(stages.per_object: split, engines, document, chunks, embeddings, data files written where the tables
live) → each object's file metadata streamed back to the driver, which commits as the run goes.

Holds no format or engine logic: it wires the plain stage functions into a streaming Ray Data plan. A
folder output or source on a cluster of several machines is proven shared before anything converts.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import logging
import os
import queue
import shutil
import signal
import threading
import time
import uuid
import warnings
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
from unitok.pipeline.stages.staged import CRASHES_TO_GIVE_UP

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
    """Each object's metadata as the plan finishes it (streamed: the driver commits as the run goes): the
    staged plan (runtime.ray_plan), or one worker per object."""
    if cfg.runtime.ray_plan == "staged":
        return execute_staged(listing, cfg, run_id, files, staging)
    return execute_per_object(listing, cfg, run_id, files, staging)


def execute_per_object(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, staging: Path
) -> Iterator[dict[str, Any]]:
    """Each object's metadata as an actor finishes it."""
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
            _stop_executors()
            ray.shutdown()
            _READER_DONE.wait(timeout=30)


def _stop_executors(timeout_s: float = 30.0) -> None:
    """Ray Data's executors in this process stopped, and waited for, before Ray goes: an executor thread
    that calls into Ray after ray.shutdown() makes Ray end the whole process at once with exit code 1
    ("the core worker process is not initialized yet or already shutdown"), before the run's last line
    (seen on a cluster with no node for the workers, under load)."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    running = [t for t in threading.enumerate() if isinstance(t, StreamingExecutor) and t.is_alive()]
    for executor in running:
        executor.shutdown(force=True)
    for executor in running:
        executor.join(timeout=timeout_s)


_POLL_S = 2.0
_READER_DONE = threading.Event()  # the last run's dataset reader has ended
_STOP = threading.Event()  # the driver stopped reading the last run's dataset


def _watched(
    ds: Any, num_gpus: float, wait_s: float, column: str | None = "meta", poll_s: float | None = None
) -> Iterator[Any]:
    """The dataset's rows (one column's values, or whole rows), read on a thread of their own, so that the
    driver can see a run that cannot go on: Ray Data waits forever for an actor no node can host (the only
    worker node lost, none coming). With poll_s, None is yielded every poll_s seconds without a row."""
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
                put(row[column] if column else row)
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
    checked = time.monotonic()
    while True:
        try:
            item = rows.get(timeout=poll_s or _POLL_S)
        except queue.Empty:
            if poll_s:
                yield None
                if time.monotonic() - checked < _POLL_S:
                    continue
            checked = time.monotonic()
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


# -- the staged plan (stages.staged): split on CPU workers → an engine pool batching across objects →
# each object assembled by a task once its segments are all staged ---------------------------------------

# CPU shares are scheduling tokens, not limits. An engine replica asks most of a core; the stages that
# feed it (split, at most one task per two CPUs) and finish after it (assembly) ask a tenth, so that one
# replica per core still leaves them room on the smallest machine (2 CPUs: 1.6 for the replicas, 0.1 for
# a splitter, 0.3 for assemblies). Ray Data's backpressure keeps the splitters' real use at their share of
# the work: they wait while the engines' queue is full.
ENGINE_CPU = 0.8
LIGHT_CPU = 0.1
_STAGED_POLL_S = 0.1  # how often the driver looks for finished assemblies while no row comes

_per_process: dict[str, Any] = {}  # a worker process's Splitter or Assembler for the current run


def _cached(kind: str, run_id: str, make: Any) -> Any:
    key = f"{kind}:{run_id}"
    if key not in _per_process:
        for old in [k for k in _per_process if k.startswith(f"{kind}:")]:
            del _per_process[old]  # an earlier run's, in a reused worker process
        _per_process[key] = make()
    return _per_process[key]


def _split_objects(
    batch: pa.Table, cfg_data: dict[str, Any], run_id: str, files: TableFiles, attempts: Any
) -> Iterator[pa.Table]:
    """Stage 1 as a Ray Data task: each listed object of the batch split into rows (stages.staged)."""
    from unitok.pipeline.stages.staged import DONE, Splitter, _row, rows_table

    node = ray.get_runtime_context().get_node_id()
    splitter = _cached("split", run_id, lambda: Splitter(cfg_data, run_id, files, node))
    for item in batch.column("objects").to_pylist():
        for obj in pa.ipc.open_stream(item).read_all().to_pylist():
            key = "object:" + obj["uri"]
            crashes = ray.get(attempts.start.remote(key))
            if crashes >= CRASHES_TO_GIVE_UP:
                log.warning("%s: %d workers died splitting it; recorded as crashed", obj["uri"], crashes)
                meta = splitter.convert.crashed(obj, f"{crashes} workers died converting this object (out "
                                                     "of memory, or a native crash)")  # fmt: skip
                yield rows_table([_row(obj["uri"], DONE, info=meta)])
            else:
                yield from splitter.split(obj)
            attempts.finish.remote(key)


class EngineWorker:
    """Stage 2 as a Ray Data callable class: one engine replica (the model on a GPU, or the CPU engines)
    taking batches of segments from many objects."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles, attempts: Any):
        from unitok.pipeline.stages.staged import EngineStage

        node = ray.get_runtime_context().get_node_id()
        self.stage = EngineStage(cfg_data, run_id, files, node, f"{node}:{os.getpid()}")
        self.attempts = attempts

    def __call__(self, batch: pa.Table) -> pa.Table:
        from unitok.pipeline.stages.staged import rows_table

        rows = batch.to_pylist()
        del batch
        return rows_table(self.stage(rows, self._start, self._finish))

    def _start(self, key: str) -> int:
        return ray.get(self.attempts.start.remote(key))

    def _finish(self, key: str) -> None:
        self.attempts.finish.remote(key)


def _assemble(cfg_data: dict[str, Any], run_id: str, files: TableFiles, got: Any, crashed: str | None) -> str:
    """Stage 3 as a Ray task: the object's metadata (JSON), its tables written. got: what the driver
    collected of it (stages.staged.Collected), or with `crashed` the listing row of an object whose
    assembly killed its workers."""
    from unitok.pipeline.stages.staged import Assembler

    node = ray.get_runtime_context().get_node_id()
    assembler = _cached("assemble", run_id, lambda: Assembler(cfg_data, run_id, files, node))
    if crashed is not None:
        return json.dumps(assembler.crashed(got, crashed))
    return json.dumps(assembler.finish(got))


def execute_staged(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, staging: Path
) -> Iterator[dict[str, Any]]:
    """Each object's metadata as its assembly finishes (streamed: the driver commits as the run goes)."""
    import ray.data
    from unitok.actors.routing import HEAVY_BATCH
    from unitok.pipeline.stages.staged import Collected

    ours = ensure_ray(cfg)
    if joins_cluster(cfg):
        check_shared_paths(files, cfg.source.uri)
    # A pool larger than a small run's inputs is kept on purpose (one long object fills it).
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = resources.get("GPU", 0)
    num_gpus = 0.0
    if cfg.engine.uses_phi4:
        num_gpus = cfg.engine.phi4.num_gpus if gpus else 0.0
        if not num_gpus:
            log.warning("engine phi4: no GPU in the Ray cluster, replicas run on CPU (slow; for tests)")
        pool = int(gpus / num_gpus) if num_gpus else 1
        rows_per_call = cfg.engine.phi4.batch_size
    else:
        pool = cpus
        rows_per_call = min(cfg.runtime.engine_batch_size, HEAVY_BATCH)
    pool = max(1, min(cfg.runtime.max_workers or pool, pool))
    # On the embedded local Ray the machine is ours: the whole pool, kept (an idle replica scaled away
    # while the splitter renders a long object's first pages is not there when they come). On a shared
    # cluster start small and grow.
    min_pool = min(cfg.runtime.min_workers, pool) if joins_cluster(cfg) else pool
    initial = min_pool
    emb = cfg.embedding
    assembly_gpus = emb.num_gpus if emb.enabled and emb.num_gpus and gpus else None

    # Ray Data's budget (the driver's DataContext, put back after the run): the segments waiting for the
    # engines (rendered pages, audio) fill at most object_store_mib of the object store, past which the
    # splitters wait.
    # Every row a splitter yields is a block of its own: Ray Data would otherwise gather a task's rows
    # into blocks of up to 128 MiB, so that a long object's pages reached one replica, all at once, after
    # the whole object was rendered.
    ctx = ray.data.DataContext.get_current()
    saved_options, saved_block = ctx.execution_options, ctx.target_max_block_size
    options = copy.deepcopy(saved_options)
    limit = cfg.runtime.object_store_mib << 20
    options.resource_limits = options.resource_limits.copy(object_store_memory=limit)
    ctx.execution_options = options
    ctx.target_max_block_size = 1

    node = ray.get_runtime_context().get_node_id()
    on_driver = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node, soft=True)
    attempts = ray.remote(num_cpus=0)(Attempts).options(scheduling_strategy=on_driver).remote()
    items = _items(listing)
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    cfg_data = cfg.model_dump()
    common = {"cfg_data": cfg_data, "run_id": run_id, "files": files, "attempts": attempts}
    ds = ds.map_batches(
        _split_objects, fn_kwargs=common, batch_size=1, batch_format="pyarrow", num_cpus=LIGHT_CPU,
        compute=ray.data.TaskPoolStrategy(size=max(1, cpus // 2)),
    )  # fmt: skip
    ds = ds.map_batches(
        EngineWorker,
        fn_constructor_kwargs=common,
        # A replica holds the batch it converts and the next (its inputs fetched while it works); more
        # would let the first replica up take a long object's pages before the others start.
        compute=ray.data.ActorPoolStrategy(
            min_size=min_pool, max_size=pool, initial_size=initial, max_tasks_in_flight_per_actor=2
        ),
        batch_size=rows_per_call,
        batch_format="pyarrow",
        num_cpus=ENGINE_CPU if not num_gpus else 1,
        num_gpus=num_gpus or None,
    )
    assemble = ray.remote(_assemble).options(
        num_cpus=LIGHT_CPU, num_gpus=assembly_gpus, max_retries=CRASHES_TO_GIVE_UP - 1
    )
    pending: dict[str, Collected] = {}
    finished: set[str] = set()
    running: dict[Any, tuple[str, dict[str, Any]]] = {}  # assembly task → (uri, its listing)
    # Assemblies in flight at most: each one more needs a worker process of its own, and starting one
    # (the pipeline's imports) costs more than the assembly of a small object. The rest wait here, as
    # metadata.
    most = max(4, cpus)
    ready_objects: collections.deque[tuple[str, Collected]] = collections.deque()

    def submit(uri: str, got: Collected) -> None:
        del pending[uri]
        finished.add(uri)
        ready_objects.append((uri, got))

    def start() -> None:
        while ready_objects and len(running) < most:
            uri, got = ready_objects.popleft()
            running[assemble.remote(cfg_data, run_id, files, got, None)] = (uri, got.listed or {})

    def done(timeout: float) -> Iterator[dict[str, Any]]:
        start()
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=timeout)
        for ref in ready:
            uri, obj = running.pop(ref)
            try:
                yield json.loads(ray.get(ref))
            except ray.exceptions.WorkerCrashedError:
                log.warning("%s: %d workers died assembling it; recorded as crashed", uri, CRASHES_TO_GIVE_UP)
                reason = f"{CRASHES_TO_GIVE_UP} workers died assembling this object (out of memory, or a native crash)"  # noqa: E501
                again = (
                    ray.remote(_assemble)
                    .options(num_cpus=LIGHT_CPU)
                    .remote(cfg_data, run_id, files, obj, reason)
                )
                running[again] = (uri, obj)
        start()

    stopped = True
    try:
        for row in _watched(ds, num_gpus, cfg.runtime.node_wait_s, column=None, poll_s=_STAGED_POLL_S):
            if row is not None and row["uri"] not in finished:  # else: a retried stage's late copy
                got = pending.setdefault(row["uri"], Collected())
                got.add(row)
                if got.done is not None:  # converted whole where it was split
                    del pending[row["uri"]]
                    finished.add(row["uri"])
                    yield got.done
                elif got.ready:
                    submit(row["uri"], got)
            yield from done(0)
        while running or ready_objects:
            yield from done(_POLL_S)
        if pending:  # cannot happen unless a stage lost rows: say so rather than commit less quietly
            lost = next(iter(pending))
            raise RuntimeError(f"the staged plan lost track of {len(pending)} objects, e.g. {lost}")
        stopped = False
    finally:
        ctx.execution_options, ctx.target_max_block_size = saved_options, saved_block
        ray.kill(attempts)
        with contextlib.suppress(Exception):
            files.drop_staged(run_id)
        if stopped and ours:
            _STOP.set()
            _stop_executors()
            ray.shutdown()
            _READER_DONE.wait(timeout=30)
