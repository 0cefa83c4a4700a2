"""Plain records that flow between stages, and the Arrow schemas of the output datasets.

A Segment is made by a splitter with its provenance already set; the engine stage only adds fields
(markdown, engine, model, prompt, timing). Ray, Beam and Serve all pass these same rows around.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pyarrow as pa

# Routes: which engine a segment goes to. Set by the splitter from the config.
ROUTE_TEXT_LAYER = "pdf_text"
ROUTE_OCR = "tesseract"
ROUTE_PHI4 = "phi4"
ROUTE_SLIDE_TEXT = "slide_text"
ROUTE_ASR = "whisper"
ROUTE_NONE = "none"  # nothing to convert (a blank page); the engine stage passes it through

STATUS_OK = "ok"
STATUS_ERROR = "error"


def clock(seconds: float) -> str:
    """hh:mm:ss for timestamps in Markdown and prompts."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def make_doc_id(source_uri: str, source_version: str) -> str:
    """Stable for the same object version; changes when the object changes."""
    return hashlib.sha256(f"{source_uri}\x00{source_version}".encode()).hexdigest()[:32]


@dataclass
class Segment:
    """One unit of work: a PDF page, an image frame, ... with its provenance."""

    doc_id: str
    source_uri: str
    source_version: str
    source_size: int
    mime_type: str
    modality: str
    segment_index: int
    segment_kind: str
    route: str
    page_number: int | None = None
    time_start_s: float | None = None
    time_end_s: float | None = None
    # Inputs for the engine: text-layer lines (with font sizes) or an encoded image.
    text_lines: list[str] = field(default_factory=list)
    line_sizes: list[float] = field(default_factory=list)
    line_gaps: list[float] = field(default_factory=list)
    structure_json: str | None = None  # a slide's parsed structure (title, blocks, notes)
    image_png: bytes | None = None
    frames_png: list[bytes] = field(default_factory=list)  # several images in one prompt (keyframes)
    frame_times_s: list[float] = field(default_factory=list)  # each keyframe's time in the video
    audio_f32: bytes | None = None  # 16 kHz mono float32 little-endian samples
    warnings: list[str] = field(default_factory=list)
    # A splitter that fails on one object or segment records it here instead of raising.
    status: str = STATUS_OK
    stage: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    def part(self, index: int, kind: str, route: str) -> Segment:
        """A segment of this object (a splitter's base): a copy of its provenance with its own index, kind
        and route."""
        return Segment(**{**self.to_row(), "segment_index": index, "segment_kind": kind, "route": route})

    def images(self) -> list[bytes]:
        """The encoded images an engine reads: a keyframe group's frames, else the page or image."""
        return list(self.frames_png or []) or ([self.image_png] if self.image_png else [])

    def as_error(self, stage: str, exc: BaseException, segment_index: int, explained: bool) -> Segment:
        """A copy of this segment's provenance recording a failure. Unexplained failures keep the last
        frames of their traceback so the error row is enough to debug from."""
        row = self.to_row()
        row.update(
            structure_json=None,
            image_png=None,
            frames_png=[],
            frame_times_s=[],
            audio_f32=None,
            text_lines=[],
            line_sizes=[],
            line_gaps=[],
            route=ROUTE_NONE,
        )
        seg = Segment.from_row(row)
        seg.segment_index = segment_index
        if segment_index < 0:
            seg.segment_kind, seg.page_number = "object", None
        seg.status, seg.stage, seg.error_type = STATUS_ERROR, stage, type(exc).__name__
        message = str(exc) or type(exc).__name__
        if not explained:
            message += "\n" + "".join(traceback.format_exception(exc, limit=-3)).strip()
        seg.error_message = message
        return seg

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Segment:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


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
_PLACE = [("page_number", pa.int32()), ("time_start_s", pa.float64()), ("time_end_s", pa.float64())]
_STATUS = [
    ("status", pa.string()),
    ("stage", pa.string()),
    ("error_type", pa.string()),
    ("error_message", pa.string()),
]

SEGMENT_WORK_SCHEMA = pa.schema(
    _SOURCE
    + [("route", pa.string())]
    + _PLACE
    + [
        ("text_lines", pa.list_(pa.string())),
        ("line_sizes", pa.list_(pa.float32())),
        ("line_gaps", pa.list_(pa.float32())),
        ("structure_json", pa.string()),
        ("image_png", pa.binary()),
        ("frames_png", pa.list_(pa.binary())),
        ("frame_times_s", pa.list_(pa.float64())),
        ("audio_f32", pa.binary()),
        ("warnings", pa.list_(pa.string())),
    ]
    + _STATUS
)

# Timed pieces of a segment's text, in seconds from the start of the recording: a transcript's phrases
# as the ASR engine found them (null where an engine gives no times). Deep links and the document's
# timeline use them.
SPANS_TYPE = pa.list_(pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("text", pa.string())]))

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
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
        ("elapsed_ms", pa.float64()),
        ("warnings", pa.list_(pa.string())),
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
        ("warnings", pa.list_(pa.string())),
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table with an explicit schema (no type guessing on all-null columns)."""
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)
