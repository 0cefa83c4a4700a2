"""slide_text engine: a slide's parsed structure → Markdown. The title becomes a heading, lists keep their
nesting, tables become Markdown tables (merged cells repeated), pictures become a placeholder line with
their alt text, charts their title and data as a table, and speaker notes go under a marked section."""

from __future__ import annotations

import json
from typing import Any

from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "slide_text"
MODEL_ID = "python-pptx"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def md_table(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [list(r) + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(_cell(c) for c in rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


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


def slide_markdown(
    structure: dict[str, Any], slide_number: int | None = None, picture_texts: list[str] | None = None
) -> str:
    parts = [
        f"## {structure['title']}" if structure.get("title") else f"## Slide {slide_number or ''}".strip()
    ]
    for block in structure.get("blocks", []):
        kind = block["kind"]
        if kind == "text":
            parts.append(_text_block(block["paragraphs"]))
        elif kind == "table":
            parts.append(md_table(block["rows"]))
        elif kind == "picture":
            line = f"*[Picture: {block['alt'] or block['name']}]*"
            text = (picture_texts or [])[block["ocr_index"]] if "ocr_index" in block and picture_texts else ""
            if text.strip():  # text found in the picture by OCR, quoted under its placeholder
                line += "\n\n" + "\n".join("> " + ln if ln else ">" for ln in text.splitlines())
            parts.append(line)
        elif kind == "chart":
            header = [""] + [s["name"] for s in block["series"]]
            rows = [header] + [
                [cat] + [s["values"][i] if i < len(s["values"]) else "" for s in block["series"]]
                for i, cat in enumerate(block["categories"])
            ]
            title = f"*[Chart: {block['title']}]*" if block["title"] else "*[Chart]*"
            parts.append(title + ("\n\n" + md_table(rows) if block["series"] else ""))
    if structure.get("notes"):
        parts.append("### Notes\n\n" + structure["notes"])
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
