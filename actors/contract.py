"""The engine contract: what every engine is and returns, whatever runs it.

An engine is a callable on a batch of Segments (all routed to it) returning one EngineOutput per segment,
in order, with `name` and `model_id` attributes. Batches are formed by the stage functions
(unitok.pipeline.stages.work), so every driver feeds an engine the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from unitok.pipeline.core.records import Segment


class EngineSetupError(RuntimeError):
    """An engine cannot start here (missing OCR language data, model folder or package). Raised before
    any work where the driver can check it."""


@dataclass
class EngineOutput:
    """One segment's result. spans: timed phrases where the engine knows when each was said
    (schemas.SPANS_TYPE), else None. prompt_id: the versioned prompt a model was given, else None.
    language: the language the engine read the segment in, where it knows (ISO 639-1)."""

    markdown: str
    model_id: str
    warnings: list[str] = field(default_factory=list)
    spans: list[dict[str, Any]] | None = None
    prompt_id: str | None = None
    language: str | None = None  # ISO 639-1 where the engine knows it (detected or configured), else None


class Engine(Protocol):
    name: str
    model_id: str

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]: ...
