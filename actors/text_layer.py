"""pdf_text engine: a page's text-layer lines (with font sizes and gaps) → Markdown.

Paragraphs come from vertical gaps, headings from font sizes clearly above the body size, list items from
bullet glyphs; hyphenated line ends are joined. Cheap: no model, runs wherever the segment is.
"""

from __future__ import annotations

import json
import re

from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.markdown import md_table
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "pdf_text"
MODEL_ID = "pdfium-text-layer"
_BULLET = re.compile(r"^\s*([•●▪◦‣∙·○■□➢➤►\-\*–])\s+(.*)$")
_NUMBERED = re.compile(r"^\s*(\(?\d{1,3}[.)]|\(?[a-z][.)])\s+(.*)$")
_MD_SPECIAL_START = re.compile(r"^(\s*)([#>+]|\d+\.(?=\s))")


def body_font_size(sizes: list[float], lines: list[str]) -> float:
    """The size most characters are set in: the median over characters (at most 200 a line), found from
    the sizes in order with their counts rather than a list of every character's size."""
    weighted = sorted((s, min(len(t), 200)) for s, t in zip(sizes, lines, strict=False) if s > 0 and t)
    n = sum(w for _, w in weighted)
    if not n:
        return 0.0

    def at(k: int) -> float:  # the k-th character's size, in size order
        for s, w in weighted:
            if k < w:
                return s
            k -= w
        raise IndexError(k)

    return at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2


def _heading_level(size: float, body: float, text: str) -> int:
    if body <= 0 or size <= 0 or len(text) > 150 or text.endswith((".", ",", ";")):
        return 0
    ratio = size / body
    if ratio >= 1.6:
        return 1
    if ratio >= 1.3:
        return 2
    if ratio >= 1.15:
        return 3
    return 0


def _escape(text: str) -> str:
    # Text that starts like Markdown syntax would be misread as a heading or quote.
    return _MD_SPECIAL_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _join(parts: list[str]) -> str:
    out = ""
    for p in parts:
        if not out:
            out = p
        elif out.endswith("-") and p[:1].islower():
            out = out[:-1] + p  # de-hyphenate "docu-\nment"
        else:
            out += " " + p
    return out


def _bold_heading(i: int, lines: list[str], gaps: list[float], bold: set[int]) -> bool:
    """A line in a run of at most two lines set wholly in bold at body size, the run standing apart from
    the line above, short, not ending like a sentence: a heading (where the body is not bold)."""
    if i not in bold:
        return False
    start, end = i, i
    while start - 1 in bold:
        start -= 1
    while end + 1 in bold:
        end += 1
    if end - start > 1:
        return False  # a bold paragraph, not a heading
    for k in range(start, end + 1):
        text = lines[k]
        if len(text) > 100 or text.endswith((".", ",", ";", ":")) or _BULLET.match(text):
            return False
    return start == 0 or gaps[start] > 0.3


def text_layer_markdown(
    lines: list[str],
    sizes: list[float],
    gaps: list[float],
    tables: list[tuple[int, list[list[str]]]] | None = None,
    bold_lines: list[int] | None = None,
) -> str:
    """Markdown of a page's lines; ruled tables (line index they come before, rows) as Markdown tables,
    the first row as the header; headings from font size, and from bold where the body is not bold."""
    body = body_font_size(sizes, lines)
    bold = set(bold_lines or [])
    bold_chars = sum(len(lines[k]) for k in bold if k < len(lines))
    body_is_bold = bold_chars > 0.5 * max(sum(len(t) for t in lines), 1)
    blocks: list[str] = []
    para: list[str] = []
    at: dict[int, list[list[list[str]]]] = {}
    for index, rows in tables or []:
        at.setdefault(index, []).append(rows)

    def end_para() -> None:
        if para:
            blocks.append(_escape(_join(para)))
            para.clear()

    for i, (text, size, gap) in enumerate(zip(lines, sizes, gaps, strict=False)):
        if i in at:
            end_para()
            blocks.extend(md_table(rows) for rows in at.pop(i))
        level = _heading_level(size, body, text)
        if not level and not body_is_bold and _bold_heading(i, lines, gaps, bold):
            level = 3
        if level:
            end_para()
            if blocks and blocks[-1].startswith("#" * level + " ") and gap < 0.8:
                blocks[-1] += " " + text  # a heading wrapped over two lines
            else:
                blocks.append("#" * level + " " + text)
            continue
        bullet = _BULLET.match(text)
        if bullet:
            end_para()
            blocks.append("- " + bullet.group(2))
            continue
        if gap > 0.6 or gap < -0.5:  # paragraph gap, or a jump up (next column)
            end_para()
        if not para and _NUMBERED.match(text):
            end_para()
        if blocks and blocks[-1].startswith("- ") and not para and 0 <= gap <= 0.6:
            blocks[-1] += " " + text  # continuation of a wrapped list item
            continue
        para.append(text)
    end_para()
    blocks.extend(md_table(rows) for index in sorted(at) for rows in at[index])  # after the last line
    return _tidy("\n\n".join(blocks))


def _tidy(md: str) -> str:
    # Consecutive list items belong to one list: no blank line between them.
    return re.sub(r"(?m)^(- .*)\n\n(?=- )", r"\1\n", md).strip()


def _layout(segment: Segment) -> tuple[list | None, list[int] | None]:
    layout = json.loads(segment.structure_json) if segment.structure_json else {}
    return layout.get("tables"), layout.get("bold_lines")


class TextLayerEngine:
    name = ENGINE_NAME
    model_id = MODEL_ID

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        return [
            EngineOutput(
                text_layer_markdown(
                    s.text_lines,
                    s.line_sizes,
                    s.line_gaps,
                    *_layout(s),
                ),
                MODEL_ID,
            )
            for s in segments
        ]
