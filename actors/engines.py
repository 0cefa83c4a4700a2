"""Engine registry. An engine is a callable on a list of Segments returning (markdown, warnings) per
segment, or (markdown, warnings, spans) where it knows when each phrase was said (records.SPANS_TYPE),
with `name`, `model_id` and `prompt_id` attributes recorded in provenance."""

from __future__ import annotations

from typing import Any, Protocol

from pipeline.records import ROUTE_ASR, ROUTE_OCR, ROUTE_PHI4, ROUTE_SLIDE_TEXT, ROUTE_TEXT_LAYER, Segment


class EngineSetupError(RuntimeError):
    """An engine cannot start here (missing OCR language data, model folder or package). Raised before
    any work where the driver can check it."""


class Engine(Protocol):
    name: str
    model_id: str
    prompt_id: str | None

    def __call__(self, segments: list[Segment]) -> list[tuple[str, list[str]]]: ...


def make_engine(route: str, options: dict[str, Any]) -> Engine:
    if route == ROUTE_TEXT_LAYER:
        from actors.text_layer import TextLayerEngine

        return TextLayerEngine()
    if route == ROUTE_ASR:
        from actors.asr_whisper import WhisperEngine

        return WhisperEngine(**options)
    if route == ROUTE_SLIDE_TEXT:
        from actors.slide_text import SlideTextEngine

        return SlideTextEngine(**options)
    if route == ROUTE_OCR:
        from actors.ocr_tesseract import TesseractEngine

        return TesseractEngine(**options)
    if route == ROUTE_PHI4:
        if "max_model_len" in options:  # engine.name: vllm
            from actors.vllm_engine import VllmPhi4Engine

            return VllmPhi4Engine(**options)
        from actors.phi4 import Phi4Engine

        return Phi4Engine(**options)
    raise ValueError(f"no engine for route {route!r}")
