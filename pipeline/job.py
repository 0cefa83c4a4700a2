"""One run of a job: list → plan → execute (local pool, Ray Data or Beam: each object split, converted,
assembled, chunked and written as data files in a worker) → progress commits of the workers' file metadata
to the output's Delta tables (connectors.output), the deletions with the last."""

from __future__ import annotations

import importlib.util
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.actors.contract import EngineSetupError
from unitok.connectors.output import RunOutput, check_lancedb_location, check_output_location
from unitok.connectors.store import open_store
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.fingerprint import fingerprints
from unitok.pipeline.core.redact import redact_uri
from unitok.pipeline.core.schemas import OBJECTS_SCHEMA
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.drivers.cluster import cluster_address, joins_cluster
from unitok.pipeline.stages.commit import PartialCommitError, ProgressCommits
from unitok.pipeline.stages.plan import (
    CONVERT,
    EMBED,
    REASONS,
    RECHUNK,
    REFRESH,
    check_deletions,
    listing_table,
    plan_run,
)
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
    converted_objects: int = 0  # split and converted (every table's rows of it replaced)
    rechunked_objects: int = 0  # chunked again from the stored document
    reembedded_objects: int = 0  # its stored chunks embedded again
    refreshed_objects: int = 0  # listed differently (touched) but the same content: state refreshed
    carried_objects: int = 0  # left as they were (refreshed ones included)
    reasons: dict[str, int] = field(default_factory=dict)  # why objects were worked on (stages.plan)
    skipped_links: int = 0  # symbolic links in a folder source, not followed (source.follow_symlinks)
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
    commits: int = 0  # commits of every table (progress commits and the last one)
    first_commit_s: float | None = None  # seconds from the start to the first committed object
    bytes_written: int = 0  # data files the workers wrote
    metadata_bytes: int = 0  # what reached the driver instead: the objects' file metadata, as JSON
    table_versions: dict[str, int] = field(default_factory=dict)  # each table's version after the commit
    lancedb: dict[str, int] = field(default_factory=dict)  # rows loaded, upserted and deleted in LanceDB

    def add(self, meta: dict[str, Any]) -> None:
        """Counts of one finished object (its metadata from stages.per_object)."""
        action = meta.get("action", CONVERT)
        counter = {CONVERT: "converted_objects", RECHUNK: "rechunked_objects", EMBED: "reembedded_objects",
                   REFRESH: "refreshed_objects"}[action]  # fmt: skip
        setattr(self, counter, getattr(self, counter) + 1)
        self.segments += meta["segments"]
        for engine, n in meta["by_engine"].items():
            self.segments_by_engine[engine] = self.segments_by_engine.get(engine, 0) + n
        self.error_rows += meta["error_rows"]
        self.failed_segments += meta["failed_segments"]
        self.failed_objects += int(meta["failed"])
        self.documents += meta["documents"]
        self.chunks += meta["chunks"]
        self.bytes_written += meta["bytes"]

    def describe_work(self) -> list[str]:
        """What the run did beside converting, and why: 'chunking settings changed: 15 documents
        re-chunked'."""
        lines = []
        if self.rechunked_objects:
            lines.append(f"chunking settings changed: {self.rechunked_objects} documents re-chunked")
        if self.reembedded_objects:
            lines.append(
                f"embedding settings changed: {self.reembedded_objects} documents' chunks re-embedded"
            )
        if self.refreshed_objects:
            lines.append(
                f"touched but unchanged (same content hash): {self.refreshed_objects} objects carried"
            )
        for key in ("convert_settings", "pipeline"):
            if self.reasons.get(key):
                lines.append(f"{REASONS[key]}: {self.reasons[key]} objects converted again")
        return lines

    @property
    def failures(self) -> int:
        return self.failed_objects + self.failed_segments

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def choose_executor(cfg: JobConfig, listing: pa.Table) -> tuple[str, str]:
    """(executor, why) for this run."""
    rt = cfg.runtime
    if rt.executor != "auto":
        return rt.executor, "runtime.executor or --executor"
    if cluster_address(cfg):
        return "ray", "a Ray cluster address is set"
    n, total = listing.num_rows, pc.sum(listing["size"]).as_py() or 0
    if n <= rt.local_max_objects and total <= rt.local_max_bytes:
        return "local", f"{n} objects, {total / 2**20:.1f} MiB: under the local_max_* bounds"
    return "ray", f"{n} objects, {total / 2**20:.1f} MiB: over the local_max_* bounds"


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


def _executor(name: str) -> Callable[..., Iterator[dict[str, Any]]]:
    if name == "local":
        from unitok.pipeline.drivers.local import execute_local

        return execute_local
    if name == "beam":
        from unitok.pipeline.drivers.beam import execute_beam

        return execute_beam
    from unitok.pipeline.drivers.ray_data import execute_ray

    return execute_ray


def _with_progress(metas: Iterator[dict[str, Any]], n_objects: int) -> Iterator[dict[str, Any]]:
    """A progress bar on a terminal (objects, and the segments they held), silent in logs and cron jobs,
    where the end-of-run summary speaks."""
    from tqdm import tqdm

    segments = 0
    with tqdm(total=n_objects, desc="converting", unit=" objects", disable=None) as bar:
        for meta in metas:
            segments += meta["segments"]
            bar.set_postfix_str(f"{segments} segments")
            bar.update(1)
            yield meta


def with_stored_files(convert: pa.Table, output: RunOutput) -> pa.Table:
    """The plan's rows with a `stored` column: for an object re-chunked or re-embedded, the data files
    (JSON: table -> paths) its worker reads its stored rows from."""
    reuse = convert.filter(pc.is_in(convert["action"], value_set=pa.array([RECHUNK, EMBED])))
    stored: dict[str, dict[str, list[str]]] = {}
    if reuse.num_rows:
        uris = reuse["uri"].combine_chunks()
        for name in ("documents", "segments", "chunks"):
            for uri, paths in output.object_files(name, uris).items():
                stored.setdefault(uri, {})[name] = paths
    column = [json.dumps(stored[u]) if u in stored else None for u in convert["uri"].to_pylist()]
    return convert.append_column("stored", pa.array(column, pa.string()))


def with_environment_endpoints(cfg: JobConfig) -> JobConfig:
    """S3 endpoints set the standard way (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), written into the
    config the workers get: a worker on another machine does not have the driver's environment."""
    import os

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return cfg
    update = {}
    for name in ("source", "output"):
        section = getattr(cfg, name)
        if section.uri.startswith("s3://") and not section.s3.endpoint_url:
            s3 = section.s3.model_copy(update={"endpoint_url": endpoint})
            update[name] = section.model_copy(update={"s3": s3})
    return cfg.model_copy(update=update) if update else cfg


def run_job(
    cfg: JobConfig,
    raw_config: dict[str, Any] | None = None,
    run_id: str | None = None,
    allow_mass_delete: bool = False,
) -> RunSummary:
    """List, plan, convert and commit one run. Raises MassDeleteError (before converting anything) when
    the run would delete more than runtime.max_delete_fraction of the last run's objects, unless
    allow_mass_delete; PartialCommitError when it stops after committing part of its output."""
    t0 = time.perf_counter()
    started_at = datetime.now(UTC)
    cfg = with_environment_endpoints(cfg)
    run_id = run_id or new_run_id()
    # Every URI this run writes (summary, manifest, logs) is redacted; the config is kept as written.
    summary = RunSummary(
        run_id=run_id, source_uri=redact_uri(cfg.source.uri), output_uri=redact_uri(cfg.output.uri)
    )
    check_engines(cfg)
    check_output_location(cfg.source.uri, cfg.output.uri)
    if cfg.output.lancedb is not None and cfg.chunking.enabled:
        check_lancedb_location(cfg.output.lancedb.uri)

    store = open_store(cfg.source.uri, cfg.source.s3.model_dump(), cfg.source.follow_symlinks)
    listing = listing_table(store.list_objects(cfg.source.include, cfg.source.exclude))
    summary.objects = listing.num_rows
    log.info("listed %d objects under %s", listing.num_rows, summary.source_uri)
    summary.skipped_links = getattr(store, "skipped_links", 0)
    if summary.skipped_links:
        log.info("skipped %d symbolic link(s) (source.follow_symlinks is off)", summary.skipped_links)
    out = cfg.output
    with RunOutput(
        out.uri, out.s3.model_dump(), out.compression, out.table_config, out.max_rows_per_file
    ) as output:
        summary.mode = cfg.run_mode
        previous = output.previous_rows("objects", OBJECTS_SCHEMA.names)
        rt = cfg.runtime
        plan = plan_run(
            listing, previous, summary.mode, fingerprints(cfg), PIPELINE_VERSION, rt.on_pipeline_upgrade
        )
        del previous
        plan.convert = with_stored_files(plan.convert, output)
        summary.carried_objects, summary.reasons = plan.carried, plan.reasons
        summary.deleted_objects = len(plan.deleted)
        log.info(
            "%s run: %d objects to work on, %d unchanged, %d deleted since the last run",
            summary.mode, plan.convert.num_rows, plan.carried, len(plan.deleted),
        )  # fmt: skip
        for line in plan.describe():
            log.info("  %s", line)
        if not allow_mass_delete:
            check_deletions(plan, listing.num_rows, summary.source_uri, cfg.runtime.max_delete_fraction)
        summary.executor, why = choose_executor(cfg, plan.convert)
        log.info("executor %s (%s)", summary.executor, why)

        def metadata() -> dict[str, Any]:
            """Each commit carries the run: who, what, and the config as written (never resolved)."""
            summary.elapsed_s = round(time.perf_counter() - t0, 3)
            return {
                "run_id": run_id,
                "pipeline_version": PIPELINE_VERSION,
                "started_at": started_at.isoformat(),
                "source_uri": summary.source_uri,
                "config": json.dumps(raw_config or {}, default=str),
                "summary": json.dumps(summary.as_dict()),
            }

        commits = ProgressCommits(output, run_id, metadata, out.commit_every_s, out.commit_every_objects, t0)
        staging = output.begin(run_id)
        try:
            if plan.convert.num_rows:
                execute = _executor(summary.executor)
                metas = execute(plan.convert, cfg, run_id, output.files, staging)
                for meta in _with_progress(metas, plan.convert.num_rows):
                    summary.add(meta)
                    summary.metadata_bytes += len(json.dumps(meta))
                    commits.add(meta)
            # The last commit, with the deletions: only now has the run converted all it should.
            commits.flush(listed_uris=listing["uri"].combine_chunks(), deletes=bool(len(plan.deleted)))
        except BaseException as e:
            output.discard(run_id)
            partial = commits.partial(e)
            if partial is not None:
                raise partial from e
            raise
        output.discard(run_id)
        summary.carried_objects += summary.refreshed_objects  # touched, content unchanged
        for line in summary.describe_work():
            log.info("%s", line)
        summary.table_versions = commits.versions
        summary.commits, summary.first_commit_s = commits.rounds, commits.first_commit_s
        summary.committed = True
        summary.elapsed_s = round(time.perf_counter() - t0, 3)
        log.info("committed run %s to %s in %d commit(s)", run_id, summary.output_uri, commits.rounds)
        if out.lancedb is not None and cfg.chunking.enabled:
            from unitok.connectors.lancedb_sink import sync_lancedb

            lance = out.lancedb
            try:
                summary.lancedb = sync_lancedb(out.uri, output.storage_options, lance.uri, lance.table)
            except Exception as e:  # noqa: BLE001 - the Delta tables stand; the next run syncs LanceDB
                raise PartialCommitError(
                    f"the Delta tables are committed (run {run_id}), but LanceDB {redact_uri(lance.uri)}/"
                    f"{lance.table} was not brought in step ({type(e).__name__}: "
                    f"{(str(e).strip().splitlines() or [''])[0]}); the next run syncs it"
                ) from e
            log.info("LanceDB %s/%s in step with chunks version %d", redact_uri(lance.uri), lance.table,
                     summary.lancedb["version"])  # fmt: skip
        return summary
