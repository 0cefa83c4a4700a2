"""One listed object, start to end, in whichever worker holds it: split → engines → segments and errors →
its document → its chunks (and embeddings) → its rows of every table written as data files where the
tables live. What comes back to the driver is metadata only: the files' add-action fields and counts.

Every driver (local pool, Ray Data actors, Beam DoFns) calls this same class, so the same object gives the
same bytes whichever runs it; the per-object unit is also what a commit covers (stages.commit).
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.actors.contract import EngineSetupError
from unitok.actors.registry import engine_options
from unitok.connectors.table_files import TableFiles
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.schemas import (
    CHUNKS_SCHEMA,
    ERRORS_SCHEMA,
    OBJECTS_SCHEMA,
    RESULT_SCHEMA,
    TABLES,
    rows_to_table,
)
from unitok.pipeline.core.testhooks import checkpoint
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.stages.assemble import DOC_COLUMNS, assemble_document, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.plan import state_row
from unitok.pipeline.stages.work import object_batches

log = logging.getLogger("unitok")
_CHUNK_SEGMENT_COLUMNS = ["doc_id", "segment_index", "markdown", "page_number", "time_start_s", "time_end_s",
                          "spans"]  # fmt: skip


class ObjectConverter:
    """A worker's engines, chunker and embedder (each loaded once, on first use), and the output's
    table files. Call it with a listing row; it returns that object's metadata (see `convert`)."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: TableFiles):
        self.cfg = JobConfig.model_validate(cfg_data)
        self.run_id = run_id
        self.files = files
        self.engines = EnginePool(engine_options(self.cfg))  # applies the worker environment contract
        self._chunker: Any = None
        self._embedder: Any = None

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.convert(obj)

    def convert(self, obj: dict[str, Any]) -> dict[str, Any]:
        """{"uri", "files": {table: [add-action fields]}, "segments", "by_engine", "error_rows",
        "failed_segments", "failed", "documents", "chunks", "bytes"}."""
        rows = []
        for batch in object_batches(obj, self.cfg):
            rows.extend(convert_segments(batch, self.engines, self.run_id, PIPELINE_VERSION))
            checkpoint("converted.batch")  # a test may kill the run here
        results = rows_to_table(rows, RESULT_SCHEMA).sort_by("segment_index")
        parts = split_results(results)
        segments, errors = parts["segments"], parts["errors"]
        tables: dict[str, pa.Table] = {"segments": segments}
        extra_errors: list[dict[str, Any]] = []
        if segments.num_rows:
            failures = {segments["doc_id"][0].as_py(): errors.to_pylist()} if errors.num_rows else {}
            doc = assemble_document(segments.select(DOC_COLUMNS), failures, self.cfg.audio.heading_every_s)
            tables["documents"] = doc
            if self.cfg.chunking.enabled:
                try:
                    tables["chunks"] = self._chunks(doc.to_pylist()[0], segments)
                except EngineSetupError:
                    raise  # an embedder that cannot load stops the run: every object would fail
                except Exception as e:  # noqa: BLE001 - the document stands; the object is retried next run
                    extra_errors.append(self._error_row(obj, segments, "chunk", e))
        if extra_errors:
            errors = pa.concat_tables([errors, rows_to_table(extra_errors, ERRORS_SCHEMA)])
        tables["errors"] = errors
        failed = bool(errors.num_rows) and bool(pc.any(pc.less(errors["segment_index"], 0)).as_py())
        tables["objects"] = rows_to_table([state_row(obj, failed, self.run_id)], OBJECTS_SCHEMA)
        files = {
            name: self.files.write(name, tables[name], self.run_id, TABLES[name])
            for name in TABLES
            if name in tables
        }
        engines = pc.value_counts(segments["engine"]).to_pylist() if segments.num_rows else []
        return {
            "uri": obj["uri"],
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

    def _chunks(self, doc: dict[str, Any], segments: pa.Table) -> pa.Table:
        from unitok.pipeline.stages.chunk import Chunker

        if self._chunker is None:
            self._chunker = Chunker.from_config(self.cfg.chunking)
        rows = self._chunker.chunks(doc, segments.select(_CHUNK_SEGMENT_COLUMNS).to_pylist())
        table = rows_to_table(rows, CHUNKS_SCHEMA)
        if self.cfg.embedding.enabled and table.num_rows:
            table = self._embed(table)
        return table

    def _embed(self, table: pa.Table) -> pa.Table:
        """The object's chunks in chunk order, cut into embedding.batch_size batches: the same batches
        for the same document on every driver."""
        from unitok.pipeline.stages.embed import batches_of, embedder_options, with_embeddings

        if self._embedder is None:
            from unitok.actors.embedder import TextEmbedder

            self._embedder = TextEmbedder(**embedder_options(self.cfg.embedding))
        table = table.sort_by("chunk_index")
        vectors = [self._embedder(texts) for texts in batches_of(table, self.cfg.embedding.batch_size)]
        return with_embeddings(table, vectors, self._embedder.model_id)

    def _error_row(
        self, obj: dict[str, Any], segments: pa.Table, stage: str, exc: Exception
    ) -> dict[str, Any]:
        log.debug("%s failed for %s:\n%s", stage, obj["uri"], traceback.format_exc())
        return {
            "source_uri": obj["uri"],
            "source_version": segments["source_version"][0].as_py(),
            "doc_id": segments["doc_id"][0].as_py(),
            "segment_index": -1,
            "page_number": None,
            "stage": stage,
            "error_type": type(exc).__name__,
            "message": str(exc)[:2000],
            "run_id": self.run_id,
            "at": datetime.now(UTC),
        }
