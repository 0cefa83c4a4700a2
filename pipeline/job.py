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
from unitok.pipeline.core.extras import install_hint
from unitok.pipeline.core.fingerprint import fingerprints
from unitok.pipeline.core.records import add_engine_calls
from unitok.pipeline.core.redact import redact_uri
from unitok.pipeline.core.schemas import OBJECTS_SCHEMA
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.drivers.cluster import cluster_address, joins_cluster
from unitok.pipeline.stages.commit import PartialCommitError, ProgressCommits
from unitok.pipeline.stages.plan import (
    CONVERT,
    EMBED,
    ENRICH,
    REASONS,
    RECHUNK,
    REFRESH,
    check_deletions,
    listing_table,
    mass_deletion,
    plan_run,
)
from unitok.pipeline.stages.preflight import enrich_problem, preflight
from unitok.pipeline.stages.report import RunReport

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
    enriched_objects: int = 0  # its stored segments enriched again (the enrich section changed)
    refreshed_objects: int = 0  # listed differently (touched) but the same content: state refreshed
    carried_objects: int = 0  # left as they were (refreshed ones included)
    reasons: dict[str, int] = field(default_factory=dict)  # why objects were worked on (stages.plan)
    skipped_links: int = 0  # symbolic links in a folder source, not followed (source.follow_symlinks)
    errors_command: str | None = None  # the command that prints this run's error rows
    report: str | None = None  # the run report (HTML) in the output
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
    # Per engine: segments, calls, batch_fill (segments per call / the batch size configured for them)
    # and busy_fraction (seconds inside its calls / the workers' seconds while the run converted).
    engines: dict[str, dict[str, float]] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)  # segments converted on each node
    _calls: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _workers: set[str] = field(default_factory=set, repr=False)  # the workers that convert whole objects
    _engine_workers: dict[str, set[str]] = field(default_factory=dict, repr=False)  # an engine's replicas

    def add(self, meta: dict[str, Any]) -> None:
        """Counts of one finished object (its metadata from stages.per_object)."""
        action = meta.get("action", CONVERT)
        counter = {CONVERT: "converted_objects", RECHUNK: "rechunked_objects", EMBED: "reembedded_objects",
                   ENRICH: "enriched_objects", REFRESH: "refreshed_objects"}[action]  # fmt: skip
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
        add_engine_calls(self._calls, meta.get("engines", {}))
        if meta.get("nodes") is not None:  # the staged plan: where each segment's engine ran
            for node, n in meta["nodes"].items():
                self.nodes[node] = self.nodes.get(node, 0) + n
        elif meta.get("node") is not None:
            self.nodes[meta["node"]] = self.nodes.get(meta["node"], 0) + meta["segments"]
        if meta.get("engine_workers") is not None:
            for name, workers in meta["engine_workers"].items():
                self._engine_workers.setdefault(name, set()).update(workers)
        elif meta.get("worker"):
            self._workers.add(meta["worker"])

    def engine_stats(self, converting_s: float) -> None:
        """The engines' figures, once the run has converted (converting_s: its seconds doing so)."""

        def worker_s(name: str) -> float:  # the seconds of the workers that host this engine
            workers = self._workers | self._engine_workers.get(name, set())
            return max(len(workers), 1) * max(converting_s, 1e-9)

        self.engines = {
            name: {"segments": int(segments), "calls": round(calls),
                   "batch_fill": round(segments / capacity, 3) if capacity else 0.0,
                   "busy_fraction": round(min(busy / worker_s(name), 1.0), 3)}
            for name, (segments, calls, capacity, busy) in sorted(self._calls.items())
        }  # fmt: skip

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
        if self.enriched_objects:
            lines.append(
                f"enrichment settings changed: {self.enriched_objects} objects' enrichments made again"
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
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if not k.startswith("_")}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def choose_executor(
    cfg: JobConfig, listing: pa.Table, probes: list[dict[str, Any]] | None = None
) -> tuple[str, str]:
    """(executor, why) for this run. auto: the driver with the shorter estimated wall time on this
    machine (stages.estimate.driver_wall_s), the local one up to runtime.local_max_s; an S3 source
    (not probed before the run: that would download it) by the local_max_objects and local_max_bytes
    bounds. probes: the conversions' probes where the caller has them (`unitok plan`), in listing order."""
    rt = cfg.runtime
    if rt.executor != "auto":
        return rt.executor, "runtime.executor or --executor"
    if cluster_address(cfg):
        return "ray", "a Ray cluster address is set"
    n, total = listing.num_rows, pc.sum(listing["size"]).as_py() or 0
    if cfg.source.uri.startswith("s3://") or "uri" not in listing.column_names:
        if n <= rt.local_max_objects and total <= rt.local_max_bytes:
            return "local", f"{n} objects, {total / 2**20:.1f} MiB: under the local_max_* bounds"
        return "ray", f"{n} objects, {total / 2**20:.1f} MiB: over the local_max_* bounds"

    from unitok.connectors.objects import ObjectInfo
    from unitok.pipeline.stages.estimate import driver_wall_s, load_rates

    rates = load_rates()
    workers = rt.pool_size
    fields = ("uri", "key", "size", "modified_at", "version")
    objects = [
        (ObjectInfo(**{k: r.get(k) for k in fields}), r.get("action") or CONVERT)
        for r in listing.select([c for c in (*fields, "action") if c in listing.column_names]).to_pylist()
    ]
    store = open_store(cfg.source.uri, cfg.source.s3.model_dump(), cfg.source.follow_symlinks)
    try:
        est = driver_wall_s(cfg, objects, store, workers, rates, rt.local_max_s, probes)
    except Exception as e:  # noqa: BLE001 - a file that cannot be probed: the run records why
        return "ray", f"{n} objects: the work could not be estimated ({type(e).__name__}: {e})"
    about = f"{n} objects, about {est['work_s']:.1f} s of work on {workers} workers"
    if not est["complete"] or est["local"] > rt.local_max_s:
        return "ray", f"{about}: over local_max_s={rt.local_max_s:g} on the local driver"
    if est["ray"] < est["local"]:
        return "ray", f"{about}: estimated {est['ray']:.1f} s on Ray, {est['local']:.1f} s locally"
    return "local", f"{about}: estimated {est['local']:.1f} s locally, {est['ray']:.1f} s on Ray"


def check_engines(cfg: JobConfig) -> None:
    """Preflight where this machine runs the engines; a cluster's workers check their own installs. A
    Beam job's runner and options are checked here too, before anything is listed. Enrichments the
    configured engine cannot make are refused wherever it runs: the config alone decides."""
    problem = enrich_problem(cfg)
    if problem:
        raise EngineSetupError(problem)
    if not joins_cluster(cfg):
        preflight(cfg)
    if cfg.runtime.executor == "beam":
        if importlib.util.find_spec("apache_beam") is None:
            raise EngineSetupError(f"runtime.executor: beam needs apache-beam: {install_hint('beam')}")
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


PROGRESS_EVERY_S = 30.0  # a progress line in logs this often (no terminal)


def _with_progress(metas: Iterator[dict[str, Any]], n_objects: int) -> Iterator[dict[str, Any]]:
    """A progress bar with the total and an ETA on a terminal; in logs and cron jobs, where no bar
    draws, one line every PROGRESS_EVERY_S seconds."""
    import sys

    from tqdm import tqdm

    segments, done, t0 = 0, 0, time.perf_counter()
    last = t0
    terminal = sys.stderr.isatty()
    with tqdm(total=n_objects, desc="converting", unit=" objects", disable=not terminal) as bar:
        for meta in metas:
            segments += meta["segments"]
            done += 1
            bar.set_postfix_str(f"{segments} segments")
            bar.update(1)
            now = time.perf_counter()
            if not terminal and now - last >= PROGRESS_EVERY_S:
                last = now
                left = (now - t0) / done * (n_objects - done)
                log.info("converted %d/%d objects (%.0f%%), %d segments, about %.0f s left",
                         done, n_objects, 100 * done / max(n_objects, 1), segments, left)  # fmt: skip
            yield meta


def _write_report(
    report: RunReport, summary: RunSummary, raw_config: dict[str, Any] | None, files: Any
) -> None:
    """The run's report.html beside its tables; a report that cannot be written is a log line, not a
    failed run (the tables are committed)."""
    try:
        html = report.render(summary.as_dict(), raw_config)
        summary.report = files.put_file("reports", f"{summary.run_id}.html", html.encode())
        log.info("run report: %s", summary.report)
    except Exception as e:  # noqa: BLE001
        log.warning("the run report was not written (%s: %s)", type(e).__name__, e)
        summary.report = None


def with_stored_files(convert: pa.Table, output: RunOutput) -> pa.Table:
    """The plan's rows with a `stored` column: for an object re-chunked or re-embedded, the data files
    (JSON: table -> paths) its worker reads its stored rows from."""
    reuse = convert.filter(pc.is_in(convert["action"], value_set=pa.array([RECHUNK, EMBED, ENRICH])))
    stored: dict[str, dict[str, list[str]]] = {}
    if reuse.num_rows:
        uris = reuse["uri"].combine_chunks()
        for name in ("documents", "segments", "chunks", "errors"):
            for uri, paths in output.object_files(name, uris).items():
                stored.setdefault(uri, {})[name] = paths
    column = [json.dumps(stored[u]) if u in stored else None for u in convert["uri"].to_pylist()]
    return convert.append_column("stored", pa.array(column, pa.string()))


def list_source(cfg: JobConfig) -> tuple[Any, pa.Table]:
    """The source's store and its listing (include/exclude applied), as run and plan see it."""
    store = open_store(cfg.source.uri, cfg.source.s3.model_dump(), cfg.source.follow_symlinks)
    return store, listing_table(store.list_objects(cfg.source.include, cfg.source.exclude))


def plan_for(cfg: JobConfig, listing: pa.Table, previous: pa.Table) -> Any:
    """stages.plan's plan of this config against the last run's state."""
    return plan_run(listing, previous, cfg.run_mode, fingerprints(cfg), PIPELINE_VERSION,
                    cfg.runtime.on_pipeline_upgrade, cfg.runtime.retry_failed)  # fmt: skip


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

    store, listing = list_source(cfg)
    summary.objects = listing.num_rows
    log.info("listed %d objects under %s", listing.num_rows, summary.source_uri)
    if listing.num_rows == 0:
        log.warning("nothing under %s is selected by source.include and source.exclude", summary.source_uri)
    summary.skipped_links = getattr(store, "skipped_links", 0)
    if summary.skipped_links:
        log.info("skipped %d symbolic link(s) (source.follow_symlinks is off)", summary.skipped_links)
    out = cfg.output
    with RunOutput(
        out.uri, out.s3.model_dump(), out.compression, out.table_config, out.max_rows_per_file
    ) as output:
        summary.mode = cfg.run_mode
        previous = output.previous_rows("objects", OBJECTS_SCHEMA.names)
        plan = plan_for(cfg, listing, previous)
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

        def metadata(versions: dict[str, int] | None = None, final: bool = False) -> dict[str, Any]:
            """Each commit carries the run: who, what, and the config as written (never resolved). The
            last commit's summary is the run's final state (committed, each table's version)."""
            summary.elapsed_s = round(time.perf_counter() - t0, 3)
            if final:
                summary.committed, summary.table_versions = True, dict(versions or {})
                summary.commits = commits.rounds + 1
            return {
                "run_id": run_id,
                "pipeline_version": PIPELINE_VERSION,
                "started_at": started_at.isoformat(),
                "source_uri": summary.source_uri,
                "config": json.dumps(raw_config or {}, default=str),
                "summary": json.dumps(summary.as_dict()),
            }

        commits = ProgressCommits(output, run_id, metadata, out.commit_every_s, out.commit_every_objects, t0)
        report = RunReport(t0)
        files = output.files
        where = files.uri if files.remote else str(output.dir)
        summary.report = f"{where.rstrip('/')}/reports/{run_id}.html"
        staging = output.begin(run_id)
        try:
            if plan.convert.num_rows:
                execute = _executor(summary.executor)
                converting = time.perf_counter()
                metas = execute(plan.convert, cfg, run_id, output.files, staging)
                for meta in _with_progress(metas, plan.convert.num_rows):
                    summary.add(meta)
                    report.add(meta)
                    summary.metadata_bytes += len(json.dumps(meta))
                    commits.add(meta)
                summary.engine_stats(time.perf_counter() - converting)
                for name, e in summary.engines.items():
                    log.info("engine %s: %d segments in %d calls, batch fill %.2f, busy %.0f%% of the "
                             "workers' time", name, e["segments"], e["calls"], e["batch_fill"],
                             100 * e["busy_fraction"])  # fmt: skip
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
        if out.compact_at_files:
            try:
                merged = output.compact(out.compact_at_files, metadata())  # the summary is final now
            except Exception as e:  # noqa: BLE001 - the run is committed; the next run compacts again
                log.warning(
                    "compacting the tables failed (%s: %s); the run is committed", type(e).__name__, e
                )
            else:
                for name, n in merged.items():
                    log.info("compacted %s: %d small files merged (output.compact_at_files %d)", name, n,
                             out.compact_at_files)  # fmt: skip
        _write_report(report, summary, raw_config, files)
        if out.lancedb is not None and cfg.chunking.enabled:
            from unitok.connectors.lancedb_sink import sync_lancedb

            lance = out.lancedb
            try:
                summary.lancedb = sync_lancedb(out.uri, output.storage_options, lance.uri, lance.table)
            except BaseException as e:  # noqa: BLE001 - the Delta tables stand (an interrupt too): say so
                if isinstance(e, KeyboardInterrupt):
                    why = str(e) or "interrupted"
                else:
                    why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
                raise PartialCommitError(
                    f"the Delta tables are committed (run {run_id}), but LanceDB {redact_uri(lance.uri)}/"
                    f"{lance.table} was not brought in step ({why}); the next run syncs it"
                ) from e
            log.info("LanceDB %s/%s in step with chunks version %d", redact_uri(lance.uri), lance.table,
                     summary.lancedb["version"])  # fmt: skip
        return summary


def plan_job(cfg: JobConfig, sample: int = 50) -> dict[str, Any]:
    """What `run` would do, without converting or writing anything: the listing, the incremental plan
    (what would be converted, re-chunked, re-embedded, carried and deleted, and why), the work of the
    objects to convert (probed from headers and page trees; S3 objects: `sample` of them downloaded and
    the rest extrapolated by type) and the time estimate."""
    import os

    from unitok.connectors.objects import ObjectInfo
    from unitok.pipeline.stages.estimate import (
        COUNTS,
        estimate,
        inventory,
        load_rates,
        object_work_s,
        probe_file,
        spread_over_pool,
    )

    cfg = with_environment_endpoints(cfg)
    check_engines(cfg)
    store, listing = list_source(cfg)
    out = cfg.output
    previous = OBJECTS_SCHEMA.empty_table()
    # A full run deletes what is gone too: the last run's state is read in either mode (never created).
    if out.uri.startswith("s3://") or os.path.isdir(out.uri.removeprefix("file://")):
        with RunOutput(out.uri, out.s3.model_dump(), out.compression, out.table_config) as output:
            previous = output.previous_rows("objects", OBJECTS_SCHEMA.names)
    plan = plan_for(cfg, listing, previous)
    actions = pc.value_counts(plan.convert["action"]).to_pylist() if plan.convert.num_rows else []
    by_action = {a["values"]: a["counts"] for a in actions}
    to_convert = plan.convert.filter(pc.equal(plan.convert["action"], CONVERT))
    rows = [ObjectInfo(**{k: r[k] for k in ("uri", "key", "size", "modified_at", "version")})
            for r in to_convert.to_pylist()]  # fmt: skip
    remote = cfg.source.uri.startswith("s3://")
    step = max(1, -(-len(rows) // sample)) if remote and sample > 0 else 1
    probed = []
    for obj in rows[::step]:
        with store.fetch(obj) as (path, fetched):
            probed.append((fetched, probe_file(path, cfg)))
    inv = inventory(probed)
    if step > 1:  # extrapolated: the probed objects' work scaled to all objects' bytes
        scale = (sum(o.size for o in rows) or 1) / (sum(o.size for o, _ in probed) or 1)
        for k in COUNTS:
            inv[k] = round(inv[k] * scale, 1)
        inv["sampled"] = {"probed": len(probed), "of": len(rows)}
        inv["objects"], inv["bytes"] = len(rows), sum(o.size for o in rows)
    rates = load_rates()
    executor, why = choose_executor(cfg, to_convert, None if step > 1 else [p for _, p in probed])
    # One worker converts an object, except a long PDF on a local disk, which the local pool spreads.
    spreads = executor == "local" and not remote
    largest = max((0.0 if spreads and spread_over_pool(p) else object_work_s(p, rates) for _, p in probed),
                  default=0.0)  # fmt: skip
    workers = cfg.runtime.pool_size
    return {
        "source": redact_uri(cfg.source.uri),
        "output": redact_uri(out.uri),
        "mode": cfg.run_mode,
        "listed": {"objects": listing.num_rows, "bytes": pc.sum(listing["size"]).as_py() or 0},
        "plan": {
            "convert": by_action.get(CONVERT, 0),
            "rechunk": by_action.get(RECHUNK, 0),
            "embed": by_action.get(EMBED, 0),
            "enrich": by_action.get(ENRICH, 0),
            "check_content": by_action.get(REFRESH, 0),
            "carried": plan.carried,
            "deleted": len(plan.deleted),
            "reasons": dict(plan.reasons),  # the same keys as run --json's (stages.plan.REASONS says them)
            # Where a run would stop at the mass-deletion guard, and why (None: it would not).
            "stops": mass_deletion(
                plan, listing.num_rows, redact_uri(cfg.source.uri), cfg.runtime.max_delete_fraction
            ),
        },
        **inv,
        "estimate": {**estimate(inv, cfg, workers, executor, rates, largest), "executor_why": why},
    }


def check_source_and_output(cfg: JobConfig) -> dict[str, Any]:
    """validate's cheap part: the source listed (reachable, readable), what each include glob matches,
    and the output writable (a local folder or its nearest existing parent; nothing is created).
    Returns {"objects": selected, "per_include": {glob: matches}}; raises SourceError or OutputError."""
    import os
    import tempfile

    from unitok.connectors.objects import key_selected
    from unitok.connectors.output import OutputError

    cfg = with_environment_endpoints(cfg)
    check_output_location(cfg.source.uri, cfg.output.uri)
    store = open_store(cfg.source.uri, cfg.source.s3.model_dump(), cfg.source.follow_symlinks)
    src = cfg.source
    per_include = dict.fromkeys(src.include, 0)
    selected = 0
    for obj in store.list_objects(["**"], src.exclude):
        hits = [p for p in src.include if key_selected(obj.key, [p], src.exclude)]
        for p in hits:
            per_include[p] += 1
        selected += bool(hits)
    if not cfg.output.uri.startswith("s3://"):
        from unitok.connectors.local import path_from_uri

        target = path_from_uri(cfg.output.uri).resolve()
        probe = target
        while not probe.exists():
            probe = probe.parent
        why = None
        if not probe.is_dir():
            why = "a file is in the way: the output must be a folder"
        elif probe == target:
            try:
                with tempfile.NamedTemporaryFile(dir=target, prefix=".unitok-probe-"):
                    pass
            except OSError as e:
                why = e.strerror or type(e).__name__
        elif not os.access(probe, os.W_OK | os.X_OK):
            why = f"{probe} is not writable"
        if why:
            raise OutputError(f"output.uri {redact_uri(cfg.output.uri)}: cannot write there ({why})")
    return {"objects": selected, "per_include": per_include}
