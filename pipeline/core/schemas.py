"""The Arrow schemas of every table unitok writes: work and result rows between stages, and the output
tables (segments, documents, errors, and the run state: objects)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from unitok.pipeline.core.text import valid_value

# Where a segment comes from and where it sits in its object: shared by the work and result schemas.
_SOURCE = [
    ("doc_id", pa.string()),
    ("source_uri", pa.string()),
    ("source_version", pa.string()),
    ("source_size", pa.int64()),
    ("mime_type", pa.string()),
    ("modality", pa.string()),
    ("segment_index", pa.int32()),
    ("segment_kind", pa.string()),
]
# heading_path: the headings a document's section sits under (a sheet's name, an e-mail attachment's).
_PLACE = [
    ("page_number", pa.int32()),
    ("time_start_s", pa.float64()),
    ("time_end_s", pa.float64()),
    ("heading_path", pa.list_(pa.string())),
]
_STATUS = [
    ("status", pa.string()),
    ("stage", pa.string()),
    ("error_type", pa.string()),
    ("error_message", pa.string()),
]

# Timed pieces of a segment's text, in seconds from the start of the recording: a transcript's phrases
# as the ASR engine found them (null where an engine gives no times). Deep links and the document's
# timeline use them.
SPANS_TYPE = pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("text", pa.string())]))

# What each enrichment on a row came from (pipeline/stages/enrich.py): kind is translation, summary or
# description; engine "none" where nothing had to run (a transcript already in the target language).
ENRICHMENTS_TYPE = pa.list_(
    pa.struct([("kind", pa.string()), ("engine", pa.string()), ("model_id", pa.string()),
               ("prompt_id", pa.string())])
)  # fmt: skip

# What the engine stage emits: one row per segment, converted or failed.
RESULT_SCHEMA = pa.schema(
    _SOURCE
    + _PLACE
    + [
        ("markdown", pa.string()),
        ("spans", SPANS_TYPE),
        ("engine", pa.string()),
        ("model_id", pa.string()),
        ("prompt_id", pa.string()),
        ("language", pa.string()),  # ISO 639-1, where the engine knows it (ASR detects it per window)
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
        ("elapsed_ms", pa.float64()),
        ("warnings", pa.list_(pa.string())),
        # Added columns go last: a table made by an earlier version gains them at its end.
        ("parent_doc_id", pa.string()),  # an attachment's message (its doc_id); null for a listed object
        ("char_start", pa.int32()),  # where the segment's Markdown is in its document's (set at assembly;
        ("char_end", pa.int32()),  # null for a recording's windows, merged into one timeline)
        # Enrichments (the `enrich` section; null where it is off or the segment is not of its kind): an
        # audio window's transcript translated, a picture's or chart's generated description.
        ("translation", pa.string()),
        ("description", pa.string()),
        ("enrichments", ENRICHMENTS_TYPE),
    ]
    + _STATUS
)

SEGMENTS_SCHEMA = pa.schema(
    [RESULT_SCHEMA.field(n) for n in RESULT_SCHEMA.names if n not in {name for name, _ in _STATUS}]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("source_version", pa.string()),
        ("doc_id", pa.string()),
        ("segment_index", pa.int32()),
        ("page_number", pa.int32()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source_uri", pa.string()),
        ("source_version", pa.string()),
        ("source_size", pa.int64()),
        ("modality", pa.string()),
        ("mime_type", pa.string()),
        ("markdown", pa.string()),
        ("n_segments", pa.int32()),
        ("n_failed_segments", pa.int32()),
        ("engines", pa.list_(pa.string())),
        ("language", pa.string()),  # the language most of its segments' known-language text is in
        ("warnings", pa.list_(pa.string())),
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
        ("parent_doc_id", pa.string()),  # the message an e-mail attachment came in; null for a listed object
        ("translation", pa.string()),  # a recording's translated transcript (enrich.audio.translate_to)
        ("summary", pa.string()),  # a recording's summary (enrich.audio.summary)
        ("enrichments", ENRICHMENTS_TYPE),
    ]
)

# Run state, one row per listed object of the last run (what stages.plan compares): the version listed
# and the version of the bytes converted, and fingerprints of the settings that shaped each table
# (pipeline.core.fingerprint).
OBJECTS_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("listing_version", pa.string()),  # S3 ETag / version id; size and mtime for local files
        ("size", pa.int64()),
        ("modified_at", pa.float64()),
        ("status", pa.string()),  # ok | failed (failed, or no document: converted again next run)
        ("run_id", pa.string()),  # the run that last wrote this row
        ("source_version", pa.string()),  # the bytes converted: ETag of the download, or sha256 of a file
        ("pipeline_version", pa.string()),
        ("convert_fingerprint", pa.string()),
        ("chunks_fingerprint", pa.string()),
        ("embeddings_fingerprint", pa.string()),
        ("enrich_fingerprint", pa.string()),  # null in rows written before enrichments: read as off
    ]
)
# Documents cut for embedding (pipeline/stages/chunk.py): one row per chunk, with where it came from.
CHUNKS_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),  # stable: same document version and chunking settings, same id
        ("doc_id", pa.string()),
        ("source_uri", pa.string()),
        ("source_version", pa.string()),
        ("modality", pa.string()),
        ("chunk_index", pa.int32()),
        ("text", pa.string()),
        ("heading_path", pa.list_(pa.string())),
        ("n_tokens", pa.int32()),
        ("tokenizer", pa.string()),
        ("segment_indexes", pa.list_(pa.int32())),
        ("page_numbers", pa.list_(pa.int32())),  # PDF pages, image frames, slide numbers
        ("time_start_s", pa.float64()),  # where in a recording (from the transcript's phrase times)
        ("time_end_s", pa.float64()),
        ("char_start", pa.int32()),  # offsets into the document's Markdown
        ("char_end", pa.int32()),
        ("embedding", pa.list_(pa.float32())),  # unit length; null unless embedding.enabled
        ("embedding_model", pa.string()),
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("summary", pa.string()),  # its document's summary, where there is one (enrich.audio.summary)
    ]
)

# The tables of an output, in commit order: converted output, then the run state (committed last, so a
# run that dies before it is converted again).
TABLES = {
    "segments": SEGMENTS_SCHEMA,
    "documents": DOCUMENTS_SCHEMA,
    "chunks": CHUNKS_SCHEMA,
    "errors": ERRORS_SCHEMA,
    "objects": OBJECTS_SCHEMA,
}


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table with an explicit schema (no type guessing on all-null columns). Strings that are
    not valid Unicode (surrogates) are made valid here as a last guard; the stages that take text in
    fix and count them first, so this costs nothing on valid rows."""
    picked = [{n: r.get(n) for n in schema.names} for r in rows]
    try:
        return pa.Table.from_pylist(picked, schema=schema)
    except UnicodeEncodeError:
        return pa.Table.from_pylist([valid_value(r)[0] for r in picked], schema=schema)
