"""One listed object, start to end, in whichever worker holds it: split → engines → segments and errors →
its document → its chunks (and embeddings) → its rows of every table written as data files where the
tables live. What comes back to the driver is metadata only: the files' add-action fields and counts.

Every driver (local pool, Ray Data actors, Beam DoFns) calls this same class, so the same object gives the
same bytes whichever runs it; the per-object unit is also what a commit covers (stages.commit).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.actors.contract import EngineSetupError
from unitok.actors.registry import engine_options
from unitok.actors.routing import batch_size, renditions
from unitok.connectors.objects import ObjectInfo, sha256_file
from unitok.connectors.store import open_store
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.fingerprint import OFF, fingerprints
from unitok.pipeline.core.records import ROUTE_NONE, STATUS_ERROR, STATUS_OK, add_engine_calls
from unitok.pipeline.core.schemas import (
    CHUNKS_SCHEMA,
    DOCUMENTS_SCHEMA,
    ERRORS_SCHEMA,
    OBJECTS_SCHEMA,
    RESULT_SCHEMA,
    SEGMENTS_SCHEMA,
    TABLES,
    rows_to_table,
)
from unitok.pipeline.core.testhooks import checkpoint, fault
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.formats.pdf import pages_read
from unitok.pipeline.formats.split import fetch_error, split_file
from unitok.pipeline.stages.assemble import assemble_documents, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.convert_file import NoContentError, object_error_row
from unitok.pipeline.stages.doc_chunks import DocumentChunks
from unitok.pipeline.stages.enrich import RecordingSummary, enrich_rows, may_enrich, wanted, with_summaries
from unitok.pipeline.stages.plan import (
    CONVERT,
    CRASHED,
    EMBED,
    ENRICH,
    FAILED,
    LISTING_SCHEMA,
    RECHUNK,
    REFRESH,
    state_row,
)
from unitok.pipeline.stages.work import engine_batches

log = logging.getLogger("unitok")


def _warning_kinds(warnings: list[str]) -> dict[str, int]:
    """A document's warnings by kind (page numbers and counts taken out), at most 10 kinds."""
    kinds: dict[str, int] = {}
    for w in warnings or []:
        kind = re.sub(r"\d+", "N", re.sub(r"^(page|slide|frame) \d+: ", "", w))[:160]
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:10])


_EARLY = ("segments", "documents")  # the tables written while an object's chunks are made
ENGINE_STATS = b"unitok.engine_stats"  # a page range's engine calls, in its result table's metadata

# A PDF of at least this many pages is spread over a local pool's workers (below it, the part's fixed
# cost, a fetch and a document open per part and the rows passed back, is not paid back).
SPREAD_MIN_PAGES = 64


def page_parts(obj: dict[str, Any], cfg: JobConfig, workers: int) -> list[tuple[int, int]]:
    """The page ranges (first, end) to convert a listed PDF in, one worker each; [] to convert it whole.
    Only for objects on a local disk (parts of an S3 object would each download it), for a conversion
    (not a rechunk or re-embed), and for engines that read one page at a time (Phi-4 pads a batch: a
    part's batches would differ from the whole's)."""
    if (
        workers < 2
        or (obj.get("action") or CONVERT) != CONVERT
        or cfg.engine.uses_phi4
        or cfg.source.uri.startswith("s3://")
        or not str(obj.get("key", "")).lower().endswith(".pdf")
        # Not opened to count pages where the file is too small to hold that many (under 256 bytes a page).
        or (obj.get("size") or 0) < SPREAD_MIN_PAGES * 256
    ):
        return []
    store = open_store(cfg.source.uri, cfg.source.s3.model_dump())
    try:
        with store.fetch(ObjectInfo(**{k: obj.get(k) for k in LISTING_SCHEMA.names})) as (path, _):
            pages = pages_read(path, cfg)
    except Exception:  # noqa: BLE001 - unreadable: the whole conversion records why
        return []
    if len(pages) < SPREAD_MIN_PAGES:
        return []
    # A few parts per worker: the slowest ends last.
    n = min(2 * workers, len(pages) // (SPREAD_MIN_PAGES // 2))
    step = -(-len(pages) // n)
    return [(first, min(first + step, pages.stop)) for first in range(pages.start, pages.stop, step)]


class WorkerCrashed(Exception):
    """The process converting an object died (killed for memory, a native crash)."""


class _Redo(Exception):
    """The stored rows cannot be reused (missing, or chunking them failed): convert the object again."""


class ObjectConverter:
    """A worker's engines, chunker and embedder (each loaded once, on first use), and the output's
    table files. Call it with a row of the plan (stages.plan); it returns that object's metadata (see
    `convert`)."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles):
        self.cfg = JobConfig.model_validate(cfg_data)
        self.run_id = run_id
        self.files = files
        self.engines = EnginePool(engine_options(self.cfg))  # applies the worker environment contract
        self.settings = {**fingerprints(self.cfg), "pipeline_version": PIPELINE_VERSION}
        self.chunking = DocumentChunks(self.cfg)
        self._t0 = self._lap_at = 0.0  # this object's start and last stage end (for the run report)
        self._timings: dict[str, float] = {}
        self._stage = "split"  # where this object's work is, for the error row of a failure
        self._failing = False  # writing a failed object's own error rows
        self._uri = ""
        self._engine_stats: dict[str, list[float]] = {}  # this object's engine calls (see _engine_call)
        self._summary: RecordingSummary | None = None  # the recording being summarized (enrich.audio)
        self.node = socket.gethostname()  # a driver that knows its cluster's node ids sets this one

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.convert(obj)

    @property
    def worker(self) -> str:
        return f"{self.node}:{os.getpid()}"

    def finish_staged(
        self, obj: dict[str, Any], results: Callable[[], pa.Table], engine_stats: dict[str, list[float]]
    ) -> dict[str, Any]:
        """The object from its segments' results converted elsewhere (the staged plan's engine pools), as
        `convert` completes it; `results` reads them (a failure to is the object's error row)."""
        self._t0 = self._lap_at = time.perf_counter()
        self._timings = {}

        def work() -> dict[str, Any]:
            self._engine_stats = engine_stats
            self._stage = "rows"
            fault("object.rows", str(obj["uri"]))
            listed = {k: obj.get(k) for k in LISTING_SCHEMA.names}
            return self._complete(listed, results())

        return self._isolated(obj, work)

    def failed_in(self, obj: dict[str, Any], stage: str, exc: Exception) -> dict[str, Any]:
        """The rows of an object whose work failed in `stage` elsewhere (another process of the plan)."""
        self._t0 = self._lap_at = time.perf_counter()
        self._timings = {}
        self._stage = stage
        return self._failed_object({k: obj.get(k) for k in LISTING_SCHEMA.names}, exc)

    def convert(self, obj: dict[str, Any]) -> dict[str, Any]:
        """{"uri", "action" (what was done: convert, rechunk, embed, refresh), "tables" (those whose
        files of this object the commit replaces), "files": {table: [add-action fields]}, "segments",
        "by_engine", "error_rows", "failed_segments", "failed", "documents", "chunks", "bytes", and for
        the run report "modality", "elapsed_s", "timings" (seconds by stage), "error_kinds", "warnings"}.
        Never raises for the object's own sake: whatever fails in its work becomes its error row (see
        `_isolated`); only what stops every object (an engine or embedder that cannot load, an output
        that cannot take even the error row) ends the run."""
        self._t0 = self._lap_at = time.perf_counter()
        self._timings = {}
        return self._isolated(obj, lambda: self._convert_listed(obj))

    def _isolated(self, obj: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self._stage, self._uri = "split", str(obj.get("uri") or "")
        self._engine_stats = {}
        try:
            return work()
        except EngineSetupError:
            raise
        except Exception as e:  # noqa: BLE001 - one object's failure, whatever raised it, is that object's row
            return self._failed_object({k: obj.get(k) for k in LISTING_SCHEMA.names}, e)

    def crashed(self, obj: dict[str, Any], reason: str) -> dict[str, Any]:
        """The rows of an object whose worker died converting it (a driver saw it kill a worker of its
        own): its error row, and its state marked crashed, so that later runs skip it until it changes
        (or a run retries failed objects)."""
        self._t0 = self._lap_at = time.perf_counter()
        self._timings = {}
        self._stage = "worker"
        return self._failed_object(
            {k: obj.get(k) for k in LISTING_SCHEMA.names}, WorkerCrashed(reason), CRASHED
        )

    def _failed_object(self, listed: dict[str, Any], exc: Exception, status: str = FAILED) -> dict[str, Any]:
        """The object's error row (the stage it was in, the exception's type and reason) and its state,
        marked failed so the next incremental run tries it again; the rows of earlier versions are
        replaced as for any file that fails. An output that cannot take these rows raises: the run stops."""
        stage = self._stage
        log.warning("%s failed in %s: %s: %s", listed["uri"], stage, type(exc).__name__, exc)
        version = listed.get("version") or None
        row = self._error_row(listed, None, stage, exc)
        tables = {
            "errors": rows_to_table([row], ERRORS_SCHEMA),
            "objects": self._state(listed, True, version, status),
        }
        self._failing = True
        try:
            return self._finish(listed, CONVERT, tables, list(TABLES), True)
        finally:
            self._failing = False

    def _convert_listed(self, obj: dict[str, Any]) -> dict[str, Any]:
        listed = {k: obj.get(k) for k in LISTING_SCHEMA.names}
        action = obj.get("action") or CONVERT
        stored_version = obj.get("stored_version")
        checkpoint("split.object")  # a test may hold or change the object here, after listing
        store = open_store(self.cfg.source.uri, self.cfg.source.s3.model_dump())
        if action != CONVERT and obj.get("verify"):
            # Listed differently (a touched file): the content decides whether it changed.
            try:
                with store.fetch(ObjectInfo(**listed)) as (path, fetched):
                    version = fetched.version or sha256_file(path)
            except Exception:  # noqa: BLE001 - unreadable now: the conversion records why
                version = None
            if version != stored_version:
                action = CONVERT
        if action == REFRESH:
            state = self._state(listed, False, stored_version)
            return self._finish(listed, action, {"objects": state}, ["objects"])
        if action == ENRICH:
            try:
                return self._enrich_again(
                    listed, json.loads(obj.get("stored") or "{}"), stored_version, store
                )
            except _Redo as e:
                log.info("%s: %s; converting it again", listed["uri"], e)
                action = CONVERT
        if action in (RECHUNK, EMBED):
            try:
                return self._rework(listed, action, json.loads(obj.get("stored") or "{}"), stored_version)
            except _Redo as e:
                log.info("%s: %s; converting it again", listed["uri"], e)
                action = CONVERT
        return self._convert(listed, store)

    def convert_pages(self, obj: dict[str, Any], pages: tuple[int, int]) -> pa.Table:
        """A part of a long PDF: the result rows of its pages first..end (split and engines only). A
        driver that spreads one object's pages over its workers hands the parts to `finish_pages`."""
        checkpoint("split.object")
        listed = {k: obj.get(k) for k in LISTING_SCHEMA.names}
        self._engine_stats = {}
        try:
            store = open_store(self.cfg.source.uri, self.cfg.source.s3.model_dump())
            _, rows = self._split_and_convert(listed, store, range(*pages))
            # The part's engine calls travel with its rows, to the worker that finishes the object.
            stats = json.dumps(self._engine_stats).encode()
            return rows_to_table(rows, RESULT_SCHEMA).replace_schema_metadata({ENGINE_STATS: stats})
        except EngineSetupError:
            raise
        except Exception as e:  # noqa: BLE001 - a whole-object error: finish_pages converts the object whole
            rows = convert_segments([fetch_error(ObjectInfo(**listed), e)], self.engines, self.run_id,
                                    PIPELINE_VERSION)  # fmt: skip
            return rows_to_table(rows, RESULT_SCHEMA)

    def finish_pages(self, obj: dict[str, Any], parts: list[pa.Table]) -> dict[str, Any]:
        """The object from its parts' rows, as `convert` would make it from the whole. Parts that do not
        add up (the object changed between them, or one could not read it) are not mixed: the object is
        converted again whole."""
        self._t0 = self._lap_at = time.perf_counter()
        self._timings = {}
        return self._isolated(obj, lambda: self._finish_parts(obj, parts))

    def _finish_parts(self, obj: dict[str, Any], parts: list[pa.Table]) -> dict[str, Any]:
        listed = {k: obj.get(k) for k in LISTING_SCHEMA.names}
        self._stage = "rows"
        for part in parts:
            add_engine_calls(
                self._engine_stats, json.loads((part.schema.metadata or {}).get(ENGINE_STATS, b"{}"))
            )
        results = pa.concat_tables([part.replace_schema_metadata(None) for part in parts])
        versions = set(results["source_version"].to_pylist())
        whole_object_error = bool(pc.any(pc.less(results["segment_index"], 0)).as_py())
        if len(versions) != 1 or whole_object_error:
            store = open_store(self.cfg.source.uri, self.cfg.source.s3.model_dump())
            return self._convert(listed, store)
        self._lap("split and engines")
        size = results["source_size"][0].as_py()
        return self._complete({**listed, "size": size}, results.sort_by("segment_index"))

    def _split_and_convert(
        self, listed: dict[str, Any], store: Any, pages: range | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the listing row with the version and size read, the result rows)."""
        rows = []
        self._summary = RecordingSummary(self.engines, self.engines.enrich)
        with ExitStack() as stack:
            info = ObjectInfo(**listed)
            try:
                path, fetched = stack.enter_context(store.fetch(info))
                # The bytes read are what is recorded: an object overwritten since it was listed is
                # recorded (and next listed) as the version converted.
                listed = {**listed, "version": fetched.version, "size": fetched.size}
                segments = split_file(path, fetched, self.cfg, renditions(self.cfg), pages)
            except Exception as e:  # noqa: BLE001 - a download that fails becomes an error row
                segments = iter([fetch_error(info, e)])
            # Splitting is lazy: the stage is the split's while the next batch is made, the engines' while
            # a batch runs.
            for batch in engine_batches(self._splitting(segments, listed["uri"]), self.cfg):
                self._stage = "engines"
                fault("object.engines", listed["uri"])
                t0 = time.perf_counter()
                rows.extend(convert_segments(batch, self.engines, self.run_id, PIPELINE_VERSION))
                for seg in batch:  # while the windows still hold their samples
                    self._summary.add(seg)
                self._engine_call(batch, time.perf_counter() - t0)
                checkpoint("converted.batch")  # a test may kill the run here
                self._stage = "split"
        self._stage = "rows"
        return listed, rows

    def _engine_call(self, batch: list[Any], seconds: float) -> None:
        """One engine call's figures for the run's engine stats: [segments, calls, configured capacity
        (the batch size asked for these segments), seconds inside the call]."""
        live = [seg for seg in batch if seg.status != STATUS_ERROR and seg.route != ROUTE_NONE]
        if not live:
            return
        stats = self._engine_stats.setdefault(live[0].route, [0, 0, 0, 0.0])
        stats[0] += len(live)
        stats[1] += 1
        stats[2] += batch_size(live[0], self.cfg)
        stats[3] += seconds

    def _splitting(self, segments: Iterator[Any], uri: str) -> Iterator[Any]:
        self._stage = "split"
        fault("object.split", uri)
        yield from segments

    def _convert(self, listed: dict[str, Any], store: Any) -> dict[str, Any]:
        listed, rows = self._split_and_convert(listed, store)
        self._lap("split and engines")
        fault("object.rows", listed["uri"])
        return self._complete(listed, rows_to_table(rows, RESULT_SCHEMA).sort_by("segment_index"))

    def _complete(self, listed: dict[str, Any], results: pa.Table) -> dict[str, Any]:
        """Segments and errors → the document, its chunks, the object's state; all written."""
        parts = split_results(results)
        segments, errors = parts["segments"], parts["errors"]
        tables: dict[str, pa.Table] = {"segments": segments}
        extra_errors: list[dict[str, Any]] = []
        written: dict[str, list[dict[str, Any]]] = {}
        if segments.num_rows:
            self._stage = "assemble"
            fault("object.assemble", listed["uri"])
            docs, segments = assemble_documents(segments, errors.to_pylist(), self.cfg.audio.heading_every_s)
            docs = self._summaries(docs)
            tables["documents"], tables["segments"] = docs, segments
            self._lap("assemble")
            self._stage = "chunk"
            if self.cfg.chunking.enabled:
                # The document and its segments are written while the chunks are made: Parquet encodes
                # and compresses without the GIL, on the core the chunker leaves idle.
                with ThreadPoolExecutor(1) as writer:
                    early = {name: writer.submit(self._write, name, tables[name]) for name in _EARLY}
                    chunks, failure = self.chunking.of_documents_or_failure(docs, segments, listed["uri"])
                    if chunks is not None:
                        tables["chunks"] = chunks
                    if failure is not None:
                        extra_errors.append(self._error_row(listed, segments, *failure))
                    self._stage = "write"
                    written = {name: future.result() for name, future in early.items()}
            self._lap("chunk and embed")
        if "documents" not in tables and not errors.num_rows:
            # Nothing came out and nothing said why: the object still ends as a row that says so.
            extra_errors.append(
                self._error_row(
                    listed,
                    results,
                    "split",
                    NoContentError("the file gave no content to convert (no pages, text or media found)"),
                )
            )
        if extra_errors:
            errors = pa.concat_tables([errors, rows_to_table(extra_errors, ERRORS_SCHEMA)])
        tables["errors"] = errors
        # No document (every segment failed, or none came out) is a failure too: retried next run.
        failed = "documents" not in tables or (
            bool(errors.num_rows) and bool(pc.any(pc.less(errors["segment_index"], 0)).as_py())
        )
        version = results["source_version"][0].as_py() if results.num_rows else None
        tables["objects"] = self._state(listed, failed, version or None)
        return self._finish(listed, CONVERT, tables, list(TABLES), failed, written)

    def _rework(
        self, listed: dict[str, Any], action: str, stored: dict[str, list[str]], version: str | None
    ) -> dict[str, Any]:
        """Chunks again from the stored document and segments (rechunk), or embeddings again on the stored
        chunks (embed): nothing is downloaded or converted."""
        uri = listed["uri"]
        if action == RECHUNK:
            docs = self.files.read("documents", stored.get("documents", []), uri, DOCUMENTS_SCHEMA)
            if not docs.num_rows:
                raise _Redo("no stored document to chunk")
            segments = self.files.read("segments", stored.get("segments", []), uri, SEGMENTS_SCHEMA)
            chunks = CHUNKS_SCHEMA.empty_table()
            if self.cfg.chunking.enabled:
                try:
                    chunks = self.chunking.of_documents(docs, segments.sort_by("segment_index"))
                except EngineSetupError:
                    raise
                except Exception as e:  # noqa: BLE001 - a full conversion records the error
                    raise _Redo(f"chunking the stored document failed ({type(e).__name__}: {e})") from e
        else:
            chunks = self.files.read("chunks", stored.get("chunks", []), uri, CHUNKS_SCHEMA)
            if self.settings["embeddings_fingerprint"] == OFF:
                n = chunks.num_rows
                for name, type_ in (("embedding", pa.list_(pa.float32())), ("embedding_model", pa.string())):
                    chunks = chunks.set_column(chunks.schema.get_field_index(name), name, pa.nulls(n, type_))
            elif chunks.num_rows:
                chunks = self.chunking.embed(chunks)
        n = chunks.num_rows
        chunks = chunks.set_column(
            chunks.schema.get_field_index("run_id"), "run_id", pa.array([self.run_id] * n, pa.string())
        ).set_column(
            chunks.schema.get_field_index("pipeline_version"), "pipeline_version",
            pa.array([PIPELINE_VERSION] * n, pa.string()),
        )  # fmt: skip
        self._lap("chunk and embed")
        tables = {"chunks": chunks, "objects": self._state(listed, False, version)}
        return self._finish(listed, action, tables, ["chunks", "objects"])

    def _enrich_again(
        self, listed: dict[str, Any], stored: dict[str, list[str]], version: str | None, store: Any
    ) -> dict[str, Any]:
        """The enrichments made again on the stored segments (the enrich section changed): the object is
        read and split again for its samples and pixels, the enrichment engines run on the segments they
        touch and no conversion engine runs; its documents are assembled and chunked again from the
        stored segments. An object none of them touches, now or before, keeps its rows."""
        uri = listed["uri"]
        segments = self.files.read("segments", stored.get("segments", []), uri, SEGMENTS_SCHEMA)
        if not segments.num_rows:
            raise _Redo("no stored segments to enrich")
        rows = segments.sort_by("segment_index").to_pylist()
        opts = self.engines.enrich
        docs = self.files.read("documents", stored.get("documents", []), uri, DOCUMENTS_SCHEMA)
        had = any(r.get("enrichments") for r in rows) or any(
            d.get("summary") or d.get("enrichments") for d in docs.to_pylist()
        )
        touched = [r for r in rows if may_enrich(r["segment_kind"], opts)]
        if not touched and not had:
            self._lap("enrich")
            state = self._state(listed, False, version)
            return self._finish(listed, ENRICH, {"objects": state}, ["objects"])
        for r in rows:  # what the enrichments now on make replaces whatever earlier ones made
            r.update(translation=None, description=None, enrichments=None)
        self._summary = RecordingSummary(self.engines, opts)
        if touched:
            self._stage = "enrich"
            by_index = {(r["doc_id"], r["segment_index"]): r for r in touched}
            with store.fetch(ObjectInfo(**listed)) as (path, fetched):
                if (fetched.version or sha256_file(path)) != version:
                    raise _Redo("its bytes changed since they were converted")
                pending: list[tuple[Any, dict[str, Any]]] = []
                for seg in split_file(path, fetched, self.cfg, renditions(self.cfg)):
                    if (seg.doc_id, seg.segment_index) in by_index:
                        self._summary.add(seg)
                    row = by_index.get((seg.doc_id, seg.segment_index))
                    if row is None or not wanted(seg, opts):
                        continue
                    pending.append((seg, row))
                    if len(pending) >= batch_size(seg, self.cfg):
                        self._enrich_batch(pending)
                        pending = []
                self._enrich_batch(pending)
        self._lap("enrich")
        segments = rows_to_table(rows, SEGMENTS_SCHEMA)
        errors = self.files.read("errors", stored.get("errors", []), uri, ERRORS_SCHEMA)
        self._stage = "assemble"
        docs, segments = assemble_documents(segments, errors.to_pylist(), self.cfg.audio.heading_every_s)
        docs = self._summaries(docs)
        tables = {"segments": segments, "documents": docs, "chunks": CHUNKS_SCHEMA.empty_table()}
        if self.cfg.chunking.enabled:
            self._stage = "chunk"
            tables["chunks"] = self.chunking.of_documents(docs, segments)
        self._lap("chunk and embed")
        tables["objects"] = self._state(listed, False, version)
        return self._finish(listed, ENRICH, tables, ["segments", "documents", "chunks", "objects"])

    def _enrich_batch(self, pending: list[tuple[Any, dict[str, Any]]]) -> None:
        if not pending:
            return
        segs = [seg for seg, _ in pending]
        rows = [{**row, "status": STATUS_OK} for _, row in pending]
        enrich_rows(segs, rows, self.engines, self.engines.enrich)
        for (_, row), done in zip(pending, rows, strict=True):
            row.update({k: done.get(k) for k in ("translation", "description", "enrichments", "warnings")})

    def _summaries(self, docs: pa.Table) -> pa.Table:
        summary, self._summary = self._summary, None
        return with_summaries(docs, summary)

    def _lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._timings[stage] = self._timings.get(stage, 0.0) + now - self._lap_at
        self._lap_at = now

    def _state(
        self, listed: dict[str, Any], failed: bool, version: str | None, status: str | None = None
    ) -> pa.Table:
        row = state_row(listed, failed, self.run_id, version, self.settings)
        if status is not None:
            row["status"] = status
        return rows_to_table([row], OBJECTS_SCHEMA)

    def _finish(
        self,
        listed: dict[str, Any],
        action: str,
        tables: dict[str, pa.Table],
        replaces: list[str],
        failed: bool = False,
        written: dict[str, list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Write the object's tables' files (but those already `written`); its metadata for the driver."""
        self._stage = "write"
        written = written or {}
        files = {
            name: written[name] if name in written else self._write(name, tables[name])
            for name in TABLES
            if name in tables
        }
        self._lap("write")
        segments = tables.get("segments", SEGMENTS_SCHEMA.empty_table())
        errors = tables.get("errors", ERRORS_SCHEMA.empty_table())
        engines = pc.value_counts(segments["engine"]).to_pylist() if segments.num_rows else []
        docs = tables.get("documents")
        modality = (docs["modality"][0].as_py() if docs is not None and docs.num_rows else None) or (
            segments["modality"][0].as_py() if segments.num_rows else "unknown"
        )
        return {
            # For the run report: bounded, a few hundred bytes an object.
            "modality": modality,
            "elapsed_s": round(time.perf_counter() - self._t0, 4),
            "timings": {k: round(v, 4) for k, v in self._timings.items()},
            "error_kinds": [
                [
                    e["stage"],
                    e["error_type"],
                    (e["message"] or "").strip().split("\n")[0][:200],
                    e["page_number"],
                ]
                for e in errors.slice(0, 5).to_pylist()
            ],
            "warnings": _warning_kinds(
                docs["warnings"][0].as_py() if docs is not None and docs.num_rows else []
            ),
            # For the run's engine and node stats.
            "engines": {name: [round(v, 4) for v in st] for name, st in self._engine_stats.items()},
            "node": self.node,
            "worker": self.worker,
            "uri": listed["uri"],
            "action": action,
            "tables": replaces,
            "files": files,
            "segments": segments.num_rows,
            "by_engine": {(e["values"] or "none"): e["counts"] for e in engines},
            "error_rows": errors.num_rows,
            "failed_segments": int(pc.sum(pc.greater_equal(errors["segment_index"], 0)).as_py() or 0),
            "failed": failed,
            "documents": tables["documents"].num_rows if "documents" in tables else 0,
            "chunks": tables["chunks"].num_rows if "chunks" in tables else 0,
            "bytes": sum(f["size"] for fs in files.values() for f in fs),
        }

    def _write(self, name: str, rows: pa.Table) -> list[dict[str, Any]]:
        if not self._failing:
            fault("object.write", self._uri)
        return self.files.write(name, rows, self.run_id, TABLES[name])

    def _error_row(
        self, obj: dict[str, Any], segments: pa.Table | None, stage: str, exc: Exception
    ) -> dict[str, Any]:
        """An error of the whole object (segments: its segment rows, for their version; None where the
        object failed before any, and the listing's version stands)."""
        log.debug("%s failed for %s:\n%s", stage, obj["uri"], traceback.format_exc())
        if segments is not None and segments.num_rows:
            version = segments["source_version"][0].as_py()
        else:
            version = obj.get("version") or ""
        return object_error_row(obj["uri"], version, stage, exc, self.run_id)
