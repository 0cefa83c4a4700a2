"""slide_text engine: a slide's parsed structure → Markdown, adding no word the author did not write. The
title becomes a heading (a slide without one gets none), lists keep their nesting, tables become Markdown
tables (merged cells repeated), pictures an `<!-- image -->` marker with the description the author set,
charts a `<!-- chart -->` marker with their title and data as stored, then reviewer comments and speaker
notes, each after its own marker."""

from __future__ import annotations

import json
from typing import Any

from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.markdown import chart_markdown, md_table
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "slide_text"
MODEL_ID = "python-pptx"


def _text_block(paragraphs: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    counters: dict[int, int] = {}
    previous = None
    for p in paragraphs:
        indent = "  " * p["level"]
        is_list = p["kind"] != "text"
        # A blank line between paragraphs, and where a list starts or ends; none inside a list.
        if previous is not None and (not is_list or not previous):
            lines.append("")
        previous = is_list
        if p["kind"] == "numbered":
            counters[p["level"]] = counters.get(p["level"], 0) + 1
            lines.append(f"{indent}{counters[p['level']]}. {p['text']}")
        elif p["kind"] == "bullet":
            lines.append(f"{indent}- {p['text']}")
        else:
            counters.clear()
            lines.append(p["text"])
    return "\n".join(lines)


def _comment_line(c: dict[str, Any]) -> str:
    who = ", ".join(x for x in (c.get("author"), c.get("at")) if x)
    text = c.get("text", "").replace("\n", " ")
    return f"{who}: {text}" if who else text


def slide_markdown(
    structure: dict[str, Any], slide_number: int | None = None, picture_texts: list[str] | None = None
) -> str:
    parts = [f"## {structure['title']}" if structure.get("title") else ""]
    for block in structure.get("blocks", []):
        kind = block["kind"]
        if kind == "text":
            parts.append(_text_block(block["paragraphs"]))
        elif kind == "table":
            parts.append(md_table(block["rows"]))
        elif kind == "picture":
            line = "<!-- image -->" + (f"\n*{block['alt']}*" if block.get("alt") else "")
            text = (picture_texts or [])[block["ocr_index"]] if "ocr_index" in block and picture_texts else ""
            if text.strip():  # text found in the picture by OCR, quoted under its marker
                line += "\n\n" + "\n".join("> " + ln if ln else ">" for ln in text.splitlines())
            parts.append(line)
        elif kind == "chart":
            parts.append(chart_markdown(block))
    comments = structure.get("comments") or []
    if comments:
        lines = []
        for c in comments:
            lines.append("- " + _comment_line(c))
            lines += ["  - " + _comment_line(r) for r in c.get("replies", [])]
        parts.append("<!-- comments -->\n\n" + "\n".join(lines))
    if structure.get("notes"):
        parts.append("<!-- notes -->\n\n" + structure["notes"])
    return "\n\n".join(p for p in parts if p)


class SlideTextEngine:
    name = ENGINE_NAME
    model_id = MODEL_ID

    def __init__(self, ocr_options: dict[str, Any] | None = None):
        self._ocr_options = ocr_options or {}
        self._ocr = None  # Tesseract, started on the first slide that carries pictures to OCR

    def _ocr_pictures(self, pictures: list[bytes]) -> list[str]:
        import io

        from PIL import Image

        if self._ocr is None:
            from unitok.actors.ocr_tesseract import TesseractEngine

            self._ocr = TesseractEngine(**self._ocr_options)
        texts = []
        for blob in pictures:
            with Image.open(io.BytesIO(blob)) as img:
                texts.append(self._ocr.ocr_image(img)[0])
        return texts

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        out = []
        for s in segments:
            texts = self._ocr_pictures(s.frames_png) if s.frames_png else None
            markdown = slide_markdown(json.loads(s.structure_json or "{}"), s.page_number, texts)
            out.append(EngineOutput(markdown, MODEL_ID))
        return out
