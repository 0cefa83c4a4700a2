"""One file → its document, segments and errors, in memory, with the same stage functions as a job
(file_batches, convert_segments, split_results, assemble_documents). The HTTP endpoint calls this per
upload."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unitok.actors.contract import EngineSetupError
from unitok.connectors.objects import ObjectInfo, sha256_file
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import make_doc_id
from unitok.pipeline.core.schemas import RESULT_SCHEMA, SEGMENTS_SCHEMA, rows_to_table
from unitok.pipeline.core.testhooks import fault
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.stages.assemble import assemble_documents, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.doc_chunks import DocumentChunks
from unitok.pipeline.stages.enrich import RecordingSummary, with_summaries
from unitok.pipeline.stages.work import file_batches

# Bulky engine inputs never leave the process; everything else in a row is provenance or output.
_JSON_SAFE = (str, int, float, bool, type(None))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        return v if isinstance(v, _JSON_SAFE) else str(v)

    return {k: value(v) for k, v in row.items()}


class NoContentError(Exception):
    """A file that split into nothing: no segment and no error of its own."""


def object_error_row(uri: str, version: str, stage: str, exc: Exception, run_id: str) -> dict[str, Any]:
    """The error row of a whole object (segment_index -1): the stage its work was in, the exception."""
    return {
        "source_uri": uri,
        "source_version": version,
        "doc_id": make_doc_id(uri, version) if version else "",
        "segment_index": -1,
        "page_number": None,
        "stage": stage,
        # An exception carried from another process by name (stages.staged) keeps its own.
        "error_type": getattr(exc, "type_name", None) or type(exc).__name__,
        "message": str(exc)[:2000],
        "run_id": run_id,
        "at": datetime.now(UTC),
    }


def convert_file(
    path: Path,
    name: str,
    cfg: JobConfig,
    engines: EnginePool,
    run_id: str,
    uri_prefix: str = "upload://",
    uri: str | None = None,
    chunking: DocumentChunks | None = None,
    plain: bool = True,
) -> dict[str, Any]:
    """{"document": row or None, "attachments": [rows], "segments": [...], "errors": [...], "chunks": [...]
    (with chunking)}: the rows a job would write for this file, as JSON-ready dicts (plain) or as Arrow
    gives them. "attachments": an e-mail's attachments' documents (each with parent_doc_id). source_uri is
    `uri`, else uri_prefix + name; source_version its content hash."""
    obj = ObjectInfo(
        uri=uri or f"{uri_prefix}{name}",
        key=name,
        size=path.stat().st_size,
        modified_at=time.time(),
        version=sha256_file(path),
    )
    stage = "split"
    try:
        fault("object.split", obj.uri)
        rows = []
        summary = RecordingSummary(engines, engines.enrich)  # type: ignore[arg-type]
        for batch in file_batches(path, obj, cfg):
            stage = "engines"
            fault("object.engines", obj.uri)
            rows.extend(convert_segments(batch, engines, run_id, PIPELINE_VERSION))
            for seg in batch:  # while the windows still hold their samples
                summary.add(seg)
            stage = "split"
        stage = "rows"
        fault("object.rows", obj.uri)
        rows.sort(key=lambda r: r["segment_index"])
        parts = split_results(rows_to_table(rows, RESULT_SCHEMA))
        errors = parts["errors"].to_pylist()
        segments = parts["segments"]
        documents: list[dict[str, Any]] = []
        chunks: list[dict[str, Any]] = []
        if segments.num_rows:
            stage = "assemble"
            fault("object.assemble", obj.uri)
            docs, segments = assemble_documents(segments, errors, cfg.audio.heading_every_s)
            docs = with_summaries(docs, summary)
            documents = docs.to_pylist()
            if chunking is not None and cfg.chunking.enabled:
                table, failure = chunking.of_documents_or_failure(docs, segments, obj.uri)
                chunks = table.to_pylist() if table is not None else []
                if failure is not None:  # the document stands, as in a job
                    errors.append(object_error_row(obj.uri, obj.version or "", *failure, run_id))
        elif not errors:
            stage = "split"
            raise NoContentError("the file gave no content to convert (no pages, text or media found)")
    except EngineSetupError:
        raise  # a model that cannot load is the caller's configuration, not this file's fault
    except Exception as e:  # noqa: BLE001 - whatever fails in this file's work is its error row
        documents, chunks, segments = [], [], SEGMENTS_SCHEMA.empty_table()
        errors = [object_error_row(obj.uri, obj.version or "", stage, e, run_id)]
    out = {
        "document": documents[0] if documents else None,
        "attachments": documents[1:],
        "segments": segments.to_pylist(),
        "errors": errors,
    }
    if chunking is not None:
        out["chunks"] = chunks
    if not plain:
        return out
    return {
        k: (_plain(v) if v else None) if k == "document" else [_plain(r) for r in v] for k, v in out.items()
    }
