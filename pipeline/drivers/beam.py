"""The Apache Beam driver: listed objects → split into engine batches → RunInference (a ModelHandler over
the unitok engines) → segments and errors, documents grouped by doc_id → staged Parquet.

The driver process lists, plans and commits (pipeline.job), as for every executor; the pipeline does the
work in between, from the same stage functions as the local and Ray drivers. Staged files are written by
Beam's Parquet sink (temporary files, renamed once a bundle has committed), so a retried bundle never
leaves its rows twice.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from unitok.actors.registry import engine_options
from unitok.pipeline.core.config import ConfigError, JobConfig
from unitok.pipeline.core.records import Segment
from unitok.pipeline.core.schemas import (
    DOCUMENTS_SCHEMA,
    ERRORS_SCHEMA,
    RESULT_SCHEMA,
    SEGMENTS_SCHEMA,
    rows_to_table,
)
from unitok.pipeline.core.testhooks import checkpoint
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.stages.assemble import DOC_COLUMNS, assemble_document, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.work import object_batches

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
    from apache_beam import pvalue
    from apache_beam.io.parquetio import WriteToParquetBatched
    from apache_beam.metrics import Metrics
    from apache_beam.ml.inference.base import ModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.runner import PipelineState, create_runner

# Reported to the runner's own monitoring (Flink's UI, Dataflow's console): progress while a run goes on.
_SEGMENTS = Metrics.counter("unitok", "segments_converted")

# "DirectRunner" runs on Beam's portable Python runner in local processes. Beam's own DirectRunner first
# downloads the Prism binary from GitHub at run time (a scheduled job must not depend on that) and, on
# Prism, runs every bundle in the driver process.
DIRECT = "DirectRunner"


def is_direct(runner: str) -> bool:
    """Beam matches runner names without case ("direct", "directrunner"): so does unitok."""
    return runner.lower() in ("direct", "directrunner")


_STAGED = {"segments": SEGMENTS_SCHEMA, "errors": ERRORS_SCHEMA, "documents": DOCUMENTS_SCHEMA}
_FAILURE_COLUMNS = ["doc_id", "segment_index", "page_number", "error_type"]


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
        workers = cfg.runtime.max_workers or cfg.runtime.num_cpus or os.cpu_count() or 1
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


class EngineBatchHandler(ModelHandler):
    """RunInference over the unitok engines. The 'model' is one EnginePool per worker process (engines
    loaded on first use, as in a Ray actor); each element is one engine batch (stages.work), so Beam does
    no batching of its own and a padded model sees the batches every other driver gives it."""

    def __init__(self, options: dict[str, dict[str, Any]], run_id: str, pipeline_version: str):
        super().__init__()
        self.options, self.run_id, self.pipeline_version = options, run_id, pipeline_version

    def load_model(self) -> _Replica:
        return _Replica(EnginePool(self.options))

    def run_inference(
        self, batch: Sequence[Segment], model: _Replica, inference_args: dict[str, Any] | None = None
    ) -> list[pa.Table]:
        with model.lock:  # engines run one call at a time: parallelism comes from worker processes
            rows = convert_segments(list(batch), model.engines, self.run_id, self.pipeline_version)
        _SEGMENTS.inc(len(rows))
        checkpoint("converted.batch")  # a test may kill the run here
        return [rows_to_table(rows, RESULT_SCHEMA)]

    def get_num_bytes(self, batch: Sequence[Segment]) -> int:
        return sum(
            len(s.image_png or b"") + len(s.audio_f32 or b"") + sum(map(len, s.frames_png))
            + sum(map(len, s.text_lines))
            for s in batch
        )  # fmt: skip

    def get_metrics_namespace(self) -> str:
        return "unitok"


class _Replica:
    """A worker's engines and the lock that keeps them to one call at a time: a runner may run several
    bundles of one worker process in threads, and OCR and Whisper handles are not thread-safe."""

    def __init__(self, engines: EnginePool):
        self.engines = engines
        self.lock = threading.Lock()


def _split(obj: dict[str, Any], cfg_data: dict[str, Any]) -> Iterator[list[Segment]]:
    yield from object_batches(obj, JobConfig.model_validate(cfg_data))


def _by_doc(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    for doc_id in pc.unique(table["doc_id"]).to_pylist():
        yield doc_id, table.filter(pc.equal(table["doc_id"], doc_id))


def _results_by_dataset(table: pa.Table) -> Iterator[Any]:
    for name, sub in split_results(table).items():
        if sub.num_rows:
            yield pvalue.TaggedOutput(name, sub)


def _assemble(item: tuple[str, dict[str, list[Any]]], heading_every_s: float) -> Iterator[pa.Table]:
    """One doc_id's segment tables (and its failed segments' rows) → its document row."""
    doc_id, parts = item
    if not parts["segments"]:  # a file that failed whole: its error row says so, and there is no document
        return iter(())
    failures = [row for t in parts["errors"] for row in t.select(_FAILURE_COLUMNS).to_pylist()]
    group = pa.concat_tables(parts["segments"]).select(DOC_COLUMNS)
    return iter([assemble_document(group, {doc_id: failures}, heading_every_s)])


def build_pipeline(p: Any, listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path,
                   compression: str) -> None:  # fmt: skip
    """The transforms, applied to the Pipeline `p`."""
    handler = EngineBatchHandler(engine_options(cfg), run_id, PIPELINE_VERSION).with_no_batching()
    results = (
        p
        | "List objects" >> beam.Create(listing)  # reshuffled: objects spread over the workers
        | "Split into engine batches" >> beam.FlatMap(_split, cfg.model_dump())
        | "Convert" >> RunInference(handler)
        | "Segments and errors" >> beam.FlatMap(_results_by_dataset).with_outputs("segments", "errors")
    )
    segments = results.segments | "Segments by doc" >> beam.FlatMap(_by_doc)
    errors = results.errors | "Errors by doc" >> beam.FlatMap(_by_doc)
    documents = (
        {"segments": segments, "errors": errors}
        | "Group by doc" >> beam.CoGroupByKey()
        | "Assemble documents" >> beam.FlatMap(_assemble, cfg.audio.heading_every_s)
    )
    for name, pcoll in (("segments", results.segments), ("errors", results.errors), ("documents", documents)):
        pcoll | f"Write {name}" >> WriteToParquetBatched(
            str(staging / name / "part"), _STAGED[name], codec=compression, file_name_suffix=".parquet"
        )


def execute_beam(
    listing: list[dict[str, Any]], cfg: JobConfig, run_id: str, staging: Path, sink_args: dict[str, Any]
) -> None:
    """Run the pipeline to the end; staged segments/, errors/ and documents/ are then committed by the
    caller like any driver's."""
    if not log.isEnabledFor(logging.DEBUG):
        # Beam narrates its own machinery at INFO (type hints, servers, worker start-up): not this run's
        # story. -v shows it.
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    options = pipeline_options(cfg)
    t0 = time.perf_counter()
    beam_options = PipelineOptions.from_dictionary(options)
    p = beam.Pipeline(runner=_runner(cfg, beam_options), options=beam_options)
    build_pipeline(p, listing, cfg, run_id, staging, sink_args["compression"])
    result = p.run()
    state = result.wait_until_finish()  # raises when a bundle failed for good on the DirectRunner
    if state != PipelineState.DONE:  # a remote runner may report it instead
        raise BeamRunError(f"the Beam pipeline on {cfg.runtime.beam.runner} ended {state}; nothing committed")
    staged = _drop_empty_files(staging)
    segments, errors = staged.get("segments", 0), staged.get("errors", 0)
    where = cfg.runtime.beam.runner + (
        f", {options['direct_num_workers']} worker processes" if "direct_num_workers" in options else ""
    )
    log.info("beam (%s): %d object(s) in %.1f s: %d segment(s) converted, %d error row(s)", where,
             len(listing), time.perf_counter() - t0, segments, errors)  # fmt: skip


class BeamRunError(RuntimeError):
    """The pipeline ended in a state other than DONE (failed, cancelled, drained)."""


def _drop_empty_files(staging: Path) -> dict[str, int]:
    """Beam's sink writes a file even for a dataset with no rows; the other drivers write none, and the
    caller reads a missing folder as 'nothing staged'. Returns the rows staged per dataset."""
    rows: dict[str, int] = {}
    for name in _STAGED:
        folder = staging / name
        if not folder.is_dir():
            continue
        for f in folder.glob("*.parquet"):
            n = pq.ParquetFile(f).metadata.num_rows
            if n == 0:
                f.unlink()
            rows[name] = rows.get(name, 0) + n
        if not any(folder.iterdir()):
            folder.rmdir()
    return rows
