"""The plain record that flows between stages: a Segment, its provenance and its typed payload.

A Segment is made by a splitter with its provenance already set and a `content` saying what it holds;
the routing policy (unitok.actors.routing) sets its `route`, and the engine stage only adds fields
(markdown, engine, model, prompt, timing). Every driver passes these same rows around.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass, field, fields
from typing import Any

# What a segment holds, as its splitter found it; the routing policy maps it to an engine.
CONTENT_TEXT = "text"  # a usable text layer, or a slide's structure with nothing a model must see
CONTENT_MIXED = "mixed"  # a slide's structure plus pictures or charts that only pixels show
CONTENT_PIXELS = "pixels"  # only pixels carry the words: scans, images, keyframes
CONTENT_AUDIO = "audio"
CONTENT_EMPTY = "empty"  # nothing to convert (a blank page)

ROUTE_NONE = "none"  # the route of empty segments and error rows: no engine runs
ROUTE_UNSET = ""  # a segment the routing policy has not seen yet

STATUS_OK = "ok"
STATUS_ERROR = "error"


def clock(seconds: float) -> str:
    """hh:mm:ss for timestamps in Markdown and prompts."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def make_doc_id(source_uri: str, source_version: str) -> str:
    """Stable for the same object version; changes when the object changes."""
    return hashlib.sha256(f"{source_uri}\x00{source_version}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Renditions:
    """What a job's engines need the splitters to extract, set by the routing policy: a splitter reads
    this, never an engine's name."""

    text_page_pixels: bool = False  # render PDF pages that have a usable text layer too
    slide_pixels: str = "never"  # render slides: never, visual (pictures or charts) or always
    slide_picture_pixels: bool = False  # extract the pictures inside slides (for OCR)
    frames_per_segment: int = 1  # keyframes per video_frames segment
    pictures: bool = False  # extract the pictures inside pages and documents (for their descriptions)


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
    content: str = CONTENT_EMPTY
    route: str = ROUTE_UNSET
    batch: int = 0  # the engine batch it goes in, numbered within its object (stages.work)
    page_number: int | None = None
    time_start_s: float | None = None
    time_end_s: float | None = None
    heading_path: list[str] = field(default_factory=list)  # a document section's headings
    # Inputs for the engine: text-layer lines (with font sizes) or an encoded image.
    text_lines: list[str] = field(default_factory=list)
    line_sizes: list[float] = field(default_factory=list)
    line_gaps: list[float] = field(default_factory=list)
    structure_json: str | None = None  # a slide's parsed structure (title, blocks, notes)
    image_png: bytes | None = None
    frames_png: list[bytes] = field(default_factory=list)  # several images in one prompt (keyframes)
    frame_times_s: list[float] = field(default_factory=list)  # each keyframe's time in the video
    audio_f32: bytes | None = None  # 16 kHz mono float32 little-endian samples
    # The pictures inside a page or a document's section, as PNG, in reading order (Renditions.pictures):
    # what enrich.images.describe describes, one by one.
    pictures_png: list[bytes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # An e-mail attachment is a document of its own: this is the message's doc_id (null for the listed
    # object's own document).
    parent_doc_id: str | None = None
    # A splitter that fails on one object or segment records it here instead of raising.
    status: str = STATUS_OK
    stage: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The fields as a dict; lists and bytes are shared, not copied (a page's lines are not copied
        again for every row it becomes)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def _copy(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in self.to_row().items()}

    def part(self, index: int, kind: str, content: str) -> Segment:
        """A segment of this object (a splitter's base): a copy of its provenance with its own index, kind
        and content."""
        return Segment(**{**self._copy(), "segment_index": index, "segment_kind": kind, "content": content})

    def images(self) -> list[bytes]:
        """The encoded images an engine reads: a keyframe group's frames, else the page or image."""
        return list(self.frames_png or []) or ([self.image_png] if self.image_png else [])

    def as_error(self, stage: str, exc: BaseException, segment_index: int, explained: bool) -> Segment:
        """A copy of this segment's provenance recording a failure. Unexplained failures keep the last
        frames of their traceback so the error row is enough to debug from."""
        row = self._copy()
        row.update(
            structure_json=None,
            image_png=None,
            frames_png=[],
            pictures_png=[],
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
        return cls(**{k: v for k, v in row.items() if k in _FIELDS})


_FIELDS = tuple(f.name for f in fields(Segment))


def add_engine_calls(into: dict[str, list[float]], more: dict[str, list[float]]) -> None:
    """Engine figures ([segments, calls, configured capacity, seconds in calls] per engine) summed into
    `into`: a spread PDF's parts into its object, objects into a run."""
    for name, figures in more.items():
        total = into.setdefault(name, [0, 0, 0, 0.0])
        for k, v in enumerate(figures):
            total[k] += v
