"""One file → its document, segments and errors, in memory, with the same stage functions as a job
(file_batches, convert_segments, split_results, assemble_documents). The HTTP endpoint calls this per
upload."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from unitok.connectors.objects import ObjectInfo, sha256_file
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.stages.assemble import assemble_documents, split_results
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.doc_chunks import DocumentChunks
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
    rows = [
        row
        for batch in file_batches(path, obj, cfg)
        for row in convert_segments(batch, engines, run_id, PIPELINE_VERSION)
    ]
    rows.sort(key=lambda r: r["segment_index"])
    parts = split_results(rows_to_table(rows, RESULT_SCHEMA))
    errors = parts["errors"].to_pylist()
    segments = parts["segments"]
    documents: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    if segments.num_rows:
        docs, segments = assemble_documents(segments, errors, cfg.audio.heading_every_s)
        documents = docs.to_pylist()
        if chunking is not None and cfg.chunking.enabled:
            chunks = chunking.of_documents(docs, segments).to_pylist()
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
