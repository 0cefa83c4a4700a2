"""The routing policy, in one place: which engine converts a segment, what a splitter must extract for
that engine, and how many segments go to an engine at once.

Splitters say what a segment holds (its `content`: text, mixed, pixels, audio, empty) and choose no
engine; adding an engine means a registry entry and a line here, not an edit of every format.
"""

from __future__ import annotations

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import (
    CONTENT_AUDIO,
    CONTENT_EMPTY,
    CONTENT_MIXED,
    CONTENT_PIXELS,
    ROUTE_NONE,
    STATUS_ERROR,
    Renditions,
    Segment,
)

# Engine names (the registry's keys, and the `route` column of work rows).
PDF_TEXT = "pdf_text"
SLIDE_TEXT = "slide_text"
MARKUP = "markup"
TESSERACT = "tesseract"
WHISPER = "whisper"
PHI4 = "phi4"
VLLM = "vllm"
NONE = ROUTE_NONE

# Segments of documents that carry their text (pipeline/formats/documents.py).
DOCUMENT_KINDS = frozenset({"section", "sheet", "table", "chapter", "message"})

# Segments that take about a second of engine time each (rendered pages, keyframes, CPU ASR) go in small
# batches, so a long document spreads over the workers and a worker holds few rendered pages: 10 minutes
# of audio on 2 workers took 15.0 s in batches of 4, 19.9 s in batches of 16.
HEAVY_BATCH = 4


# Engines that read pixels or sound, slow per segment: on Ray's staged plan their segments go to an engine
# pool that batches them across objects; the others convert where they are split (see stages.staged).
POOLED = frozenset({TESSERACT, WHISPER, PHI4, VLLM})


def model_engine(cfg: JobConfig) -> str | None:
    """The multimodal model engine of this job (phi4 on transformers, or vllm), or None on CPU engines."""
    return cfg.engine.name if cfg.engine.uses_phi4 else None


def renditions(cfg: JobConfig) -> Renditions:
    """What the splitters must extract for this job's engines."""
    model = model_engine(cfg)
    always = bool(model) and cfg.engine.phi4.always_model
    return Renditions(
        text_page_pixels=always,
        slide_pixels=("always" if always else "visual") if model else "never",
        slide_picture_pixels=cfg.pptx.ocr_pictures and not model,
        frames_per_segment=cfg.video.frames_per_segment if model else 1,
        pictures=bool(model) and cfg.enrich.images.describe,
    )


def route(seg: Segment, cfg: JobConfig) -> str:
    """The engine that converts this segment."""
    if seg.status == STATUS_ERROR or seg.content == CONTENT_EMPTY:
        return NONE
    if seg.segment_kind in DOCUMENT_KINDS:
        return MARKUP  # the file carries its text and structure: no model reads anything
    model = model_engine(cfg)
    if seg.content == CONTENT_AUDIO:
        return model or WHISPER
    if seg.content == CONTENT_PIXELS:
        return model or TESSERACT
    # Text (a text layer, a slide's structure) renders without a model; the model reads the pixels where
    # the splitter rendered them: slides with pictures or charts, or every page with always_model.
    if model and seg.image_png and (seg.content == CONTENT_MIXED or cfg.engine.phi4.always_model):
        return model
    return SLIDE_TEXT if seg.segment_kind == "slide" else PDF_TEXT


def batch_size(seg: Segment, cfg: JobConfig) -> int:
    """How many segments like this one an engine takes at once (seg.route already set)."""
    if seg.route in (PHI4, VLLM):
        return cfg.engine.phi4.batch_size  # a GPU wants wide batches: its own setting
    size = cfg.runtime.engine_batch_size
    heavy = bool(seg.image_png or seg.frames_png) or seg.route in (TESSERACT, WHISPER)
    return min(size, HEAVY_BATCH) if heavy else size
