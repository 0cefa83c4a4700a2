"""markup engine: a section of a document that carries its own text (Word, a spreadsheet, HTML, Markdown,
text, CSV, EPUB, e-mail) → its Markdown, which the format's splitter derived from the file's structure
(pipeline/formats/documents.py). Nothing to infer, so nothing is added: the engine hands on the splitter's
Markdown and names the parser that read it."""

from __future__ import annotations

import json

from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "markup"


class MarkupEngine:
    name = ENGINE_NAME
    model_id = "document-structure"

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        out = []
        for seg in segments:
            part = json.loads(seg.structure_json or "{}")
            out.append(
                EngineOutput(markdown=part.get("markdown", ""), model_id=part.get("parser", self.model_id))
            )
        return out
