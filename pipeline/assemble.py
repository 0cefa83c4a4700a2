"""Assembly: engine results → the segments/ and errors/ rows, and segments → one document per object."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import (
    DOCUMENTS_SCHEMA,
    ERRORS_SCHEMA,
    SEGMENTS_SCHEMA,
    STATUS_OK,
    rows_to_table,
)

MAX_DOC_WARNINGS = 50


def split_results(table: pa.Table) -> dict[str, pa.Table]:
    """Block splitter for the sink: converted rows to segments/, failures to errors/."""
    ok_mask = pc.equal(table["status"], STATUS_OK)
    segments = table.filter(ok_mask).select(SEGMENTS_SCHEMA.names).cast(SEGMENTS_SCHEMA)
    failed = table.filter(pc.invert(ok_mask))
    errors = pa.table(
        {
            "source_uri": failed["source_uri"],
            "source_version": failed["source_version"],
            "doc_id": failed["doc_id"],
            "segment_index": failed["segment_index"],
            "page_number": failed["page_number"],
            "stage": failed["stage"],
            "error_type": failed["error_type"],
            "message": failed["error_message"],
            "run_id": failed["run_id"],
            "at": failed["processed_at"],
        },
        schema=ERRORS_SCHEMA,
    )
    return {"segments": segments, "errors": errors}


def _failure_note(err: dict[str, Any]) -> str:
    where = f"page {err['page_number']}" if err.get("page_number") else f"segment {err['segment_index']}"
    return f"<!-- {where} not converted: {err['error_type']} -->"


def _norm(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def overlap_words(prev: list[str], nxt: list[str], max_k: int = 8) -> int:
    """How many leading words of nxt repeat the trailing words of prev (the windows' overlap)."""
    for k in range(min(max_k, len(prev), len(nxt)), 0, -1):
        if [_norm(w) for w in prev[-k:]] == [_norm(w) for w in nxt[:k]]:
            return k
    return 0


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def stitch_transcript(rows: list[dict[str, Any]], heading_every_s: float) -> list[tuple[int, str]]:
    """Audio windows in time order → (segment_index, text) parts: words repeated across a window overlap
    are dropped, and a timestamp heading opens every heading_every_s of the recording."""
    parts: list[tuple[int, str]] = []
    prev: list[str] = []
    last_block = -1
    for r in rows:
        words = (r["markdown"] or "").split()
        words = words[overlap_words(prev, words) :]
        block = int((r["time_start_s"] or 0) // heading_every_s)
        if block != last_block:
            parts.append((r["segment_index"], f"### [{_clock(block * heading_every_s)}]"))
            last_block = block
        if words:
            parts.append((r["segment_index"], " ".join(words)))
        prev = (r["markdown"] or "").split()
    return parts


def assemble_document(
    group: pa.Table, failures: dict[str, list[dict[str, Any]]], heading_every_s: float = 300.0
) -> pa.Table:
    """One document row from all segments of one doc_id, in segment order. Segments that failed
    leave a marked gap (an HTML comment) where their text would be, so nothing disappears silently."""
    rows = sorted(group.to_pylist(), key=lambda r: r["segment_index"])
    first = rows[0]
    failed = failures.get(first["doc_id"], [])
    if rows[0].get("segment_kind") == "audio_window":
        parts = stitch_transcript(rows, heading_every_s)
    else:
        parts = [(r["segment_index"], r["markdown"] or "") for r in rows]
    parts += [(e["segment_index"], _failure_note(e)) for e in failed if e["segment_index"] >= 0]
    parts.sort(key=lambda p: p[0])  # stable: a window's heading stays before its text
    markdown = "\n\n".join(text for _, text in parts if text.strip())
    warnings: list[str] = []
    for r in rows:
        for w in r["warnings"] or []:
            label = f"page {r['page_number']}: {w}" if r["page_number"] else w
            if label not in warnings:
                warnings.append(label)
    doc = {
        "doc_id": first["doc_id"],
        "source_uri": first["source_uri"],
        "source_version": first["source_version"],
        "source_size": first["source_size"],
        "modality": first["modality"],
        "mime_type": first["mime_type"],
        "markdown": markdown,
        "n_segments": len(rows),
        "n_failed_segments": len(failed),
        "engines": sorted({r["engine"] for r in rows if r["engine"]}),
        "warnings": warnings[:MAX_DOC_WARNINGS],
        "pipeline_version": first["pipeline_version"],
        "run_id": first["run_id"],
        "processed_at": datetime.now(UTC),
    }
    return rows_to_table([doc], DOCUMENTS_SCHEMA)


def assemble_sorted(
    segments: pa.Table, failures: dict[str, list[dict[str, Any]]], heading_every_s: float = 300.0
) -> pa.Table:
    """Assemble every document of an in-memory segments table (the small-run path; same function as
    the distributed groupby path, applied per doc_id slice)."""
    if segments.num_rows == 0:
        return DOCUMENTS_SCHEMA.empty_table()
    segments = segments.sort_by([("doc_id", "ascending"), ("segment_index", "ascending")])
    ids = segments["doc_id"].to_pylist()
    docs: list[pa.Table] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            docs.append(assemble_document(segments.slice(start, i - start), failures, heading_every_s))
            start = i
    return pa.concat_tables(docs)
