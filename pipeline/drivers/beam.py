"""The Apache Beam driver: the staged plan's stages (stages.staged) as Beam transforms. Listed objects →
split (a ParDo; text converted where it is split) → the segments for the slow engines in BatchElements
batches across objects → one engine call per batch (a ParDo), each object's results staged beside the
tables → grouped by object (GroupByKey: a Beam run commits once it is done, so waiting for the whole
input costs nothing) → each object assembled → its file metadata.

The driver process lists, plans and commits (pipeline.job), as for every executor; the pipeline does the
work in between, from the same stage functions as the local and Ray drivers. Workers write the tables'
data files themselves; the metadata goes through Beam's text sink into the run's staging folder, which
a remote runner's workers must therefore share (a folder output on shared storage, or an S3 output with
the staging folder on shared storage).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import ConfigError, JobConfig
from unitok.pipeline.stages.staged import SEGMENT, Assembler, Collected, EngineStage, Splitter

log = logging.getLogger("unitok")


class QuietBeam(logging.Filter):
    """Beam warns, at import and at every worker start, about things this job does not use (GCS and
    BigQuery clients, a pickled main session); those lines say nothing about the run."""

    NOISE = (
        "GCSFileSystem",
        "apitools",
        "bigquery",
        "BigQuery",
        "semi_persistent_directory",
        "Logging handler created",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(s in text for s in self.NOISE)


@contextmanager
def _quiet_beam_import() -> Iterator[None]:
    quiet = QuietBeam()
    loggers = [logging.getLogger(), logging.getLogger("apache_beam.io.filesystems"),
               logging.getLogger("apache_beam.io.gcp.bigquery")]  # fmt: skip
    for lg in loggers:
        lg.addFilter(quiet)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(quiet)


with _quiet_beam_import():
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import PipelineState, create_runner

# Reported to the runner's own monitoring (Flink's UI, Dataflow's console): progress while a run goes on.
_OBJECTS = Metrics.counter("unitok", "objects_converted")
_SEGMENTS = Metrics.counter("unitok", "segments_converted")

# "DirectRunner" runs on Beam's portable Python runner in local processes. Beam's own DirectRunner first
# downloads the Prism binary from GitHub at run time (a scheduled job must not depend on that) and, on
# Prism, runs every bundle in the driver process.
DIRECT = "DirectRunner"


def is_direct(runner: str) -> bool:
    """Beam matches runner names without case ("direct", "directrunner"): so does unitok."""
    return runner.lower() in ("direct", "directrunner")


def check_beam(cfg: JobConfig) -> None:
    """Fail before listing anything when the runner cannot be loaded or an option is not one of Beam's."""
    beam_cfg = cfg.runtime.beam
    if not is_direct(beam_cfg.runner):
        try:
            create_runner(beam_cfg.runner)
        except (ImportError, ValueError, AttributeError) as e:
            reason = str(e).split(". Valid values")[0]
            raise ConfigError(f"runtime.beam.runner: {beam_cfg.runner} cannot be loaded ({reason})") from None
    known = set(PipelineOptions([]).get_all_options().keys())
    unknown = sorted(set(beam_cfg.options) - known)
    if unknown:
        raise ConfigError(f"runtime.beam.options.{unknown[0]}: not a Beam pipeline option")
    if "runner" in beam_cfg.options:
        raise ConfigError("runtime.beam.options.runner: set the runner in runtime.beam.runner")
    try:  # the values, by Beam's own parser (which would otherwise print its usage and exit mid-run)
        PipelineOptions.from_dictionary(dict(beam_cfg.options)).get_all_options(add_extra_args_fn=_raising)
    except _BadOption as e:
        m = re.match(r"argument --(\w+)[^:]*: (.*)", str(e))
        where = f"runtime.beam.options.{m.group(1)}" if m else "runtime.beam.options"
        raise ConfigError(f"{where}: {m.group(2) if m else e}") from None


class _BadOption(ValueError):
    pass


def _raising(parser: Any) -> None:
    def error(message: str) -> None:
        raise _BadOption(message)

    parser.error = error


def pipeline_options(cfg: JobConfig) -> dict[str, Any]:
    """The options the pipeline runs with: the configured ones, and for the DirectRunner one worker
    process per core (runtime.max_workers or num_cpus bound it), like the local and Ray drivers."""
    options: dict[str, Any] = dict(cfg.runtime.beam.options)
    if not log.isEnabledFor(logging.DEBUG):
        options.setdefault("default_sdk_harness_log_level", "WARNING")  # the workers' own logs
    if is_direct(cfg.runtime.beam.runner):
        workers = cfg.runtime.pool_size
        options.setdefault("direct_running_mode", "multi_processing")
        options.setdefault("direct_num_workers", workers)
    return options


def _runner(cfg: JobConfig, options: PipelineOptions) -> Any:
    if not is_direct(cfg.runtime.beam.runner):
        return cfg.runtime.beam.runner
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    class LocalRunner(fn_runner.FnApiRunner):
        """Beam's portable runner, its worker processes started through unitok's worker entry. The
        runner picks the worker command itself in multi_processing mode: the setter swaps it."""

        @property
        def _default_environment(self) -> Any:
            return self._environment

        @_default_environment.setter
        def _default_environment(self, env: Any) -> None:
            if isinstance(env, SubprocessSDKEnvironment):
                command = f"{sys.executable} -m unitok.pipeline.drivers.beam_worker"
                env = SubprocessSDKEnvironment.from_command_string(command)
            self._environment = env

    # The workers read their options (log level, anything passed through) from the provision info.
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options(drop_default=True))
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return LocalRunner(provision_info=info)


# One of each stage per worker process and run (engines loaded on first use, as in a Ray actor), shared
# by the DoFn instances a runner may run in threads, one element at a time (OCR and Whisper handles are
# not thread-safe). A lock each: a fused bundle runs a split's yielded segment through the engine stage
# on the same thread while the split holds its lock.
_locks = {name: threading.Lock() for name in ("split", "engines", "assemble")}
_stages: dict[str, Any] = {}


def _stage(name: str, run_id: str, make: Any) -> Any:
    key = f"{name}:{run_id}"
    if key not in _stages:
        for old in [k for k in _stages if k.startswith(f"{name}:")]:
            del _stages[old]
        _stages[key] = make()
    return _stages[key]


def _node() -> str:
    import socket

    return socket.gethostname()


class SplitObjects(beam.DoFn):
    """Stage 1: a listed object → its rows; the segments for a pooled engine to the `segments` output."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles):
        self.cfg_data, self.run_id, self.files = cfg_data, run_id, files

    def process(self, obj: dict[str, Any]) -> Iterator[Any]:
        with _locks["split"]:
            splitter = _stage("split", self.run_id,
                              lambda: Splitter(self.cfg_data, self.run_id, self.files, _node()))  # fmt: skip
            for table in splitter.split(obj):
                for row in table.to_pylist():
                    if row["kind"] == SEGMENT:
                        yield beam.pvalue.TaggedOutput("segments", row)
                    else:
                        yield row


class EngineCalls(beam.DoFn):
    """Stage 2: a batch of segments from many objects (BatchElements) → one engine call per engine and
    batch size; each object's results staged."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles):
        self.cfg_data, self.run_id, self.files = cfg_data, run_id, files

    def process(self, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        import os

        with _locks["engines"]:
            stage = _stage("engines", self.run_id, lambda: EngineStage(
                self.cfg_data, self.run_id, self.files, _node(), f"{_node()}:{os.getpid()}"))  # fmt: skip
            out = stage(rows)
        yield from out


class AssembleObjects(beam.DoFn):
    """Stage 3: an object's rows (grouped by URI) → its document, chunks and tables; its metadata."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles):
        self.cfg_data, self.run_id, self.files = cfg_data, run_id, files

    def process(self, keyed: tuple[str, list[dict[str, Any]]]) -> Iterator[str]:
        uri, rows = keyed
        got = Collected()
        for row in rows:
            got.add(row)
        if not got.ready:
            raise RuntimeError(f"{uri}: {len(got.indices)} of its {got.total} segments came back")
        with _locks["assemble"]:
            make = lambda: Assembler(self.cfg_data, self.run_id, self.files, _node())  # noqa: E731
            assembler = _stage("assemble", self.run_id, make)
            meta = assembler.finish(got)
        _OBJECTS.inc()
        _SEGMENTS.inc(meta["segments"])
        yield json.dumps(meta)


def build_pipeline(p: Any, listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles,
                   staging: Path) -> None:  # fmt: skip
    """The transforms, applied to the Pipeline `p`: the objects' metadata lands as JSON lines in the
    run's staging folder (Beam's text sink: temporary files, renamed once a bundle has committed, so a
    retried bundle never reports an object twice)."""
    from unitok.actors.routing import HEAVY_BATCH

    cfg_data = cfg.model_dump()
    size = cfg.engine.phi4.batch_size if cfg.engine.uses_phi4 else min(cfg.runtime.engine_batch_size,
                                                                          HEAVY_BATCH)  # fmt: skip
    splitter = beam.ParDo(SplitObjects(cfg_data, run_id, files)).with_outputs("segments", main="rows")
    split = (
        p
        | "List objects" >> beam.Create(listing.to_pylist())  # reshuffled: objects spread over the workers
        | "Split objects" >> splitter
    )
    converted = (
        split.segments
        | "Batch segments" >> beam.BatchElements(min_batch_size=size, max_batch_size=size)
        | "Engine calls" >> beam.ParDo(EngineCalls(cfg_data, run_id, files))
    )
    (
        (split.rows, converted)
        | "Rows of every stage" >> beam.Flatten()
        | "By object" >> beam.Map(lambda row: (row["uri"], row))
        | "Group by object" >> beam.GroupByKey()
        | "Assemble objects" >> beam.ParDo(AssembleObjects(cfg_data, run_id, files))
        | "Write file metadata"
        >> beam.io.WriteToText(str(staging / "files" / "part"), file_name_suffix=".jsonl")
    )


def execute_beam(
    listing: pa.Table, cfg: JobConfig, run_id: str, files: TableFiles, staging: Path
) -> Iterator[dict[str, Any]]:
    """Run the pipeline to the end, then each object's metadata (committed by the caller like any
    driver's: a Beam run commits once the pipeline is done)."""
    if not log.isEnabledFor(logging.DEBUG):
        # Beam narrates its own machinery at INFO (type hints, servers, worker start-up): not this run's
        # story. -v shows it.
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    options = pipeline_options(cfg)
    t0 = time.perf_counter()
    beam_options = PipelineOptions.from_dictionary(options)
    p = beam.Pipeline(runner=_runner(cfg, beam_options), options=beam_options)
    build_pipeline(p, listing, cfg, run_id, files, staging)
    result = p.run()
    state = result.wait_until_finish()  # raises when a bundle failed for good on the DirectRunner
    if state != PipelineState.DONE:  # a remote runner may report it instead
        raise BeamRunError(f"the Beam pipeline on {cfg.runtime.beam.runner} ended {state}; nothing committed")
    where = cfg.runtime.beam.runner + (
        f", {options['direct_num_workers']} worker processes" if "direct_num_workers" in options else ""
    )
    log.info("beam (%s): %d object(s) in %.1f s", where, listing.num_rows, time.perf_counter() - t0)
    for part in sorted((staging / "files").glob("part*.jsonl")):
        with part.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


class BeamRunError(RuntimeError):
    """The pipeline ended in a state other than DONE (failed, cancelled, drained)."""
